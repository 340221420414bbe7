//! `.ci/run` (CI runs `bash .ci/run` with `CI=true` and no standard input): what a newcomer does
//! on a machine that has never built the project, so that a green run cannot hide a missing
//! set-up step behind this machine's caches:
//!
//! 1. a fresh clone of the committed HEAD, with an empty `CARGO_HOME` (every crate is downloaded
//!    from the registry), an empty target directory and an empty tool cache (`SS_TOOLS_DIR`);
//! 2. the README's test command there: `scripts/test`, its output passed through as it is;
//! 3. the README's run command there: `scripts/run`, until `/login` and `/healthz` answer 200;
//!    then it is stopped by its process id with SIGTERM, must end within 30 s with status 0,
//!    and no process of the clone may be left running.
//!
//! Uncommitted changes are not part of the clone: commit first. Exits non-zero if either command
//! fails: with `scripts/test`'s status when that failed, else 1. This command itself is built
//! in the checkout it runs from, with the caller's cargo and caches; everything the clone runs
//! is built from nothing.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pg_cluster::{TempDir, free_port, say};
use rustix::process::Signal;

use crate::http::status_of;
use crate::process::{
    Context, Failure, Outcome, check_interrupted, fail, forward_to, handle_signals, print_tail,
    send, status_code, stop_forwarding,
};

/// What the clone's commands must not inherit: a shared target directory or database.
const NOT_PASSED_ON: [&str; 3] = ["CARGO_TARGET_DIR", "DATABASE_URL", "ROCKET_DATABASES"];
/// How long the first start of `scripts/run` (which builds the app) may take.
const START_LIMIT: Duration = Duration::from_secs(20 * 60);
/// How long `scripts/run` may take to stop after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(30);

pub fn main(args: &[String]) -> Outcome {
    if !args.is_empty() {
        return fail("usage: .ci/run (cargo xtask ci takes no arguments)");
    }
    handle_signals()?;
    let mut context = Context::default();
    let here = std::env::current_dir().map_err(|error| Failure::Message(error.to_string()))?;

    // In /tmp, traversable by all: as root, the postgres user must reach the clone's .data/.
    // Deleted with everything in it when this command ends, however it ends.
    let work = TempDir::new("secure-sessions-ci")?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|error| Failure::Message(format!("{}: {error}", work.path().display())))?;
    }
    let clone = work.path().join("clone");
    context.run(
        context
            .command("git")
            .args(["clone", "--quiet", "--no-hardlinks"])
            .arg(&here)
            .arg(&clone)
            .stdin(Stdio::null()),
        "could not clone the checkout",
    )?;
    // The advisory database snapshot kept beside the checkout (scripts/audit) is not beside the
    // clone.
    let snapshot = Path::new("../shared/advisory-db");
    if context.get("SS_ADVISORY_DB").is_none()
        && snapshot.is_dir()
        && let Ok(snapshot) = std::fs::canonicalize(snapshot)
    {
        context.set("SS_ADVISORY_DB", snapshot);
    }
    let commit = context
        .command("git")
        .arg("-C")
        .arg(&clone)
        .args(["log", "-1", "--format=%h %s"])
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default();
    say(format!(
        "testing commit {commit} in a fresh clone ({})",
        clone.display()
    ));
    let cargo_home = work.path().join("cargo-home");
    std::fs::create_dir(&cargo_home)
        .map_err(|error| Failure::Message(format!("{}: {error}", cargo_home.display())))?;
    context.set("CARGO_HOME", &cargo_home);
    context.set("SS_TOOLS_DIR", work.path().join("tools"));

    // ------------------------------------------------------------------- the test command --
    let test_status = in_clone(&context, &clone, "scripts/test")?;

    // -------------------------------------------------------------------- the run command --
    let run_status = check_run(&context, &clone, &work.path().join("run.log"))?;

    if test_status != 0 {
        say(format!("FAILED: scripts/test (status {test_status})"));
        return Ok(test_status);
    }
    Ok(run_status)
}

/// `program` of the clone, run there with an empty standard input to its end, its output
/// passed through; Ctrl-C and SIGTERM are passed on to it. Returns its exit status.
fn in_clone(context: &Context, clone: &Path, program: &str) -> Outcome {
    let mut child = clone_command(context, clone, program)
        .spawn()
        .map_err(|error| Failure::Message(format!("could not run {program}: {error}")))?;
    forward_to(&child, Signal::TERM);
    let status = child.wait();
    stop_forwarding(&child);
    let status = status.map_err(|error| Failure::Message(format!("{program}: {error}")))?;
    check_interrupted()?;
    Ok(status_code(status))
}

/// `program` of the clone, to be run there with an empty standard input, in the environment
/// CI gave `.ci/run`.
fn clone_command(context: &Context, clone: &Path, program: &str) -> Command {
    let mut command = context.command(clone.join(program));
    for name in NOT_PASSED_ON.iter().chain(&ADDED_BY_CARGO_RUN) {
        command.env_remove(name);
    }
    if let Some(toolchain) = callers_toolchain(
        std::env::var_os("RUSTUP_TOOLCHAIN_SOURCE").as_deref(),
        std::env::var_os("RUSTUP_TOOLCHAIN"),
    ) {
        command.env("RUSTUP_TOOLCHAIN", toolchain);
    }
    let library_path = std::env::var_os("LD_LIBRARY_PATH")
        .and_then(|path| callers_library_path(&path, &cargos_directories()));
    match library_path {
        Some(path) => command.env("LD_LIBRARY_PATH", path),
        None => command.env_remove("LD_LIBRARY_PATH"),
    };
    command.current_dir(clone).stdin(Stdio::null());
    command
}

// `cargo xtask` is `cargo run`: cargo and rustup add to the environment of the program they run
// (this one). None of that is CI's, so none of it reaches the clone: there, `scripts/test` starts
// from what CI gave `.ci/run`, as a newcomer's shell would.

/// Variables `cargo run` and rustup set for this program alone (the clone's `cargo xtask` sets
/// its own); `Context::command` removes the ones that describe the xtask package.
const ADDED_BY_CARGO_RUN: [&str; 4] = [
    "CARGO",
    "RUSTUP_TOOLCHAIN",
    "RUSTUP_TOOLCHAIN_SOURCE",
    "RUST_RECURSION_COUNT",
];

/// The toolchain CI asked for in the environment, if it did: rustup says so in
/// `RUSTUP_TOOLCHAIN_SOURCE` ("env"); otherwise the clone chooses its own, from its files.
fn callers_toolchain(source: Option<&OsStr>, toolchain: Option<OsString>) -> Option<OsString> {
    toolchain.filter(|_| source.is_some_and(|source| source == "env"))
}

/// Where cargo puts what it adds to `LD_LIBRARY_PATH`: this checkout's target directory and the
/// toolchain's own folder (the one above its `bin/cargo`).
fn cargos_directories() -> Vec<PathBuf> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let mut directories = vec![std::env::current_dir().unwrap_or_default().join(target)];
    if let Some(sysroot) = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .and_then(|cargo| Some(cargo.parent()?.parent()?.to_path_buf()))
    {
        directories.push(sysroot);
    }
    directories
}

/// `LD_LIBRARY_PATH` without the folders cargo added (those inside `added_under`), or `None`
/// when nothing else is left.
fn callers_library_path(path: &OsStr, added_under: &[PathBuf]) -> Option<OsString> {
    let kept: Vec<PathBuf> = std::env::split_paths(path)
        .filter(|dir| {
            !dir.as_os_str().is_empty() && !added_under.iter().any(|added| dir.starts_with(added))
        })
        .collect();
    if kept.is_empty() {
        return None;
    }
    std::env::join_paths(kept).ok()
}

/// Starts `scripts/run` in the clone on a free port, waits until `/login` and `/healthz` answer
/// 200, stops it with SIGTERM and checks that it ended in time, with status 0, and left nothing
/// running. Returns 0 if all of that held, else 1, having said what failed.
fn check_run(context: &Context, clone: &Path, log: &Path) -> Outcome {
    let port = free_port(18000)?;
    say(format!(
        "starting scripts/run on port {port} (log: {})",
        log.display()
    ));
    let log_file = std::fs::File::create(log)
        .map_err(|error| Failure::Message(format!("{}: {error}", log.display())))?;
    let log_copy = log_file
        .try_clone()
        .map_err(|error| Failure::Message(error.to_string()))?;
    let mut child = clone_command(context, clone, "scripts/run")
        .env("ROCKET_PORT", port.to_string())
        .stdout(log_file)
        .stderr(log_copy)
        .spawn()
        .map_err(|error| Failure::Message(format!("could not run scripts/run: {error}")))?;
    forward_to(&child, Signal::TERM);
    let mut run_status = 0;

    // The first start builds the app: wait while scripts/run lives, up to 20 minutes.
    let answers_200 = |path| status_of(port, path, Duration::from_secs(5)) == Some(200);
    let started = Instant::now();
    let mut ready = false;
    while started.elapsed() < START_LIMIT {
        if answers_200("/login") && answers_200("/healthz") {
            ready = true;
            break;
        }
        if matches!(child.try_wait(), Ok(Some(_))) || check_interrupted().is_err() {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    if ready {
        say(format!(
            "scripts/run: /login and /healthz answer 200 on port {port}"
        ));
    } else {
        print_tail(log, 40);
        say("FAILED: scripts/run did not serve /login and /healthz with 200");
        run_status = 1;
    }

    // Stopped by its process id, as a person's Ctrl-C or a service manager's SIGTERM would.
    send(child.id(), Signal::TERM);
    let stopping = Instant::now();
    let mut ended = None;
    while stopping.elapsed() < STOP_LIMIT {
        if let Ok(Some(status)) = child.try_wait() {
            ended = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    match ended {
        Some(status) if status.success() => {}
        Some(status) => {
            print_tail(log, 20);
            say(format!(
                "FAILED: scripts/run exited with status {} after SIGTERM",
                status_code(status)
            ));
            run_status = 1;
        }
        None => {
            say("FAILED: scripts/run still running 30 s after SIGTERM");
            run_status = 1;
        }
    }
    let leftovers = processes_of(clone);
    if !leftovers.is_empty() {
        for (pid, command_line) in &leftovers {
            eprintln!("{pid} {command_line}");
        }
        say("FAILED: scripts/run left these processes running");
        // Stopped, so that they do not outlive CI.
        for (pid, _) in &leftovers {
            send(*pid, Signal::KILL);
        }
        run_status = 1;
    }
    if ended.is_none() {
        send(child.id(), Signal::KILL);
    }
    stop_forwarding(&child);
    child.wait().ok();
    check_interrupted()?;
    if run_status == 0 {
        say("scripts/run: stopped by SIGTERM, nothing left running");
    }
    Ok(run_status)
}

/// Every process but this one whose program, working directory or command line lies inside
/// `clone` (the app, the private PostgreSQL server and its backends), with its command line.
fn processes_of(clone: &Path) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let proc = entry.path();
        // A process may end while it is looked at: then it is simply not listed.
        let Ok(command_line) = std::fs::read(proc.join("cmdline")) else {
            continue;
        };
        let command_line = String::from_utf8_lossy(&command_line)
            .replace('\0', " ")
            .trim_end()
            .to_owned();
        let exe = std::fs::read_link(proc.join("exe")).ok();
        let cwd = std::fs::read_link(proc.join("cwd")).ok();
        if is_of(clone, exe.as_deref(), cwd.as_deref(), &command_line) {
            found.push((pid, command_line));
        }
    }
    found
}

/// Whether a process with this program, working directory and command line is one of `clone`'s.
fn is_of(clone: &Path, exe: Option<&Path>, cwd: Option<&Path>, command_line: &str) -> bool {
    let inside = |path: &Path| path.starts_with(clone);
    let mut prefix = PathBuf::from(clone).into_os_string();
    prefix.push("/");
    exe.is_some_and(|exe| inside(exe) && exe != clone)
        || cwd.is_some_and(inside)
        || command_line.contains(prefix.to_string_lossy().as_ref())
}

#[cfg(test)]
mod tests {
    use super::{callers_library_path, callers_toolchain, is_of};
    use std::ffi::{OsStr, OsString};
    use std::path::{Path, PathBuf};

    #[test]
    fn the_clone_gets_the_library_path_ci_gave_not_what_cargo_run_added_to_it() {
        let added = [
            PathBuf::from("/work/ci/target"),
            PathBuf::from("/root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu"),
        ];
        let cargo_run = "/work/ci/target/debug:/work/ci/target/debug/deps:\
            /root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/lib/rustlib/x86_64-unknown-linux-gnu/lib:\
            /root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/lib";
        assert_eq!(callers_library_path(OsStr::new(cargo_run), &added), None);
        let with_callers = format!("{cargo_run}:/opt/lib:/work/ci/target2/lib");
        assert_eq!(
            callers_library_path(OsStr::new(&with_callers), &added),
            Some(OsString::from("/opt/lib:/work/ci/target2/lib"))
        );
    }

    #[test]
    fn the_clone_keeps_a_toolchain_only_when_ci_chose_it_in_the_environment() {
        let stable = || Some(OsString::from("stable"));
        assert_eq!(
            callers_toolchain(Some(OsStr::new("env")), stable()),
            stable()
        );
        assert_eq!(
            callers_toolchain(Some(OsStr::new("default")), stable()),
            None
        );
        assert_eq!(callers_toolchain(None, stable()), None);
    }

    const CLONE: &str = "/tmp/secure-sessions-ci.0123456789ab/clone";

    fn of(exe: Option<&str>, cwd: Option<&str>, command_line: &str) -> bool {
        is_of(
            Path::new(CLONE),
            exe.map(Path::new),
            cwd.map(Path::new),
            command_line,
        )
    }

    #[test]
    fn a_process_running_a_program_of_the_clone_is_one_of_its_own() {
        let app = format!("{CLONE}/target/debug/secure-sessions");
        assert!(of(Some(&app), Some("/"), "secure-sessions"));
        // A binary rebuilt while it ran.
        assert!(of(Some(&format!("{app} (deleted)")), None, ""));
    }

    #[test]
    fn a_process_working_in_the_clone_or_naming_it_is_one_of_its_own() {
        assert!(of(Some("/usr/bin/bash"), Some(CLONE), "bash scripts/run"));
        assert!(of(
            Some("/usr/bin/cargo"),
            Some(&format!("{CLONE}/xtask")),
            "cargo"
        ));
        // PostgreSQL as the postgres user, from "/", its data directory inside the clone.
        assert!(of(
            None,
            None,
            &format!("/usr/lib/postgresql/15/bin/postgres -D {CLONE}/.data/postgres -p 55432")
        ));
    }

    #[test]
    fn other_processes_are_not_the_clone_s() {
        assert!(!of(Some("/usr/bin/bash"), Some("/work/main"), "bash"));
        assert!(!of(None, None, ""));
        // Beside the clone, not in it: the folder that holds it, and a name it begins.
        assert!(!of(
            Some("/usr/bin/cargo"),
            Some("/tmp/secure-sessions-ci.0123456789ab"),
            "cargo xtask ci"
        ));
        assert!(!of(
            None,
            Some(&format!("{CLONE}2")),
            &format!("ls {CLONE}2/x")
        ));
        assert!(!of(
            Some(CLONE),
            None,
            &format!("git clone --quiet /work/wt/ci-port {CLONE}")
        ));
    }
}
