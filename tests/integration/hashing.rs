//! Password hashing runs in a process of its own (`users::hashing`): the app's binary started
//! again with `hash-passwords`, in a session and scheduling group of its own. These tests run the
//! real binary and look at the real processes.

use std::collections::BTreeSet;
use std::pin::pin;
use std::process::{Command, Stdio};
use std::time::Duration;

use rocket::futures::FutureExt;
use rocket::futures::future::join_all;
use rocket::http::Status;
use rocket::tokio::task::JoinSet;
use rocket::tokio::time::{sleep, timeout};
use rustix::process::{Pid, Signal, kill_process};
use secure_sessions::users::hashing::HashingCounts;
use secure_sessions::users::{Password, PasswordHasher, Role};

use crate::support::binary::{
    RunningApp, has_ended, hashing_process_of, process_stat, threads_named, unread_input,
    with_sessions,
};
use crate::support::http::{CHROME_LINUX, Device, Reply};
use crate::support::raw::{RawRequest, RawResponse};
use crate::support::{PASSWORD, TestApp, password_hasher};

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

/// The app's hashing process once it is another than `old`, looking for 5 s.
async fn replacement_of(binary: &RunningApp, old: u32) -> Option<u32> {
    for _ in 0..50 {
        let current = hashing_process_of(binary.pid()).filter(|&pid| pid != old);
        if current.is_some() {
            return current;
        }
        sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Sends `signal` to the process `pid`, which the test knows to be running (or a zombie).
fn signal(pid: u32, signal: Signal) {
    kill_process(
        Pid::from_raw(pid.cast_signed()).expect("a process id"),
        signal,
    )
    .unwrap_or_else(|error| panic!("signal {signal:?} to {pid}: {error}"));
}

fn session_of(pid: u32) -> u32 {
    process_stat(pid).expect("a running process").session
}

#[rocket::async_test]
async fn the_app_hashes_in_a_process_of_its_own_with_a_scheduling_group_and_no_secrets_of_the_apps()
{
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let binary = RunningApp::start(with_sessions(&app, "{hashing_nice=7}")).await;
    let hashing = binary.hashing_process();

    // argon2 never runs in the app's process, so never on its async worker.
    assert!(threads_named(binary.pid(), "argon2-").is_empty());
    assert!(!threads_named(hashing, "argon2-").is_empty());

    // A session of its own, so the kernel gives it an autogroup of its own, at the niceness set.
    assert_eq!(
        session_of(hashing),
        hashing,
        "not the leader of its own session"
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
/// a hang), and the next sign-in starts a new process and succeeds. The process is stopped
/// (SIGSTOP) before the flood and killed only once sign-ins wait in its input, so it dies holding
/// some however the machine schedules the test.
#[rocket::async_test]
async fn a_hashing_process_that_dies_fails_only_what_it_held_and_is_replaced() {
    let app = TestApp::new().await;
    for index in 0..16 {
        app.create_user(&format!("user{index}"), Role::User).await;
    }
    app.create_user("alice", Role::User).await;
    let binary = RunningApp::start(with_sessions(&app, "{}")).await;
    let first = binary.hashing_process();
    let port = binary.port;
    signal(first, Signal::STOP);
    let _cleanup = KillIfStillChild {
        app: binary.pid(),
        pid: first,
    };

    let mut flood = JoinSet::new();
    for index in 0..16 {
        flood.spawn(async move { sign_in(port, &format!("user{index}")).await });
    }
    let held = async {
        while unread_input(first) == 0 {
            sleep(Duration::from_millis(10)).await;
        }
    };
    timeout(Duration::from_secs(60), held)
        .await
        .expect("no sign-in reached the stopped hashing process");
    signal(first, Signal::KILL);

    // Every reply comes within a bound: none hangs on the process that died.
    let mut statuses = Vec::new();
    while let Some(reply) = timeout(Duration::from_secs(60), flood.join_next())
        .await
        .expect("a sign-in hung")
    {
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
    // Signed in, or told to try again: never a 500. And some were held by the killed process.
    let kinds: BTreeSet<u16> = statuses.iter().copied().collect();
    assert!(kinds.is_subset(&BTreeSet::from([303, 503])), "{statuses:?}");
    assert!(kinds.contains(&503), "{statuses:?}");

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

/// A hashing process that dies while nobody signs in is replaced anyway: the next sign-in finds
/// a new one ready, and never sees the death.
#[rocket::async_test]
async fn a_hashing_process_that_dies_is_replaced_before_the_next_sign_in() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let binary = RunningApp::start(with_sessions(&app, "{}")).await;
    let first = binary.hashing_process();
    signal(first, Signal::KILL);
    let second = replacement_of(&binary, first)
        .await
        .expect("no new hashing process within 5 s");
    assert!(has_ended(first), "the dead process was not reaped");

    let signed_in = sign_in(binary.port, "alice").await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.head);
    assert_eq!(binary.hashing_process(), second);
}

/// SIGKILLs `pid` when the test ends if it is still `app`'s child: a stopped process reads no
/// end of input, so a failing run would otherwise leave it behind.
struct KillIfStillChild {
    app: u32,
    pid: u32,
}

impl Drop for KillIfStillChild {
    fn drop(&mut self) {
        if process_stat(self.pid).is_some_and(|stat| stat.parent == self.app) {
            // Not `signal`: the app may reap it in between, and a drop must not panic.
            let _ = kill_process(Pid::from_raw(self.pid.cast_signed()).unwrap(), Signal::KILL);
        }
    }
}

/// A hashing process that stops answering (here, stopped by SIGSTOP) is replaced once it has held
/// a request for 30 s without answering: that sign-in gets the friendly 503 page, the stopped
/// process is killed and reaped, and the next sign-in is served by a new one.
#[rocket::async_test]
async fn a_hashing_process_that_stops_answering_is_replaced() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let binary = RunningApp::start(with_sessions(&app, "{}")).await;
    let first = binary.hashing_process();
    signal(first, Signal::STOP);
    let _cleanup = KillIfStillChild {
        app: binary.pid(),
        pid: first,
    };

    let held = timeout(Duration::from_secs(60), sign_in(binary.port, "alice"))
        .await
        .expect("a sign-in hung on the stopped process");
    assert_eq!(held.status, 503, "{}", held.head);
    assert!(held.body.contains("try again in a moment"), "{}", held.body);
    let second = replacement_of(&binary, first)
        .await
        .expect("no new hashing process within 5 s of the 503");
    assert!(
        has_ended(first),
        "the stopped process was not killed and reaped"
    );

    let signed_in = sign_in(binary.port, "alice").await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.head);
    assert_eq!(binary.hashing_process(), second);
    assert!(
        binary
            .log()
            .contains("stopped answering; a new one has started"),
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
        sleep(Duration::from_millis(100)).await;
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
        log.contains("hashing_nice = 20 is out of range: it must be between 0 and 19"),
        "{log}"
    );
}

/// The hashing process's command line, given wrong, is refused: it never starts the app instead.
#[rocket::async_test]
async fn a_malformed_hashing_command_line_exits_with_its_usage() {
    let mut binary = Command::new(env!("CARGO_BIN_EXE_secure-sessions"))
        .args(["hash-passwords", "0", "0"])
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if let Some(status) = binary.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut binary.stderr.take().unwrap(), &mut stderr).unwrap();
            assert_eq!(status.code(), Some(2), "{stderr}");
            assert!(stderr.contains("usage: hash-passwords"), "{stderr}");
            return;
        }
        sleep(Duration::from_millis(100)).await;
    }
    binary.kill().ok();
    panic!("the binary still runs after 10 s");
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
}

/// A damaged stored hash (not a PHC string, or too long to send) fails its own check only.
#[rocket::async_test]
async fn a_damaged_stored_hash_is_an_error_and_the_hasher_goes_on() {
    let hasher = password_hasher(1);
    let password = Password::parse("violet tractor mango".into()).unwrap();
    for damaged in ["not a phc string".to_owned(), "$".repeat(100_000)] {
        assert!(hasher.verify(&password, Some(damaged)).await.is_err());
    }
    let hash = hasher.hash(&password).await.unwrap();
    assert!(hasher.verify(&password, Some(hash)).await.unwrap());
}

/// A flood of sign-ins beyond what the hashing threads finish in a second (the default
/// `hashing_admission_ms`) gets 503 with `Retry-After` at once: each refused sign-in was never hashed, each admitted one was
/// hashed once, and the owner signs in right after.
#[rocket::async_test]
async fn a_sign_in_flood_beyond_what_the_hashers_finish_in_a_second_gets_503_with_retry_after_unhashed()
 {
    let app = TestApp::with(|figment| {
        figment
            .merge(("sessions.max_concurrent_hashes", 1))
            .merge(("sessions.hashing_admission_ms", 1000))
    })
    .await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let hasher = client.rocket().state::<PasswordHasher>().unwrap();
    // Strangers on addresses of their own, so no throttle answers before the hasher does.
    let flood = 3 * hasher.capacity() + 10;
    let strangers: Vec<Device<'_>> = (0..flood)
        .map(|index| Device::with(&client, CHROME_LINUX, &format!("2001:db8::{index:x}")))
        .collect();
    let forms = join_all(strangers.iter().map(|stranger| stranger.get("/login"))).await;
    let names: Vec<String> = (0..flood).map(|index| format!("stranger{index}")).collect();
    let replies = join_all(strangers.iter().zip(&forms).zip(&names).map(
        |((stranger, form), name)| {
            let csrf = form.csrf_token();
            stranger.post_form(
                "/login",
                &[
                    ("username", name),
                    ("password", "a wrong password"),
                    ("csrf_token", &csrf),
                ],
            )
        },
    ))
    .await;

    let refused: Vec<&Reply> = replies
        .iter()
        .filter(|reply| reply.status == Status::ServiceUnavailable)
        .collect();
    let answered = replies
        .iter()
        .filter(|reply| reply.status == Status::Ok)
        .count();
    let statuses: Vec<u16> = replies.iter().map(|reply| reply.status.code).collect();
    assert_eq!(
        refused.len() + answered,
        flood,
        "only 200 and 503: {statuses:?}"
    );
    assert!(
        !refused.is_empty(),
        "{flood} sign-ins at once, none refused"
    );
    for reply in &refused {
        assert_eq!(
            reply.header("Retry-After"),
            Some("1"),
            "{:?}",
            reply.headers
        );
        assert!(reply.shows("try again in a moment"), "{}", reply.body);
    }
    let counts = hasher.counts();
    assert_eq!(
        counts,
        HashingCounts {
            hashed: answered as u64,
            refused: refused.len() as u64,
            abandoned: 0,
        }
    );

    let alice = Device::new(&client);
    assert_eq!(
        alice.sign_in("alice", PASSWORD).await.location(),
        "/account"
    );
}

/// A request whose caller went away while it was queued (the request's future was dropped: its
/// client gone, or its wait timed out) is dropped from the queue, never hashed.
#[rocket::async_test]
async fn work_nobody_waits_for_any_more_is_dropped_from_the_queue_unhashed() {
    let hasher = password_hasher(1);
    let password = Password::parse("violet tractor mango".into()).unwrap();
    // A stored hash asking for 40 passes holds the only hashing thread while the others queue.
    let slow = format!(
        "$argon2id$v=19$m=19456,t=40,p=1$c2FsdHNhbHRzYWx0${}",
        "A".repeat(43)
    );
    let mut holder = pin!(hasher.verify(&password, Some(slow)));
    assert!(holder.as_mut().now_or_never().is_none());
    for _ in 0..100 {
        if hasher.counts().hashed == 1 {
            break;
        }
        sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(hasher.counts().hashed, 1, "the slow request was sent");
    for _ in 0..8 {
        // Queued, then dropped: the caller is gone.
        let mut gone = pin!(hasher.verify(&password, None));
        assert!(gone.as_mut().now_or_never().is_none());
    }
    assert!(!holder.await.unwrap());
    assert!(!hasher.verify(&password, None).await.unwrap());
    assert_eq!(
        hasher.counts(),
        HashingCounts {
            hashed: 2,
            refused: 0,
            abandoned: 8,
        }
    );
}
