//! `scripts/e2e [ARGUMENTS FOR pytest...]`: the example end-to-end suite (e2e/: Playwright for
//! Python, with pytest) against the app in test mode.
//!
//! Installs what is missing (Chromium as a Debian package; the suite's Python packages into a
//! virtual environment in `target/e2e-venv`), builds the app binary the way the tests build it,
//! starts it in test mode on a free 127.0.0.1 port with a fresh database, runs pytest, and stops
//! the app whatever happens. Unless `DATABASE_URL` names a PostgreSQL server (as a role allowed
//! to create databases), a throwaway server is started and deleted again. scripts/test runs this
//! after cargo test.
//!
//! To run the suite against an instance already running in test mode, set `E2E_BASE_URL` (for
//! example `http://127.0.0.1:8000`): then nothing is built or started.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use pg_cluster::{Throwaway, apt_install, ensure_postgres, free_port, port_is_free, say};

use crate::process::{
    Context, Failure, Outcome, Stopped, check_interrupted, fail, handle_signals, print_tail,
};
use crate::run::build_app;
use crate::tools::ensure_browser;

const VENV: &str = "target/e2e-venv";

pub fn main(args: &[String]) -> Outcome {
    handle_signals()?;
    let mut context = Context::default();
    ensure_browser(&mut context)?;
    ensure_e2e_venv(&context)?;
    // No __pycache__ folders in the checkout.
    context.set("PYTHONDONTWRITEBYTECODE", "1");
    let pytest = |context: &Context, base_url: &str| {
        let mut command = context.command(format!("{VENV}/bin/python"));
        command
            .args(["-m", "pytest", "e2e", "--output", "target/e2e-results"])
            .args(["--screenshot", "only-on-failure", "--base-url", base_url])
            .args(args);
        command
    };

    if let Some(base_url) = context.var("E2E_BASE_URL") {
        return context.status(&mut pytest(&context, &base_url));
    }

    let bin = ensure_postgres()?;
    context.set("PG_BIN", &bin);
    context.set("SQLX_OFFLINE", "true");
    let app = build_app(&context)?;

    // What is started below is stopped again in the reverse order, however this command ends.
    let mut _cluster = None;
    let server_url = match context.var("DATABASE_URL") {
        Some(url) => url,
        None => {
            let throwaway = Throwaway::start(&bin, "secure-sessions-e2e", "")?;
            let url = throwaway.cluster().url("postgres");
            _cluster = Some(throwaway);
            url
        }
    };
    // A fresh database of its own on that server; the app migrates it at start.
    let database = Database::create(&context, &bin, &server_url)?;

    let port = free_port(18080)?;
    let log = "target/e2e-app.log";
    say(format!(
        "starting the app in test mode on 127.0.0.1:{port} (log: {log})"
    ));
    let log_file =
        std::fs::File::create(log).map_err(|error| Failure::Message(format!("{log}: {error}")))?;
    let log_copy = log_file
        .try_clone()
        .map_err(|error| Failure::Message(error.to_string()))?;
    // The debug profile keeps the default timeouts (30 min idle, as in production): the suite
    // moves the clock through /__test/ instead of waiting. No demo accounts: the suite makes
    // its own.
    let child = context
        .command(&app)
        .env("DATABASE_URL", database.url())
        .env("ROCKET_PROFILE", "debug")
        .env("ROCKET_ADDRESS", "127.0.0.1")
        .env("ROCKET_PORT", port.to_string())
        .env("ROCKET_CLI_COLORS", "false")
        .env("ROCKET_SECRET_KEY", secret_key()?)
        .env("ROCKET_SESSIONS", "{test_hooks=true,seed_demo_users=false}")
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_copy)
        .spawn()
        .map_err(|error| Failure::Message(format!("could not start {}: {error}", app.display())))?;
    let mut app = Stopped(child);

    let mut listening = false;
    for _ in 0..150 {
        if let Ok(Some(_)) = app.0.try_wait() {
            print_tail(Path::new(log), 30);
            return fail(format!("the app stopped during start (log: {log})"));
        }
        if !port_is_free(port) {
            listening = true;
            break;
        }
        check_interrupted()?;
        std::thread::sleep(Duration::from_millis(200));
    }
    if !listening {
        return fail(format!(
            "the app did not listen on port {port} in 30 s (log: {log})"
        ));
    }

    let status = context.status(&mut pytest(&context, &format!("http://127.0.0.1:{port}")))?;
    if status != 0 {
        say(format!("the app's log ({log}) ends with:"));
        print_tail(Path::new(log), 40);
    }
    Ok(status)
}

/// The suite's database, dropped when dropped.
struct Database {
    psql: OsString,
    server_url: String,
    name: String,
}

impl Database {
    fn create(context: &Context, bin: &Path, server_url: &str) -> Result<Database, Failure> {
        let own = bin.join("psql");
        let database = Database {
            psql: if pg_cluster::is_executable(&own) {
                own.into_os_string()
            } else {
                "psql".into()
            },
            server_url: server_url.to_owned(),
            name: format!("ss_e2e_{}", hex(&random_bytes::<6>()?)),
        };
        context.run(
            database
                .psql()
                .args(["-c", &format!("CREATE DATABASE {}", database.name)]),
            "could not create the suite's database",
        )?;
        Ok(database)
    }

    /// psql on the server.
    fn psql(&self) -> Command {
        let mut command = Command::new(&self.psql);
        command
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &self.server_url])
            .stdin(Stdio::null());
        command
    }

    /// The URL of this database: the server's, with its own name in place of the last part.
    fn url(&self) -> String {
        let server = self
            .server_url
            .rsplit_once('/')
            .map_or(self.server_url.as_str(), |(server, _)| server);
        format!("{server}/{}", self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        self.psql()
            .args(["-c", &format!("DROP DATABASE IF EXISTS {}", self.name)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok();
    }
}

/// A virtual environment with the suite's packages, reinstalled only when
/// e2e/requirements.txt changes. Debian's python3 needs python3-venv for this.
fn ensure_e2e_venv(context: &Context) -> Result<(), Failure> {
    let requirements = "e2e/requirements.txt";
    let python = format!("{VENV}/bin/python");
    if pg_cluster::on_path("python3").is_none() {
        apt_install(&["python3", "python3-venv"])?;
    }
    if !pg_cluster::is_executable(Path::new(&python)) {
        let create = || {
            std::fs::remove_dir_all(VENV).ok();
            context
                .command("python3")
                .args(["-m", "venv", VENV])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        };
        if !create() {
            apt_install(&["python3-venv"])?;
            if !create() {
                std::fs::remove_dir_all(VENV).ok();
                return fail(format!(
                    "could not create a Python virtual environment in {VENV}"
                ));
            }
        }
    }
    let installed = format!("{VENV}/requirements.installed");
    let wanted = std::fs::read(requirements)
        .map_err(|error| Failure::Message(format!("{requirements}: {error}")))?;
    if std::fs::read(&installed).ok().as_ref() != Some(&wanted) {
        say(format!(
            "installing the end-to-end suite's Python packages into {VENV}"
        ));
        // Playwright's Python package brings its driver; the browser is Debian's Chromium, so
        // "playwright install" (a browser download) is never run.
        context.run(
            context
                .command(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(["-r", requirements])
                .stdout(std::io::stderr()),
            "could not install the end-to-end suite's Python packages",
        )?;
        std::fs::write(&installed, wanted)
            .map_err(|error| Failure::Message(format!("{installed}: {error}")))?;
    }
    Ok(())
}

/// A new `ROCKET_SECRET_KEY`: 64 random bytes, base64.
pub fn secret_key() -> Result<String, Failure> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = random_bytes::<64>()?;
    let mut key = String::new();
    for chunk in bytes.chunks(3) {
        let word = chunk
            .iter()
            .enumerate()
            .fold(0_u32, |word, (index, &byte)| {
                word | u32::from(byte) << (16 - 8 * index)
            });
        for index in 0..=chunk.len() {
            let sextet = (word >> (18 - 6 * index)) & 0x3f;
            key.push(char::from(ALPHABET[usize::try_from(sextet).unwrap_or(0)]));
        }
        for _ in chunk.len()..3 {
            key.push('=');
        }
    }
    Ok(key)
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], Failure> {
    use std::io::Read as _;
    let mut bytes = [0_u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(|error| Failure::Message(format!("/dev/urandom: {error}")))?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_secret_key_is_64_bytes_of_base64() {
        let key = super::secret_key().unwrap();
        assert_eq!(key.len(), 88);
        assert!(key.ends_with('=') && !key.ends_with("==="));
        assert_ne!(key, super::secret_key().unwrap());
    }
}
