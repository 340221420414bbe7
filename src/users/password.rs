//! Passwords: length rules, a strength estimate, and argon2id hashing off the async threads.

use std::sync::{Arc, LazyLock};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{
    self, PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString,
};
use rocket::tokio::sync::Semaphore;
use rocket::tokio::task;

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

/// Hashes and verifies passwords with argon2id (OWASP parameters: m = 19 MiB, t = 2, p = 1) on
/// tokio's blocking threads, never on the async workers, at most `max_concurrent` at once: a
/// sign-in flood waits here, costing nothing, instead of taking a core and 19 MiB per request.
///
/// The argon2 crate's own `PasswordHasher` and `PasswordVerifier` do the work; each hash
/// allocates its 19 MiB work area afresh. That this does not grow memory is the allocator's
/// part: `release_work_areas` has glibc give such blocks back to the system when freed.
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
}

/// A hash of a password nobody knows: an unknown username costs the same work as a known one.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    hash(b"no account has this password").expect("argon2 hashes with its default parameters")
});

impl PasswordHasher {
    pub fn new(max_concurrent: usize) -> Self {
        release_work_areas();
        PasswordHasher {
            permits: Arc::new(Semaphore::new(max_concurrent)),
        }
    }

    pub async fn hash(&self, password: &Password) -> Result<String, AppError> {
        let password = password.0.clone();
        self.run(move || hash(password.as_bytes())).await
    }

    /// `stored` is `None` for an unknown user: the dummy hash is verified instead, and fails.
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<String>,
    ) -> Result<bool, AppError> {
        let password = password.0.clone();
        self.run(move || {
            let known = stored.is_some();
            let matches = verify(
                password.as_bytes(),
                stored.as_deref().unwrap_or(&DUMMY_HASH),
            )?;
            Ok(known && matches)
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| AppError::PasswordHash("the hasher is closed".into()))?;
        task::spawn_blocking(move || {
            // The permit goes with the work: when the request goes away (a closed connection),
            // its hash still runs to the end, and no other starts beside it meanwhile.
            let _permit = permit;
            work()
        })
        .await
        .map_err(|_| AppError::PasswordHash("a hashing task failed".into()))?
    }
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) for a fresh random salt.
fn hash(password: &[u8]) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default()
        .hash_password(password, &salt)
        .map_err(hash_error)?;
    Ok(hash.to_string())
}

/// Recomputes a stored PHC hash with its own parameters (an older, stronger setting still
/// verifies) and compares in constant time.
fn verify(password: &[u8], stored: &str) -> Result<bool, AppError> {
    let stored = PasswordHash::new(stored).map_err(hash_error)?;
    match Argon2::default().verify_password(password, &stored) {
        Ok(()) => Ok(true),
        Err(password_hash::Error::Password) => Ok(false),
        Err(error) => Err(hash_error(error)),
    }
}

/// Has glibc return every block of 1 MiB or more to the system when it is freed. By default it
/// raises that threshold to the size of the largest block freed (up to 32 MiB), so after the
/// first hash each 19 MiB work area came from a thread's heap and stayed there: with tokio's
/// blocking threads, resident memory grew with every thread that ever hashed. Set once, the
/// threshold stays; nothing on a request's path allocates a block that large.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_work_areas() {
    const THRESHOLD_BYTES: libc::c_int = 1 << 20;
    // SAFETY: mallopt only changes the allocator's tuning; any thread may call it at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD_BYTES);
    }
}

/// Other allocators return large blocks on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_work_areas() {}

fn hash_error(error: impl std::fmt::Display) -> AppError {
    AppError::PasswordHash(error.to_string())
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

    #[test]
    fn hashing_leaves_the_async_thread_free() {
        // One async thread: a hash run on it would block everything else until it is done.
        let runtime = rocket::tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let hasher = PasswordHasher::new(1);
            let password = Password::parse("violet tractor mango".into()).unwrap();
            let hashing = rocket::tokio::spawn(async move { hasher.hash(&password).await });
            let mut turns = 0;
            while !hashing.is_finished() {
                rocket::tokio::task::yield_now().await;
                turns += 1;
            }
            assert!(hashing.await.unwrap().is_ok());
            // Inline, the hash would finish within the first turn or two.
            assert!(
                turns > 100,
                "the async thread ran {turns} turns during a hash"
            );
        });
    }

    #[test]
    fn a_hash_made_with_stronger_parameters_still_verifies() {
        use argon2::{Algorithm, Params, Version};
        let salt = SaltString::generate(&mut OsRng);
        let stronger = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(32 * 1024, 2, 1, None).unwrap(),
        );
        let strong = stronger
            .hash_password(b"violet tractor mango", &salt)
            .unwrap()
            .to_string();
        assert!(verify(b"violet tractor mango", &strong).unwrap());
        assert!(!verify(b"violet tractor mangos", &strong).unwrap());
    }

    #[test]
    fn a_malformed_stored_hash_is_an_error_not_a_match() {
        assert!(verify(b"violet tractor mango", "not a phc string").is_err());
    }
}
