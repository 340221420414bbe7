//! The hashing threads: a fixed set of plain threads, each with its own argon2 work area,
//! taking jobs from one queue in turn.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use super::argon::Worker;

/// How many hashing threads run, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashingSettings {
    /// argon2 hashes at once: one thread each.
    pub threads: usize,
    /// A cgroup every hashing thread joins as it starts.
    pub cgroup: Option<PathBuf>,
}

/// One request's work, given a hashing thread's worker. It owns the request's answer channel,
/// so a panic inside it drops the channel, and the requester learns at once.
pub type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// Starts `settings.threads` hashing threads, each in the cgroup if one is set, and returns the
/// queue they take jobs from; they end once it is dropped. Returns once every thread is ready,
/// or with the first error.
pub fn start(settings: &HashingSettings) -> io::Result<mpsc::Sender<Job>> {
    let (sender, receiver) = mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    let (started, starts) = mpsc::channel::<io::Result<()>>();
    for index in 0..settings.threads {
        let receiver = Arc::clone(&receiver);
        let cgroup = settings.cgroup.clone();
        let started = started.clone();
        std::thread::Builder::new()
            .name(format!("argon2-{index}"))
            .spawn(move || {
                let joined = cgroup.as_deref().map_or(Ok(()), join_cgroup);
                let failed = joined.is_err();
                // `start` waits for this answer, so the send cannot fail.
                let _ = started.send(joined);
                if !failed {
                    serve(&receiver);
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

/// Runs jobs until the queue is dropped.
fn serve(receiver: &Mutex<mpsc::Receiver<Job>>) {
    let mut worker = Worker::new();
    // The lock is held only while taking a job, never while hashing.
    let next = || {
        receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv()
    };
    while let Ok(job) = next() {
        // A panic (a bug) fails only this job: its answer channel is dropped with it, and the
        // thread goes on with a fresh work area, so no sign-in waits for a thread that is gone.
        if catch_unwind(AssertUnwindSafe(|| job(&mut worker))).is_err() {
            log::error!("a hashing thread panicked: its request failed, and the thread goes on");
            worker = Worker::new();
        }
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
