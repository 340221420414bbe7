//! Real clusters: started, used, reused, stopped and deleted as `scripts/run` and `scripts/test`
//! use them.

use std::path::PathBuf;

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
    let (port, data) = (cluster.port(), cluster.data().to_path_buf());
    assert!(!port_is_free(port));

    drop(throwaway);
    assert!(port_is_free(port), "the server still listens on {port}");
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

    second.stop(Stop::Fast).unwrap();
    assert!(port_is_free(first.port()));
    // Stopping a stopped cluster is quietly nothing.
    second.stop(Stop::Fast).unwrap();

    // A postmaster.pid left by a crash, naming a process that is not the server, is removed.
    let pid_file = data.join("postmaster.pid");
    std::fs::write(
        &pid_file,
        format!("{}\n{}\n0\n55432\n", std::process::id(), data.display()),
    )
    .unwrap();
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
}
