//! A private PostgreSQL server that one test owns, so the test can stop it: a real outage.
//! Started like `scripts/lib.sh` starts its clusters (as the `postgres` user when run as root).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Cluster {
    bin: PathBuf,
    /// The folder holding the data directory and the server's log; removed on drop.
    base: PathBuf,
    pub port: u16,
}

impl Cluster {
    /// Creates and starts a throwaway cluster on a free port of 127.0.0.1 (no Unix socket).
    pub fn start() -> Cluster {
        let base = PathBuf::from(format!("/tmp/ss-cluster-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&base).expect("create the cluster folder");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster {
            bin: postgres_bin(),
            base,
            port,
        };
        if running_as_root() {
            run(Command::new("chown").arg("postgres:").arg(&cluster.base));
        }
        let initdb = cluster.bin.join("initdb");
        run(cluster
            .as_postgres(&initdb)
            .arg("-D")
            .arg(cluster.data())
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]));
        cluster.start_again();
        cluster
    }

    /// A URL for `database` (the cluster has `postgres` from the start).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server, disconnecting every client: from now on connections are refused.
    pub fn stop(&self) {
        run(self.pg_ctl().args(["-m", "fast", "-w", "-s", "stop"]));
    }

    /// Starts the (stopped) server again on the same port.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k '' -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port
        );
        run(self
            .pg_ctl()
            .arg("-l")
            .arg(self.base.join("log"))
            .args(["-w", "-s", "-o", &options, "start"]));
    }

    fn data(&self) -> PathBuf {
        self.base.join("data")
    }

    fn pg_ctl(&self) -> Command {
        let mut command = self.as_postgres(&self.bin.join("pg_ctl"));
        command.arg("-D").arg(self.data());
        command
    }

    /// PostgreSQL refuses to run as root: then its programs run as `postgres`, from `/`.
    fn as_postgres(&self, program: &Path) -> Command {
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
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Quietly: the server may be stopped already.
        self.pg_ctl()
            .args(["-m", "immediate", "-w", "-s", "stop"])
            .output()
            .ok();
        std::fs::remove_dir_all(&self.base).ok();
    }
}

/// `PG_BIN` (which `scripts/test` exports), else the newest `/usr/lib/postgresql/<major>/bin`.
fn postgres_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("PG_BIN") {
        return PathBuf::from(bin);
    }
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server programs in /usr/lib/postgresql, or PG_BIN")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort();
    let newest = versions
        .last()
        .expect("a PostgreSQL version in /usr/lib/postgresql");
    PathBuf::from(format!("/usr/lib/postgresql/{newest}/bin"))
}

fn running_as_root() -> bool {
    let output = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
