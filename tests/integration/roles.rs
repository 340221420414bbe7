//! Tighter limits for administrators: their own idle and absolute timeouts, applied from the role
//! read on each request, so a promotion or demotion mid-session takes effect at the next one; an
//! administrator's session row expires (and is reaped) on the administrator's deadline; an
//! administrator's API token family lives no longer than an administrator's browser session.

use rocket::http::{Method, Status};
use secure_sessions::clock::AppClock;
use secure_sessions::session::reaper::reap_once;
use secure_sessions::users::Role;
use serde_json::json;

use crate::support::http::{Device, Reply};
use crate::support::{PASSWORD, TestApp};

const MINUTE: i64 = 60;
const HOUR: i64 = 60 * MINUTE;
/// Alice's browser: another device than the administrator's, on the same machine.
const ALICE_BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0";

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

fn assert_signed_out(reply: &Reply, reason: &str) {
    assert_eq!(
        reply.location(),
        format!("/login?reason={reason}&next=%2Faccount"),
        "{}",
        reply.body
    );
}

#[rocket::async_test]
async fn an_administrator_idle_for_fifteen_minutes_is_signed_out_and_a_user_is_not() {
    let app = app_with_production_timeouts().await;
    let admin_id = app.create_user("root", Role::Admin).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let admin = Device::new(&client);
    let alice = Device::with(&client, ALICE_BROWSER, "127.0.0.1");
    admin.sign_in("root", PASSWORD).await;
    alice.sign_in("alice", PASSWORD).await;

    // The page's idle warning counts down from the administrator's own timeout.
    let page = admin.get("/account").await;
    assert_eq!(
        page.idle_seconds_left().as_deref(),
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
    let alice = Device::with(&client, ALICE_BROWSER, "127.0.0.1");
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
    let bob = Device::with(&client, ALICE_BROWSER, "127.0.0.1");
    bob.sign_in("bob", PASSWORD).await;
    for _ in 0..30 {
        app.advance_secs(10 * MINUTE);
        assert_eq!(bob.get("/account").await.status, Status::Ok);
    }
    set_role(&app, bob_id, "admin").await;
    app.advance_secs(MINUTE);
    assert_signed_out(&bob.get("/account").await, "session_expired");
}

/// The Max-Age of the session cookie `reply` sets, in seconds.
fn cookie_lifetime(reply: &Reply) -> i64 {
    let cookie = reply.set_cookie("__Host-sid").expect("a session cookie");
    cookie.max_age().expect("a Max-Age").whole_seconds()
}

#[rocket::async_test]
async fn a_session_cookie_lives_as_long_as_its_session_and_the_grace_not_a_user_sign_in() {
    let app = app_with_production_timeouts().await;
    app.create_user("root", Role::Admin).await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let admin = Device::new(&client);
    let alice = Device::with(&client, ALICE_BROWSER, "127.0.0.1");
    let grace = i64::from(app.config().tombstone_grace_secs);
    let signed_in = admin.sign_in("root", PASSWORD).await;
    assert_eq!(cookie_lifetime(&signed_in), 4 * HOUR + grace);
    let signed_in = alice.sign_in("alice", PASSWORD).await;
    assert_eq!(cookie_lifetime(&signed_in), 12 * HOUR + grace);

    // An hour of clicks later, a new token (re-entering the password rotates it) ends with the
    // session, not an administrator's lifetime from now.
    for _ in 0..6 {
        app.advance_secs(10 * MINUTE);
        assert_eq!(admin.get("/account").await.status, Status::Ok);
        assert_eq!(alice.get("/account").await.status, Status::Ok);
    }
    assert_eq!(
        cookie_lifetime(&admin.confirm(PASSWORD).await),
        3 * HOUR + grace
    );
    // A user promoted an hour into her session: her next token ends on the administrator's
    // deadline from her sign-in.
    set_role(&app, alice_id, "admin").await;
    assert_eq!(
        cookie_lifetime(&alice.confirm(PASSWORD).await),
        3 * HOUR + grace
    );
}

#[rocket::async_test]
async fn an_administrator_demoted_mid_session_gets_a_user_idle_limit_but_not_a_longer_sign_in() {
    let app = app_with_production_timeouts().await;
    let admin_id = app.create_user("root", Role::Admin).await;
    let client = app.client().await;
    let admin = Device::new(&client);
    admin.sign_in("root", PASSWORD).await;

    for _ in 0..10 {
        app.advance_secs(10 * MINUTE);
        assert_eq!(admin.get("/account").await.status, Status::Ok);
    }
    set_role(&app, admin_id, "user").await;
    // Past an administrator's idle limit, within a user's.
    app.advance_secs(20 * MINUTE);
    let page = admin.get("/account").await;
    assert_eq!(page.status, Status::Ok);
    assert_eq!(page.testid_text("account-role").as_deref(), None);
    assert_eq!(
        page.idle_seconds_left().as_deref(),
        Some("1800"),
        "a user's countdown again"
    );
    // The deadline written when the administrator signed in stands: a demotion never extends a
    // sign-in (nor would anything else).
    for _ in 0..11 {
        app.advance_secs(10 * MINUTE);
        assert_eq!(admin.get("/account").await.status, Status::Ok);
    }
    app.advance_secs(10 * MINUTE);
    assert_signed_out(&admin.get("/account").await, "session_expired");
}

/// Seconds from sign-in to absolute expiry of every session row and token family, by username.
async fn lifetimes(app: &TestApp) -> Vec<(String, String, i64)> {
    sqlx::query_as(
        "SELECT u.username, s.kind, extract(epoch FROM s.expires_at - s.created_at)::int8
         FROM sessions s JOIN users u ON u.id = s.user_id ORDER BY u.username, s.kind",
    )
    .fetch_all(&app.pool)
    .await
    .expect("query sessions")
}

#[rocket::async_test]
async fn an_administrator_session_row_expires_and_is_reaped_on_the_administrator_deadline() {
    let app = app_with_production_timeouts().await;
    app.create_user("root", Role::Admin).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let admin = Device::new(&client);
    let alice = Device::with(&client, ALICE_BROWSER, "127.0.0.1");
    admin.sign_in("root", PASSWORD).await;
    alice.sign_in("alice", PASSWORD).await;
    let token = admin.session_cookie().expect("a session cookie");
    assert_eq!(
        lifetimes(&app).await,
        [
            ("alice".to_owned(), "browser".to_owned(), 12 * HOUR),
            ("root".to_owned(), "browser".to_owned(), 4 * HOUR)
        ]
    );

    for _ in 0..23 {
        app.advance_secs(10 * MINUTE);
        assert_eq!(admin.get("/account").await.status, Status::Ok);
    }
    app.advance_secs(10 * MINUTE);
    assert_signed_out(&admin.get("/account").await, "session_expired");
    // The tombstone explains the ending for the grace, then goes with the next reaper pass.
    let config = app.config();
    let clock = AppClock::movable(app.clock.clone());
    let reap = || async {
        reap_once(
            &mut app.pool.acquire().await.expect("connection"),
            &config,
            &clock,
        )
        .await
        .expect("reaper pass")
    };
    assert_eq!(reap().await, 0, "kept during the grace");
    app.advance_secs(i64::from(config.tombstone_grace_secs) + 1);
    assert_eq!(reap().await, 1, "the administrator's row, not alice's");
    assert_eq!(app.session_row(&token).await, None);
    admin.set_cookie("__Host-sid", &token);
    assert_signed_out(&admin.get("/account").await, "login_required");
    assert_eq!(lifetimes(&app).await.len(), 1);
}

async fn api_sign_in(script: &Device<'_>, username: &str) -> (String, String) {
    tokens(
        &script
            .post_json(
                "/api/token",
                &json!({ "username": username, "password": PASSWORD }),
            )
            .await,
    )
}

async fn api_refresh(script: &Device<'_>, refresh_token: &str) -> Reply {
    script
        .post_json(
            "/api/token/refresh",
            &json!({ "refresh_token": refresh_token }),
        )
        .await
}

fn tokens(reply: &Reply) -> (String, String) {
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    let body = reply.json();
    (
        body["access_token"].as_str().expect("access").to_owned(),
        body["refresh_token"].as_str().expect("refresh").to_owned(),
    )
}

fn assert_invalid_grant(reply: &Reply) {
    assert_eq!(reply.status, Status::Unauthorized, "{}", reply.body);
    assert_eq!(reply.error_code(), "invalid_grant");
}

#[rocket::async_test]
async fn an_administrator_api_token_family_ends_four_hours_after_sign_in_however_often_it_refreshes()
 {
    let app = app_with_production_timeouts().await;
    app.create_user("root", Role::Admin).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let admin_script = Device::with(&client, "curl/8.5.0", "192.0.2.44");
    let alice_script = Device::with(&client, "curl/8.5.0", "192.0.2.45");
    let (_, mut admin_refresh) = api_sign_in(&admin_script, "root").await;
    let (_, mut alice_refresh) = api_sign_in(&alice_script, "alice").await;
    assert_eq!(
        lifetimes(&app).await,
        [
            ("alice".to_owned(), "api".to_owned(), 7 * 24 * HOUR),
            ("root".to_owned(), "api".to_owned(), 4 * HOUR)
        ]
    );

    // A refresh every 14 minutes, up to two minutes before four hours.
    let mut admin_access = String::new();
    let mut expires_in = (0, 0);
    for _ in 0..17 {
        app.advance_secs(14 * MINUTE);
        let admin = api_refresh(&admin_script, &admin_refresh).await;
        let alice = api_refresh(&alice_script, &alice_refresh).await;
        (admin_access, admin_refresh) = tokens(&admin);
        (_, alice_refresh) = tokens(&alice);
        expires_in = (
            admin.json()["expires_in"].as_i64().expect("expires_in"),
            alice.json()["expires_in"].as_i64().expect("expires_in"),
        );
    }
    // The last access token lives only until the family ends: `expires_in` tells the truth.
    assert_eq!(expires_in, (2 * MINUTE, 15 * MINUTE));

    app.advance_secs(2 * MINUTE);
    let me = admin_script
        .with_bearer(Method::Get, "/api/me", &admin_access)
        .await;
    assert_eq!(me.status, Status::Unauthorized);
    assert_invalid_grant(&api_refresh(&admin_script, &admin_refresh).await);
    tokens(&api_refresh(&alice_script, &alice_refresh).await);
}

#[rocket::async_test]
async fn a_user_promoted_while_a_script_holds_tokens_gets_the_administrator_lifetime_at_the_next_refresh()
 {
    let app = app_with_production_timeouts().await;
    let alice_id = app.create_user("alice", Role::User).await;
    let bob_id = app.create_user("bob", Role::User).await;
    let client = app.client().await;
    let alice_script = Device::with(&client, "curl/8.5.0", "192.0.2.44");
    let bob_script = Device::with(&client, "curl/8.5.0", "192.0.2.45");
    let (_, mut alice_refresh) = api_sign_in(&alice_script, "alice").await;
    let (_, mut bob_refresh) = api_sign_in(&bob_script, "bob").await;

    // Alice is promoted one hour in: her next refresh brings the family's end to four hours.
    for _ in 0..4 {
        app.advance_secs(14 * MINUTE);
        (_, alice_refresh) = tokens(&api_refresh(&alice_script, &alice_refresh).await);
        (_, bob_refresh) = tokens(&api_refresh(&bob_script, &bob_refresh).await);
    }
    set_role(&app, alice_id, "admin").await;
    app.advance_secs(14 * MINUTE);
    (_, alice_refresh) = tokens(&api_refresh(&alice_script, &alice_refresh).await);
    assert_eq!(lifetimes(&app).await[0].2, 4 * HOUR);
    // Bob is promoted five hours in, well within a user's seven days: his next refresh is refused.
    for _ in 0..17 {
        app.advance_secs(14 * MINUTE);
        (_, bob_refresh) = tokens(&api_refresh(&bob_script, &bob_refresh).await);
    }
    set_role(&app, bob_id, "admin").await;
    app.advance_secs(14 * MINUTE);
    assert_invalid_grant(&api_refresh(&bob_script, &bob_refresh).await);
    // Alice's family, refreshed at one hour and ten minutes, ended at four hours.
    assert_invalid_grant(&api_refresh(&alice_script, &alice_refresh).await);
}
