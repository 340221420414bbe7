//! The hashing process: this same binary, started by the app with `hash-passwords`, in a session
//! of its own. It reads requests on standard input, hashes on its own threads, and writes each
//! answer on standard output as it is ready; it ends when the app closes its input.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use super::argon::{DUMMY_HASH, Worker};
use super::wire::{self, Answer, Request};

/// The first argument that makes this binary the hashing process instead of the app.
pub const HASH_PASSWORDS: &str = "hash-passwords";

/// The highest niceness a process may give its scheduling group (the lowest is 0).
pub const MAX_NICE: u8 = 19;

/// How the hashing process runs: what the app passes on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashingSettings {
    /// argon2 hashes at once: one thread each.
    pub threads: usize,
    /// The niceness of the process's scheduling group (0 to 19; higher yields more).
    pub nice: u8,
    /// A cgroup every hashing thread joins as it starts.
    pub cgroup: Option<PathBuf>,
}

impl HashingSettings {
    /// The command line after the program: `hash-passwords <threads> <nice> [<cgroup>]`.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args = vec![
            HASH_PASSWORDS.into(),
            self.threads.to_string().into(),
            self.nice.to_string().into(),
        ];
        args.extend(self.cgroup.iter().map(|dir| dir.clone().into_os_string()));
        args
    }

    /// `None` when `args` (the program's, after its name) do not start the hashing process;
    /// otherwise its settings, or what is wrong with them.
    pub fn from_args(mut args: impl Iterator<Item = OsString>) -> Option<Result<Self, String>> {
        if args.next()? != HASH_PASSWORDS {
            return None;
        }
        let threads = args
            .next()
            .and_then(|arg| arg.to_str()?.parse::<usize>().ok());
        let nice = args.next().and_then(|arg| arg.to_str()?.parse::<u8>().ok());
        let cgroup = args.next().map(PathBuf::from);
        Some(match (threads, nice) {
            (Some(threads), Some(nice))
                if threads > 0 && nice <= MAX_NICE && args.next().is_none() =>
            {
                Ok(HashingSettings {
                    threads,
                    nice,
                    cgroup,
                })
            }
            _ => Err(format!(
                "usage: {HASH_PASSWORDS} <threads, 1 or more> <niceness, 0 to {MAX_NICE}> [<cgroup>]"
            )),
        })
    }
}

/// Runs the hashing process until its input closes. Whatever stops it from starting is sent as
/// a `Failed` answer (the app's launch reports it) and ends the process.
pub fn serve(settings: HashingSettings) -> ExitCode {
    // A thread that panics would leave its request unanswered: end the process instead, so the
    // app sees it go, fails what was in flight and starts another. (`exit`, not `abort`: an
    // abort may leave a core dump, and this process's memory holds passwords.)
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::exit(101);
    }));
    let output = Arc::new(Mutex::new(BufWriter::new(io::stdout())));
    let answer = |id, answer: &Answer| {
        let mut output = output.lock().unwrap_or_else(PoisonError::into_inner);
        wire::answer_frame(id, answer).and_then(|frame| wire::send_frame(&mut *output, &frame))
    };
    let jobs = match start(&settings, &output) {
        Ok(jobs) => jobs,
        Err(error) => {
            let _ = answer(0, &Answer::Failed(error.to_string()));
            return ExitCode::FAILURE;
        }
    };
    if answer(0, &Answer::Ready).is_err() {
        return ExitCode::FAILURE;
    }
    let mut input = BufReader::new(io::stdin());
    loop {
        match wire::read_request(&mut input) {
            Ok(Some(job)) => {
                if jobs.send(job).is_err() {
                    return ExitCode::FAILURE;
                }
            }
            // The app has ended (it stops a process it replaces with SIGKILL, so this is the app's
            // own end): nobody waits for what is still queued.
            Ok(None) => return ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("the hashing process stops: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
}

/// Keeps passwords out of core dumps, leaves the app's scheduling group, then starts the
/// threads; the sender feeds them requests.
fn start(
    settings: &HashingSettings,
    output: &Arc<Mutex<BufWriter<io::Stdout>>>,
) -> io::Result<mpsc::Sender<(u64, Request)>> {
    // Not dumpable: no core dump, and no other process of the same user may read its memory.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)?;
    leave_the_apps_scheduling_group(settings.nice)?;
    let (sender, receiver) = mpsc::channel::<(u64, Request)>();
    let receiver = Arc::new(Mutex::new(receiver));
    let (started, starts) = mpsc::channel::<io::Result<()>>();
    for index in 0..settings.threads {
        let receiver = Arc::clone(&receiver);
        let output = Arc::clone(output);
        let cgroup = settings.cgroup.clone();
        let started = started.clone();
        std::thread::Builder::new()
            .name(format!("argon2-{index}"))
            .spawn(move || {
                let joined = cgroup.as_deref().map_or(Ok(()), join_cgroup);
                let failed = joined.is_err();
                // `start` waits for this answer, so the send cannot fail.
                let _ = started.send(joined);
                if failed {
                    return;
                }
                let mut worker = Worker::new();
                // The lock is held only while taking a request, never while hashing.
                let next = || {
                    receiver
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .recv()
                };
                while let Ok((id, request)) = next() {
                    let frame = wire::answer_frame(id, &work(&mut worker, request))
                        .expect("a PHC string or an argon2 error fits a frame");
                    let mut output = output.lock().unwrap_or_else(PoisonError::into_inner);
                    // The app has gone: its closed input ends the process soon.
                    if wire::send_frame(&mut *output, &frame).is_err() {
                        return;
                    }
                }
            })?;
    }
    for _ in 0..settings.threads {
        starts
            .recv()
            .map_err(|_| io::Error::other("a hashing thread ended before it could start"))??;
    }
    Ok(sender)
}

fn work(worker: &mut Worker, request: Request) -> Answer {
    let outcome = match request {
        Request::Hash { password } => worker.hash(password.as_bytes()).map(Answer::Hashed),
        Request::Verify { password, stored } => {
            let known = stored.is_some();
            worker
                .verify(password.as_bytes(), stored.as_deref().unwrap_or(DUMMY_HASH))
                .map(|matches| Answer::Verified(known && matches))
        }
    };
    outcome.unwrap_or_else(Answer::Failed)
}

/// A session of its own gives the process a scheduling group (an autogroup) of its own: the
/// kernel shares a core between groups first, so a PostgreSQL backend or the app's async worker
/// waking beside a hash no longer waits for the app's whole group's turn (docs/benchmarks.md).
/// Raising the group's niceness needs no rights. A kernel without autogroups has no such file,
/// and the process runs as it would have.
fn leave_the_apps_scheduling_group(nice: u8) -> io::Result<()> {
    rustix::process::setsid()?;
    match std::fs::write("/proc/self/autogroup", nice.to_string()) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        written => written.map_err(|error| {
            io::Error::new(error.kind(), format!("/proc/self/autogroup: {error}"))
        }),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_cross_the_command_line_unchanged() {
        for settings in [
            HashingSettings {
                threads: 2,
                nice: 19,
                cgroup: None,
            },
            HashingSettings {
                threads: 1,
                nice: 0,
                cgroup: Some("/sys/fs/cgroup/cpu/hashing group".into()),
            },
        ] {
            let parsed = HashingSettings::from_args(settings.to_args().into_iter());
            assert_eq!(parsed, Some(Ok(settings)));
        }
        let app = ["--help"].map(OsString::from).into_iter();
        assert_eq!(HashingSettings::from_args(app), None);
        assert_eq!(HashingSettings::from_args(std::iter::empty()), None);
    }

    #[test]
    fn a_malformed_hashing_command_line_is_an_error_not_the_app() {
        for args in [
            &["hash-passwords"][..],
            &["hash-passwords", "two", "0"],
            &["hash-passwords", "2"],
            &["hash-passwords", "0", "0"],
            &["hash-passwords", "2", "20"],
            &["hash-passwords", "2", "0", "/cgroup", "more"],
        ] {
            let args = args.iter().map(OsString::from);
            let parsed = HashingSettings::from_args(args);
            assert!(matches!(parsed, Some(Err(_))), "{parsed:?}");
        }
    }
}
