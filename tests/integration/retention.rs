//! Data that expires: security events past `event_retention_days` are deleted by the reaper in
//! batches, and the addresses in events past `address_retention_days` are cut to their network.

use rocket_db_pools::Database;
use secure_sessions::clock::AppClock;
use secure_sessions::db::Db;
use secure_sessions::session::reaper::{self, Retention};
use secure_sessions::users::Role;

use crate::support::http::{CHROME_LINUX, Device};
use crate::support::{PASSWORD, TestApp};

const DAY: i64 = 24 * 60 * 60;

/// The events of a user as (kind, address), oldest first.
async fn events(app: &TestApp, user_id: i64) -> Vec<(String, String)> {
    sqlx::query_as("SELECT kind, ip FROM security_events WHERE user_id = $1 ORDER BY id")
        .bind(user_id)
        .fetch_all(&app.pool)
        .await
        .expect("query events")
}

async fn expire(app: &TestApp) -> Retention {
    reaper::expire_events(
        &mut app.pool.acquire().await.expect("connection"),
        &app.config(),
        &AppClock::movable(app.clock.clone()),
    )
    .await
    .expect("retention pass")
}

#[rocket::async_test]
async fn old_events_are_deleted_and_older_addresses_cut_to_their_network_in_batches() {
    // Batches of two, so every step below takes several.
    let app = TestApp::with(|figment| figment.merge(("sessions.reaper_batch_size", 2))).await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;

    // Day 0, from home: sign in and out (two events), and a wrong password (one more).
    let home = Device::with(&client, CHROME_LINUX, "203.0.113.7");
    home.sign_in("alice", "not the password").await;
    home.sign_in("alice", PASSWORD).await;
    home.sign_out().await;
    // Day 40, from the office (IPv4) and a phone (IPv6).
    app.advance_secs(40 * DAY);
    let office = Device::with(&client, CHROME_LINUX, "198.51.100.9");
    office.sign_in("alice", PASSWORD).await;
    office.sign_out().await;
    let phone = Device::with(&client, CHROME_LINUX, "2001:db8:1:2::5");
    phone.sign_in("alice", PASSWORD).await;
    phone.sign_out().await;
    // Day 95: signed in now, from a café.
    app.advance_secs(55 * DAY);
    let cafe = Device::with(&client, CHROME_LINUX, "192.0.2.33");
    cafe.sign_in("alice", PASSWORD).await;
    let before = events(&app, alice_id).await;
    assert_eq!(before.len(), 3 + 4 + 1, "{before:?}");

    let done = expire(&app).await;
    assert_eq!(
        done,
        Retention { deleted: 3, cut: 4 },
        "the 95-day-old events deleted, the 55-day-old cut"
    );
    let after = events(&app, alice_id).await;
    let addresses: Vec<&str> = after.iter().map(|(_, ip)| ip.as_str()).collect();
    assert_eq!(
        addresses,
        [
            "198.51.100.0/24",
            "198.51.100.0/24",
            "2001:db8:1::/48",
            "2001:db8:1::/48",
            "192.0.2.33"
        ]
    );
    // The owner's activity shows no trace of day 0, and only networks for day 40.
    let page = cafe.get("/account").await;
    assert!(!page.body.contains("203.0.113"), "{}", page.body);
    assert!(!page.body.contains("198.51.100.9"));
    assert!(page.shows("198.51.100.0/24"));
    assert!(page.shows("192.0.2.33"));

    // A second pass finds nothing to do; a day later, nothing new is old enough either.
    assert_eq!(expire(&app).await, Retention::default());
    app.advance_secs(DAY);
    assert_eq!(expire(&app).await, Retention::default());
    // Day 136: the day-40 events pass 90 days, the café's sign-in 30.
    app.advance_secs(40 * DAY);
    assert_eq!(expire(&app).await, Retention { deleted: 4, cut: 1 });
    assert_eq!(
        events(&app, alice_id).await,
        [("sign_in".to_owned(), "192.0.2.0/24".to_owned())]
    );
}

#[rocket::async_test]
async fn the_retention_periods_are_settings() {
    let app = TestApp::with(|figment| {
        figment
            .merge(("sessions.event_retention_days", 7))
            .merge(("sessions.address_retention_days", 1))
    })
    .await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let home = Device::with(&client, CHROME_LINUX, "203.0.113.7");
    home.sign_in("alice", PASSWORD).await;

    app.advance_secs(DAY - 1);
    assert_eq!(expire(&app).await, Retention::default());
    app.advance_secs(2);
    assert_eq!(expire(&app).await.cut, 1);
    assert_eq!(
        events(&app, alice_id).await,
        [("sign_in".to_owned(), "203.0.113.0/24".to_owned())]
    );
    app.advance_secs(6 * DAY);
    assert_eq!(expire(&app).await.deleted, 1);
    assert!(events(&app, alice_id).await.is_empty());
}

/// Every retention setting at the top of its range: a whole reaper round computes its cut-offs
/// inside the calendar, keeps what is younger than them and fails nothing (before the ranges, a
/// retention of 4294967295 days made the reaper's task panic, and every clean-up stopped). Once
/// all of it is older than every retention, one round deletes it all.
#[rocket::async_test]
async fn a_reaper_round_with_every_retention_at_its_maximum_keeps_what_is_young() {
    let app = TestApp::with(|figment| {
        figment
            .merge(("sessions.event_retention_days", 3650))
            .merge(("sessions.address_retention_days", 3650))
            .merge(("sessions.tombstone_grace_secs", 31 * DAY))
            .merge(("sessions.throttle_window_secs", DAY))
    })
    .await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let home = Device::with(&client, CHROME_LINUX, "203.0.113.7");
    home.sign_in("alice", "not the password").await;
    home.sign_in("alice", PASSWORD).await;
    home.sign_out().await;
    app.advance_secs(400 * DAY);
    let before = events(&app, alice_id).await;

    let db = Db::fetch(client.rocket()).expect("the app's pool");
    let (config, clock) = (app.config(), AppClock::movable(app.clock.clone()));
    let round = || reaper::round(db.pool(), &config, &clock);
    round().await;

    assert_eq!(
        events(&app, alice_id).await,
        before,
        "nothing is old enough to go"
    );
    assert_eq!(expire(&app).await, Retention::default());

    app.advance_secs(3650 * DAY);
    round().await;
    assert!(events(&app, alice_id).await.is_empty());
    let left: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM sign_in_failures)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        left,
        (0, 0),
        "the signed-out session and the counted failure are gone too"
    );
}
