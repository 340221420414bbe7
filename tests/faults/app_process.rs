//! The app process killed (SIGKILL) and stopped (SIGTERM) under load: sessions live in
//! PostgreSQL, so every one outlives the process; a stop lets what is in flight finish.

use std::time::{Duration, Instant};

use crate::harness::*;
use crate::support::PASSWORD;
use crate::support::cluster::Cluster;
use crate::support::http::form_body;
use crate::support::raw::RawResponse;

/// Rocket's shutdown periods in the SIGTERM test: `grace` for requests in flight to finish (the
/// pool closes after them), then `mercy` for their answers to be written out. Rocket.toml sets
/// 2 s and 3 s; the test gives more grace, since 16 sign-ins hashing one at a time on a loaded
/// 2-core machine can take longer than 2 s, and a request still running after `grace` is cut.
const GRACE_SECS: u64 = 10;
const MERCY_SECS: u64 = 3;
/// The longest a SIGTERM may take to end the process: grace, mercy, and the second Rocket adds.
const EXIT_BOUND: Duration = Duration::from_secs(GRACE_SECS + MERCY_SECS + 1);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_app_killed_and_restarted_keeps_every_session() {
    let cluster = Cluster::start();
    let url = cluster.url("postgres");
    let settings = AppSettings::new(&[&url]);
    let mut app = AppProcess::start(&settings).await;
    let users = create_users(&url).await;
    let cookies = sign_in_all(app.port, &users).await;

    let port = app.port;
    let load = Load::start(&cookies, move |_, _| port);
    tokio::time::sleep(Duration::from_secs(1)).await;
    app.kill();
    let restarted = AppProcess::start_on(&settings, port).await;
    let up = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let records = load.stop().await;

    assert_never_wrong(&records);
    assert!(
        records
            .iter()
            .any(|r| matches!(r.outcome, Outcome::NoAnswer(_))),
        "the kill was seen: some requests got no answer"
    );
    assert_all_served_from(&records, up, "after the restart");
    assert_sessions_work(restarted.port, &cookies, Duration::ZERO).await;
}

/// How one sign-in sent before the signal ended: its status, its session cookie if it made one,
/// and when its answer came.
type SignInAnswer = Result<(u16, Option<String>, Instant), String>;

/// Fetches a sign-in form for each of `users`, `per_user` times, then sends every sign-in at
/// once, and returns once all are written (their answers still to come).
async fn send_sign_ins(
    port: u16,
    users: &[String],
    per_user: usize,
) -> Vec<tokio::task::JoinHandle<SignInAnswer>> {
    let mut forms = Vec::new();
    for user in users.iter().cycle().take(users.len() * per_user) {
        let form = request(port, "GET", "/login", &[], "").await.unwrap();
        let body = form_body(&[
            ("username", user),
            ("password", PASSWORD),
            ("csrf_token", &form.html().csrf_token()),
        ]);
        let headers = [
            format!("Cookie: __Host-csrf={}", form.cookie("__Host-csrf")),
            "Content-Type: application/x-www-form-urlencoded".to_owned(),
        ];
        forms.push((headers, body));
    }
    let count = forms.len();
    let (sent, mut all_sent) = tokio::sync::mpsc::channel(count);
    let sign_ins = forms
        .into_iter()
        .map(|(headers, body)| {
            let sent = sent.clone();
            tokio::spawn(async move {
                let answer =
                    request_announced(port, "POST", "/login", &headers, &body, Some(sent)).await;
                let cookie = |a: &RawResponse| {
                    a.head
                        .contains("__Host-sid=")
                        .then(|| a.cookie("__Host-sid"))
                };
                answer.map(|a| (a.status, cookie(&a), Instant::now()))
            })
        })
        .collect();
    for _ in 0..count {
        all_sent.recv().await.expect("every sign-in sent");
    }
    sign_ins
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_sign_ins_in_flight_refuses_new_connections_closes_the_pool_and_exits_0() {
    let cluster = Cluster::start();
    let url = cluster.url("postgres");
    // One password hash at a time, so that sign-ins queue behind each other.
    let settings = AppSettings::new(&[&url])
        .with(
            "ROCKET_SESSIONS",
            "{seed_demo_users=false,max_sessions_per_user=100000,hashing_admission_ms=60000,max_concurrent_hashes=1}",
        )
        .with(
            "ROCKET_SHUTDOWN",
            &format!("{{grace={GRACE_SECS},mercy={MERCY_SECS}}}"),
        );
    let mut app = AppProcess::start(&settings).await;
    let users = create_users(&url).await;
    let port = app.port;

    // Every client's sign-in form first, then all the sign-ins sent at once: most are still
    // queued for the hasher when the signal arrives.
    let sign_ins = send_sign_ins(port, &users, 1).await;
    // Time for Rocket to accept and read every request: a connection it has not read from when
    // the shutdown begins is closed like a new one. Hashing one at a time takes longer.
    tokio::time::sleep(Duration::from_millis(250)).await;
    app.signal("TERM");
    let signalled = Instant::now();

    // A new connection once the shutdown has begun is refused (or closed unanswered).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let late = request(port, "GET", "/healthz", &[], "").await;
    assert!(
        late.is_err(),
        "a connection after SIGTERM was served: {}",
        late.map_or(0, |a| a.status)
    );

    let mut cookies = Vec::new();
    let mut answered_after_the_signal = 0;
    for sign_in in sign_ins {
        let (status, cookie, answered) = sign_in.await.unwrap().unwrap_or_else(|failure| {
            panic!(
                "a sign-in in flight was not answered ({failure}): {}",
                app.log()
            )
        });
        assert_eq!(status, 303, "a sign-in in flight finished");
        cookies.push(cookie.expect("with its session cookie"));
        answered_after_the_signal += usize::from(answered > signalled);
    }
    assert!(
        answered_after_the_signal > 0,
        "some sign-ins were still in flight at the signal"
    );
    let status = app.exit_within(EXIT_BOUND).await;
    let elapsed = signalled.elapsed();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exit 0 within {EXIT_BOUND:?} (took {elapsed:?}): {}",
        app.log()
    );
    assert!(
        app.log()
            .contains("database pool closed (0 requests still in flight)"),
        "the pool was closed after the requests: {}",
        app.log()
    );
    let lingering = cluster
        .psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'secure-sessions'");
    assert_eq!(lingering.trim(), "0", "no connection of the app is left");

    // The sessions those sign-ins made work in the next process.
    let next = AppProcess::start_on(&settings, port).await;
    assert_sessions_work(next.port, &cookies, Duration::ZERO).await;
}

/// A SIGTERM while more sign-ins wait for the one hashing thread than it can finish in Rocket's
/// grace period (its default, 2 s): those it cannot reach are answered 503 while their
/// connections can still carry it, none is left without an answer, and the process still exits
/// 0 in time. (Before, they waited past the grace period: their connections were closed
/// unanswered, and the process exited 1, "Shutdown failed: outstanding background I/O".) No
/// password of theirs was checked, so they count against no one's budget: after the restart,
/// the person is not made to wait for the attempts the restart cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_answers_503_to_the_sign_ins_the_grace_period_cannot_hash_and_exits_0() {
    const GRACE: u64 = 2;
    const SIGN_INS_PER_USER: usize = 10;
    let cluster = Cluster::start();
    let url = cluster.url("postgres");
    // One hash at a time, every sign-in admitted and none throttled: they all queue. A long
    // acquire timeout: no 503 here may come from the pool.
    let settings = AppSettings::new(&[&url])
        .with(
            "ROCKET_SESSIONS",
            "{seed_demo_users=false,max_sessions_per_user=100000,hashing_admission_ms=600000,\
             max_concurrent_hashes=1,throttle_account_failures=1000,throttle_ip_failures=1000}",
        )
        .with(
            "ROCKET_DATABASES",
            &format!("{{main={{urls=[\"{url}\"],acquire_timeout_ms=30000}}}}"),
        )
        .with("ROCKET_SHUTDOWN", &format!("{{grace={GRACE},mercy=3}}"));
    let mut app = AppProcess::start(&settings).await;
    let users = create_users(&url).await;
    let sign_ins = send_sign_ins(app.port, &users, SIGN_INS_PER_USER).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    app.signal("TERM");

    let (mut signed_in, mut refused) = (0, 0);
    for sign_in in sign_ins {
        let (status, cookie, _) = sign_in.await.unwrap().unwrap_or_else(|failure| {
            panic!(
                "a sign-in sent before the signal got no answer ({failure}): {}",
                app.log()
            )
        });
        match status {
            303 => {
                assert!(cookie.is_some(), "a sign-in made sets its cookie");
                signed_in += 1;
            }
            503 => {
                assert!(cookie.is_none(), "a refused sign-in sets no session cookie");
                refused += 1;
            }
            other => panic!("a sign-in was answered {other}: {}", app.log()),
        }
    }
    assert!(
        refused > 0,
        "the hashing thread could not finish {} sign-ins in {GRACE} s: some were answered 503 \
         ({signed_in} signed in)",
        users.len() * SIGN_INS_PER_USER
    );
    let status = app.exit_within(Duration::from_secs(GRACE + 3 + 1)).await;
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exit 0 within grace and mercy: {}",
        app.log()
    );
    assert!(
        app.log()
            .contains("requests still waiting for password hashing are answered 503"),
        "the log says so once: {}",
        app.log()
    );

    // The next process allows this address only as many failures as sign-ins were refused:
    // had the refused ones stayed counted, the next sign-in from it would have to wait (429).
    let strict = settings.with(
        "ROCKET_SESSIONS",
        &format!("{{seed_demo_users=false,throttle_ip_failures={refused}}}"),
    );
    let next = AppProcess::start(&strict).await;
    let again = send_sign_ins(next.port, &users[..1], 1).await;
    for sign_in in again {
        let (status, cookie, _) = sign_in.await.unwrap().unwrap();
        assert_eq!(
            (status, cookie.is_some()),
            (303, true),
            "after the restart, the {refused} sign-ins it refused unchecked cost nothing: {}",
            next.log()
        );
    }
}
