//! Real clusters: started, used, reused, stopped and deleted as `scripts/run` and `scripts/test`
//! use them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use pg_cluster::{Cluster, Mode, Stop, TempDir, Throwaway, ensure_postgres, port_is_free};

fn select(cluster: &Cluster, database: &str, sql: &str) -> String {
    let output = cluster
        .psql()
        .args(["-A", "-t", "-d", database, "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn a_throwaway_cluster_serves_its_databases_and_is_gone_when_dropped() {
    let bin = ensure_postgres().unwrap();
    let throwaway = Throwaway::start(&bin, "pg-cluster-test", "").unwrap();
    let cluster = throwaway.cluster();
    cluster.create_database("it's a name").unwrap();
    // A second time is no error: the database is only created when missing.
    cluster.create_database("it's a name").unwrap();
    assert_eq!(select(cluster, "it's a name", "SHOW fsync"), "off");
    assert_eq!(select(cluster, "postgres", "SHOW max_connections"), "300");
    let data = cluster.data().to_path_buf();
    let server = server_pid(&data);
    assert!(!port_is_free(cluster.port()));

    drop(throwaway);
    // (Not its port: a cluster of the other test may listen there by now.)
    assert!(!is_running(&server), "the server {server} still runs");
    assert!(!data.exists(), "{} is still there", data.display());
}

#[test]
fn a_persistent_cluster_is_reused_while_running_and_keeps_its_data_when_stopped() {
    let bin = ensure_postgres().unwrap();
    let dir = TempDir::new("pg-cluster-test").unwrap();
    let data: PathBuf = dir.path().join("postgres");
    let first = Cluster::open(&bin, &data, Mode::Persistent, "").unwrap();
    assert_eq!(select(&first, "postgres", "SHOW fsync"), "on");
    first.create_database("kept").unwrap();

    // A run killed before it could stop the server: the next one uses the server as it is.
    let second = Cluster::open(&bin, &data, Mode::Persistent, "").unwrap();
    assert_eq!(second.port(), first.port());

    let server = server_pid(&data);
    second.stop(Stop::Fast).unwrap();
    assert!(!is_running(&server), "the server {server} still runs");
    assert!(!data.join("postmaster.pid").exists());
    // Stopping a stopped cluster is quietly nothing.
    second.stop(Stop::Fast).unwrap();

    // A postmaster.pid left by a crash, naming a live process of PostgreSQL's user that is not
    // the server (its process id reused): PostgreSQL would refuse to start; it is removed first.
    let mut other = live_process_of_postgres_user();
    let pid_file = data.join("postmaster.pid");
    let pid = std::io::BufRead::lines(std::io::BufReader::new(other.stdout.take().unwrap()))
        .next()
        .unwrap()
        .unwrap();
    std::fs::write(&pid_file, format!("{pid}\n{}\n0\n55432\n", data.display())).unwrap();
    let third = Cluster::open(&bin, &data, Mode::Persistent, "").unwrap();
    assert_eq!(
        select(
            &third,
            "postgres",
            "SELECT datname FROM pg_database WHERE datname = 'kept'"
        ),
        "kept"
    );
    third.stop(Stop::Fast).unwrap();
    other.kill().ok();
    other.wait().ok();
}

/// The process id of the server running the cluster in `data`.
fn server_pid(data: &std::path::Path) -> String {
    let pid_file = std::fs::read_to_string(data.join("postmaster.pid")).unwrap();
    pid_file.lines().next().unwrap().to_owned()
}

/// Whether process `pid` lives (a zombie, ended but not yet reaped, does not).
fn is_running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .is_ok_and(|status| !status.lines().any(|line| line.starts_with("State:\tZ")))
}

/// `sleep`, as the user PostgreSQL runs as (`postgres` when we are root); its process id is the
/// first line of its standard output.
fn live_process_of_postgres_user() -> Child {
    let script = "echo $$; exec sleep 60";
    let mut command = if pg_cluster::running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", "sh", "-c", script]);
        command
    } else {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    };
    command.stdout(Stdio::piped()).spawn().expect("start sleep")
}
