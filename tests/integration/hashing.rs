//! Password hashing runs in a process of its own (`users::hashing`): the app's binary started
//! again with `hash-passwords`, in a session and scheduling group of its own. These tests run the
//! real binary and look at the real processes.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use secure_sessions::users::{Password, Role};

use crate::support::binary::RunningApp;
use crate::support::http::CHROME_LINUX;
use crate::support::raw::{RawRequest, RawResponse};
use crate::support::{PASSWORD, TestApp, password_hasher, random_secret_key};

/// The binary's environment: the test's database and `sessions` settings (a TOML table).
fn with_sessions<'a>(app: &'a TestApp, sessions: &'a str) -> impl FnOnce(&mut Command) + 'a {
    move |command| {
        command
            .env("DATABASE_URL", &app.database_url)
            .env("ROCKET_SECRET_KEY", random_secret_key())
            .env("ROCKET_SESSIONS", sessions);
    }
}

/// A browser's sign-in through the form, on the binary at `port`.
async fn sign_in(port: u16, username: &str) -> RawResponse {
    let chrome = |request: RawRequest| request.header(format!("User-Agent: {CHROME_LINUX}"));
    let form = chrome(RawRequest::get("/login")).send(port).await;
    let csrf_token = form.html().csrf_token();
    chrome(RawRequest::post("/login"))
        .header(format!(
            "Cookie: __Host-csrf={}",
            form.cookie("__Host-csrf")
        ))
        .form(&[
            ("username", username),
            ("password", PASSWORD),
            ("csrf_token", &csrf_token),
        ])
        .send(port)
        .await
}

/// After "pid (name) ": state, parent, process group, session.
fn session_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, fields) = stat.rsplit_once(") ").unwrap();
    fields.split(' ').nth(3).unwrap().parse().unwrap()
}

/// Whether `pid` has ended (gone, or a zombie nobody has reaped yet).
fn has_ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => true,
    }
}

#[rocket::async_test]
async fn the_app_hashes_in_a_process_of_its_own_with_a_scheduling_group_and_no_secrets_of_the_apps()
{
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let binary = RunningApp::start(with_sessions(&app, "{hashing_nice=7}")).await;
    let hashing = binary.hashing_process();

    // A session of its own, so the kernel gives it an autogroup of its own, at the niceness set.
    assert_eq!(
        session_of(hashing),
        hashing,
        "the hashing process leads its own session"
    );
    assert_ne!(session_of(binary.pid()), hashing);
    let group = std::fs::read_to_string(format!("/proc/{hashing}/autogroup")).unwrap();
    assert!(group.trim_end().ends_with("nice 7"), "{group}");
    let apps_group = std::fs::read_to_string(format!("/proc/{}/autogroup", binary.pid())).unwrap();
    assert_ne!(
        group.split_whitespace().next(),
        apps_group.split_whitespace().next(),
        "the same scheduling group as the app"
    );

    // It sees none of the app's environment: no database address, no secret key.
    let environment = std::fs::read(format!("/proc/{hashing}/environ")).unwrap();
    assert!(
        environment.is_empty(),
        "{}",
        String::from_utf8_lossy(&environment)
    );

    let signed_in = sign_in(binary.port, "alice").await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.head);
    assert!(!signed_in.cookie("__Host-sid").is_empty());
}

/// A hashing process killed mid-flood: what it held gets the friendly 503 page (never a 500, never
/// a hang), and the next sign-in starts a new process and succeeds.
#[rocket::async_test]
async fn a_hashing_process_that_dies_fails_only_what_it_held_and_is_replaced() {
    let app = TestApp::new().await;
    for index in 0..16 {
        app.create_user(&format!("user{index}"), Role::User).await;
    }
    app.create_user("alice", Role::User).await;
    let binary = RunningApp::start(with_sessions(&app, "{max_concurrent_hashes=1}")).await;
    let first = binary.hashing_process();
    let port = binary.port;

    let mut flood = rocket::tokio::task::JoinSet::new();
    for index in 0..16 {
        flood.spawn(async move { sign_in(port, &format!("user{index}")).await });
    }
    // One hashing thread works through 16 sign-ins one at a time: kill it after the first.
    let mut statuses = vec![flood.join_next().await.unwrap().unwrap().status];
    Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .unwrap();
    while let Some(reply) = flood.join_next().await {
        let reply = reply.unwrap();
        if reply.status == 503 {
            assert!(
                reply.body.contains("try again in a moment"),
                "{}",
                reply.body
            );
        }
        statuses.push(reply.status);
    }
    let kinds: BTreeSet<u16> = statuses.iter().copied().collect();
    assert_eq!(kinds, BTreeSet::from([303, 503]), "{statuses:?}");

    let signed_in = sign_in(port, "alice").await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.head);
    let second = binary.hashing_process();
    assert_ne!(second, first);
    assert!(has_ended(first));
    assert!(
        binary.log().contains("a new one has started"),
        "{}",
        binary.log()
    );
}

/// However the app ends, its hashing process does not outlive it.
#[rocket::async_test]
async fn the_hashing_process_ends_with_the_app() {
    let app = TestApp::new().await;
    let mut binary = RunningApp::start(with_sessions(&app, "{}")).await;
    let hashing = binary.hashing_process();
    binary.stop(); // SIGKILL: nothing of the app runs to stop it
    for _ in 0..50 {
        if has_ended(hashing) {
            return;
        }
        rocket::tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the hashing process outlived the app by 5 s");
}

#[rocket::async_test]
async fn a_hashing_program_that_is_not_the_app_or_a_nice_out_of_range_stops_the_launch() {
    let app = TestApp::new().await;
    let log = RunningApp::refused(with_sessions(&app, "{hashing_program=\"/bin/true\"}")).await;
    assert!(
        log.contains("/bin/true did not start as the hashing process"),
        "{log}"
    );
    let log = RunningApp::refused(with_sessions(&app, "{hashing_program=\"bin/app\"}")).await;
    assert!(
        log.contains("hashing_program must be an absolute path"),
        "{log}"
    );
    let log = RunningApp::refused(with_sessions(&app, "{hashing_nice=20}")).await;
    assert!(
        log.contains("hashing_nice must be between 0 and 19"),
        "{log}"
    );
}

#[rocket::async_test]
async fn a_hash_verifies_only_its_own_password_whatever_bytes_it_holds() {
    let hasher = password_hasher(2);
    for password in ["violet tractor mango", "a line\nbreak, a \u{0} and ✓ äöü"] {
        let right = Password::parse(password.into()).unwrap();
        let wrong = Password::parse(format!("{password}s")).unwrap();
        let hash = hasher.hash(&right).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(hasher.verify(&right, Some(hash.clone())).await.unwrap());
        assert!(!hasher.verify(&wrong, Some(hash)).await.unwrap());
        // An unknown user: the dummy hash is verified, and never matches.
        assert!(!hasher.verify(&right, None).await.unwrap());
    }
    // A stored hash that is not one is an error, not a match.
    let right = Password::parse("violet tractor mango".into()).unwrap();
    assert!(
        hasher
            .verify(&right, Some("not a phc string".into()))
            .await
            .is_err()
    );
}

#[test]
fn hashing_leaves_the_async_thread_free() {
    // One async thread: a hash run on it would block everything else until it is done.
    let runtime = rocket::tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let hasher = password_hasher(1);
        let password = Password::parse("violet tractor mango".into()).unwrap();
        let hashing = rocket::tokio::spawn(async move { hasher.hash(&password).await });
        let mut turns = 0;
        while !hashing.is_finished() {
            rocket::tokio::task::yield_now().await;
            turns += 1;
        }
        assert!(hashing.await.unwrap().is_ok());
        // Inline, the hash would finish within the first turn or two.
        assert!(
            turns > 100,
            "the async thread ran {turns} turns during a hash"
        );
    });
}
