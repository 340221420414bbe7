//! Enums stored as text codes: one declaration gives the variants, their codes, the list of all
//! of them and the mapping to PostgreSQL, so no table of codes is kept by hand.
//!
//! The columns are `TEXT` with a `CHECK (column IN (...))` constraint listing the same codes
//! (migrations 0001, 0002, 0007, 0012, 0013); `tests/integration/codes.rs` compares each
//! constraint with its enum's `ALL`, in both directions.

/// Declares a `Copy` enum whose variants are stored as the given text codes:
///
/// ```text
/// text_codes! {
///     /// What a session is.
///     pub enum SessionKind {
///         Browser = "browser",
///         Api = "api",
///     }
/// }
/// ```
///
/// It gets `ALL` (every variant, in declaration order), `code`, `from_code` (`None` for an
/// unknown code) and `sqlx::Type`, `Encode` and `Decode` for PostgreSQL as `TEXT`. Decoding an
/// unknown code is an error, never a default: a row no variant describes is a bug to surface.
/// The matches are generated from the one list, so a variant cannot lack a code or be missing
/// from `ALL`, and a code given twice is an unreachable pattern, which the lints refuse.
macro_rules! text_codes {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $code:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored code (stable: rows outlive releases).
            pub fn code(self) -> &'static str {
                match self {
                    $( $name::$variant => $code, )+
                }
            }

            pub fn from_code(code: &str) -> Option<$name> {
                match code {
                    $( $code => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.code(), buf)
            }
        }

        impl sqlx::Decode<'_, sqlx::Postgres> for $name {
            fn decode(
                value: sqlx::postgres::PgValueRef<'_>,
            ) -> Result<$name, sqlx::error::BoxDynError> {
                let code = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                $name::from_code(code).ok_or_else(|| {
                    format!("no {} has the code {code:?}", stringify!($name)).into()
                })
            }
        }
    };
}

pub(crate) use text_codes;
