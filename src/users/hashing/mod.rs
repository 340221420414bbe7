//! Password hashing, in a process of its own: the app's binary started again with
//! `hash-passwords` (`process`), in a session of its own, so the kernel gives a sign-in flood's
//! argon2 work a scheduling group apart from the session path (docs/configuration.md).
//! `PasswordHasher` is the app's side: it admits no more work than the hashing threads finish in
//! a moment (`hashing_admission_ms`; a sign-in beyond it gets 503 at once), queues what it
//! admitted, sends the process one request per hashing thread at a time over a pipe (`wire`),
//! drops queued work nobody waits for any more, and starts a new process when the last one has
//! ended.
//!
//! Inside that process, each hashing thread reuses one work area (`argon`), instead of
//! `spawn_blocking` with the argon2 crate's own `PasswordHasher`: the benchmark says it is faster.

mod argon;
pub mod process;
mod wire;

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

pub use process::HashingSettings;
use wire::{Answer, Request};

use super::Password;
use crate::error::AppError;

/// How long a new hashing process may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a sign-in waits for its hash before it gets the "briefly unavailable" page: only a
/// process that stopped answering (frozen, stopped by a signal) makes one wait this long, since
/// no more is admitted than the threads finish in the admission window. A process that has held
/// requests this long without answering any is replaced.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// What one hash is taken to cost until the first ones have been timed: about argon2id's with
/// these parameters on one core of a loaded machine.
const FIRST_HASH_ESTIMATE: Duration = Duration::from_millis(50);

/// How often the supervisor looks whether the hashing process still serves, when no request
/// comes to make it look.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// After a hashing process failed to start, the next attempt waits this long; the requests in
/// between fail at once instead of each trying again.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// Hashes and verifies passwords with argon2id (OWASP parameters: m = 19 MiB, t = 2, p = 1) in
/// the hashing process, on `HashingSettings::threads` threads there, so a sign-in flood waits
/// in a bounded queue, or is refused, instead of starving the async workers.
pub struct PasswordHasher {
    events: mpsc::Sender<Event>,
    load: Arc<Load>,
}

/// What the supervisor thread is told.
enum Event {
    /// Work admitted: queue it.
    Job(Job),
    /// The process has answered: a hashing thread is free.
    Answered,
    /// The app has dropped the hasher.
    Stop,
}

/// A request, and where its answer goes. Nobody waits any more once `done` is closed: the
/// request's future was dropped (its client went away) or gave up (`ANSWER_TIMEOUT`).
struct Job {
    request: Request,
    done: oneshot::Sender<Answer>,
}

/// What the requests and the supervisor share: how much work is admitted, how long a hash takes,
/// and the counts.
struct Load {
    threads: usize,
    /// The work admitted at once is what the threads finish in this long: a sign-in admitted at
    /// the back of a full queue still gets its answer within about that time, and so does the
    /// owner's own sign-in during a flood, admitted or refused.
    window: Duration,
    /// Admitted and not yet answered or given up: waiting for the throttle, queued, or hashing.
    admitted: AtomicUsize,
    /// A moving average of one hash's time, in microseconds, from the process's answers.
    hash_micros: AtomicU64,
    /// Whether sign-ins are being refused: the log says when that starts and when it ends.
    overloaded: AtomicBool,
    hashed: AtomicU64,
    refused: AtomicU64,
    abandoned: AtomicU64,
}

/// What the hasher has done with the work it was offered since it started (tests and logs read
/// it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingCounts {
    /// Requests sent to the hashing process, each of which it hashes.
    pub hashed: u64,
    /// Refused at once (503 with `Retry-After`): as much work as the window holds was admitted.
    pub refused: u64,
    /// Admitted, then dropped from the queue unhashed: nobody waited for the answer any more.
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
    pub async fn hash(self, password: &Password) -> Result<String, AppError> {
        let request = Request::Hash {
            password: password.expose().to_owned(),
        };
        match self.hasher.ask(request).await? {
            Answer::Hashed(phc) => Ok(phc),
            other => Err(unexpected(other)),
        }
    }

    /// `stored` is `None` for an unknown user: a dummy hash is verified instead, and fails.
    pub async fn verify(
        self,
        password: &Password,
        stored: Option<String>,
    ) -> Result<bool, AppError> {
        let request = Request::Verify {
            password: password.expose().to_owned(),
            stored,
        };
        match self.hasher.ask(request).await? {
            Answer::Verified(matches) => Ok(matches),
            other => Err(unexpected(other)),
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
            rocket::info!("password hashing is no longer overloaded ({refused} refused so far)");
        }
    }
}

impl PasswordHasher {
    /// Starts the hashing process, `program` run with `settings`, and waits until it is ready;
    /// an error (a cgroup its threads cannot join, a program that is not this app) stops the
    /// launch. A process that ends later is replaced by the supervisor (`Supervisor`). At most
    /// the work its threads finish in `admission` is admitted at once (`admit`).
    pub fn start(
        program: &Path,
        settings: HashingSettings,
        admission: Duration,
    ) -> io::Result<Self> {
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
        });
        let (events, incoming) = mpsc::channel();
        let answers = Answers {
            events: events.clone(),
            load: Arc::clone(&load),
        };
        let first = HashingProcess::start(program, &settings, answers.clone())?;
        let program = program.to_owned();
        let supervisor_load = Arc::clone(&load);
        std::thread::Builder::new()
            .name("hashing-supervisor".into())
            .spawn(move || {
                let supervisor = Supervisor {
                    program,
                    settings,
                    answers,
                    load: supervisor_load,
                };
                supervisor.run(incoming, first);
            })?;
        Ok(PasswordHasher { events, load })
    }

    /// A place in the queue, or `HashingOverloaded` at once when as much work as the hashing
    /// threads finish in the admission window is admitted already: beyond that a sign-in would
    /// only wait longer, and make every one after it wait.
    pub fn admit(&self) -> Result<Admitted<'_>, AppError> {
        let load = &self.load;
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
            rocket::warn!(
                "password hashing is overloaded: {capacity} sign-ins admitted (what {} hashing threads finish in {:?}); more get 503 until they drain",
                load.threads,
                load.window
            );
        }
        Err(AppError::HashingOverloaded {
            retry_after_secs: load.window.as_secs() + u64::from(load.window.subsec_nanos() > 0),
        })
    }

    /// Admits and hashes (`admit`, then `Admitted::hash`).
    pub async fn hash(&self, password: &Password) -> Result<String, AppError> {
        self.admit()?.hash(password).await
    }

    /// Admits and verifies (`admit`, then `Admitted::verify`).
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<String>,
    ) -> Result<bool, AppError> {
        self.admit()?.verify(password, stored).await
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

    async fn ask(&self, request: Request) -> Result<Answer, AppError> {
        let (done, answer) = oneshot::channel();
        self.events
            .send(Event::Job(Job { request, done }))
            .map_err(|_| AppError::HashingUnavailable)?;
        match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
            Ok(Ok(Answer::Failed(reason))) => Err(AppError::PasswordHash(reason)),
            Ok(Ok(answer)) => Ok(answer),
            // The process ended before it answered, a new one could not start, or it stopped
            // answering.
            Ok(Err(_)) | Err(_) => Err(AppError::HashingUnavailable),
        }
    }
}

/// The supervisor ends, and stops the process, when the app drops the hasher.
impl Drop for PasswordHasher {
    fn drop(&mut self) {
        let _ = self.events.send(Event::Stop);
    }
}

fn unexpected(answer: Answer) -> AppError {
    AppError::PasswordHash(format!("the hashing process answered {answer:?}"))
}

/// What a process's answer reader needs besides the process: whom to wake when a thread is
/// free, and where to record how long a hash took.
#[derive(Clone)]
struct Answers {
    events: mpsc::Sender<Event>,
    load: Arc<Load>,
}

/// The supervisor thread: queues the admitted work and sends the running hashing process one
/// request per hashing thread at a time, so the process never holds a backlog and a request
/// nobody waits for any more can still be dropped unhashed. A process that has ended, or
/// stopped answering, is replaced within `WATCH_INTERVAL`, so the next sign-in finds a new one
/// ready.
struct Supervisor {
    program: std::path::PathBuf,
    settings: HashingSettings,
    answers: Answers,
    load: Arc<Load>,
}

impl Supervisor {
    fn run(self, incoming: mpsc::Receiver<Event>, first: HashingProcess) {
        let mut queue = VecDeque::new();
        let mut current = Some(first);
        let mut failed_start: Option<Instant> = None;
        loop {
            match incoming.recv_timeout(WATCH_INTERVAL) {
                Ok(Event::Job(job)) => queue.push_back(job),
                Ok(Event::Answered) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Ok(Event::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            let may_start = failed_start.is_none_or(|at| at.elapsed() >= RESTART_PAUSE);
            let trouble = current
                .as_mut()
                .map_or(Some("could not start"), HashingProcess::trouble);
            if let Some(trouble) = trouble
                && may_start
            {
                // Dropping the old process stops and reaps it.
                current =
                    HashingProcess::start(&self.program, &self.settings, self.answers.clone())
                        .inspect_err(|error| {
                            rocket::error!("the hashing process could not restart: {error}");
                        })
                        .ok();
                failed_start = current.is_none().then(Instant::now);
                if current.is_some() {
                    rocket::warn!("the hashing process {trouble}; a new one has started");
                }
            }
            match current.as_mut() {
                Some(process) => self.feed(process, &mut queue),
                // Without a process, the queued requests fail as unavailable (their `done` is
                // dropped).
                None => queue.clear(),
            }
        }
    }

    /// Sends queued work while a hashing thread is free, skipping what nobody waits for.
    fn feed(&self, process: &mut HashingProcess, queue: &mut VecDeque<Job>) {
        while process.in_flight() < self.settings.threads {
            let Some(job) = queue.pop_front() else {
                return;
            };
            if job.done.is_closed() {
                self.load.abandoned.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.load.hashed.fetch_add(1, Ordering::Relaxed);
            process.send(&job.request, job.done);
        }
    }
}

/// A running hashing process: its input, and the requests it has not answered yet.
struct HashingProcess {
    child: Child,
    input: ChildStdin,
    waiting: Waiting,
    next_id: u64,
}

/// The requests sent and not yet answered; `None` once the process's output has ended (whatever
/// was waiting then has been failed).
type Waiting = Arc<Mutex<Option<Unanswered>>>;

struct Unanswered {
    /// Where each answer goes, and when its request was sent: with no more sent than there are
    /// threads, that is when its hash began.
    by_id: HashMap<u64, (oneshot::Sender<Answer>, Instant)>,
    /// The last answer, or the request that ended a time with nothing waiting: how long the
    /// process has held requests without answering any.
    progress_at: Instant,
}

impl HashingProcess {
    /// Runs `program` with `settings` and waits for its first answer: `Ready`, or why not.
    fn start(program: &Path, settings: &HashingSettings, answers: Answers) -> io::Result<Self> {
        let mut child = Command::new(program)
            .args(settings.to_args())
            // It needs nothing of the app's environment, which holds the app's secrets.
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|error| not_started(program, error))?;
        let input = child.stdin.take().expect("stdin is piped");
        let output = child.stdout.take().expect("stdout is piped");
        let waiting: Waiting = Arc::new(Mutex::new(Some(Unanswered {
            by_id: HashMap::new(),
            progress_at: Instant::now(),
        })));
        let (ready, first_answer) = mpsc::sync_channel(1);
        let answers_waiting = Arc::clone(&waiting);
        let reader = std::thread::Builder::new()
            .name("hashing-answers".into())
            .spawn(move || {
                let mut output = BufReader::new(output);
                let first = wire::read_answer(&mut output);
                let started = matches!(first, Ok(Some((0, Answer::Ready))));
                let _ = ready.send(first);
                if started {
                    deliver_answers(&mut output, &answers_waiting, &answers);
                }
                // The output has ended: whoever still waits gets a dropped sender.
                answers_waiting
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
            });
        let process = HashingProcess {
            child,
            input,
            waiting,
            next_id: 1,
        };
        reader?;
        match first_answer.recv_timeout(START_TIMEOUT) {
            Ok(Ok(Some((0, Answer::Ready)))) => Ok(process),
            Ok(Ok(Some((_, Answer::Failed(reason))))) => Err(io::Error::other(reason)),
            Ok(Ok(Some((_, answer)))) => Err(not_started(
                program,
                io::Error::other(format!("its first answer was {answer:?}")),
            )),
            Ok(Ok(None)) => Err(not_started(program, io::Error::other("it ended at once"))),
            Ok(Err(error)) => Err(not_started(program, error)),
            Err(_) => Err(not_started(
                program,
                io::Error::other(format!("not ready after {START_TIMEOUT:?}")),
            )),
        }
    }

    /// `None` while the process serves; otherwise what is wrong with it. One that has held
    /// requests for `ANSWER_TIMEOUT` without answering any (frozen, stopped by a signal) counts
    /// as gone: those requests have failed already, and the next ones would fail the same way.
    fn trouble(&mut self) -> Option<&'static str> {
        let answering = match &*self.waiting.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(unanswered) => {
                unanswered.by_id.is_empty() || unanswered.progress_at.elapsed() < ANSWER_TIMEOUT
            }
            None => return Some("had ended"),
        };
        if !matches!(self.child.try_wait(), Ok(None)) {
            Some("had ended")
        } else if !answering {
            Some("stopped answering")
        } else {
            None
        }
    }

    /// Requests sent and not answered yet.
    fn in_flight(&self) -> usize {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, |unanswered| unanswered.by_id.len())
    }

    /// Sends `request`; `done` gets the answer, or is dropped if the process ends first.
    fn send(&mut self, request: &Request, done: oneshot::Sender<Answer>) {
        let id = self.next_id;
        self.next_id += 1;
        let frame = match wire::request_frame(id, request) {
            Ok(frame) => frame,
            // A stored hash too long for a frame (a damaged row): this request fails, not others.
            Err(error) => {
                let _ = done.send(Answer::Failed(error.to_string()));
                return;
            }
        };
        match self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            Some(unanswered) => {
                if unanswered.by_id.is_empty() {
                    unanswered.progress_at = Instant::now();
                }
                unanswered.by_id.insert(id, (done, Instant::now()));
            }
            None => return,
        };
        // A failed write means the process has gone; its reader then drops `done`.
        let _ = wire::send_frame(&mut self.input, &frame);
    }
}

/// Stops the process at once (what it still holds has nobody waiting, or fails as unavailable)
/// and reaps it.
impl Drop for HashingProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Hands each answer to the request waiting for it, times the hash, and wakes the supervisor to
/// send the next request, until the output ends or breaks.
fn deliver_answers(output: &mut impl io::Read, waiting: &Waiting, answers: &Answers) {
    while let Ok(Some((id, answer))) = wire::read_answer(output) {
        let done = waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .and_then(|unanswered| {
                unanswered.progress_at = Instant::now();
                unanswered.by_id.remove(&id)
            });
        if let Some((done, sent_at)) = done {
            answers.load.timed(sent_at.elapsed());
            // The requester may have gone away meanwhile; nothing to tell then.
            let _ = done.send(answer);
        }
        let _ = answers.events.send(Event::Answered);
    }
}

fn not_started(program: &Path, error: io::Error) -> io::Error {
    io::Error::new(
        error.kind(),
        format!(
            "{} did not start as the hashing process: {error}",
            program.display()
        ),
    )
}
