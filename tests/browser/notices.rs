//! What happened, heard and seen (issue 30): after an action the focus is on the notice that
//! says what it did, the title says the state, a reason to sign in again is read out first and
//! looks as serious as it is, and a worried person secures the account typing the password
//! three times, not four. Every `screenshot` also runs axe-core at desktop and phone width.

use fantoccini::key::Key;
use secure_sessions::users::Role;

use crate::harness::{Browser, exclusive};
use crate::support::{PASSWORD, TestApp};

const NEW_PASSWORD: &str = "violet tractor mango seventeen";

/// The computed background colour of the element at `css`.
async fn background_of(browser: &Browser, css: &str) -> String {
    browser
        .client
        .execute(
            "return getComputedStyle(document.querySelector(arguments[0])).backgroundColor",
            vec![serde_json::json!(css)],
        )
        .await
        .expect("js")
        .as_str()
        .expect("a colour")
        .to_owned()
}

#[rocket::async_test]
async fn a_worried_person_secures_the_account_typing_the_password_three_times_and_hears_each_step()
{
    let _one = exclusive().await;
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let laptop = Browser::launch().await;
    let intruder = Browser::launch().await;
    laptop.sign_in(&server.base_url, "alice", PASSWORD).await;
    intruder.sign_in(&server.base_url, "alice", PASSWORD).await;

    // "This wasn't me" on the intruder's sign-in: the confirmation says what it is for, and the
    // password field, which has the focus, is described by it.
    laptop.goto(&server.url("/account")).await;
    laptop.tab_to("[data-testid=not-me]").await;
    laptop.press_enter_and_wait().await;
    assert_eq!(laptop.path().await, "/confirm?next=%2Faccount%2Fnot-me");
    let field = laptop.focus_on("#password").await;
    assert!(
        field.description.starts_with(
            "To secure your account: sign out every other device, then choose a new password, \
             enter your password again. You won't be asked again for "
        ),
        "{field:?}"
    );
    laptop.screenshot("confirm-not-me").await;
    laptop.type_text(PASSWORD).await; // once
    laptop.press_enter_and_wait().await;
    assert_eq!(laptop.path().await, "/account/not-me");
    laptop.tab_to("[data-testid=secure-account]").await;
    laptop.press_enter_and_wait().await;

    // The password change: the notice has the focus and is an alert; the current password,
    // confirmed a moment ago, is not asked for again.
    assert_eq!(laptop.path().await, "/account/password");
    assert_eq!(
        laptop.title().await,
        "Change your password · secure-sessions"
    );
    let notice = laptop.focus_on("[data-testid=notice]").await;
    assert_eq!(notice.role, "alert");
    assert_eq!(
        notice.text,
        "Signed out 1 other device of your account. Now choose a new password."
    );
    assert_eq!(
        laptop
            .client
            .find_all(fantoccini::Locator::Css("#current_password"))
            .await
            .expect("find")
            .len(),
        0
    );
    laptop.screenshot("password-after-not-me").await;
    laptop.tab_to("#new_password").await;
    let field = laptop.focus_on("#new_password").await;
    assert!(
        field.description.starts_with("At least 8 characters"),
        "the rules are read before typing: {field:?}"
    );
    laptop.type_text(NEW_PASSWORD).await; // twice
    laptop.press(Key::Tab).await;
    laptop.focus_on("#new_password_confirm").await;
    laptop.type_text(NEW_PASSWORD).await; // three times
    laptop.press_enter_and_wait().await;

    assert_eq!(laptop.title().await, "Password changed · secure-sessions");
    let done = laptop.focus_on("[data-testid=password-changed]").await;
    assert_eq!(done.role, "alert");
    assert_eq!(
        done.text,
        "Your password was changed. No other device was signed in. This device stays signed in."
    );
    laptop.screenshot("password-changed-after-not-me").await;

    // The intruder's copy is signed out, and told so as a warning, first, with a link to
    // change the password.
    intruder.goto(&server.url("/account")).await;
    assert_eq!(
        intruder.path().await,
        "/login?reason=revoked&next=%2Faccount"
    );
    assert_eq!(
        intruder.title().await,
        "Signed out from another device – Sign in · secure-sessions"
    );
    let banner = intruder.focus_on("[data-testid=login-reason-banner]").await;
    assert_eq!(banner.role, "alert");
    assert!(
        banner
            .text
            .starts_with("Warning: This device was signed out"),
        "{banner:?}"
    );
    intruder.screenshot("login-revoked-warning").await;
    laptop.close().await;
    intruder.close().await;
}

#[rocket::async_test]
async fn the_password_form_says_every_problem_in_one_round_at_the_first_field() {
    let _one = exclusive().await;
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let browser = Browser::launch().await;
    browser.sign_in(&server.base_url, "alice", PASSWORD).await;

    browser.goto(&server.url("/account/password")).await;
    browser.focus_on("#current_password").await;
    browser.screenshot("password-form").await;
    browser.press_enter_and_wait().await;
    assert_eq!(
        browser.title().await,
        "Error: Change your password · secure-sessions"
    );
    let field = browser.focus_on("#current_password").await;
    assert_eq!(field.description, "Enter your current password.");
    let summary = browser.text_of("password-error").await;
    for said in [
        "Enter your current password.",
        "Enter a new password.",
        "Enter the new password again.",
        "type your current password, the new password and its confirmation again",
    ] {
        assert!(summary.contains(said), "{said:?} in {summary:?}");
    }
    browser.screenshot("password-every-error").await;
    browser.close().await;
}

#[rocket::async_test]
async fn a_reason_to_sign_in_again_is_said_first_and_looks_as_serious_as_it_is() {
    let _one = exclusive().await;
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let browser = Browser::launch().await;

    // Signed out by choice: said first, plainly, in the title too.
    browser.goto(&server.url("/login?reason=signed_out")).await;
    assert_eq!(
        browser.title().await,
        "Signed out – Sign in · secure-sessions"
    );
    let banner = browser.focus_on("[data-testid=login-reason-banner]").await;
    assert_eq!(
        (banner.role.as_str(), banner.text.as_str()),
        ("alert", "You have been signed out.")
    );
    let done = background_of(&browser, "[data-testid=login-reason-banner]").await;
    browser.screenshot("login-signed-out").await;

    // Someone else may have a copy: a warning, marked as one, with a link to act on it.
    browser
        .goto(&server.url("/login?reason=network_alternation"))
        .await;
    assert_eq!(
        browser.title().await,
        "Signed out: used from two networks – Sign in · secure-sessions"
    );
    let banner = browser.focus_on("[data-testid=login-reason-banner]").await;
    assert!(
        banner
            .text
            .starts_with("Warning: You were signed out because this session"),
        "{banner:?}"
    );
    assert_ne!(
        background_of(&browser, "[data-testid=login-reason-banner]").await,
        done,
        "a warning does not look like news"
    );
    browser.screenshot("login-network-alternation").await;

    // "change your password" leads there, through signing in.
    browser
        .tab_to("[data-testid=login-reason-change-password]")
        .await;
    browser.press_enter_and_wait().await;
    assert_eq!(
        browser.path().await,
        "/login?reason=login_required&next=%2Faccount%2Fpassword"
    );
    browser.focus_on("[data-testid=login-reason-banner]").await;
    browser.tab_to("#username").await;
    browser.type_text("alice").await;
    browser.press(Key::Tab).await;
    browser.type_text(PASSWORD).await;
    browser.press_enter_and_wait().await;
    assert_eq!(browser.path().await, "/account/password");
    browser.close().await;
}

#[rocket::async_test]
async fn an_admin_hears_what_signing_out_everywhere_else_did_and_that_this_device_stays() {
    let _one = exclusive().await;
    let app = TestApp::new().await;
    app.create_user("root", Role::Admin).await;
    let server = app.serve().await;
    let admin = Browser::launch().await;
    let phone = Browser::launch().await;
    admin.sign_in(&server.base_url, "root", PASSWORD).await;
    phone.sign_in(&server.base_url, "root", PASSWORD).await;

    admin.goto(&server.url("/admin")).await;
    let field = admin.focus_on("#password").await;
    assert!(
        field
            .description
            .starts_with("To open the administration page, enter"),
        "{field:?}"
    );
    admin.type_text(PASSWORD).await;
    admin.press_enter_and_wait().await;
    assert_eq!(admin.path().await, "/admin");
    assert_eq!(
        admin.title().await,
        "Administration: accounts · secure-sessions"
    );
    admin.tab_to("[data-testid=admin-revoke-sessions]").await;
    let button = admin.focus_on("[data-testid=admin-revoke-sessions]").await;
    assert_eq!(
        button.text,
        "Sign out everywhere else: your other devices; this device stays signed in"
    );
    admin.press_enter_and_wait().await;
    let notice = admin.focus_on("[data-testid=notice]").await;
    assert_eq!(
        (notice.role.as_str(), notice.text.as_str()),
        (
            "alert",
            "Signed you out of 1 other device. This device stays signed in."
        )
    );
    admin.screenshot("admin-signed-out-everywhere-else").await;
    admin.close().await;
    phone.close().await;
}
