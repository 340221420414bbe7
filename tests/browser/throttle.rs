//! Sign-in throttling as a person sees it: after repeated wrong passwords the form says how long
//! to wait, and the right password is refused until then.

use secure_sessions::users::Role;

use crate::harness::{Browser, exclusive};
use crate::support::server::Server;
use crate::support::{PASSWORD, TestApp};

/// Signs in from `/login?next=/account`: a refused attempt answers at `/login`, a new address,
/// so the harness sees the navigation at once instead of waiting out its timeout.
async fn try_to_sign_in(browser: &Browser, server: &Server, password: &str) {
    browser.goto(&server.url("/login?next=%2Faccount")).await;
    browser.fill("username", "alice").await;
    browser.fill("password", password).await;
    browser.submit("[data-testid=login-form]").await;
}

#[rocket::async_test]
async fn after_five_wrong_passwords_the_login_page_says_how_long_to_wait() {
    let _one = exclusive().await;
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let browser = Browser::launch().await;
    for _ in 0..5 {
        try_to_sign_in(&browser, &server, "not the password at all").await;
        assert_eq!(
            browser.text_of("login-error").await,
            "Incorrect username or password."
        );
    }

    try_to_sign_in(&browser, &server, PASSWORD).await;
    assert_eq!(browser.path().await, "/login", "not signed in");
    assert_eq!(
        browser.text_of("login-error").await,
        "Too many failed sign-in attempts. Please wait 1 minute and try again."
    );
    assert!(
        browser.has_testid("login-form").await,
        "the form stays, to try again later"
    );
    assert!(browser.cookie("__Host-sid").await.is_none());
    // The wait is said where the person is: the focused password field is described by it.
    let field = browser.focus_on("#password").await;
    assert!(
        field.description.starts_with(
            "Too many failed sign-in attempts. Please wait 1 minute and try again. \
             You can try again from "
        ),
        "{field:?}"
    );
    browser.screenshot("login-throttled").await;

    // Once the wait is over, the right password works.
    app.advance_secs(60);
    try_to_sign_in(&browser, &server, PASSWORD).await;
    assert_eq!(browser.path().await, "/account");
    browser.close().await;
}
