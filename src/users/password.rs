//! Passwords: length rules, a strength estimate, and argon2id hashing off the async threads.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{self, Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rocket::tokio::sync::oneshot;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, mpsc};

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
/// its own `threads`, so a sign-in flood queues here instead of starving the async workers.
///
/// Each thread owns one 19 MiB work area and reuses it for every hash, so memory stays at
/// `threads` × 19 MiB. (Allocating it per hash, as `argon2`'s `PasswordHasher` does, let glibc
/// keep ~200 MiB per thread: measured 427 MiB resident after 400 sign-ins on 4 threads.)
pub struct PasswordHasher {
    jobs: mpsc::Sender<Job>,
}

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// A hash of a password nobody knows: an unknown username costs the same work as a known one.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    Worker::new()
        .hash(b"no account has this password")
        .expect("argon2 hashes with its default parameters")
});

impl PasswordHasher {
    /// Starts the hashing threads; they end when the hasher is dropped.
    pub fn new(threads: usize) -> Self {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..threads {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    let mut worker = Worker::new();
                    // The lock is held only while taking a job, never while hashing.
                    let next = || {
                        receiver
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .recv()
                    };
                    while let Ok(job) = next() {
                        job(&mut worker);
                    }
                })
                .expect("the operating system starts a hashing thread");
        }
        PasswordHasher { jobs: sender }
    }

    pub async fn hash(&self, password: &Password) -> Result<String, AppError> {
        let password = password.0.clone();
        self.run(move |worker| worker.hash(password.as_bytes()))
            .await
    }

    /// `stored` is `None` for an unknown user: the dummy hash is verified instead, and fails.
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<String>,
    ) -> Result<bool, AppError> {
        let password = password.0.clone();
        self.run(move |worker| {
            let known = stored.is_some();
            let matches = worker.verify(
                password.as_bytes(),
                stored.as_deref().unwrap_or(&DUMMY_HASH),
            )?;
            Ok(known && matches)
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Worker) -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |worker| {
            // The requester may have gone away (a closed connection); nothing to tell then.
            let _ = done.send(work(worker));
        });
        self.jobs
            .send(job)
            .map_err(|_| AppError::PasswordHash("the hashing threads have stopped".into()))?;
        result
            .await
            .map_err(|_| AppError::PasswordHash("a hashing thread failed".into()))?
    }
}

/// One hashing thread's argon2id and the work area it reuses.
struct Worker {
    argon2: Argon2<'static>,
    memory: Vec<Block>,
}

impl Worker {
    /// The work area is allocated at the first hash, not at start.
    fn new() -> Self {
        Worker {
            argon2: Argon2::default(),
            memory: Vec::new(),
        }
    }

    /// The work area for `params`, grown (once) when they need more than it holds.
    fn memory_for(&mut self, params: &Params) -> &mut [Block] {
        if params.block_count() > self.memory.len() {
            self.memory.resize(params.block_count(), Block::default());
        }
        &mut self.memory
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) for a fresh random salt.
    fn hash(&mut self, password: &[u8]) -> Result<String, AppError> {
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_buffer = [0u8; Salt::MAX_LENGTH];
        let salt_bytes = salt
            .as_salt()
            .decode_b64(&mut salt_buffer)
            .map_err(hash_error)?;
        let argon2 = self.argon2.clone();
        let memory = self.memory_for(argon2.params());
        let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
            argon2
                .hash_password_into_with_memory(password, salt_bytes, out, &mut *memory)
                .map_err(password_hash::Error::from)
        })
        .map_err(hash_error)?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(argon2.params()).map_err(hash_error)?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(phc.to_string())
    }

    /// Recomputes a stored PHC hash with its own parameters and compares in constant time
    /// (`Output`'s equality is constant-time).
    fn verify(&mut self, password: &[u8], stored: &str) -> Result<bool, AppError> {
        let phc = PasswordHash::new(stored).map_err(hash_error)?;
        let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
            return Err(AppError::PasswordHash(
                "a stored hash lacks its salt or output".into(),
            ));
        };
        let algorithm = Algorithm::try_from(phc.algorithm).map_err(hash_error)?;
        let version = phc
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(hash_error)?
            .unwrap_or_default();
        let params = Params::try_from(&phc).map_err(hash_error)?;
        // A hash made with more memory than ours (an older, stronger setting) grows the area once.
        let memory = self.memory_for(&params);
        let argon2 = Argon2::new(algorithm, version, params);
        let mut salt_buffer = [0u8; Salt::MAX_LENGTH];
        let salt_bytes = salt.decode_b64(&mut salt_buffer).map_err(hash_error)?;
        let computed = Output::init_with(expected.len(), |out| {
            argon2
                .hash_password_into_with_memory(password, salt_bytes, out, &mut *memory)
                .map_err(password_hash::Error::from)
        })
        .map_err(hash_error)?;
        Ok(computed == expected)
    }
}

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
    fn hashes_interoperate_with_the_argon2_crates_own_hasher() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let mut worker = Worker::new();
        let ours = worker.hash(b"violet tractor mango").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"violet tractor mango", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"violet tractor mangos", &parsed)
                .is_err()
        );

        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"violet tractor mango", &salt)
            .unwrap()
            .to_string();
        assert!(worker.verify(b"violet tractor mango", &theirs).unwrap());
        assert!(!worker.verify(b"violet tractor mangos", &theirs).unwrap());
        // A hash with more memory than ours still verifies (the work area grows).
        let stronger = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(32 * 1024, 2, 1, None).unwrap(),
        );
        let strong = stronger
            .hash_password(b"violet tractor mango", &salt)
            .unwrap()
            .to_string();
        assert!(worker.verify(b"violet tractor mango", &strong).unwrap());
    }
}
