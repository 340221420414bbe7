//! Passkeys in real Chromium, through the WebDriver virtual authenticator that ChromeDriver
//! implements (a platform authenticator with resident keys and user verification): add one
//! after a confirmation, sign in with it from the sign-in page's button and from the username
//! field's autofill, confirm with it (which raises the session to `aal2` and resumes what
//! waited: a password change, a removal), remove it.

use std::time::Duration;

use fantoccini::Locator;
use fantoccini::wd::WebDriverCompatibleCommand;
use rocket::tokio::time::sleep;
use secure_sessions::users::Role;
use serde_json::json;
use url::Url;

use crate::harness::{Browser, exclusive, free_port};
use crate::support::{PASSWORD, TestApp};

/// `POST /session/{id}/webauthn/authenticator` (Web Authentication Level 2, "Add Virtual Authenticator").
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(&self, base_url: &Url, session_id: Option<&str>) -> Result<Url, url::ParseError> {
        let session = session_id.unwrap_or_default();
        base_url.join(&format!("session/{session}/webauthn/authenticator"))
    }

    fn method_and_body(&self, _: &Url) -> (http::Method, Option<String>) {
        let body = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
        });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// `POST /session/{id}/webauthn/authenticator/{authenticatorId}/uv` ("Set User Verified"): whether
/// the authenticator's next user verification succeeds.
#[derive(Debug)]
struct SetUserVerified {
    authenticator: String,
    verified: bool,
}

impl WebDriverCompatibleCommand for SetUserVerified {
    fn endpoint(&self, base_url: &Url, session_id: Option<&str>) -> Result<Url, url::ParseError> {
        let session = session_id.unwrap_or_default();
        let authenticator = &self.authenticator;
        base_url.join(&format!(
            "session/{session}/webauthn/authenticator/{authenticator}/uv"
        ))
    }

    fn method_and_body(&self, _: &Url) -> (http::Method, Option<String>) {
        let body = json!({ "isUserVerified": self.verified });
        (http::Method::POST, Some(body.to_string()))
    }
}

async fn set_user_verified(browser: &Browser, authenticator: &str, verified: bool) {
    browser
        .client
        .issue_cmd(SetUserVerified {
            authenticator: authenticator.to_owned(),
            verified,
        })
        .await
        .expect("set user verified");
}

/// Waits (a few seconds at most) for the page at `path`, where a script navigates once its
/// ceremony is done.
async fn wait_for_path(browser: &Browser, path: &str) {
    for _ in 0..200 {
        if browser.path().await == path {
            browser.wait_loaded().await;
            return;
        }
        sleep(Duration::from_millis(50)).await;
    }
    let said = browser
        .client
        .execute(
            "const e = document.querySelector('[data-passkey-error]'); return e ? e.textContent : '';",
            vec![],
        )
        .await
        .expect("js");
    panic!(
        "still at {} instead of {path}: {said}",
        browser.path().await
    );
}

async fn wait_for_count(browser: &Browser, testid: &str, count: usize) {
    for _ in 0..200 {
        if browser.count_testid(testid).await == count {
            return;
        }
        sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{testid}: {} instead of {count}",
        browser.count_testid(testid).await
    );
}

/// The assurance level the device list shows for this browser's own session.
async fn current_aal(browser: &Browser) -> String {
    browser
        .client
        .find(Locator::Css("[data-testid=session-row][data-current=true]"))
        .await
        .expect("this device's row")
        .attr("data-aal")
        .await
        .expect("attribute")
        .unwrap_or_default()
}

async fn confirm_from_account(browser: &Browser) {
    browser
        .click_and_wait(Locator::Css("[data-testid=passkey-confirm]"))
        .await;
    browser.fill("password", PASSWORD).await;
    browser.submit("[data-testid=confirm-form]").await;
    assert_eq!(browser.path().await, "/account");
}

/// Presses "Confirm with a passkey" (the virtual authenticator answers at once) and waits for
/// the page the confirmation goes back to.
async fn confirm_with_passkey(browser: &Browser, back_to: &str) {
    browser
        .client
        .find(Locator::Css("[data-testid=confirm-with-passkey]"))
        .await
        .expect("the passkey button")
        .click()
        .await
        .expect("click");
    wait_for_path(browser, back_to).await;
}

#[rocket::async_test]
async fn a_passkey_is_added_signs_in_by_button_and_autofill_at_aal2_and_is_removed() {
    let _one = exclusive().await;
    // A passkey's origin names a host, never an IP address: the app is reached as localhost.
    let port = free_port();
    let origin = format!("http://localhost:{port}");
    let app = TestApp::with(|figment| {
        figment
            .merge(("port", port))
            .merge(("sessions.passkey_origin", &origin))
    })
    .await;
    app.create_user("alice", Role::User).await;
    let _server = app.serve().await;
    let browser = Browser::launch().await;
    let authenticator = browser
        .client
        .issue_cmd(AddVirtualAuthenticator)
        .await
        .expect("a virtual authenticator");
    let authenticator = authenticator.as_str().expect("its id").to_owned();

    // Where the browser has WebAuthn, the sign-in page offers a passkey.
    browser.goto(&format!("{origin}/login")).await;
    assert!(browser.has_testid("passkey-sign-in").await);
    browser.screenshot("login-passkey").await;

    browser.sign_in(&origin, "alice", PASSWORD).await;
    assert_eq!(browser.path().await, "/account");
    assert!(
        !browser.has_testid("passkey-add").await,
        "asks for a confirmation first"
    );
    confirm_from_account(&browser).await;
    browser.fill("name", "This laptop").await;
    browser.screenshot("account-passkey-add").await;
    browser
        .client
        .find(Locator::Css("[data-testid=passkey-add]"))
        .await
        .expect("the add button")
        .click()
        .await
        .expect("click");
    wait_for_count(&browser, "passkey-row", 1).await;
    assert!(browser.text_of("passkey-row").await.contains("This laptop"));
    browser.screenshot("account-passkey").await;

    // Signed out, then in again with the button. The virtual authenticator answers the
    // username field's autofill request (conditional mediation) at once, so it refuses user
    // verification while the page loads: that request fails, quietly, and the button's gets it.
    set_user_verified(&browser, &authenticator, false).await;
    browser
        .click_and_wait(Locator::Css("[data-testid=logout]"))
        .await;
    assert!(browser.path().await.starts_with("/login?reason=signed_out"));
    set_user_verified(&browser, &authenticator, true).await;
    browser
        .client
        .find(Locator::Css("[data-testid=passkey-sign-in]"))
        .await
        .expect("the passkey button")
        .click()
        .await
        .expect("click");
    wait_for_path(&browser, "/account").await;
    assert_eq!(current_aal(&browser).await, "aal2");
    assert!(
        browser.text_of("passkey-row").await.contains("last used"),
        "the sign-in is recorded on the passkey"
    );

    // Signed out again: the username field's autofill offers the passkey, and the virtual
    // authenticator takes it without a click.
    browser
        .click_and_wait(Locator::Css("[data-testid=logout]"))
        .await;
    wait_for_path(&browser, "/account").await;
    assert_eq!(current_aal(&browser).await, "aal2");

    // Removing it asks for a confirmation again (this session has none yet), with the passkey:
    // the session signed in with one, and the password is not offered.
    browser
        .click_and_wait(Locator::Css("[data-testid=passkey-confirm]"))
        .await;
    assert!(browser.path().await.starts_with("/confirm"));
    assert!(!browser.has_testid("confirm-form").await);
    confirm_with_passkey(&browser, "/account").await;
    browser
        .click_and_wait(Locator::Css("[data-testid=passkey-remove]"))
        .await;
    assert_eq!(browser.path().await, "/account");
    assert_eq!(browser.count_testid("passkey-row").await, 0);
    browser.screenshot("account-passkey-removed").await;
    browser.close().await;
}

#[rocket::async_test]
async fn a_passkey_confirmation_raises_a_password_session_to_aal2_and_resumes_the_password_change()
{
    let _one = exclusive().await;
    let port = free_port();
    let origin = format!("http://localhost:{port}");
    // Sessions outlive the confirmation window, which the test lets lapse twice.
    let app = TestApp::with(|figment| {
        figment
            .merge(("port", port))
            .merge(("sessions.passkey_origin", &origin))
            .merge(("sessions.idle_timeout_secs", 3600))
            .merge(("sessions.absolute_timeout_secs", 7200))
    })
    .await;
    app.create_user("alice", Role::User).await;
    let _server = app.serve().await;
    let browser = Browser::launch().await;
    browser
        .client
        .issue_cmd(AddVirtualAuthenticator)
        .await
        .expect("a virtual authenticator");

    browser.sign_in(&origin, "alice", PASSWORD).await;
    confirm_from_account(&browser).await;
    browser.fill("name", "This laptop").await;
    browser
        .client
        .find(Locator::Css("[data-testid=passkey-add]"))
        .await
        .expect("the add button")
        .click()
        .await
        .expect("click");
    wait_for_count(&browser, "passkey-row", 1).await;
    assert_eq!(current_aal(&browser).await, "aal1");

    // Once the confirmation lapses, the confirmation page offers the passkey beside the password.
    app.advance_secs(i64::from(app.config().confirm_window_secs));
    browser.goto(&format!("{origin}/account")).await;
    browser
        .click_and_wait(Locator::Css("[data-testid=passkey-confirm]"))
        .await;
    assert!(browser.has_testid("confirm-form").await);
    assert!(browser.has_testid("confirm-with-passkey").await);
    browser.screenshot("confirm-passkey-option").await;
    confirm_with_passkey(&browser, "/account").await;
    // The password session is now aal2, on the device list.
    assert_eq!(current_aal(&browser).await, "aal2");

    // Lapsed again: the password change asks for the passkey (not the password), then resumes.
    app.advance_secs(i64::from(app.config().confirm_window_secs));
    browser.goto(&format!("{origin}/account/password")).await;
    assert_eq!(browser.path().await, "/confirm?next=%2Faccount%2Fpassword");
    assert!(!browser.has_testid("confirm-form").await);
    assert_eq!(
        browser.text_of("confirm-level").await,
        "Your password is not enough here: this session signed in or confirmed with a passkey, \
         so it confirms with one too."
    );
    browser.screenshot("confirm-passkey-only").await;
    confirm_with_passkey(&browser, "/account/password").await;
    assert!(
        browser.has_testid("password-confirmed").await,
        "the confirmation stands for the current password"
    );
    let new_password = "violet tractor mango seventeen";
    browser.fill("new_password", new_password).await;
    browser.fill("new_password_confirm", new_password).await;
    browser.submit("[data-testid=password-form]").await;
    assert!(browser.has_testid("password-changed").await);
    browser.close().await;
}
