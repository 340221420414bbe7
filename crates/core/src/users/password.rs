//! Passwords: length rules and a strength estimate (hashing lives in [`super::hashing`]).
//!
//! ```
//! use secure_sessions_core::users::Password;
//!
//! assert!(Password::parse("short".into()).is_err());
//! let weak = Password::parse("password123".into()).expect("long enough");
//! assert!(weak.weakness("alice").is_some());
//! let strong = Password::parse("correct horse battery staple".into()).expect("long enough");
//! assert_eq!(strong.weakness("alice"), None);
//! ```

pub const MIN_BYTES: usize = 8;
pub const MAX_BYTES: usize = 1024;
/// zxcvbn's work grows quickly with length; a prefix this long already says all it can.
const STRENGTH_CHECK_CHARS: usize = 128;

/// A password as typed. Deliberately no `Debug` or `Display`.
pub struct Password(String);

impl Password {
    /// The password itself, for the hasher only.
    pub(super) fn expose(&self) -> &str {
        &self.0
    }

    /// Accepts 8 to 1024 bytes; the upper bound keeps hashing cost bounded.
    pub fn parse(value: String) -> Result<Password, &'static str> {
        if value.len() < MIN_BYTES {
            Err("Passwords must be at least 8 characters long.")
        } else if value.len() > MAX_BYTES {
            Err("Passwords must be at most 1024 bytes long.")
        } else {
            Ok(Password(value))
        }
    }

    /// `None` when the password is strong enough for a new account, else advice for the person.
    pub fn weakness(&self, username: &str) -> Option<String> {
        let prefix: String = self.0.chars().take(STRENGTH_CHECK_CHARS).collect();
        let estimate = zxcvbn::zxcvbn(
            &prefix,
            &[username, "secure-sessions", "secure", "sessions"],
        );
        if estimate.score() >= zxcvbn::Score::Three {
            return None;
        }
        let mut advice = String::from("This password is too easy to guess.");
        if let Some(feedback) = estimate.feedback() {
            if let Some(warning) = feedback.warning() {
                advice = format!("This password is too easy to guess: {warning}");
            }
            for suggestion in feedback.suggestions() {
                advice.push(' ');
                advice.push_str(&suggestion.to_string());
            }
        }
        Some(advice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_outside_8_to_1024_bytes_are_refused() {
        assert!(Password::parse("short".into()).is_err());
        assert!(Password::parse("x".repeat(1025)).is_err());
        assert!(Password::parse("x".repeat(1024)).is_ok());
        assert!(Password::parse("eight ch".into()).is_ok());
    }

    #[test]
    fn weak_passwords_get_advice_and_strong_ones_pass() {
        let weak = Password::parse("password1".into()).unwrap();
        assert!(weak.weakness("bob").is_some());
        let own_name = Password::parse("alice12345".into()).unwrap();
        assert!(own_name.weakness("alice12345").is_some());
        let strong = Password::parse("violet tractor mango seventeen".into()).unwrap();
        assert_eq!(strong.weakness("bob"), None);
    }
}
