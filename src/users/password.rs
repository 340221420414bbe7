//! Passwords: length rules, a strength estimate, and argon2id hashing off the async threads.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::sync::{Arc, LazyLock};
use rocket::tokio::sync::Semaphore;

use crate::error::AppError;

pub const MIN_BYTES: usize = 8;
pub const MAX_BYTES: usize = 1024;
/// zxcvbn's work grows quickly with length; a prefix this long already says all it can.
const STRENGTH_CHECK_CHARS: usize = 128;

/// A password as typed. Deliberately no `Debug` or `Display`.
pub struct Password(String);

impl Password {
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
        let estimate = zxcvbn::zxcvbn(&prefix, &[username, "secure-sessions", "secure", "sessions"]);
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

/// Hashes and verifies passwords with argon2id (OWASP parameters: m = 19 MiB, t = 2, p = 1) on
/// blocking threads, at most `max_concurrent` at a time, so a sign-in flood cannot starve
/// other requests or memory.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
}

/// A hash of a password nobody knows: an unknown username costs the same work as a known one.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(b"no account has this password", &salt)
        .expect("argon2 hashes with its default parameters")
        .to_string()
});

impl PasswordHasher {
    pub fn new(max_concurrent: usize) -> Self {
        PasswordHasher { permits: Arc::new(Semaphore::new(max_concurrent)) }
    }

    pub async fn hash(&self, password: &Password) -> Result<String, AppError> {
        let password = password.0.clone();
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| AppError::PasswordHash(e.to_string()))
        })
        .await
    }

    /// `stored` is `None` for an unknown user: the dummy hash is verified instead, and fails.
    pub async fn verify(&self, password: &Password, stored: Option<String>) -> Result<bool, AppError> {
        let password = password.0.clone();
        self.run(move || {
            let known = stored.is_some();
            let stored = stored.unwrap_or_else(|| DUMMY_HASH.clone());
            let hash = PasswordHash::new(&stored).map_err(|e| AppError::PasswordHash(e.to_string()))?;
            let matches = Argon2::default().verify_password(password.as_bytes(), &hash).is_ok();
            Ok(known && matches)
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let _permit = self.permits.acquire().await.map_err(|e| AppError::PasswordHash(e.to_string()))?;
        rocket::tokio::task::spawn_blocking(work).await.map_err(|e| AppError::PasswordHash(e.to_string()))?
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

    #[rocket::async_test]
    async fn a_hash_verifies_only_its_own_password() {
        let hasher = PasswordHasher::new(2);
        let right = Password::parse("violet tractor mango".into()).unwrap();
        let wrong = Password::parse("violet tractor mangos".into()).unwrap();
        let hash = hasher.hash(&right).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hasher.verify(&right, Some(hash.clone())).await.unwrap());
        assert!(!hasher.verify(&wrong, Some(hash)).await.unwrap());
        assert!(!hasher.verify(&right, None).await.unwrap());
    }
}
