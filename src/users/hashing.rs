//! The argon2id hashing pool: a few threads, each reusing one work area. Kept, instead of
//! `spawn_blocking` with the argon2 crate's own `PasswordHasher`, because the benchmark says it
//! is faster (see `PasswordHasher`).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{self, Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rocket::tokio::sync::oneshot;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, mpsc};

use super::Password;
use crate::error::AppError;

/// Hashes and verifies passwords with argon2id (OWASP parameters: m = 19 MiB, t = 2, p = 1) on
/// its own `threads`, so a sign-in flood queues here instead of starving the async workers.
///
/// Each thread owns one 19 MiB work area and reuses it for every hash, so memory stays at
/// `threads` × 19 MiB. (Allocating it per hash, as `argon2`'s `PasswordHasher` does, let glibc
/// keep ~200 MiB per thread: measured 427 MiB resident after 400 sign-ins on 4 threads.)
///
/// Why not `spawn_blocking`, a semaphore and the argon2 crate's own `PasswordHasher` and
/// `PasswordVerifier`, with glibc told to return each work area (`mallopt(M_MMAP_THRESHOLD,
/// 1 MiB)`)? Built and measured against this pool (`scripts/bench --quick`, three alternating
/// runs each, 2 shared cores at load 11 to 17): every hash then maps a fresh 19 MiB, faults it
/// in and unmaps it, and a sign-in cost 37.3 to 52.9 ms of CPU (median 37.7) against
/// 24.7 to 36.3 (median 28.3) here, 1.33 × the median; sign-ins per second alone 7, 13, 15
/// against 18, 19, 8 here, and during the flood 7, 7, 12 against 18, 20, 14. It did win at
/// rest: 24 MB resident after load against 63 to 65, with the same peak (62 to 63 MB against
/// 63 to 65). Speed decides: the pool stays. README, "Benchmark", has the runs.
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
    /// Starts the hashing threads; they end when the hasher is dropped. With `cgroup`, each
    /// thread first joins that cgroup (`SessionConfig::hashing_cgroup`), and a thread that cannot
    /// is an error: an operator who asked for the separation gets it or a failed launch.
    pub fn new(threads: usize, cgroup: Option<&Path>) -> io::Result<Self> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let (started, starts) = mpsc::channel::<io::Result<()>>();
        for index in 0..threads {
            let receiver = Arc::clone(&receiver);
            let cgroup = cgroup.map(Path::to_path_buf);
            let started = started.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    let joined = cgroup.as_deref().map_or(Ok(()), join_cgroup);
                    let failed = joined.is_err();
                    // `new` waits for this answer, so the send cannot fail.
                    let _ = started.send(joined);
                    if failed {
                        return;
                    }
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
                })?;
        }
        for _ in 0..threads {
            // On an error the job queue closes as this returns: the threads that started end.
            starts
                .recv()
                .map_err(|_| io::Error::other("a hashing thread ended before it could start"))??;
        }
        Ok(PasswordHasher { jobs: sender })
    }

    pub async fn hash(&self, password: &Password) -> Result<String, AppError> {
        let password = password.expose().to_owned();
        self.run(move |worker| worker.hash(password.as_bytes()))
            .await
    }

    /// `stored` is `None` for an unknown user: the dummy hash is verified instead, and fails.
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<String>,
    ) -> Result<bool, AppError> {
        let password = password.expose().to_owned();
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

/// Moves the calling thread into the cgroup at `dir`: cgroup v2 lists a threaded cgroup's
/// threads in `cgroup.threads`, v1 in `tasks`. Both take the kernel's thread id, which
/// `/proc/thread-self` names (`<pid>/task/<tid>`).
fn join_cgroup(dir: &Path) -> io::Result<()> {
    let thread_self = std::fs::read_link("/proc/thread-self")?;
    let tid = thread_self
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| io::Error::other("/proc/thread-self names no thread id"))?;
    let v2_list = dir.join("cgroup.threads");
    let list = if v2_list.exists() {
        v2_list
    } else {
        dir.join("tasks")
    };
    // Opened, never created: a directory that is not a cgroup has no such file, and says so.
    OpenOptions::new()
        .write(true)
        .open(&list)
        .and_then(|mut file| file.write_all(tid.as_bytes()))
        .map_err(|error| io::Error::new(error.kind(), format!("{}: {error}", list.display())))
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

    #[rocket::async_test]
    async fn a_hash_verifies_only_its_own_password() {
        let hasher = PasswordHasher::new(2, None).unwrap();
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

    #[test]
    fn hashing_leaves_the_async_thread_free() {
        // One async thread: a hash run on it would block everything else until it is done.
        let runtime = rocket::tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let hasher = PasswordHasher::new(1, None).unwrap();
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
    fn a_cgroup_that_cannot_be_joined_stops_the_hasher_with_its_path() {
        let missing = std::env::temp_dir().join(format!("no-such-cgroup-{}", std::process::id()));
        let Err(error) = PasswordHasher::new(2, Some(&missing)) else {
            panic!("the hasher started without joining {}", missing.display());
        };
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert!(
            error.to_string().contains(&*missing.to_string_lossy()),
            "{error}"
        );
    }

    #[test]
    fn a_directory_that_is_not_a_cgroup_is_not_written_to() {
        let dir = std::env::temp_dir().join(format!("not-a-cgroup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let result = PasswordHasher::new(1, Some(&dir));
        let written = dir.join("tasks").exists();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(result.is_err(), "the hasher started in a plain directory");
        assert!(
            !written,
            "the hasher created a tasks file in a plain directory"
        );
    }

    #[test]
    fn a_malformed_stored_hash_is_an_error_not_a_match() {
        assert!(
            Worker::new()
                .verify(b"violet tractor mango", "not a phc string")
                .is_err()
        );
    }
}
