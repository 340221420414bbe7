//! Two app instances on one database, as behind a load balancer: a revocation through one is
//! refused by the other at once (no instance caches a session), and their reapers, running side
//! by side, delete every expired row exactly once without blocking each other.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use crate::harness::*;
use crate::support::cluster::Cluster;
use crate::support::http::form_body;

/// Expired sessions planted for the reapers: several batches each.
const EXPIRED: i64 = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_see_each_others_revocations_at_once_and_reap_without_conflict() {
    let cluster = Cluster::start();
    let url = cluster.url("postgres");
    // Both reapers every second, in small batches: they overlap on every run.
    let settings = AppSettings::new(&[&url]).with(
        "ROCKET_SESSIONS",
        "{seed_demo_users=false,max_sessions_per_user=100000,hashing_admission_ms=60000,reaper_interval_secs=1,reaper_batch_size=50}",
    );
    let first = AppProcess::start(&settings).await;
    let second = AppProcess::start(&settings).await;
    let users = create_users(&url).await;
    plant_expired_sessions(&url).await;

    // Each client alternates between the instances; each signs in on one and out on the other.
    let ports = [first.port, second.port];
    let clients: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(index, user)| {
            let user = user.clone();
            tokio::spawn(async move {
                for round in 0..3 {
                    let signing_in = ports[(index + round) % 2];
                    let other = ports[(index + round + 1) % 2];
                    let cookie = sign_in(signing_in, &user).await.expect("sign-in");
                    let page = account(other, &cookie).await.expect("an answer");
                    assert_eq!(page.status, 200, "the other instance knows the session");
                    let body = form_body(&[("csrf_token", &page.html().csrf_token())]);
                    let signed_out = request(
                        other,
                        "POST",
                        "/logout",
                        &[
                            format!("Cookie: __Host-sid={cookie}"),
                            "Content-Type: application/x-www-form-urlencoded".to_owned(),
                        ],
                        &body,
                    )
                    .await
                    .expect("an answer");
                    assert_eq!(signed_out.status, 303, "signed out");
                    let after = account(signing_in, &cookie).await.expect("an answer");
                    assert_eq!(after.status, 303, "the first instance refuses it at once");
                    assert!(
                        after
                            .header("Location")
                            .is_some_and(|l| l.starts_with("/login")),
                        "sent to sign in: {:?}",
                        after.header("Location")
                    );
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("a client");
    }

    // Both reapers run until the planted rows are gone.
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions WHERE ip = 'planted'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{left} expired sessions left");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let any reaper run in progress write its line.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (first_log, second_log) = (first.log(), second.log());
    let deleted = reaped(&first_log) + reaped(&second_log);
    assert_eq!(
        deleted, EXPIRED as u64,
        "every expired row deleted once, by one of them"
    );
    for log in [&first_log, &second_log] {
        assert!(!log.contains("reaper failed"), "a reaper failed: {log}");
    }
    assert!(!cluster.log().contains("deadlock"), "{}", cluster.log());
}

/// Sessions whose absolute expiry is an hour past the tombstone grace: due for the reaper.
async fn plant_expired_sessions(url: &str) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query(
        "INSERT INTO sessions (key, public_id, user_id, kind, created_at, last_seen_at, expires_at,
                               fingerprint_bind, fingerprint_watch, ip, user_agent)
         SELECT sha256(n::text::bytea), gen_random_uuid(), (SELECT min(id) FROM users), 'browser',
                now() - interval '3 days', now() - interval '3 days', now() - interval '2 days',
                '\\x00', '\\x00', 'planted', 'planted'
         FROM generate_series(1, $1) AS n",
    )
    .bind(EXPIRED)
    .execute(&mut conn)
    .await
    .expect("plant expired sessions");
}

/// The rows a reaper's log says it deleted.
fn reaped(log: &str) -> u64 {
    log.lines()
        .filter_map(|line| line.split("reaper deleted ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}
