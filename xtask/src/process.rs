//! Running programs: the environment the commands hand their children, exit statuses, and the
//! signals (Ctrl-C, SIGTERM) that end a command.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::process::{Child, Command, ExitStatus};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

use rustix::process::{Pid, Signal, kill_process};
use signal_hook::consts::{SIGINT, SIGTERM};

/// How a command ends early.
#[derive(Debug)]
pub enum Failure {
    /// With this sentence, as "error: ..." and exit status 1.
    Message(String),
    /// Quietly with this exit status: what failed has said why (a test, a signal).
    Status(u8),
}

impl From<pg_cluster::Error> for Failure {
    fn from(error: pg_cluster::Error) -> Failure {
        Failure::Message(error.to_string())
    }
}

/// A command's exit status, or why it ended early.
pub type Outcome = Result<u8, Failure>;

/// Ends the command with `message`.
pub fn fail<T>(message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::Message(message.into()))
}

/// A child's exit status as a shell gives it: its code, or 128 + the signal that ended it.
pub fn status_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt as _;
    let code = status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1);
    u8::try_from(code).unwrap_or(1)
}

// ---------------------------------------------------------------------------- signals --

static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// Children that a Ctrl-C or a SIGTERM is passed on to, with the signal each gets.
static FORWARD: Mutex<Vec<(u32, Signal)>> = Mutex::new(Vec::new());

/// From now on, Ctrl-C (SIGINT) and SIGTERM no longer end this process at once: they are
/// recorded ([`interrupted`]) and passed on to the children registered with [`forward_to`], so
/// that the command can stop what it started (PostgreSQL, nginx, the app) and end as the
/// signal asks. A child running in the foreground gets Ctrl-C from the terminal itself.
pub fn handle_signals() -> Result<(), Failure> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|error| Failure::Message(format!("cannot handle signals: {error}")))?;
    std::thread::spawn(move || {
        for signal in signals.forever() {
            RECEIVED.store(signal, Ordering::SeqCst);
            let children = FORWARD
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for &(pid, to_send) in children.iter() {
                send(pid, to_send);
            }
        }
    });
    Ok(())
}

/// The exit status a received signal asks for (130 after Ctrl-C, 143 after SIGTERM), if one
/// was received.
pub fn interrupted() -> Option<u8> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(u8::try_from(128 + signal).unwrap_or(1)),
    }
}

/// Ends the command now if a signal asked it to; what it started is stopped on the way out.
pub fn check_interrupted() -> Result<(), Failure> {
    interrupted().map_or(Ok(()), |status| Err(Failure::Status(status)))
}

/// Passes Ctrl-C and SIGTERM on to `child` as `signal`, until [`stop_forwarding`].
pub fn forward_to(child: &Child, signal: Signal) {
    let mut children = FORWARD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    children.push((child.id(), signal));
    if interrupted().is_some() {
        send(child.id(), signal);
    }
}

/// Stops passing signals on to `child` (before it is reaped: its process id may be reused).
pub fn stop_forwarding(child: &Child) {
    let mut children = FORWARD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    children.retain(|&(pid, _)| pid != child.id());
}

/// Sends `signal` to process `pid`; quietly nothing if it has ended.
pub fn send(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        kill_process(pid, signal).ok();
    }
}

// ------------------------------------------------------------------------ environment --

/// The environment a command gives the programs it runs: its own, with the variables the command
/// sets (`export` in a shell script; this process never changes its own environment).
#[derive(Debug, Default)]
pub struct Context {
    set: BTreeMap<OsString, OsString>,
}

impl Context {
    /// Sets `name` to `value` for the programs run from now on.
    pub fn set(&mut self, name: &str, value: impl Into<OsString>) {
        self.set.insert(name.into(), value.into());
    }

    /// The value of `name` the programs get, if set and not empty.
    pub fn get(&self, name: &str) -> Option<OsString> {
        self.set
            .get(OsStr::new(name))
            .cloned()
            .or_else(|| std::env::var_os(name))
            .filter(|value| !value.is_empty())
    }

    /// The value of `name` as text, if set, not empty and valid UTF-8.
    pub fn var(&self, name: &str) -> Option<String> {
        self.get(name)?.into_string().ok()
    }

    /// `program`, to be run in this environment.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(program);
        // What `cargo run` told this program about the xtask package is not for its children.
        for (name, _) in std::env::vars_os() {
            let text = name.to_string_lossy();
            if text.starts_with("CARGO_PKG_")
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_CRATE_NAME",
                ]
                .contains(&text.as_ref())
            {
                command.env_remove(&name);
            }
        }
        command.envs(&self.set);
        command
    }

    /// `cargo`: the one that runs this program.
    pub fn cargo(&self) -> Command {
        self.command(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
    }

    /// This program again, as `cargo xtask <command>` (another script, run from this one).
    pub fn xtask(&self, command: &str) -> Result<Command, Failure> {
        let program = std::env::current_exe()
            .map_err(|error| Failure::Message(format!("where is this program? {error}")))?;
        let mut xtask = self.command(program);
        xtask.arg(command);
        Ok(xtask)
    }

    /// Runs `command` to its end and returns its exit status (128 + signal when a signal ended
    /// it). Ends the command early if a signal asked this process to stop meanwhile.
    pub fn status(&self, command: &mut Command) -> Outcome {
        let status = command.status().map_err(|error| {
            Failure::Message(format!(
                "could not run {:?}: {error}",
                command.get_program()
            ))
        })?;
        check_interrupted()?;
        Ok(status_code(status))
    }

    /// Runs `command`, and ends the command with `message` unless it succeeds.
    pub fn run(&self, command: &mut Command, message: &str) -> Result<(), Failure> {
        match self.status(command)? {
            0 => Ok(()),
            _ => fail(message),
        }
    }
}

/// A program started in the background, sent SIGTERM and waited for when dropped: stopped
/// however the command ends.
pub struct Stopped(pub Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            send(self.0.id(), Signal::TERM);
            self.0.wait().ok();
        }
    }
}

/// The last `lines` lines of the file `path`, on standard error.
pub fn print_tail(path: &std::path::Path, lines: usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    for line in &all[all.len().saturating_sub(lines)..] {
        eprintln!("{line}");
    }
}
