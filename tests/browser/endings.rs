//! Session endings as a person sees them, on the real clock with second-scale timeouts.

use std::time::Duration;

use rocket::tokio::time::sleep;
use secure_sessions::users::Role;

use crate::harness::{Browser, exclusive};
use crate::support::{PASSWORD, TestApp};

/// Polls (up to `seconds`) until the browser is on a path starting with `prefix`.
async fn wait_for_path(browser: &Browser, prefix: &str, seconds: u64) -> String {
    for _ in 0..seconds * 10 {
        let path = browser.path().await;
        if path.starts_with(prefix) {
            return path;
        }
        sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "still on {} after {seconds}s, expected {prefix}",
        browser.path().await
    );
}

async fn warning_visible(browser: &Browser) -> bool {
    browser
        .by_testid("idle-warning")
        .await
        .is_displayed()
        .await
        .expect("displayed?")
}

#[rocket::async_test]
async fn the_idle_warning_appears_stay_signed_in_extends_and_idleness_then_signs_out() {
    let _one = exclusive().await;
    let mut app = TestApp::with(|f| {
        f.merge(("sessions.idle_timeout_secs", 6))
            .merge(("sessions.idle_warning_secs", 4))
            .merge(("sessions.touch_interval_secs", 1))
    })
    .await;
    app.system_clock = true;
    app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let browser = Browser::launch().await;
    browser.sign_in(&server.base_url, "alice", PASSWORD).await;
    assert_eq!(browser.path().await, "/account");
    assert!(
        !warning_visible(&browser).await,
        "no warning right after a request"
    );

    // 6 s idle timeout, warning in the last 4 s: it shows after about 2 s.
    sleep(Duration::from_millis(2800)).await;
    assert!(
        warning_visible(&browser).await,
        "the warning shows before the timeout"
    );
    // (Its screenshot and accessibility check are in pages.rs, with time for them.)

    browser
        .by_testid("stay-signed-in")
        .await
        .click()
        .await
        .expect("click");
    sleep(Duration::from_millis(500)).await;
    assert!(!warning_visible(&browser).await, "the warning goes away");
    assert_eq!(
        browser.path().await,
        "/account",
        "no navigation: the page stays"
    );

    // Past the original deadline the page is still signed in: the keepalive moved it.
    sleep(Duration::from_millis(3500)).await;
    browser.goto(&server.url("/account")).await;
    assert_eq!(browser.path().await, "/account");

    // Now stay idle: the page itself goes to the sign-in page and says why.
    let path = wait_for_path(&browser, "/login", 10).await;
    assert_eq!(path, "/login?reason=idle_timeout&next=%2Faccount");
    assert_eq!(
        browser.title().await,
        "Signed out after inactivity – Sign in · secure-sessions"
    );
    let banner = browser.focus_on("[data-testid=login-reason-banner]").await;
    assert_eq!(
        (banner.role.as_str(), banner.text.as_str()),
        (
            "alert",
            "You were signed out because you were inactive for a while."
        ),
        "said first, where the focus is"
    );
    browser.screenshot("idle-timeout").await;

    // Signing in again returns to the page.
    browser.fill("username", "alice").await;
    browser.fill("password", PASSWORD).await;
    browser.submit("[data-testid=login-form]").await;
    assert_eq!(browser.path().await, "/account");
    browser.close().await;
}

#[rocket::async_test]
async fn sign_out_in_the_idle_warning_signs_out_like_the_sign_out_button() {
    let _one = exclusive().await;
    let mut app = TestApp::with(|f| {
        f.merge(("sessions.idle_timeout_secs", 8))
            .merge(("sessions.idle_warning_secs", 6))
            .merge(("sessions.touch_interval_secs", 1))
    })
    .await;
    app.system_clock = true;
    app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let browser = Browser::launch().await;
    browser.sign_in(&server.base_url, "alice", PASSWORD).await;
    let session = browser.cookie(&app.config().cookie_name).await;
    assert!(session.is_some());

    for _ in 0..60 {
        if warning_visible(&browser).await {
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }
    assert!(warning_visible(&browser).await, "the warning shows");
    browser.tab_to("[data-testid=idle-sign-out]").await;
    browser.press_enter_and_wait().await;
    assert_eq!(browser.path().await, "/login?reason=signed_out");
    assert_eq!(
        browser.title().await,
        "Signed out – Sign in · secure-sessions"
    );
    let banner = browser.focus_on("[data-testid=login-reason-banner]").await;
    assert_eq!(banner.text, "You have been signed out.");
    // A real sign-out: the session is over on the server, not just forgotten by this browser.
    let key = secure_sessions::session::token::SessionToken::parse(session.unwrap().value())
        .unwrap()
        .key();
    let reason: Option<String> =
        sqlx::query_scalar("SELECT revoke_reason FROM sessions WHERE key = $1")
            .bind(key.as_bytes())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(reason.as_deref(), Some("signed_out"));
    browser.close().await;
}

#[rocket::async_test]
async fn an_active_session_still_ends_at_the_absolute_timeout() {
    let _one = exclusive().await;
    let mut app = TestApp::with(|f| {
        f.merge(("sessions.idle_timeout_secs", 30))
            .merge(("sessions.absolute_timeout_secs", 6))
            .merge(("sessions.touch_interval_secs", 1))
    })
    .await;
    app.system_clock = true;
    app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let browser = Browser::launch().await;
    browser.sign_in(&server.base_url, "alice", PASSWORD).await;
    for _ in 0..2 {
        sleep(Duration::from_millis(1000)).await;
        browser.goto(&server.url("/account")).await;
        assert_eq!(browser.text_of("account-username").await, "alice");
    }
    // The open page's countdown runs to the absolute expiry too, and then the page goes by itself.
    let path = wait_for_path(&browser, "/login", 10).await;
    assert_eq!(path, "/login?reason=session_expired&next=%2Faccount");
    assert_eq!(
        browser.text_of("login-reason").await,
        "Your session has expired. Please sign in again."
    );
    browser.close().await;
}
