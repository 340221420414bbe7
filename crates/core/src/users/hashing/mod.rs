//! Password hashing on a fixed set of threads of the app's own, behind a bounded queue.
//!
//! argon2 is meant to cost a core for tens of milliseconds, so it never runs on the async
//! workers: `PasswordHasher` hands each hash to one of `HashingSettings::threads` threads
//! (`threads`), each of which keeps one argon2 work area for all its hashes (`argon`). It admits
//! no more work than those threads finish in a moment (`hashing_admission_ms`): a sign-in beyond
//! that gets [`HashingError::Busy`] at once, which the web layer answers with 503. Queued work
//! whose requester went away (its future was dropped) is skipped, never hashed. When the app
//! shuts down, what is still waiting near the end of its grace period is answered
//! [`HashingError::ShuttingDown`] (`PasswordHasher::stop_waiting_after`), so every request ends in
//! time.
//!
//! Nothing here knows about HTTP: the web layer maps [`HashingError`] to its pages.

mod argon;
mod threads;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

pub use threads::HashingSettings;
use threads::Job;

use super::Password;
use argon::{DUMMY_HASH, Worker};

/// What one hash is taken to cost until the first ones have been timed: about argon2id's with
/// these parameters on one core of a loaded machine.
const FIRST_HASH_ESTIMATE: Duration = Duration::from_millis(50);

/// Why a password could not be hashed or checked. The web layer decides what the visitor sees.
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    /// As much work is admitted as the hashing threads finish in the admission window: refused
    /// at once, before any other work. Worth trying again after `retry_after_secs`.
    #[error("password hashing is busy")]
    Busy { retry_after_secs: u64 },
    /// The hashing thread panicked while it held this request, or no hashing thread runs.
    #[error("password hashing is unavailable")]
    Unavailable,
    /// The app is shutting down: this request stopped waiting for a hash
    /// (`PasswordHasher::stop_waiting_after`).
    #[error("password hashing has stopped: the app is shutting down")]
    ShuttingDown,
    /// argon2 refused the work: a stored hash that is not one (a damaged row).
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Hashes and verifies passwords with argon2id (OWASP parameters: m = 19 MiB, t = 2, p = 1) on
/// `HashingSettings::threads` threads, so a sign-in flood waits in a bounded queue, or is
/// refused, instead of starving the async workers.
pub struct PasswordHasher {
    /// The hashing threads take their work here; they end once the hasher is dropped.
    jobs: mpsc::Sender<Job>,
    load: Arc<Load>,
}

/// What the requests and the hashing threads share: how much work is admitted, how long a hash
/// takes, and the counts.
struct Load {
    threads: usize,
    /// The work admitted at once is what the threads finish in this long: a sign-in admitted at
    /// the back of a full queue still gets its answer within about that time, and so does the
    /// owner's own sign-in during a flood, admitted or refused.
    window: Duration,
    /// Admitted and not yet answered or given up: waiting for the throttle, queued, or hashing.
    admitted: AtomicUsize,
    /// A moving average of one hash's time, in microseconds.
    hash_micros: AtomicU64,
    /// Whether sign-ins are being refused: the log says when that starts and when it ends.
    overloaded: AtomicBool,
    hashed: AtomicU64,
    refused: AtomicU64,
    abandoned: AtomicU64,
    /// Set once, at shutdown: nothing is admitted any more, and nobody waits for an answer.
    stopped: watch::Sender<bool>,
}

/// What the hasher has done with the work it was offered since it started (tests and logs read
/// it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingCounts {
    /// Requests a hashing thread began.
    pub hashed: u64,
    /// Refused at once (`HashingError::Busy`): as much work as the window holds was admitted.
    pub refused: u64,
    /// Admitted, then skipped unhashed: nobody waited for the answer any more.
    pub abandoned: u64,
}

impl Load {
    /// How much work may be admitted at once: what the threads finish in `window` at the
    /// measured speed, at least one request per thread.
    fn capacity(&self) -> usize {
        let hash_micros = self.hash_micros.load(Ordering::Relaxed).max(1);
        let per_thread = u64::try_from(self.window.as_micros()).unwrap_or(u64::MAX) / hash_micros;
        self.threads * usize::try_from(per_thread.max(1)).unwrap_or(usize::MAX)
    }

    /// Folds one measured hash into the average (an eighth of its weight each).
    fn timed(&self, hash: Duration) {
        let micros = u64::try_from(hash.as_micros()).unwrap_or(u64::MAX);
        let _ = self
            .hash_micros
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |average| {
                Some((average * 7 + micros) / 8)
            });
    }
}

/// A place in the hashing queue (`PasswordHasher::admit`), taken before the request's other
/// work (its throttle), so a refused sign-in costs nothing else. Given back when it is used or
/// dropped.
pub struct Admitted<'h> {
    hasher: &'h PasswordHasher,
}

impl Admitted<'_> {
    pub async fn hash(self, password: &Password) -> Result<String, HashingError> {
        let password = password.expose().to_owned();
        self.run(move |worker| worker.hash(password.as_bytes()))
            .await
    }

    /// `stored` is `None` for an unknown user: a dummy hash is verified instead, and fails, so
    /// an unknown name costs the same work as a known one.
    pub async fn verify(
        self,
        password: &Password,
        stored: Option<String>,
    ) -> Result<bool, HashingError> {
        let password = password.expose().to_owned();
        self.run(move |worker| {
            let known = stored.is_some();
            let matches =
                worker.verify(password.as_bytes(), stored.as_deref().unwrap_or(DUMMY_HASH))?;
            Ok(known && matches)
        })
        .await
    }

    /// Queues `work` for the next free hashing thread and waits for its answer. If this future
    /// is dropped first, the thread skips the work.
    async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce(&mut Worker) -> Result<T, String> + Send + 'static,
    ) -> Result<T, HashingError> {
        let (done, answer) = oneshot::channel();
        let load = Arc::clone(&self.hasher.load);
        let job: Job = Box::new(move |worker: &mut Worker| {
            if done.is_closed() {
                load.abandoned.fetch_add(1, Ordering::Relaxed);
                return;
            }
            load.hashed.fetch_add(1, Ordering::Relaxed);
            let began = Instant::now();
            let outcome = work(worker);
            load.timed(began.elapsed());
            // The requester may have gone away meanwhile; nothing to tell then.
            let _ = done.send(outcome);
        });
        let mut stopped = self.hasher.load.stopped.subscribe();
        self.hasher
            .jobs
            .send(job)
            .map_err(|_| HashingError::Unavailable)?;
        tokio::select! {
            biased;
            answer = answer => match answer {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(reason)) => Err(HashingError::Failed(reason)),
                // The thread panicked with the job, which dropped `done`.
                Err(_) => Err(HashingError::Unavailable),
            },
            // Dropping `answer` here makes the thread skip the job if it has not begun it.
            _ = stopped.wait_for(|stopped| *stopped) => Err(HashingError::ShuttingDown),
        }
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        let load = &self.hasher.load;
        let before = load.admitted.fetch_sub(1, Ordering::Relaxed);
        // Half the window free again: the flood has passed, or is being served.
        if before <= load.capacity() / 2 && load.overloaded.swap(false, Ordering::Relaxed) {
            let refused = load.refused.load(Ordering::Relaxed);
            log::info!("password hashing is no longer overloaded ({refused} refused so far)");
        }
    }
}

impl PasswordHasher {
    /// Starts the hashing threads and waits until each is ready; an error (a cgroup they cannot
    /// join) stops the launch. At most the work they finish in `admission` is admitted at once
    /// (`admit`).
    pub fn start(settings: HashingSettings, admission: Duration) -> std::io::Result<Self> {
        let load = Arc::new(Load {
            threads: settings.threads,
            window: admission,
            admitted: AtomicUsize::new(0),
            hash_micros: AtomicU64::new(
                u64::try_from(FIRST_HASH_ESTIMATE.as_micros()).unwrap_or(u64::MAX),
            ),
            overloaded: AtomicBool::new(false),
            hashed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            stopped: watch::Sender::new(false),
        });
        let jobs = threads::start(&settings)?;
        Ok(PasswordHasher { jobs, load })
    }

    /// A place in the queue, or `HashingError::Busy` at once when as much work as the hashing
    /// threads finish in the admission window is admitted already: beyond that a sign-in would
    /// only wait longer, and make every one after it wait.
    pub fn admit(&self) -> Result<Admitted<'_>, HashingError> {
        let load = &self.load;
        if *load.stopped.borrow() {
            return Err(HashingError::ShuttingDown);
        }
        let capacity = load.capacity();
        let admitted =
            load.admitted
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |admitted| {
                    (admitted < capacity).then_some(admitted + 1)
                });
        if admitted.is_ok() {
            return Ok(Admitted { hasher: self });
        }
        load.refused.fetch_add(1, Ordering::Relaxed);
        // Once per flood, not once per refusal: the log must not grow with the flood.
        if !load.overloaded.swap(true, Ordering::Relaxed) {
            log::warn!(
                "password hashing is overloaded: {capacity} sign-ins admitted (what {} hashing threads finish in {:?}); more get 503 until they drain",
                load.threads,
                load.window
            );
        }
        Err(HashingError::Busy {
            retry_after_secs: load.window.as_secs() + u64::from(load.window.subsec_nanos() > 0),
        })
    }

    /// Admits and hashes (`admit`, then `Admitted::hash`).
    pub async fn hash(&self, password: &Password) -> Result<String, HashingError> {
        self.admit()?.hash(password).await
    }

    /// Admits and verifies (`admit`, then `Admitted::verify`).
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<String>,
    ) -> Result<bool, HashingError> {
        self.admit()?.verify(password, stored).await
    }

    /// At shutdown: after `limit`, what is still queued or hashing is answered
    /// `HashingError::ShuttingDown` and nothing more is admitted. The web layer calls it with a
    /// little less than Rocket's grace period, so those requests are answered (503) while their
    /// connections can still carry the answer, and the process ends in time instead of waiting
    /// on hashes a starved machine may take long to finish.
    pub fn stop_waiting_after(&self, limit: Duration) {
        let load = Arc::clone(&self.load);
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            let waiting = load.admitted.load(Ordering::Relaxed);
            load.stopped.send_replace(true);
            if waiting > 0 {
                log::warn!(
                    "shutting down: {waiting} requests still waiting for password hashing are answered 503"
                );
            }
        });
    }

    /// How much work is admitted at once now (it follows the measured speed of a hash).
    pub fn capacity(&self) -> usize {
        self.load.capacity()
    }

    pub fn counts(&self) -> HashingCounts {
        HashingCounts {
            hashed: self.load.hashed.load(Ordering::Relaxed),
            refused: self.load.refused.load(Ordering::Relaxed),
            abandoned: self.load.abandoned.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bug that panics inside a hash fails that request as unavailable (the web layer's 503),
    /// not the ones hashing beside it, and the threads go on: more panics than threads, and the
    /// next check is still answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hashing_thread_that_panics_fails_only_its_request_and_goes_on() {
        let settings = HashingSettings {
            threads: 2,
            cgroup: None,
        };
        let hasher = Arc::new(PasswordHasher::start(settings, Duration::from_secs(60)).unwrap());
        let password = || Password::parse("violet tractor mango".into()).unwrap();
        let hash = hasher.hash(&password()).await.unwrap();
        let mut checks = tokio::task::JoinSet::new();
        let mut panics = tokio::task::JoinSet::new();
        for _ in 0..6 {
            let (checker, hash) = (Arc::clone(&hasher), hash.clone());
            checks.spawn(async move { checker.verify(&password(), Some(hash)).await });
            let panicker = Arc::clone(&hasher);
            panics.spawn(async move {
                let admitted = panicker.admit().unwrap();
                admitted
                    .run(|_: &mut Worker| -> Result<(), String> { panic!("a bug in a hash") })
                    .await
            });
        }
        for check in checks.join_all().await {
            assert!(matches!(check, Ok(true)), "{check:?}");
        }
        for panic in panics.join_all().await {
            assert!(matches!(panic, Err(HashingError::Unavailable)), "{panic:?}");
        }
        let answered = tokio::time::timeout(
            Duration::from_secs(60),
            hasher.verify(&password(), Some(hash)),
        )
        .await
        .expect("a check hung after the panics");
        assert!(answered.unwrap());
        assert_eq!(hasher.counts().hashed, 14);
    }

    /// At shutdown, work still waiting for the thread is answered `ShuttingDown` instead of
    /// being waited for, and nothing more is admitted; the thread is left to skip it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn once_stopped_nothing_waits_for_a_hash_and_nothing_more_is_admitted() {
        let settings = HashingSettings {
            threads: 1,
            cgroup: None,
        };
        let hasher = Arc::new(PasswordHasher::start(settings, Duration::from_secs(60)).unwrap());
        // The one thread held busy until the test lets it go.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, has_started) = oneshot::channel();
        let busy = Arc::clone(&hasher);
        let holding = tokio::spawn(async move {
            busy.admit()
                .unwrap()
                .run(move |_: &mut Worker| {
                    started.send(()).unwrap();
                    held.recv().map_err(|error| error.to_string())
                })
                .await
        });
        has_started.await.unwrap();
        let queued = Arc::clone(&hasher);
        let waiting = tokio::spawn(async move {
            let password = Password::parse("violet tractor mango".into()).unwrap();
            queued.verify(&password, None).await
        });

        hasher.stop_waiting_after(Duration::ZERO);
        let answer = tokio::time::timeout(Duration::from_secs(60), waiting)
            .await
            .expect("the queued check was answered while the thread was still busy")
            .unwrap();
        assert!(
            matches!(answer, Err(HashingError::ShuttingDown)),
            "{answer:?}"
        );
        assert!(matches!(
            holding.await.unwrap(),
            Err(HashingError::ShuttingDown)
        ));
        assert!(matches!(hasher.admit(), Err(HashingError::ShuttingDown)));

        // Let go, the thread skips the queued check nobody waits for any more.
        release.send(()).unwrap();
        let skipped = tokio::time::timeout(Duration::from_secs(60), async {
            while hasher.counts().abandoned == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(skipped.is_ok(), "{:?}", hasher.counts());
        assert_eq!(hasher.counts().hashed, 1);
    }
}
