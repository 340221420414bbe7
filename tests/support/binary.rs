//! The real app binary as its own process (what an operator runs); talk to it with
//! `raw::RawRequest` on its `port`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{TestApp, random_secret_key};

/// The app binary, running; stopped (and its log deleted) however the test ends.
pub struct RunningApp {
    process: Child,
    pub port: u16,
    log_path: PathBuf,
}

impl RunningApp {
    /// Starts the app binary (`spawn`) and waits until it accepts connections; panics with its
    /// log if it does not.
    pub async fn start(configure: impl FnOnce(&mut Command)) -> RunningApp {
        let app = RunningApp::spawn(configure);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", app.port)).is_ok() {
                return app;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the app did not start: {}", app.log());
    }

    /// Runs the app binary, configured by `configure`, expecting it to refuse to launch: returns
    /// what it wrote once it has exited, and panics if it is still running after 10 seconds.
    pub async fn refused(configure: impl FnOnce(&mut Command)) -> String {
        let mut app = RunningApp::spawn(configure);
        for _ in 0..100 {
            if let Some(status) = app.process.try_wait().expect("poll the app binary") {
                assert!(!status.success(), "the app exited cleanly: {}", app.log());
                return app.log();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the app is still running: {}", app.log());
    }

    /// The app's process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Everything the app has written to standard output and standard error so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Stops the app; its log stays readable.
    pub fn stop(&mut self) {
        self.process.kill().ok();
        self.process.wait().ok();
    }

    /// The app binary on a free port (`ROCKET_PORT`), with its output in a log file, after
    /// `configure` has set its environment and working directory.
    fn spawn(configure: impl FnOnce(&mut Command)) -> RunningApp {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log_path =
            std::env::temp_dir().join(format!("ss-log-{}.txt", uuid::Uuid::new_v4().simple()));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_secure-sessions"));
        configure(&mut command);
        command
            .env("ROCKET_PORT", port.to_string())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        RunningApp {
            process: command.spawn().expect("start the app binary"),
            port,
            log_path,
        }
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        self.stop();
        std::fs::remove_file(&self.log_path).ok();
    }
}

/// The binary's environment: the test's database and `sessions` settings (a TOML table, as in
/// `ROCKET_SESSIONS`), with the checkout's Rocket.toml under them.
pub fn with_sessions<'a>(app: &'a TestApp, sessions: &'a str) -> impl FnOnce(&mut Command) + 'a {
    move |command| {
        command
            .env("DATABASE_URL", &app.database_url)
            .env("ROCKET_SECRET_KEY", random_secret_key())
            .env("ROCKET_SESSIONS", sessions);
    }
}

/// The ids of the process's threads whose name starts with `prefix`.
pub fn threads_named(pid: u32, prefix: &str) -> std::collections::BTreeSet<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("list the process's threads")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = std::fs::read_to_string(path.join("comm")).ok()?;
            let tid = path.file_name()?.to_str()?.parse().ok()?;
            name.starts_with(prefix).then_some(tid)
        })
        .collect()
}
