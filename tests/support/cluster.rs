//! A private PostgreSQL server that one test owns, so the test can stop it: a real outage.
//! Started by the `pg-cluster` crate, as `scripts/` start theirs (as the `postgres` user when run
//! as root).

use std::path::{Path, PathBuf};
use std::process::Command;

use pg_cluster::Stop;

pub struct Cluster {
    server: pg_cluster::Cluster,
    /// The folder holding the data directory and the server's log; removed on drop.
    base: PathBuf,
    pub port: u16,
    /// Server options added to the throwaway ones (later `-c` settings win).
    options: String,
}

impl Cluster {
    /// Creates and starts a throwaway cluster on a free port of 127.0.0.1 (no Unix socket).
    pub fn start() -> Cluster {
        Cluster::start_with("")
    }

    /// A throwaway cluster whose commits survive the server being killed (SIGKILL): a commit
    /// returns once its WAL is written out to the operating system. (`fsync` stays off: the
    /// machine itself does not crash in these tests.)
    pub fn start_durable() -> Cluster {
        Cluster::start_with("-c synchronous_commit=on")
    }

    /// A throwaway cluster with these server options (`-c name=value ...`) as well.
    pub fn start_with(options: &str) -> Cluster {
        let cluster = Cluster::create(options);
        cluster.server.initdb().unwrap();
        cluster.start_again();
        cluster
    }

    /// An empty folder for a cluster, owned by the user that runs PostgreSQL, and a free port.
    fn create(options: &str) -> Cluster {
        let base = PathBuf::from(format!("/tmp/ss-cluster-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&base).expect("create the cluster folder");
        pg_cluster::give_to_postgres(&[&base]).unwrap();
        let bin = pg_cluster::ensure_postgres().unwrap();
        let port = pg_cluster::any_free_port().unwrap();
        Cluster {
            server: pg_cluster::Cluster::new(&bin, base.join("data"), base.join("log"), port),
            port,
            base,
            options: options.to_owned(),
        }
    }

    /// A primary that commits only once its synchronous standby named `standby` has the commit
    /// too: a commit the app answered survives losing the primary.
    pub fn start_primary(standby: &str) -> Cluster {
        Cluster::start_with(&format!(
            "-c synchronous_commit=on -c synchronous_standby_names={standby}"
        ))
    }

    /// A streaming standby of `primary`, copied from it with `pg_basebackup` and connected to
    /// it as `name`; returns once the primary reports it as its synchronous standby.
    pub fn start_standby(primary: &Cluster, name: &str) -> Cluster {
        let standby = Cluster::create("-c synchronous_commit=on");
        let port = primary.port.to_string();
        run(standby
            .server
            .program("pg_basebackup")
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-D"])
            .arg(standby.data())
            // -R: standby.signal and the connection to the primary; -X stream: the WAL
            // written during the copy comes along.
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"]));
        // The primary knows its synchronous standby by the application name it connects with.
        let conninfo = format!(
            "\nprimary_conninfo = 'host=127.0.0.1 port={port} user=postgres application_name={name}'\n"
        );
        let auto_conf = standby.data().join("postgresql.auto.conf");
        let mut settings = std::fs::read_to_string(&auto_conf).expect("postgresql.auto.conf");
        settings.push_str(&conninfo);
        std::fs::write(&auto_conf, settings).expect("write postgresql.auto.conf");
        standby.start_again();
        for _ in 0..100 {
            let state = primary.psql(&format!(
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = '{name}'"
            ));
            if state.trim() == "sync" {
                return standby;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the standby {name} never became synchronous");
    }

    /// Promotes a standby to primary (`pg_ctl promote`), returning once it accepts writes.
    pub fn promote(&self) {
        run(self.server.pg_ctl().args(["-w", "-s", "promote"]));
    }

    /// Kills the server and every one of its processes with SIGKILL, as a crash would: no
    /// shutdown checkpoint, no goodbye to clients. `start_again` then recovers from the WAL.
    pub fn kill(&self) {
        let pid_file = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .expect("the server is running");
        let pid = pid_file
            .lines()
            .next()
            .expect("a process id")
            .trim()
            .to_owned();
        // The children first read, then everyone killed at once: none can restart another.
        let children = Command::new("pgrep")
            .args(["-P", &pid])
            .output()
            .expect("pgrep");
        let children = String::from_utf8_lossy(&children.stdout).into_owned();
        let mut kill = Command::new("kill");
        kill.args(["-KILL", &pid]).args(children.split_whitespace());
        run(&mut kill);
        for _ in 0..100 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("PostgreSQL {pid} survived SIGKILL");
    }

    /// One value (or nothing) from a query run with `psql` as the superuser.
    pub fn psql(&self, sql: &str) -> String {
        let output = self
            .server
            .psql()
            .args(["-A", "-t", "-d", "postgres", "-c", sql])
            .output()
            .expect("run psql");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.server.log()).unwrap_or_default()
    }

    /// A URL for `database` (the cluster has `postgres` from the start).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server, disconnecting every client: from now on connections are refused.
    pub fn stop(&self) {
        self.server.stop(Stop::Fast).unwrap();
    }

    /// Starts the (stopped) server again on the same port.
    pub fn start_again(&self) {
        let options = format!("{} {}", pg_cluster::NO_DISK_WAITS, self.options);
        self.server.start(&options).unwrap();
    }

    fn data(&self) -> PathBuf {
        self.server.data().to_path_buf()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Quietly: the server may be stopped already.
        self.server.stop(Stop::Immediate).ok();
        std::fs::remove_dir_all(&self.base).ok();
    }
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
