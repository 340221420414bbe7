//! A sign-in right after failed guesses, from a new device and network, is the first thing the
//! owner sees in the activity, and its "This wasn't me" signs the guesser out.

use fantoccini::Locator;
use secure_sessions::users::Role;

use crate::harness::{Browser, exclusive};
use crate::support::{PASSWORD, TestApp};

const FIREFOX_WINDOWS: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0";

#[rocket::async_test]
async fn the_owner_sees_a_sign_in_after_failed_guesses_first_and_signs_the_guesser_out() {
    let _one = exclusive().await;
    // Every browser here is on loopback, one network: as behind a proxy, the app takes each
    // browser's address from X-Real-IP, so the owner is at home and the guesser elsewhere.
    let app = TestApp::with(|figment| {
        figment
            .merge(("ip_header", "X-Real-IP"))
            .merge(("sessions.idle_timeout_secs", 300))
    })
    .await;
    app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let owner = Browser::launch().await;
    owner.send_header("X-Real-IP", "198.51.100.7").await;
    owner.sign_in(&server.base_url, "alice", PASSWORD).await;

    let guesser = Browser::launch_as(FIREFOX_WINDOWS).await;
    guesser.send_header("X-Real-IP", "203.0.113.66").await;
    for guess in ["password123", "alice-2024", "letmein-now"] {
        guesser.sign_in(&server.base_url, "alice", guess).await;
        assert!(guesser.has_testid("login-error").await);
    }
    guesser.sign_in(&server.base_url, "alice", PASSWORD).await;
    assert_eq!(guesser.path().await, "/account");

    owner.goto(&server.url("/account")).await;
    let first = owner.by_testid("security-event").await;
    assert_eq!(
        first
            .attr("data-flagged")
            .await
            .expect("attribute")
            .as_deref(),
        Some("true")
    );
    let text = first.text().await.expect("text");
    assert!(
        text.contains(
            "Signed in from a new device and a new network right after failed sign-in attempts"
        ),
        "{text}"
    );
    assert!(text.contains("Firefox on Windows"), "{text}");
    owner.screenshot("activity-suspicious-sign-in-first").await;

    // Its "This wasn't me": the password again, then every other device signed out.
    owner
        .click_and_wait(Locator::Css(
            "[data-testid=security-event]:first-child [data-testid=not-me]",
        ))
        .await;
    owner.fill("password", PASSWORD).await;
    owner.submit("[data-testid=confirm-form]").await;
    owner.submit("form[action='/account/not-me']").await;
    assert_eq!(owner.path().await, "/account/password");

    guesser
        .click_and_wait(Locator::Css("nav a[href='/account']"))
        .await;
    assert_eq!(
        guesser.path().await,
        "/login?reason=revoked&next=%2Faccount"
    );
    owner.close().await;
    guesser.close().await;
}
