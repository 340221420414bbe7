//! Tighter limits for administrators: their own idle and absolute timeouts, applied from the role
//! read on each request, so a promotion or demotion mid-session takes effect at the next one.

use rocket::http::Status;
use secure_sessions::users::Role;

use crate::support::http::{Device, Reply};
use crate::support::{PASSWORD, TestApp};

const MINUTE: i64 = 60;

/// The production timeouts (the test profile shortens them to seconds).
async fn app_with_production_timeouts() -> TestApp {
    TestApp::with(|figment| {
        figment
            .merge(("sessions.idle_timeout_secs", 1800))
            .merge(("sessions.absolute_timeout_secs", 43200))
            .merge(("sessions.touch_interval_secs", 60))
    })
    .await
}

async fn set_role(app: &TestApp, user_id: i64, role: &str) {
    sqlx::query("UPDATE users SET role = $2 WHERE id = $1")
        .bind(user_id)
        .bind(role)
        .execute(&app.pool)
        .await
        .expect("set the role");
}

fn assert_signed_out(reply: &crate::support::http::Reply, reason: &str) {
    assert_eq!(
        reply.location(),
        format!("/login?reason={reason}&next=%2Faccount"),
        "{}",
        reply.body
    );
}

/// Where the page's idle warning starts counting down from (`data-idle-seconds-left`).
fn idle_seconds_left(page: &Reply) -> Option<String> {
    page.html()
        .testids("idle-warning")
        .first()?
        .value()
        .attr("data-idle-seconds-left")
        .map(str::to_owned)
}

#[rocket::async_test]
async fn an_administrator_idle_for_fifteen_minutes_is_signed_out_and_a_user_is_not() {
    let app = app_with_production_timeouts().await;
    let admin_id = app.create_user("root", Role::Admin).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let admin = Device::new(&client);
    let alice = Device::with(
        &client,
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
        "127.0.0.1",
    );
    admin.sign_in("root", PASSWORD).await;
    alice.sign_in("alice", PASSWORD).await;

    // The page's idle warning counts down from the administrator's own timeout.
    let page = admin.get("/account").await;
    assert_eq!(
        idle_seconds_left(&page).as_deref(),
        Some("900"),
        "{}",
        page.body
    );

    app.advance_secs(15 * MINUTE - 1);
    assert_eq!(admin.get("/account").await.status, Status::Ok);
    assert_eq!(alice.get("/account").await.status, Status::Ok);

    app.advance_secs(15 * MINUTE);
    assert_signed_out(&admin.get("/account").await, "idle_timeout");
    assert_eq!(
        alice.get("/account").await.status,
        Status::Ok,
        "a user has 30 minutes"
    );
    assert_eq!(
        app.event_kinds(admin_id).await,
        vec!["sign_in", "idle_timeout"]
    );
}

#[rocket::async_test]
async fn an_administrator_session_ends_four_hours_after_sign_in_however_active() {
    let app = app_with_production_timeouts().await;
    app.create_user("root", Role::Admin).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let admin = Device::new(&client);
    let alice = Device::with(
        &client,
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
        "127.0.0.1",
    );
    admin.sign_in("root", PASSWORD).await;
    alice.sign_in("alice", PASSWORD).await;

    // A click every ten minutes, up to one second before four hours.
    for click in 1..=23 {
        app.advance_secs(10 * MINUTE);
        assert_eq!(
            admin.get("/account").await.status,
            Status::Ok,
            "click {click}"
        );
        assert_eq!(alice.get("/account").await.status, Status::Ok);
    }
    app.advance_secs(10 * MINUTE - 1);
    assert_eq!(admin.get("/account").await.status, Status::Ok);
    app.advance_secs(1);
    assert_signed_out(&admin.get("/account").await, "session_expired");
    assert_eq!(
        alice.get("/account").await.status,
        Status::Ok,
        "a user has 12 hours"
    );
}

#[rocket::async_test]
async fn a_user_promoted_mid_session_gets_the_administrator_limits_at_the_next_request() {
    let app = app_with_production_timeouts().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;

    // Twenty idle minutes are fine for a user...
    app.advance_secs(20 * MINUTE);
    assert_eq!(alice.get("/account").await.status, Status::Ok);
    // ... and too many for an administrator, from the very next request.
    app.advance_secs(20 * MINUTE);
    set_role(&app, user_id, "admin").await;
    assert_signed_out(&alice.get("/account").await, "idle_timeout");

    // Promoted five hours into a session (well within a user's twelve): it ends at once.
    let bob_id = app.create_user("bob", Role::User).await;
    let bob = Device::with(
        &client,
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
        "127.0.0.1",
    );
    bob.sign_in("bob", PASSWORD).await;
    for _ in 0..30 {
        app.advance_secs(10 * MINUTE);
        assert_eq!(bob.get("/account").await.status, Status::Ok);
    }
    set_role(&app, bob_id, "admin").await;
    app.advance_secs(MINUTE);
    assert_signed_out(&bob.get("/account").await, "session_expired");
}

#[rocket::async_test]
async fn an_administrator_demoted_mid_session_gets_a_user_limits_at_the_next_request() {
    let app = app_with_production_timeouts().await;
    let admin_id = app.create_user("root", Role::Admin).await;
    let client = app.client().await;
    let admin = Device::new(&client);
    admin.sign_in("root", PASSWORD).await;

    for _ in 0..20 {
        app.advance_secs(10 * MINUTE);
        assert_eq!(admin.get("/account").await.status, Status::Ok);
    }
    set_role(&app, admin_id, "user").await;
    // Past an administrator's idle and absolute limits, within a user's.
    app.advance_secs(20 * MINUTE);
    assert_eq!(admin.get("/account").await.status, Status::Ok);
    for _ in 0..6 {
        app.advance_secs(10 * MINUTE);
        assert_eq!(admin.get("/account").await.status, Status::Ok);
    }
    let page = admin.get("/account").await;
    assert_eq!(page.testid_text("account-role").as_deref(), Some("user"));
    assert_eq!(
        idle_seconds_left(&page).as_deref(),
        Some("1800"),
        "a user's countdown again"
    );
}
