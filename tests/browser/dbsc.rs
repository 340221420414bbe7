//! Device-bound sessions in real Chromium: it registers on its own after sign-in, its bound
//! cookie expires (the test profile's `bound_cookie_secs` is 5), and the next page still works
//! because the browser refreshed with its key. Served over HTTPS (see `tls`), the only way
//! Chromium 156 takes part; the app runs on the real clock.

use std::time::{Duration, Instant};

use rocket::tokio::time::sleep;
use secure_sessions::users::Role;

use crate::harness::{Browser, exclusive};
use crate::support::{PASSWORD, TestApp};
use crate::tls::TlsProxy;

/// The stored key of alice's session: its current token's hash and its bound public key.
async fn session_row(app: &TestApp) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    sqlx::query_as("SELECT key, dbsc_key FROM sessions WHERE revoked_at IS NULL")
        .fetch_optional(&app.pool)
        .await
        .expect("query sessions")
}

/// Polls `check` every 100 ms for up to `limit`.
async fn eventually<F: AsyncFn() -> bool>(limit: Duration, check: F) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        sleep(Duration::from_millis(100)).await;
    }
    false
}

#[rocket::async_test]
async fn chromium_binds_its_session_and_renews_the_expired_cookie_with_its_key() {
    let _one = exclusive().await;
    let mut app = TestApp::new().await;
    app.system_clock = true;
    let user_id = app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let https = TlsProxy::start(server.port).await;
    let browser = Browser::launch_dbsc(&https.spki_sha256).await;

    browser.sign_in(&https.url(""), "alice", PASSWORD).await;
    assert_eq!(browser.text_of("account-username").await, "alice");
    // The page after sign-in offered binding; Chromium registers in the background.
    let bound = eventually(Duration::from_secs(10), async || {
        session_row(&app)
            .await
            .is_some_and(|(_, dbsc_key)| dbsc_key.is_some())
    })
    .await;
    assert!(bound, "Chromium registered a key for the session");
    let (key_before, _) = session_row(&app).await.unwrap();

    // The bound cookie lives 5 s: it leaves the browser's jar, and nothing happens until a request.
    let expired = eventually(Duration::from_secs(15), async || {
        browser.cookie("__Host-sid").await.is_none()
    })
    .await;
    assert!(expired, "the bound cookie expired in the browser");

    // The next page waits for the browser's own refresh and arrives with the new cookie.
    browser.goto(&https.url("/account")).await;
    assert_eq!(browser.path().await, "/account");
    assert_eq!(
        browser.text_of("account-username").await,
        "alice",
        "still signed in"
    );
    let (key_after, dbsc_key) = session_row(&app).await.unwrap();
    assert_ne!(
        key_after, key_before,
        "the token was rotated by a signed refresh"
    );
    assert!(dbsc_key.is_some());
    let row = browser.by_testid("session-row").await;
    assert_eq!(
        row.attr("data-bound").await.expect("attribute").as_deref(),
        Some("true")
    );
    assert_eq!(
        browser.text_of("session-bound").await,
        "Bound to this device's key"
    );
    let cookie = browser
        .cookie("__Host-sid")
        .await
        .expect("a fresh bound cookie");
    assert_eq!(cookie.secure(), Some(true));
    browser.screenshot("dbsc-bound-session").await;

    let kinds = app.event_kinds(user_id).await;
    assert!(kinds.contains(&"session_bound".to_owned()), "{kinds:?}");
    assert!(
        !kinds.contains(&"binding_proof_refused".to_owned()),
        "the browser's proofs were all accepted: {kinds:?}"
    );
    browser.close().await;
}

#[rocket::async_test]
async fn a_bound_browser_signed_out_elsewhere_learns_why_through_its_refresh() {
    let _one = exclusive().await;
    let mut app = TestApp::new().await;
    app.system_clock = true;
    app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let https = TlsProxy::start(server.port).await;
    let laptop = Browser::launch_dbsc(&https.spki_sha256).await;
    laptop.sign_in(&https.url(""), "alice", PASSWORD).await;
    let bound = eventually(Duration::from_secs(10), async || {
        session_row(&app)
            .await
            .is_some_and(|(_, dbsc_key)| dbsc_key.is_some())
    })
    .await;
    assert!(bound, "Chromium registered a key for the session");

    // Another browser changes the password: the laptop's session ends while its bound cookie
    // is still in its jar, or already gone; either way its next page must say why.
    let phone = Browser::launch().await;
    phone.sign_in(&server.base_url, "alice", PASSWORD).await;
    phone.goto(&server.url("/account/password")).await;
    phone.fill("current_password", PASSWORD).await;
    phone
        .fill("new_password", "violet tractor mango seventeen")
        .await;
    phone
        .fill("new_password_confirm", "violet tractor mango seventeen")
        .await;
    phone.submit("[data-testid=password-form]").await;
    assert!(phone.has_testid("password-changed").await);
    let expired = eventually(Duration::from_secs(15), async || {
        laptop.cookie("__Host-sid").await.is_none()
    })
    .await;
    assert!(expired, "the bound cookie expired in the laptop's browser");

    laptop.goto(&https.url("/account")).await;
    assert_eq!(
        laptop.path().await,
        "/login?reason=password_changed&next=%2Faccount"
    );
    assert!(
        laptop
            .text_of("login-reason")
            .await
            .contains("Your password was changed")
    );
    laptop.screenshot("dbsc-ended-elsewhere").await;
    phone.close().await;
    laptop.close().await;
}
