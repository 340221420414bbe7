//! `hashing_cgroup`: the app's argon2 threads join a cgroup the operator chose, so that a sign-in
//! flood can be given less of the CPU than the session path (docs/configuration.md). The real
//! binary, a real cgroup: under cgroup v1's `cpu` controller and as a threaded child in cgroup v2.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use secure_sessions::users::Role;

use crate::support::binary::{RunningApp, threads_named};
use crate::support::http::CHROME_LINUX;
use crate::support::raw::RawRequest;
use crate::support::{PASSWORD, TestApp, random_secret_key};

/// A cgroup made for one test, removed when dropped (once the app's threads have left it).
struct TestCgroup {
    dir: PathBuf,
    /// The file listing its threads: `cgroup.threads` (v2) or `tasks` (v1).
    threads_list: PathBuf,
}

impl TestCgroup {
    /// A new cgroup under the mount of `filesystem` ("cgroup" with `option`, or "cgroup2").
    fn create(filesystem: &str, option: &str) -> TestCgroup {
        let mounts = std::fs::read_to_string("/proc/mounts").expect("read /proc/mounts");
        let mount = mounts
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|fields| {
                fields.len() > 3
                    && fields[2] == filesystem
                    && (option.is_empty() || fields[3].split(',').any(|o| o == option))
            })
            .unwrap_or_else(|| panic!("this test needs a {filesystem} {option} mount"))[1]
            .to_owned();
        let dir = Path::new(&mount).join(format!(
            "secure-sessions-test-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("this test creates {} (as root): {e}", dir.display()));
        let threads_list = if filesystem == "cgroup2" {
            // Threads of one process may sit in different cgroups only in threaded mode.
            std::fs::write(dir.join("cgroup.type"), "threaded").expect("make the cgroup threaded");
            dir.join("cgroup.threads")
        } else {
            dir.join("tasks")
        };
        TestCgroup { dir, threads_list }
    }

    /// The thread ids in the cgroup.
    fn threads(&self) -> BTreeSet<u32> {
        std::fs::read_to_string(&self.threads_list)
            .expect("read the cgroup's threads")
            .lines()
            .map(|tid| tid.parse().expect("a thread id"))
            .collect()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // The kernel refuses to remove a cgroup until the exited app's threads have left it.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// The binary's environment: the test's database, and `hashing_cgroup` naming `dir`.
fn with_hashing_cgroup<'a>(app: &'a TestApp, dir: &Path) -> impl FnOnce(&mut Command) + 'a {
    let sessions = format!("{{hashing_cgroup=\"{}\"}}", dir.display());
    move |command| {
        command
            .env("DATABASE_URL", &app.database_url)
            .env("ROCKET_SECRET_KEY", random_secret_key())
            .env("ROCKET_SESSIONS", sessions);
    }
}

fn chrome(request: RawRequest) -> RawRequest {
    request.header(format!("User-Agent: {CHROME_LINUX}"))
}

/// The binary with its hashing threads in `cgroup`: exactly they are there (the app's other
/// threads stay where they were), and a sign-in, which hashes on them, works.
async fn hashing_threads_join(cgroup: TestCgroup) {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let binary = RunningApp::start(with_hashing_cgroup(&app, &cgroup.dir)).await;

    let hashing = threads_named(binary.pid(), "argon2-");
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(hashing.len(), cores, "one hashing thread per core");
    assert_eq!(cgroup.threads(), hashing, "{}", binary.log());

    let form = chrome(RawRequest::get("/login")).send(binary.port).await;
    let signed_in = chrome(RawRequest::post("/login"))
        .header(format!(
            "Cookie: __Host-csrf={}",
            form.cookie("__Host-csrf")
        ))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", &form.html().csrf_token()),
        ])
        .send(binary.port)
        .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.head);
    assert!(!signed_in.cookie("__Host-sid").is_empty());
}

#[rocket::async_test]
async fn hashing_threads_join_a_cgroup_v1_cpu_group() {
    hashing_threads_join(TestCgroup::create("cgroup", "cpu")).await;
}

#[rocket::async_test]
async fn hashing_threads_join_a_cgroup_v2_threaded_group() {
    hashing_threads_join(TestCgroup::create("cgroup2", "")).await;
}

/// An operator who asked for the separation gets it, or an app that does not start and says why.
#[rocket::async_test]
async fn a_hashing_cgroup_that_cannot_be_joined_stops_the_launch() {
    let app = TestApp::new().await;
    let missing =
        std::env::temp_dir().join(format!("no-such-cgroup-{}", uuid::Uuid::new_v4().simple()));
    let log = RunningApp::refused(with_hashing_cgroup(&app, &missing)).await;
    assert!(log.contains("password hashing could not start"), "{log}");
    assert!(
        log.contains(&format!("{}/tasks", missing.display())),
        "{log}"
    );

    let log = RunningApp::refused(with_hashing_cgroup(&app, Path::new("hashing"))).await;
    assert!(
        log.contains("hashing_cgroup must be an absolute path"),
        "{log}"
    );
}

/// A directory that is not a cgroup has no list of threads: the app says so and creates none.
#[rocket::async_test]
async fn a_directory_that_is_not_a_cgroup_is_not_written_to() {
    let app = TestApp::new().await;
    let dir = std::env::temp_dir().join(format!("not-a-cgroup-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&dir).unwrap();
    let log = RunningApp::refused(with_hashing_cgroup(&app, &dir)).await;
    let written = dir.join("tasks").exists();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(log.contains("password hashing could not start"), "{log}");
    assert!(
        !written,
        "the app created a tasks file in a plain directory"
    );
}
