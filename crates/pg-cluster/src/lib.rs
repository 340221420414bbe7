//! Private PostgreSQL clusters on 127.0.0.1: the one implementation that the tests
//! (`tests/support/cluster.rs`) and the tools behind `scripts/` (`cargo xtask`) share.
//!
//! - [`ensure_postgres`] finds the server programs of PostgreSQL 15 or newer, and installs
//!   Debian's `postgresql` package where there are none ([`apt_install`]);
//! - a [`Cluster`] is one data directory: [`Cluster::open`] creates it when it holds none and
//!   starts it on the first free port (or reuses the server a killed run left running), and
//!   [`Cluster::stop`] stops the server its `postmaster.pid` names, if that server still runs;
//! - a [`Throwaway`] is a cluster in a new folder under `/tmp`, stopped and deleted when dropped.
//!
//! PostgreSQL refuses to run as root: then its programs run as the `postgres` user (through
//! `runuser`, from `/`), and the folders they write belong to that user. Servers listen on
//! 127.0.0.1 only, without a Unix socket; the superuser `postgres` needs no password.
//!
//! Progress goes to standard error, each line starting with the tool's name ([`set_name`]), so
//! that standard output stays free for the programs being run.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Why a cluster could not be found, created, started or used: a sentence for a person.
#[derive(Debug)]
pub struct Error(String);

impl Error {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Error {
        Error(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

// ------------------------------------------------------------------------------ messages --

static NAME: OnceLock<String> = OnceLock::new();

/// Names the tool in the progress messages ("test: creating a PostgreSQL cluster in ...").
/// The first call wins; without one, messages start with "pg-cluster".
pub fn set_name(name: &str) {
    NAME.set(name.to_owned()).ok();
}

/// Prints one progress line on standard error.
pub fn say(message: impl fmt::Display) {
    let name = NAME.get().map_or("pg-cluster", String::as_str);
    eprintln!("{name}: {message}");
}

// --------------------------------------------------------------- privileges, packages --

/// Whether this process runs as root (then PostgreSQL's programs run as `postgres`).
pub fn running_as_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
    })
}

/// The file `program` names on the `PATH`, if any (the shell's `command -v`).
pub fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|file| is_executable(file))
}

/// Whether `file` is a file this process may run.
pub fn is_executable(file: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    file.metadata()
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

/// `program` run as root: directly when we are root, through `sudo` otherwise.
fn as_root(program: &str) -> Result<Command> {
    if running_as_root() {
        Ok(Command::new(program))
    } else if on_path("sudo").is_some() {
        let mut command = Command::new("sudo");
        command.arg(program);
        Ok(command)
    } else {
        Err(Error(format!(
            "need root to run '{program}', and sudo is not available"
        )))
    }
}

/// Installs Debian packages, as root or through `sudo`. The package lists are refreshed first,
/// because a fresh machine (or container) may have none; callers get here only when something
/// is missing, so the common case costs nothing.
pub fn apt_install(packages: &[&str]) -> Result<()> {
    let list = packages.join(" ");
    if !running_as_root() && on_path("sudo").is_none() {
        return Err(Error(format!(
            "please install these packages (as root): {list}"
        )));
    }
    if on_path("apt-get").is_none() {
        return Err(Error(format!(
            "apt-get not found: please install these packages yourself: {list}"
        )));
    }
    say(format!("installing {list}"));
    for step in [&["update"][..], &["install", "-y"][..]] {
        // `env` passes the setting through sudo; noninteractive: never ask a question, CI has
        // no terminal to answer it. apt's output goes to standard error, with the messages.
        let mut command = as_root("env")?;
        command
            .args(["DEBIAN_FRONTEND=noninteractive", "apt-get", "-q"])
            .args(step)
            .args(if step[0] == "install" { packages } else { &[] })
            .stdout(std::io::stderr());
        let status = command
            .status()
            .map_err(|error| Error(format!("could not run apt-get: {error}")))?;
        if !status.success() {
            return Err(Error(format!("apt-get {} failed ({status})", step[0])));
        }
    }
    Ok(())
}

// -------------------------------------------------------------------------- programs --

/// The major version of the PostgreSQL server whose programs are in `bin` (15), if any.
fn major_version(bin: &Path) -> Option<u32> {
    let output = Command::new(bin.join("initdb"))
        .arg("--version")
        .output()
        .ok()?;
    // "initdb (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)" -> 15
    let text = String::from_utf8_lossy(&output.stdout);
    let (_, version) = text.split_once(") ")?;
    let major: String = version.chars().take_while(char::is_ascii_digit).collect();
    major.parse().ok()
}

fn is_recent(bin: &Path) -> bool {
    major_version(bin).is_some_and(|major| major >= 15)
}

/// The newest directory of PostgreSQL (>= 15) server programs on this machine, if any: Debian
/// installs each major version side by side, in `/usr/lib/postgresql/<major>/bin`; other systems
/// put `initdb` on the `PATH`.
fn find_bin() -> Option<PathBuf> {
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(str::parse)
                .collect::<std::result::Result<Vec<u32>, _>>()
                .ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.into_iter().rev().find(|(_, bin)| is_recent(bin)) {
        return Some(bin);
    }
    let initdb = std::fs::canonicalize(on_path("initdb")?).ok()?;
    let bin = initdb.parent()?.to_path_buf();
    is_recent(&bin).then_some(bin)
}

/// The directory of the PostgreSQL (>= 15) server programs: `PG_BIN` from the environment when
/// it holds `initdb`, else the newest on this machine, installing Debian's `postgresql` package
/// when there is none. Callers pass it on to their children as `PG_BIN`.
pub fn ensure_postgres() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("PG_BIN").map(PathBuf::from)
        && is_executable(&bin.join("initdb"))
    {
        return Ok(bin);
    }
    if let Some(bin) = find_bin() {
        return Ok(bin);
    }
    apt_install(&["postgresql"])?;
    find_bin()
        .ok_or_else(|| Error::new("PostgreSQL >= 15 server programs not found after installing"))
}

/// Makes sure the `pg_stat_statements` extension exists: Debian ships it with the server, some
/// packagings keep it in `postgresql-contrib`.
pub fn ensure_pg_stat_statements(bin: &Path) -> Result<()> {
    let output = run(Command::new(bin.join("pg_config")).arg("--sharedir"))?;
    let share = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let control = Path::new(&share).join("extension/pg_stat_statements.control");
    if control.is_file() {
        Ok(())
    } else {
        apt_install(&["postgresql-contrib"])
    }
}

// ----------------------------------------------------------------------------- ports --

/// Whether nothing listens on 127.0.0.1:`port` (a connection is refused).
pub fn port_is_free(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err()
}

/// The first TCP port from `start` on which nothing listens on 127.0.0.1. Something could still
/// take it before it is used: [`Cluster::open`] then tries the next free one.
pub fn free_port(start: u16) -> Result<u16> {
    for port in start..=u16::MAX {
        if port_is_free(port) {
            return Ok(port);
        }
        say(format!(
            "port {port} is taken on 127.0.0.1; trying the next one"
        ));
    }
    Err(Error(format!(
        "every TCP port from {start} to 65535 is taken on 127.0.0.1"
    )))
}

/// A port the operating system has just found free on 127.0.0.1, anywhere in its range: for
/// servers started in parallel (tests), which a scan from one number would make collide.
pub fn any_free_port() -> Result<u16> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| Error(format!("no free port on 127.0.0.1: {error}")))
}

// ----------------------------------------------------------------- running as postgres --

/// `program` as the user PostgreSQL runs as: `postgres`, from `/` (a directory it can read),
/// when we are root; ourselves otherwise.
fn as_postgres(program: impl AsRef<OsStr>) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(program)
            .current_dir("/");
        command
    } else {
        Command::new(program)
    }
}

/// Whether the user PostgreSQL runs as can reach `dir`: it, and every directory above it, must
/// be traversable.
pub fn postgres_can_reach(dir: &Path) -> bool {
    as_postgres("test")
        .arg("-x")
        .arg(dir)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Gives `paths` to the `postgres` user (and its group), when we are root.
pub fn give_to_postgres(paths: &[&Path]) -> Result<()> {
    if !running_as_root() {
        return Ok(());
    }
    let id = |flag: &str| -> Result<u32> {
        let output = Command::new("id").args([flag, "postgres"]).output();
        output
            .ok()
            .filter(|output| output.status.success())
            .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse().ok())
            .ok_or_else(|| {
                Error::new("running as root, but there is no 'postgres' user to run PostgreSQL as")
            })
    };
    let (user, group) = (id("-u")?, id("-g")?);
    for path in paths {
        std::os::unix::fs::chown(path, Some(user), Some(group)).map_err(|error| {
            Error(format!(
                "could not give {} to the postgres user: {error}",
                path.display()
            ))
        })?;
    }
    Ok(())
}

/// Runs `command`, returning its output if it succeeded, else an error with that output.
pub fn run(command: &mut Command) -> Result<Output> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| Error(format!("could not run {command:?}: {error}")))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(Error(format!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}

// --------------------------------------------------------------------------- processes --

/// What the process a `postmaster.pid` names is now. The file stays behind when the server is
/// killed or the machine crashes, and by then its process may be a zombie (dead, not yet reaped
/// by its parent) or its process id may belong to another program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProcessKind {
    /// The live server of the cluster in that data directory (`postgres -D DIR ...`).
    Server,
    /// Some other live PostgreSQL process.
    Postgres,
    /// Gone, a zombie, or another program.
    None,
}

/// What process `pid` is now, for the cluster in `data` (an absolute path).
fn process_kind(pid: &str, data: &Path) -> ProcessKind {
    let Ok(pid) = pid.trim().parse::<u32>() else {
        return ProcessKind::None;
    };
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let status = std::fs::read_to_string(proc.join("status")).unwrap_or_default();
    let zombie = status
        .lines()
        .any(|line| line.starts_with("State:") && line.contains("zombie"));
    let comm = std::fs::read_to_string(proc.join("comm")).unwrap_or_default();
    if !proc.is_dir() || zombie || comm.trim_end() != "postgres" {
        return ProcessKind::None;
    }
    let command_line = std::fs::read(proc.join("cmdline")).unwrap_or_default();
    let data = data.as_os_str().as_encoded_bytes();
    if command_line
        .split(|&byte| byte == 0)
        .any(|argument| argument == data)
    {
        ProcessKind::Server
    } else {
        ProcessKind::Postgres
    }
}

// ---------------------------------------------------------------------------- clusters --

/// Server options of a cluster deleted afterwards: never wait for the disk.
pub const NO_DISK_WAITS: &str = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off";

/// What a cluster is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Kept across runs (scripts/run's `.data/postgres`): crash-safe, default settings.
    Persistent,
    /// Deleted afterwards (tests): no waits for the disk, and room for more than the default 100
    /// connections, as tests run in parallel, each with its own database and pool.
    Throwaway,
}

/// How [`Cluster::stop`] treats the server's clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Disconnect them, then shut down cleanly (`pg_ctl -m fast`).
    Fast,
    /// Kill everything at once; the next start recovers from the WAL (`-m immediate`).
    Immediate,
}

/// One PostgreSQL cluster: its data directory, its log, and the port its server listens on.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
}

impl Cluster {
    /// The cluster in `data` (an absolute path), with the server programs in `bin`, logging to
    /// `log`, served on `port`. Nothing is created or started yet.
    pub fn new(bin: &Path, data: PathBuf, log: PathBuf, port: u16) -> Cluster {
        Cluster {
            bin: bin.to_path_buf(),
            data,
            log,
            port,
        }
    }

    /// Starts the cluster in `dir`, creating it first if `dir` holds none; the server listens
    /// on the first free port from 55432, and logs to the file `<dir>.log` beside it.
    /// `options` adds server options (`-c name=value ...`). A server a killed run left running
    /// in `dir` is used as it is.
    pub fn open(bin: &Path, dir: &Path, mode: Mode, options: &str) -> Result<Cluster> {
        std::fs::create_dir_all(dir)
            .map_err(|error| Error(format!("could not create {}: {error}", dir.display())))?;
        // Absolute: the programs run from "/".
        let data = std::fs::canonicalize(dir)
            .map_err(|error| Error(format!("{}: {error}", dir.display())))?;
        let mut log = data.clone().into_os_string();
        log.push(".log");
        let mut cluster = Cluster::new(bin, data, PathBuf::from(log), 0);

        if running_as_root() {
            // The data directory, and the log beside it, must belong to postgres.
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&cluster.log)
                .map_err(|error| Error(format!("{}: {error}", cluster.log.display())))?;
            give_to_postgres(&[&cluster.data, &cluster.log])?;
        }
        if !postgres_can_reach(&cluster.data) {
            return Err(Error(format!(
                "the postgres user cannot reach {}: every directory above it must be traversable (chmod o+x)",
                cluster.data.display()
            )));
        }

        let pid_file = cluster.data.join("postmaster.pid");
        if let Ok(contents) = std::fs::read_to_string(&pid_file) {
            let mut lines = contents.lines();
            let pid = lines.next().unwrap_or_default();
            match process_kind(pid, &cluster.data) {
                ProcessKind::Server => {
                    // Still running: a previous run was killed before it could stop the
                    // server. Use it as it is.
                    cluster.port = lines
                        .nth(2)
                        .and_then(|port| port.trim().parse().ok())
                        .ok_or_else(|| Error(format!("no port in {}", pid_file.display())))?;
                    cluster.wait_ready()?;
                    say(format!(
                        "reusing the PostgreSQL server already running in {} on port {}",
                        cluster.data.display(),
                        cluster.port
                    ));
                    return Ok(cluster);
                }
                ProcessKind::None => {
                    // Left over from a crash. Remove it: PostgreSQL would refuse to start while
                    // that process exists, even as a zombie or another program. (It still
                    // refuses if old server processes are attached to the cluster's shared
                    // memory, so this is safe.)
                    say(format!("removing the stale {}", pid_file.display()));
                    std::fs::remove_file(&pid_file).ok();
                }
                // Let PostgreSQL decide; it says why in the log if it refuses.
                ProcessKind::Postgres => {}
            }
        }

        if !cluster.data.join("PG_VERSION").is_file() {
            say(format!(
                "creating a PostgreSQL cluster in {}",
                cluster.data.display()
            ));
            cluster.initdb()?;
        }

        let mut all_options = String::new();
        if mode == Mode::Throwaway {
            all_options.push_str(NO_DISK_WAITS);
            all_options.push_str(" -c max_connections=300");
        }
        all_options.push(' ');
        all_options.push_str(options);

        // Another program may take the port between the check and the start: try the next
        // free ones a few times before giving up.
        let mut port = 55432;
        for _ in 0..5 {
            port = free_port(port)?;
            cluster.port = port;
            match cluster.start(&all_options) {
                Ok(()) => {
                    say(format!(
                        "PostgreSQL is running in {} on 127.0.0.1:{port} (log: {})",
                        cluster.data.display(),
                        cluster.log.display()
                    ));
                    return Ok(cluster);
                }
                Err(error) => {
                    say(error);
                    say(format!(
                        "could not start PostgreSQL on port {port}; trying the next free one"
                    ));
                    port = port.saturating_add(1);
                }
            }
        }
        let log = std::fs::read_to_string(&cluster.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        for line in &lines[lines.len().saturating_sub(20)..] {
            eprintln!("{line}");
        }
        Err(Error(format!(
            "could not start PostgreSQL in {} (log: {})",
            cluster.data.display(),
            cluster.log.display()
        )))
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// The server's log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The URL of `database` on this server, as the superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The server program `name` (`pg_ctl`, `pg_basebackup` ...), run as PostgreSQL's user.
    pub fn program(&self, name: &str) -> Command {
        as_postgres(self.bin.join(name))
    }

    /// Creates the cluster: superuser `postgres`, no passwords (`trust`: the server listens on
    /// 127.0.0.1 only), UTF-8.
    pub fn initdb(&self) -> Result<()> {
        run(self
            .program("initdb")
            .arg("-D")
            .arg(&self.data)
            .args(["-U", "postgres", "-A", "trust", "--no-sync"])
            .args(["-E", "UTF8", "--locale=C.UTF-8"]))
        .map(drop)
        .map_err(|error| Error(format!("initdb failed: {error}")))
    }

    /// Starts the (created, stopped) server on its port with the server `options`, returning
    /// once it accepts connections. No Unix socket (`-k ''`): nothing is written to
    /// `/var/run/postgresql` or `/tmp`, and clusters cannot collide there.
    pub fn start(&self, options: &str) -> Result<()> {
        let options = format!(
            "-p {} -k '' -c listen_addresses=127.0.0.1 {options}",
            self.port
        );
        run(self
            .pg_ctl()
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-s", "-o", &options, "start"]))
        .map(drop)
    }

    /// Waits until the server accepts connections: a reused server may still be starting, e.g.
    /// recovering after a crash.
    fn wait_ready(&self) -> Result<()> {
        for _ in 0..60 {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(Error(format!(
            "no PostgreSQL server answers on 127.0.0.1:{} (data: {})",
            self.port,
            self.data.display()
        )))
    }

    /// Stops the server whose process id `postmaster.pid` holds, if it still runs; quietly
    /// nothing if it does not.
    pub fn stop(&self, how: Stop) -> Result<()> {
        let Ok(contents) = std::fs::read_to_string(self.data.join("postmaster.pid")) else {
            return Ok(());
        };
        let pid = contents.lines().next().unwrap_or_default();
        if process_kind(pid, &self.data) == ProcessKind::None {
            return Ok(());
        }
        let mode = match how {
            Stop::Fast => "fast",
            Stop::Immediate => "immediate",
        };
        run(self.pg_ctl().args(["-m", mode, "-w", "-s", "stop"])).map(drop)
    }

    /// `pg_ctl -D <data>`, as PostgreSQL's user.
    pub fn pg_ctl(&self) -> Command {
        let mut command = self.program("pg_ctl");
        command.arg("-D").arg(&self.data);
        command
    }

    /// `psql` connected as the superuser, stopping at the first error. The server's own `psql`
    /// when its directory has one, so that the versions match.
    pub fn psql(&self) -> Command {
        let own = self.bin.join("psql");
        let program = if is_executable(&own) {
            own.into_os_string()
        } else {
            OsString::from("psql")
        };
        let mut command = Command::new(program);
        command
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(["-U", "postgres"]);
        command
    }

    /// Creates the database `name` unless it exists.
    pub fn create_database(&self, name: &str) -> Result<()> {
        // SQL has no CREATE DATABASE IF NOT EXISTS: build the statement only when the database
        // is missing, and let \gexec run it. psql quotes the name (:'db' as a literal, %I as an
        // identifier), so any name is safe.
        const SQL: &str = "SELECT format('CREATE DATABASE %I', :'db')\n\
             WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\n\\gexec\n";
        let mut child = self
            .psql()
            .args(["-d", "postgres", "-v"])
            .arg(format!("db={name}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| Error(format!("could not run psql: {error}")))?;
        child
            .stdin
            .take()
            .map(|mut stdin| stdin.write_all(SQL.as_bytes()))
            .transpose()
            .map_err(|error| Error(format!("psql: {error}")))?;
        let output = child
            .wait_with_output()
            .map_err(|error| Error(format!("psql: {error}")))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(Error(format!(
                "could not create the database {name}: {}",
                String::from_utf8_lossy(&output.stderr)
            )))
        }
    }
}

// ---------------------------------------------------------------------- throwaway ones --

/// A new, empty folder `/tmp/<prefix>.<random>`, given to the `postgres` user when we are root,
/// and deleted with everything in it when dropped. In `/tmp` rather than `$TMPDIR`: as root,
/// the postgres user must reach it.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates the folder.
    pub fn new(prefix: &str) -> Result<TempDir> {
        for _ in 0..10 {
            let path = PathBuf::from(format!("/tmp/{prefix}.{}", random_suffix()?));
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    let dir = TempDir { path };
                    give_to_postgres(&[&dir.path])?;
                    return Ok(dir);
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(error) => {
                    return Err(Error(format!(
                        "could not create {}: {error}",
                        path.display()
                    )));
                }
            }
        }
        Err(Error(format!(
            "could not create a new folder /tmp/{prefix}.*"
        )))
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.path).ok();
    }
}

/// Twelve random hexadecimal digits.
fn random_suffix() -> Result<String> {
    let mut bytes = [0_u8; 6];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(|error| Error(format!("/dev/urandom: {error}")))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// A throwaway cluster ([`Mode::Throwaway`]) in a new folder under `/tmp`: stopped, and deleted
/// with its folder, when dropped.
#[derive(Debug)]
pub struct Throwaway {
    cluster: Cluster,
    // Dropped after the cluster has stopped: the folder goes last.
    _dir: TempDir,
}

impl Throwaway {
    /// Creates and starts the cluster in `/tmp/<prefix>.<random>/postgres`, with the server
    /// `options` added to the throwaway ones.
    pub fn start(bin: &Path, prefix: &str, options: &str) -> Result<Throwaway> {
        let dir = TempDir::new(prefix)?;
        let cluster = Cluster::open(bin, &dir.path().join("postgres"), Mode::Throwaway, options)?;
        Ok(Throwaway { cluster, _dir: dir })
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        if let Err(error) = self.cluster.stop(Stop::Fast) {
            say(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_does_not_exist_is_no_server() {
        let data = Path::new("/tmp/no-such-cluster");
        assert_eq!(process_kind("not a number", data), ProcessKind::None);
        assert_eq!(process_kind("4194305", data), ProcessKind::None);
    }

    #[test]
    fn this_process_is_no_postgres_server() {
        let pid = std::process::id().to_string();
        assert_eq!(process_kind(&pid, Path::new("/")), ProcessKind::None);
    }

    #[test]
    fn a_port_something_listens_on_is_not_free() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let taken = listener.local_addr().unwrap().port();
        assert!(!port_is_free(taken));
        assert_ne!(free_port(taken).unwrap(), taken);
    }
}
