//! Register, sign in, the account page and sign out, as a person does them in Chromium.

use fantoccini::Locator;
use rocket::http::SameSite;
use secure_sessions::users::Role;

use crate::harness::{Browser, exclusive};
use crate::support::{PASSWORD, TestApp};

#[rocket::async_test]
async fn a_person_registers_signs_out_signs_in_and_signs_out_again() {
    let _one = exclusive().await;
    let app = TestApp::new().await;
    let server = app.serve().await;
    let browser = Browser::launch().await;

    browser.goto(&server.url("/")).await;
    assert_eq!(browser.path().await, "/login");
    browser.screenshot("login").await;

    browser.goto(&server.url("/register")).await;
    browser.fill("username", "carol").await;
    browser.fill("password", "password").await;
    browser.fill("password_confirm", "password").await;
    browser.submit("[data-testid=register-form]").await;
    assert!(
        browser
            .text_of("register-error")
            .await
            .contains("too easy to guess")
    );
    browser.screenshot("register-weak-password").await;

    let password = "violet tractor mango seventeen";
    browser.fill("password", password).await;
    browser.fill("password_confirm", password).await;
    browser.submit("[data-testid=register-form]").await;
    assert_eq!(browser.path().await, "/account");
    assert_eq!(browser.text_of("account-username").await, "carol");
    browser.screenshot("account").await;

    browser
        .click_and_wait(Locator::Css("[data-testid=logout]"))
        .await;
    assert_eq!(browser.path().await, "/login?reason=signed_out");
    assert_eq!(
        browser.text_of("login-reason").await,
        "You have been signed out."
    );
    browser.screenshot("signed-out").await;

    browser.sign_in(&server.base_url, "carol", password).await;
    assert_eq!(browser.path().await, "/account");
    browser
        .click_and_wait(Locator::Css("[data-testid=logout]"))
        .await;
    assert!(
        browser.cookie("__Host-sid").await.is_none(),
        "the session cookie is gone"
    );
    browser.close().await;
}

#[rocket::async_test]
async fn the_browser_stores_the_session_cookie_host_only_secure_http_only_and_lax() {
    let _one = exclusive().await;
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let browser = Browser::launch().await;
    browser.sign_in(&server.base_url, "alice", PASSWORD).await;
    assert_eq!(browser.path().await, "/account");

    let cookie = browser
        .cookie("__Host-sid")
        .await
        .expect("the browser kept the session cookie");
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.same_site(), Some(SameSite::Lax));
    assert_eq!(cookie.path(), Some("/"));
    // Scripts cannot read it.
    let visible = browser
        .client
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert!(
        !visible.as_str().unwrap_or_default().contains("__Host-sid"),
        "{visible}"
    );
    browser.close().await;
}

#[rocket::async_test]
async fn back_after_sign_out_shows_no_account_data_and_the_old_cookie_is_refused() {
    let _one = exclusive().await;
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let browser = Browser::launch().await;
    browser.sign_in(&server.base_url, "alice", PASSWORD).await;
    let old_token = browser
        .cookie("__Host-sid")
        .await
        .expect("signed in")
        .value()
        .to_owned();
    browser
        .click_and_wait(Locator::Css("[data-testid=logout]"))
        .await;

    browser.client.back().await.expect("back");
    browser.wait_loaded().await;
    assert!(
        !browser.has_testid("account-username").await,
        "Back must not show account data"
    );
    assert!(
        browser.path().await.starts_with("/login"),
        "{}",
        browser.path().await
    );
    browser.screenshot("back-after-sign-out").await;

    // Another browser replays the old cookie value: refused, with the reason.
    let replay = Browser::launch().await;
    replay.goto(&server.url("/login")).await;
    let mut cookie = fantoccini::cookies::Cookie::new("__Host-sid", old_token);
    cookie.set_path("/");
    cookie.set_domain("127.0.0.1");
    cookie.set_same_site(Some(SameSite::Lax));
    cookie.set_secure(true);
    cookie.set_http_only(true);
    replay
        .client
        .add_cookie(cookie)
        .await
        .expect("plant the cookie");
    replay.goto(&server.url("/account")).await;
    assert_eq!(
        replay.path().await,
        "/login?reason=signed_out&next=%2Faccount"
    );
    assert!(!replay.has_testid("account-username").await);
    replay.close().await;
    browser.close().await;
}

#[rocket::async_test]
async fn a_protected_page_sends_a_visitor_to_sign_in_and_back() {
    let _one = exclusive().await;
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let browser = Browser::launch().await;
    browser.goto(&server.url("/account")).await;
    assert_eq!(
        browser.path().await,
        "/login?reason=login_required&next=%2Faccount"
    );
    assert_eq!(
        browser.text_of("login-reason").await,
        "Please sign in to continue."
    );
    browser.fill("username", "alice").await;
    browser.fill("password", PASSWORD).await;
    browser.submit("[data-testid=login-form]").await;
    assert_eq!(browser.path().await, "/account");
    browser.close().await;
}
