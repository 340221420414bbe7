//! The app process killed (SIGKILL) and stopped (SIGTERM) under load: sessions live in
//! PostgreSQL, so every one outlives the process; a stop lets what is in flight finish.

use std::time::{Duration, Instant};

use rocket::tokio;

use crate::harness::*;
use crate::support::PASSWORD;
use crate::support::cluster::Cluster;
use crate::support::http::encode;

/// The longest a SIGTERM may take to end the process: Rocket's `shutdown.grace` (2 s) and
/// `shutdown.mercy` (3 s) from Rocket.toml, and the second Rocket adds to them.
const EXIT_BOUND: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_app_killed_and_restarted_keeps_every_session() {
    let cluster = Cluster::start();
    let url = cluster.url("postgres");
    let settings = AppSettings::new(&[url.clone()]);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_sign_ins_in_flight_refuses_new_connections_closes_the_pool_and_exits_0() {
    let cluster = Cluster::start();
    let url = cluster.url("postgres");
    let settings = AppSettings::new(&[url.clone()]);
    let mut app = AppProcess::start(&settings).await;
    let users = create_users(&url).await;
    let port = app.port;

    // Every client's sign-in form first, then all the sign-ins sent at once: argon2 runs two at
    // a time, so most are still hashing when the signal arrives.
    let mut forms = Vec::new();
    for user in &users {
        let form = request(port, "GET", "/login", &[], "").await.unwrap();
        let body = format!(
            "username={user}&password={}&csrf_token={}",
            encode(PASSWORD),
            encode(&form.hidden("csrf_token"))
        );
        let headers = [
            format!("Cookie: __Host-csrf={}", form.cookie("__Host-csrf")),
            "Content-Type: application/x-www-form-urlencoded".to_owned(),
        ];
        forms.push((headers, body));
    }
    let (sent, mut all_sent) = tokio::sync::mpsc::channel(CLIENTS);
    let sign_ins: Vec<_> = forms
        .into_iter()
        .map(|(headers, body)| {
            let sent = sent.clone();
            tokio::spawn(async move {
                let answer =
                    request_announced(port, "POST", "/login", &headers, &body, Some(sent)).await;
                answer.map(|a| {
                    (
                        a.status,
                        a.head
                            .contains("__Host-sid=")
                            .then(|| a.cookie("__Host-sid")),
                    )
                })
            })
        })
        .collect();
    for _ in 0..CLIENTS {
        all_sent.recv().await.expect("every sign-in sent");
    }
    app.signal("TERM");
    let signalled = Instant::now();

    // A new connection once the shutdown has begun is refused (or closed unanswered).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let late = request(port, "GET", "/healthz", &[], "").await;
    assert!(
        late.is_err(),
        "a connection after SIGTERM was served: {}",
        late.map(|a| a.status).unwrap_or(0)
    );

    let mut cookies = Vec::new();
    for sign_in in sign_ins {
        let (status, cookie) = sign_in
            .await
            .unwrap()
            .expect("every sign-in in flight was answered");
        assert_eq!(status, 303, "a sign-in in flight finished");
        cookies.push(cookie.expect("with its session cookie"));
    }
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
