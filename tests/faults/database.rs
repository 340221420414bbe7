//! PostgreSQL stopped, killed and starved, under load: 503 while it is out of reach, never a
//! 500, nobody signed out, and nothing committed lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use crate::harness::*;
use crate::support::cluster::Cluster;

/// How soon after PostgreSQL is back every request must be served again.
const RECOVERY: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_stopped_for_three_seconds_answers_503_then_serves_everyone_again() {
    let cluster = Cluster::start();
    let url = cluster.url("postgres");
    let mut app = AppProcess::start(&AppSettings::new(&[&url])).await;
    let pid = app.pid();
    let users = create_users(&url).await;
    let cookies = sign_in_all(app.port, &users).await;

    let load = Load::start(&cookies, {
        let port = app.port;
        move |_, _| port
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopping = Instant::now();
    tokio::task::block_in_place(|| cluster.stop());
    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::block_in_place(|| cluster.start_again());
    let back = Instant::now();
    tokio::time::sleep(RECOVERY + Duration::from_secs(2)).await;
    let records = load.stop().await;

    assert_never_wrong(&records);
    assert!(
        count_between(&records, stopping, back, &Outcome::Unavailable) > 0,
        "no 503 while PostgreSQL was down"
    );
    assert_all_served_from(&records, back + RECOVERY, "2 s after PostgreSQL came back");
    assert!(
        app.running() && app.pid() == pid,
        "the app kept running: {}",
        app.log()
    );
    assert_sessions_work(app.port, &cookies, Duration::ZERO).await;
    let ended = cluster.psql("SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL");
    assert_eq!(ended.trim(), "0", "the outage ended no session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_killed_during_sign_ins_loses_no_redirected_sign_in_and_leaves_no_half_session()
{
    let cluster = Cluster::start_durable();
    let url = cluster.url("postgres");
    let app = AppProcess::start(&AppSettings::new(&[&url])).await;
    let users = create_users(&url).await;

    // Every client signs in again and again, until told to stop; a redirect with a cookie is a
    // promise kept.
    let redirected = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = users
        .iter()
        .map(|user| {
            let (user, port) = (user.clone(), app.port);
            let (redirected, failures) = (redirected.clone(), failures.clone());
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match sign_in(port, &user).await {
                        Ok(cookie) => redirected.lock().unwrap().push(cookie),
                        Err(failure) => failures.lock().unwrap().push(failure),
                    }
                }
            })
        })
        .collect();
    // The kill comes once sign-ins are flowing (a loaded machine may take a while to get there).
    let flowing = Instant::now() + Duration::from_secs(30);
    while redirected.lock().unwrap().len() < CLIENTS && Instant::now() < flowing {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before_kill = redirected.lock().unwrap().len();
    tokio::task::block_in_place(|| cluster.kill());
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::block_in_place(|| cluster.start_again());
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    let redirected = redirected.lock().unwrap().clone();
    let failures = failures.lock().unwrap().clone();
    assert!(
        before_kill >= CLIENTS,
        "sign-ins were flowing before the kill"
    );
    assert!(!failures.is_empty(), "the kill interrupted the sign-ins");
    assert!(
        failures.iter().all(|f| f.ends_with(": 503")),
        "only 503 while PostgreSQL was down: {failures:?}"
    );
    assert_sessions_work(app.port, &redirected, Duration::from_secs(5)).await;

    // Each sign-in commits its session and its `sign_in` event together or not at all.
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let halves: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM sessions s WHERE NOT EXISTS (
                     SELECT 1 FROM security_events e
                     WHERE e.kind = 'sign_in' AND e.session_public_id = s.public_id))
              + (SELECT count(*) FROM security_events e WHERE e.kind = 'sign_in' AND NOT EXISTS (
                     SELECT 1 FROM sessions s WHERE s.public_id = e.session_public_id))",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        halves, 0,
        "a session without its sign-in event, or the reverse"
    );
    assert!(usize::try_from(sessions).unwrap() >= redirected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn more_requests_than_connections_queue_or_get_503_never_500() {
    let cluster = Cluster::start();
    let url = cluster.url("postgres");
    let settings = AppSettings::new(&[&url]).with(
        "ROCKET_DATABASES",
        &format!("{{main={{url=\"{url}\",max_connections=2,acquire_timeout_ms=200}}}}"),
    );
    let app = AppProcess::start(&settings).await;
    let users = create_users(&url).await;
    let cookies = sign_in_all(app.port, &users).await;

    // Twice as many browsers as before, each with two requests at once, on two connections;
    // sign-ins (three connections each, one after another) run alongside.
    let doubled: Vec<String> = cookies.iter().chain(&cookies).cloned().collect();
    let port = app.port;
    let load = Load::start(&doubled, move |_, _| port);
    let signing_in: Vec<_> = users
        .iter()
        .map(|user| {
            let user = user.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for _ in 0..3 {
                    outcomes.push(sign_in(port, &user).await);
                }
                outcomes
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let records = load.stop().await;
    for client in signing_in {
        for outcome in client.await.unwrap() {
            if let Err(failure) = outcome {
                assert!(failure.ends_with(": 503"), "a sign-in failed: {failure}");
            }
        }
    }
    assert_never_wrong(&records);
    assert!(
        records
            .iter()
            .all(|r| !matches!(r.outcome, Outcome::NoAnswer(_))),
        "every request was answered"
    );
    let served = records
        .iter()
        .filter(|r| r.outcome == Outcome::Served)
        .count();
    assert!(served > 0, "none of {} requests was served", records.len());
}
