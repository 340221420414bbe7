//! Two browsers, two devices: signing one out from the other, and a password change.

use std::time::Duration;

use fantoccini::Locator;
use rocket::tokio::time::sleep;
use secure_sessions::users::Role;

use crate::harness::{Browser, exclusive};
use crate::support::{PASSWORD, TestApp};

const NEW_PASSWORD: &str = "violet tractor mango seventeen";

async fn confirm_password(browser: &Browser) {
    assert!(
        browser.path().await.starts_with("/confirm"),
        "{}",
        browser.path().await
    );
    browser.fill("password", PASSWORD).await;
    browser.submit("[data-testid=confirm-form]").await;
}

#[rocket::async_test]
async fn signing_the_other_browser_out_shows_it_the_revoked_message() {
    let _one = exclusive().await;
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let a = Browser::launch().await;
    let b = Browser::launch().await;
    a.sign_in(&server.base_url, "alice", PASSWORD).await;
    b.sign_in(&server.base_url, "alice", PASSWORD).await;

    a.goto(&server.url("/account")).await;
    assert_eq!(a.count_testid("session-row").await, 2);
    a.screenshot("account-two-devices").await;
    a.click_and_wait(Locator::Css("[data-testid=revoke-session]"))
        .await;
    confirm_password(&a).await;
    // The confirmation carries out the sign-out it was asked for, once, and says so.
    assert_eq!(a.path().await, "/account");
    assert_eq!(a.text_of("notice").await, "Signed out 1 device.");
    assert!(
        !a.has_testid("revoke-session").await,
        "only this device is left"
    );
    a.screenshot("account-after-revoke").await;

    // B's next click lands on the sign-in page with the reason.
    b.click_and_wait(Locator::Css("nav a[href='/account']"))
        .await;
    assert_eq!(b.path().await, "/login?reason=revoked&next=%2Faccount");
    assert_eq!(
        b.text_of("login-reason").await,
        "This device was signed out from another device or by an administrator. \
             If this wasn’t you, change your password after signing in."
    );
    b.screenshot("revoked").await;
    a.close().await;
    b.close().await;
}

#[rocket::async_test]
async fn a_password_change_on_one_browser_signs_the_other_out_and_keeps_this_one_with_a_new_cookie()
{
    let _one = exclusive().await;
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let a = Browser::launch().await;
    let b = Browser::launch().await;
    a.sign_in(&server.base_url, "alice", PASSWORD).await;
    b.sign_in(&server.base_url, "alice", PASSWORD).await;
    let before = a.cookie("__Host-sid").await.unwrap().value().to_owned();

    a.click_and_wait(Locator::Css("[data-testid=change-password]"))
        .await;
    a.fill("current_password", PASSWORD).await;
    a.fill("new_password", NEW_PASSWORD).await;
    a.fill("new_password_confirm", NEW_PASSWORD).await;
    a.submit("[data-testid=password-form]").await;
    assert!(
        a.text_of("password-changed")
            .await
            .contains("1 other device was signed out")
    );
    a.screenshot("password-changed").await;
    let after = a.cookie("__Host-sid").await.unwrap().value().to_owned();
    assert_ne!(before, after, "A holds a new cookie value");

    a.goto(&server.url("/account")).await;
    assert_eq!(
        a.text_of("account-username").await,
        "alice",
        "A stays signed in"
    );
    b.goto(&server.url("/account")).await;
    assert_eq!(
        b.path().await,
        "/login?reason=password_changed&next=%2Faccount"
    );
    assert!(
        b.text_of("login-reason")
            .await
            .contains("Your password was changed")
    );
    a.close().await;
    b.close().await;
}

#[rocket::async_test]
async fn an_admin_disables_an_account_and_its_open_browser_is_signed_out() {
    let _one = exclusive().await;
    // Sessions that outlive a confirmation, so that it can lapse while /admin is open.
    let app = TestApp::with(|f| {
        f.merge(("sessions.idle_timeout_secs", 3600))
            .merge(("sessions.absolute_timeout_secs", 7200))
    })
    .await;
    app.create_user("root", Role::Admin).await;
    app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let admin = Browser::launch().await;
    let alice = Browser::launch().await;
    alice.sign_in(&server.base_url, "alice", PASSWORD).await;
    admin.sign_in(&server.base_url, "root", PASSWORD).await;

    admin
        .click_and_wait(Locator::Css("nav a[href='/admin']"))
        .await;
    confirm_password(&admin).await;
    assert_eq!(admin.path().await, "/admin");
    assert_eq!(admin.count_testid("admin-user-row").await, 2);
    admin.screenshot("admin").await;
    admin
        .click_and_wait(Locator::Css(
            "tr[data-username=alice] [data-testid=admin-disable]",
        ))
        .await;
    // "Disable" asks first, then says what it did.
    admin.screenshot("admin-disable").await;
    admin
        .click_and_wait(Locator::Css("[data-testid=admin-disable-confirm]"))
        .await;
    assert_eq!(admin.path().await, "/admin");
    assert_eq!(
        admin.text_of("notice").await,
        "Disabled alice: signed out of 1 device; signing in is refused until enabled."
    );
    assert!(
        admin.has_testid("admin-enable").await,
        "alice is now disabled"
    );

    alice.goto(&server.url("/account")).await;
    assert_eq!(alice.path().await, "/login?reason=revoked&next=%2Faccount");

    // "Enable" clicked after the confirmation lapsed: the password first, then it is done, once.
    app.advance_secs(i64::from(app.config().confirm_window_secs));
    admin
        .click_and_wait(Locator::Css(
            "tr[data-username=alice] [data-testid=admin-enable]",
        ))
        .await;
    assert_eq!(admin.path().await, "/confirm?next=%2Fadmin");
    assert!(
        admin
            .text_of("confirm-action")
            .await
            .contains("To enable alice, enter your password again.")
    );
    admin.screenshot("confirm-admin-action").await;
    confirm_password(&admin).await;
    assert_eq!(admin.path().await, "/admin");
    assert_eq!(
        admin.text_of("notice").await,
        "Enabled alice: they can sign in again."
    );
    assert!(admin.has_testid("admin-disable").await, "alice is active");
    admin.screenshot("admin-enabled").await;
    alice.sign_in(&server.base_url, "alice", PASSWORD).await;
    assert_eq!(alice.path().await, "/account");
    alice.close().await;
    admin.close().await;
}

/// Chromium keeps a page it leaves in its back/forward cache, `Cache-Control: no-store` or not,
/// and shows it again on Back without asking the server while this browser's cookies are
/// unchanged, which a sign-out from another device does not change.
#[rocket::async_test]
async fn back_after_a_sign_out_from_another_device_shows_no_account_data() {
    let _one = exclusive().await;
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let a = Browser::launch().await;
    let b = Browser::launch().await;
    a.sign_in(&server.base_url, "alice", PASSWORD).await;
    b.sign_in(&server.base_url, "alice", PASSWORD).await;
    assert_eq!(b.path().await, "/account");
    assert_eq!(b.text_of("account-username").await, "alice");

    // B leaves for another site (another host is another site).
    let elsewhere = server.url("/healthz").replace("127.0.0.1", "localhost");
    b.goto(&elsewhere).await;
    // A signs B out.
    a.goto(&server.url("/account")).await;
    a.click_and_wait(Locator::Css("[data-testid=revoke-session]"))
        .await;
    confirm_password(&a).await;
    assert_eq!(a.text_of("notice").await, "Signed out 1 device.");

    // B presses Back: the sign-in page with the reason, and none of the account page.
    b.client.back().await.expect("back");
    let mut path = b.path().await;
    for _ in 0..100 {
        if path.starts_with("/login") {
            break;
        }
        sleep(Duration::from_millis(50)).await;
        path = b.path().await;
    }
    b.wait_loaded().await;
    assert_eq!(path, "/login?reason=revoked&next=%2Faccount");
    assert!(!b.has_testid("account-username").await);
    assert!(!b.has_testid("session-row").await);
    assert_eq!(
        b.text_of("login-reason").await,
        "This device was signed out from another device or by an administrator. \
             If this wasn’t you, change your password after signing in."
    );
    a.close().await;
    b.close().await;
}
