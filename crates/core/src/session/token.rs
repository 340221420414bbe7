//! The session secret: [`SessionToken`] lives only in the cookie, [`SessionKey`] (its SHA-256)
//! only in the database.
//!
//! ```
//! use secure_sessions_core::session::token::SessionToken;
//!
//! let token = SessionToken::generate();
//! let cookie_value = token.expose();
//! // What the browser sends back names the same database row, and nothing else does.
//! let presented = SessionToken::parse(&cookie_value).expect("a well-formed token");
//! assert!(presented.key() == token.key());
//! assert!(SessionToken::generate().key() != token.key());
//! // Anything malformed is no token at all: a 404 of the session, never an error page.
//! assert!(SessionToken::parse("not-a-token").is_none());
//! // The CSRF token is derived one way from the session token, and differs from it.
//! assert_ne!(token.csrf_token(), cookie_value);
//! ```

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

const TOKEN_BYTES: usize = 32;
/// Length of 32 bytes in unpadded base64url.
const TOKEN_CHARS: usize = 43;

/// 256 random bits from the operating system. Deliberately neither `Debug` nor `Display`:
/// it cannot end up in a log line by accident.
pub struct SessionToken([u8; TOKEN_BYTES]);

/// 256 bits from the operating system's CSPRNG: the one source of every secret the app mints.
pub fn random_bytes() -> [u8; TOKEN_BYTES] {
    let mut bytes = [0u8; TOKEN_BYTES];
    OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random number generator must be available");
    bytes
}

impl SessionToken {
    pub fn generate() -> Self {
        SessionToken(random_bytes())
    }

    /// Parses a presented cookie or bearer value; anything malformed is treated as no token.
    pub fn parse(value: &str) -> Option<Self> {
        if value.len() != TOKEN_CHARS {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        Some(SessionToken(bytes.try_into().ok()?))
    }

    /// The value for the cookie (or the API response). Never for logs, URLs or pages.
    pub fn expose(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The database key: a leaked table holds only hashes, which open nothing.
    pub fn key(&self) -> SessionKey {
        SessionKey(Sha256::digest(self.0).into())
    }

    /// The CSRF token for forms of this session: bound to the session, changes with every
    /// rotation, and (one-way, domain-separated hash) reveals nothing about the token.
    pub fn csrf_token(&self) -> String {
        encode_csrf(&self.csrf_bytes())
    }

    /// The CSRF token's bytes: what a device-bound session keeps, so its forms stay valid while
    /// DBSC refreshes replace the token underneath them.
    pub fn csrf_bytes(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(b"secure-sessions csrf v1\0");
        hasher.update(self.0);
        hasher.finalize().into()
    }
}

/// The form value of CSRF token bytes.
pub fn encode_csrf(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a token: the primary key of the sessions table.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// A key read back from the database (the primary key column holds exactly 32 bytes).
    pub fn from_stored(bytes: &[u8]) -> Option<SessionKey> {
        Some(SessionKey(bytes.try_into().ok()?))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The first 8 hex digits: enough to correlate log lines, useless to an attacker.
    pub fn log_id(&self) -> String {
        self.0[..4].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionKey({}…)", self.log_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_round_trips_through_its_cookie_value() {
        let token = SessionToken::generate();
        let parsed = SessionToken::parse(&token.expose()).expect("own encoding parses");
        assert_eq!(parsed.key(), token.key());
        assert_eq!(token.expose().len(), TOKEN_CHARS);
    }

    #[test]
    fn two_tokens_differ() {
        assert_ne!(
            SessionToken::generate().key(),
            SessionToken::generate().key()
        );
    }

    #[test]
    fn malformed_values_are_no_token() {
        for value in [
            "",
            "abc",
            &"A".repeat(42),
            &"A".repeat(44),
            &"!".repeat(43),
            &"A".repeat(10_000),
        ] {
            assert!(
                SessionToken::parse(value).is_none(),
                "{value:?} must not parse"
            );
        }
    }

    #[test]
    fn the_csrf_token_is_not_the_session_token_nor_its_key() {
        let token = SessionToken::generate();
        assert_ne!(token.csrf_token(), token.expose());
        assert_ne!(
            token.csrf_token(),
            URL_SAFE_NO_PAD.encode(token.key().as_bytes())
        );
    }

    #[test]
    fn each_session_has_a_csrf_token_of_its_own_that_its_cookie_value_gives_back() {
        let (one, two) = (SessionToken::generate(), SessionToken::generate());
        assert_ne!(one.csrf_token(), two.csrf_token());
        assert_eq!(one.csrf_token(), encode_csrf(&one.csrf_bytes()));
        assert_eq!(one.csrf_token().len(), TOKEN_CHARS);
        let parsed = SessionToken::parse(&one.expose()).expect("own encoding parses");
        assert_eq!(parsed.csrf_token(), one.csrf_token());
    }

    #[test]
    fn a_key_read_back_from_its_bytes_is_the_same_key() {
        let key = SessionToken::generate().key();
        assert_eq!(key.as_bytes().len(), 32);
        assert_eq!(SessionKey::from_stored(key.as_bytes()), Some(key));
        assert_eq!(SessionKey::from_stored(&key.as_bytes()[1..]), None);
    }

    #[test]
    fn a_key_shows_only_its_log_id_when_debugged() {
        let key = SessionToken::generate().key();
        assert_eq!(format!("{key:?}"), format!("SessionKey({}…)", key.log_id()));
    }

    #[test]
    fn the_log_id_is_eight_hex_digits() {
        let id = SessionToken::generate().key().log_id();
        assert_eq!(id.len(), 8);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
