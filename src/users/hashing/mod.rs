//! Password hashing, in a process of its own: the app's binary started again with
//! `hash-passwords` (`process`), in a session of its own, so the kernel gives a sign-in flood's
//! argon2 work a scheduling group apart from the session path (README, "Configuration").
//! `PasswordHasher` is the app's side: it sends each request over a pipe (`wire`) and starts a
//! new process when the last one has ended.
//!
//! Inside that process, each hashing thread reuses one work area (`argon`), instead of
//! `spawn_blocking` with the argon2 crate's own `PasswordHasher`: the benchmark says it is faster.

mod argon;
pub mod process;
mod wire;

use std::collections::HashMap;
use std::io::{self, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use rocket::tokio::sync::oneshot;

pub use process::HashingSettings;
use wire::{Answer, Request};

use super::Password;
use crate::error::AppError;

/// How long a new hashing process may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a sign-in waits for its hash before it gets the "briefly unavailable" page. At about
/// 100 hashes a second on two cores that is a queue of thousands, so mostly a process that stopped
/// answering (frozen, stopped by a signal) reaches it; a deeper flood sheds its overflow here.
/// A process that has held requests this long without answering any is replaced.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the supervisor looks whether the hashing process still serves, when no request
/// comes to make it look.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// After a hashing process failed to start, the next attempt waits this long; the requests in
/// between fail at once instead of each trying again.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// Hashes and verifies passwords with argon2id (OWASP parameters: m = 19 MiB, t = 2, p = 1) in
/// the hashing process, on `HashingSettings::threads` threads there, so a sign-in flood queues
/// there instead of starving the async workers.
pub struct PasswordHasher {
    requests: mpsc::Sender<(Request, oneshot::Sender<Answer>)>,
}

impl PasswordHasher {
    /// Starts the hashing process, `program` run with `settings`, and waits until it is ready;
    /// an error (a cgroup its threads cannot join, a program that is not this app) stops the
    /// launch. A process that ends later is replaced by the supervisor (`supervise`).
    pub fn start(program: &Path, settings: HashingSettings) -> io::Result<Self> {
        let first = HashingProcess::start(program, &settings)?;
        let (requests, incoming) = mpsc::channel();
        let program = program.to_owned();
        std::thread::Builder::new()
            .name("hashing-supervisor".into())
            .spawn(move || supervise(incoming, first, &program, &settings))?;
        Ok(PasswordHasher { requests })
    }

    pub async fn hash(&self, password: &Password) -> Result<String, AppError> {
        let request = Request::Hash {
            password: password.expose().to_owned(),
        };
        match self.ask(request).await? {
            Answer::Hashed(phc) => Ok(phc),
            other => Err(unexpected(other)),
        }
    }

    /// `stored` is `None` for an unknown user: a dummy hash is verified instead, and fails.
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<String>,
    ) -> Result<bool, AppError> {
        let request = Request::Verify {
            password: password.expose().to_owned(),
            stored,
        };
        match self.ask(request).await? {
            Answer::Verified(matches) => Ok(matches),
            other => Err(unexpected(other)),
        }
    }

    async fn ask(&self, request: Request) -> Result<Answer, AppError> {
        let (done, answer) = oneshot::channel();
        self.requests
            .send((request, done))
            .map_err(|_| AppError::HashingUnavailable)?;
        match rocket::tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
            Ok(Ok(Answer::Failed(reason))) => Err(AppError::PasswordHash(reason)),
            Ok(Ok(answer)) => Ok(answer),
            // The process ended before it answered, a new one could not start, or it stopped
            // answering.
            Ok(Err(_)) | Err(_) => Err(AppError::HashingUnavailable),
        }
    }
}

fn unexpected(answer: Answer) -> AppError {
    AppError::PasswordHash(format!("the hashing process answered {answer:?}"))
}

/// The supervisor thread: sends each request to the running hashing process. A process that
/// has ended, or stopped answering, is replaced within `WATCH_INTERVAL`, so the next sign-in
/// finds a new one ready. Ends, and stops the process, when the app drops the hasher.
fn supervise(
    incoming: mpsc::Receiver<(Request, oneshot::Sender<Answer>)>,
    first: HashingProcess,
    program: &Path,
    settings: &HashingSettings,
) {
    let mut current = Some(first);
    let mut failed_start: Option<Instant> = None;
    loop {
        let next = incoming.recv_timeout(WATCH_INTERVAL);
        if let Err(mpsc::RecvTimeoutError::Disconnected) = next {
            return;
        }
        let may_start = failed_start.is_none_or(|at| at.elapsed() >= RESTART_PAUSE);
        let trouble = current
            .as_mut()
            .map_or(Some("could not start"), HashingProcess::trouble);
        if let Some(trouble) = trouble
            && may_start
        {
            // Dropping the old process stops and reaps it.
            current = HashingProcess::start(program, settings)
                .inspect_err(|error| {
                    rocket::error!("the hashing process could not restart: {error}")
                })
                .ok();
            failed_start = current.is_none().then(Instant::now);
            if current.is_some() {
                rocket::warn!("the hashing process {trouble}; a new one has started");
            }
        }
        // Without a process that serves, `done` is dropped (here or by the process's reader)
        // and the request fails as unavailable.
        if let (Ok((request, done)), Some(process)) = (next, current.as_mut()) {
            process.send(&request, done);
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
    by_id: HashMap<u64, oneshot::Sender<Answer>>,
    /// The last answer, or the request that ended a time with nothing waiting: how long the
    /// process has held requests without answering any.
    progress_at: Instant,
}

impl HashingProcess {
    /// Runs `program` with `settings` and waits for its first answer: `Ready`, or why not.
    fn start(program: &Path, settings: &HashingSettings) -> io::Result<Self> {
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
                    deliver_answers(&mut output, &answers_waiting);
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
                unanswered.by_id.insert(id, done);
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

/// Hands each answer to the request waiting for it, until the output ends or breaks.
fn deliver_answers(output: &mut impl io::Read, waiting: &Waiting) {
    while let Ok(Some((id, answer))) = wire::read_answer(output) {
        let done = waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .and_then(|unanswered| {
                unanswered.progress_at = Instant::now();
                unanswered.by_id.remove(&id)
            });
        // The requester may have gone away (a closed connection); nothing to tell then.
        if let Some(done) = done {
            let _ = done.send(answer);
        }
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
