//! The pages as a person meets them: with the keyboard alone, with a screen reader's view of
//! errors and the idle warning, and at phone width. Every `screenshot` also runs axe-core and
//! checks that nothing scrolls sideways, at desktop and at phone width (see harness.rs).

use std::time::Duration;

use fantoccini::Locator;
use rocket::tokio::time::sleep;
use secure_sessions::users::Role;
use serde_json::json;

use crate::harness::{Browser, exclusive};
use crate::support::{PASSWORD, TestApp};

/// What the page says about the focused field: its `aria-invalid`, and the text of the
/// elements its `aria-describedby` names.
async fn focused_field(browser: &Browser) -> (String, Option<String>, String) {
    let found = browser
        .client
        .execute(
            "const field = document.activeElement;
             const described = (field.getAttribute('aria-describedby') || '').split(' ')
               .map((id) => document.getElementById(id)).filter((e) => e !== null)
               .map((e) => e.textContent.trim()).join(' ');
             return [field.id, field.getAttribute('aria-invalid'), described];",
            vec![],
        )
        .await
        .expect("js");
    serde_json::from_value(found).expect("id, aria-invalid, description")
}

async fn value_of(browser: &Browser, css: &str) -> String {
    browser
        .client
        .find(Locator::Css(css))
        .await
        .expect(css)
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default()
}

/// The contrast ratio (WCAG) of the colour `property` of the element at `css` against the
/// background it sits on (the white of a card).
async fn contrast_on_white(browser: &Browser, css: &str, property: &str) -> f64 {
    let ratio = browser
        .client
        .execute(
            "const [r, g, b] = getComputedStyle(document.querySelector(arguments[0]))
               .getPropertyValue(arguments[1]).match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number);
             const linear = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
             const luminance = 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
             return 1.05 / (luminance + 0.05);",
            vec![json!(css), json!(property)],
        )
        .await
        .expect("js");
    ratio.as_f64().expect("a ratio")
}

/// The rendered height of the element at `css`, in CSS pixels.
async fn height_of(browser: &Browser, css: &str) -> f64 {
    browser
        .client
        .execute(
            "return document.querySelector(arguments[0]).getBoundingClientRect().height",
            vec![json!(css)],
        )
        .await
        .expect("js")
        .as_f64()
        .expect("a height")
}

#[rocket::async_test]
async fn a_keyboard_user_signs_the_other_devices_out_through_the_confirmation_and_is_told_how_many()
{
    let _one = exclusive().await;
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let laptop = Browser::launch().await;
    let other = Browser::launch().await;

    // A wrong password: the error sits at the password field, which takes the focus; the
    // username typed stays, the password does not.
    laptop.goto(&server.url("/login")).await;
    assert!(laptop.autofocused("#username").await);
    laptop.type_text("alice").await;
    laptop.press(fantoccini::key::Key::Tab).await;
    laptop.type_text("not the password").await;
    laptop.press_enter_and_wait().await;
    assert!(
        laptop.title().await.starts_with("Error: "),
        "{}",
        laptop.title().await
    );
    assert_eq!(
        focused_field(&laptop).await,
        (
            "password".to_owned(),
            Some("true".to_owned()),
            "Incorrect username or password.".to_owned()
        )
    );
    assert_eq!(value_of(&laptop, "#username").await, "alice");
    assert_eq!(value_of(&laptop, "#password").await, "");
    laptop.screenshot("login-wrong-password").await;
    laptop.type_text(PASSWORD).await;
    laptop.press_enter_and_wait().await;
    assert_eq!(laptop.path().await, "/account");

    // Two more devices: the other browser signs in twice, forgetting its cookie in between.
    other.sign_in(&server.base_url, "alice", PASSWORD).await;
    other.client.delete_all_cookies().await.expect("forget");
    other.sign_in(&server.base_url, "alice", PASSWORD).await;

    laptop.goto(&server.url("/account")).await;
    assert_eq!(laptop.count_testid("session-row").await, 3);
    laptop.screenshot("account-three-devices").await;
    assert!(
        contrast_on_white(&laptop, "[data-testid=revoke-session]", "border-top-color").await >= 3.0,
        "a secondary button's border reaches 3:1"
    );
    laptop.tab_to("[data-testid=revoke-others]").await;
    laptop.press_enter_and_wait().await;
    assert_eq!(laptop.path().await, "/confirm?next=%2Faccount");
    assert!(
        laptop
            .text_of("confirm-action")
            .await
            .starts_with("To sign out all your other devices, enter your password again."),
        "/confirm names the action"
    );
    assert!(
        laptop.autofocused("#password").await,
        "the password field has the focus"
    );
    laptop.screenshot("confirm-action").await;

    laptop.type_text("still not the password").await;
    laptop.press_enter_and_wait().await;
    assert!(laptop.title().await.starts_with("Error: "));
    let (field, invalid, description) = focused_field(&laptop).await;
    assert_eq!(
        (field.as_str(), invalid.as_deref()),
        ("password", Some("true"))
    );
    assert!(
        description.starts_with(
            "That password is not correct. To sign out all your other devices, enter your \
             password again."
        ),
        "the error, then what the password is for: {description}"
    );
    assert!(
        laptop.has_testid("confirm-action").await,
        "the action is still named"
    );
    laptop.screenshot("confirm-wrong-password").await;

    laptop.type_text(PASSWORD).await;
    laptop.press_enter_and_wait().await;
    assert_eq!(laptop.path().await, "/account");
    assert_eq!(laptop.text_of("notice").await, "Signed out 2 devices.");
    assert_eq!(laptop.count_testid("session-row").await, 1);
    laptop.screenshot("account-signed-out-others").await;
    laptop.goto(&server.url("/account")).await;
    assert!(!laptop.has_testid("notice").await, "said once");

    other.goto(&server.url("/account")).await;
    assert_eq!(other.path().await, "/login?reason=revoked&next=%2Faccount");
    laptop.close().await;
    other.close().await;
}

/// Polls (up to `seconds`) until `script` returns true.
async fn wait_until(browser: &Browser, script: &str, seconds: u64) {
    for _ in 0..seconds * 10 {
        if browser.client.execute(script, vec![]).await.expect("js") == json!(true) {
            return;
        }
        sleep(Duration::from_millis(100)).await;
    }
    panic!("not true after {seconds} s: {script}");
}

const DIALOG_OPEN: &str = "return document.querySelector('[data-testid=idle-warning]').open";
const DIALOG_CLOSED: &str = "return !document.querySelector('[data-testid=idle-warning]').open";

/// Presses Shift+Tab where the focus is (WebDriver holds a modifier until the keys sent end).
async fn shift_tab(browser: &Browser) {
    let keys = format!(
        "{}{}",
        char::from(fantoccini::key::Key::Shift),
        char::from(fantoccini::key::Key::Tab)
    );
    browser.type_text(&keys).await;
}

#[rocket::async_test]
async fn the_idle_warning_is_a_modal_dialog_that_keeps_the_focus_and_escape_stays_signed_in() {
    let _one = exclusive().await;
    let mut app = TestApp::with(|f| {
        f.merge(("sessions.idle_timeout_secs", 26))
            .merge(("sessions.idle_warning_secs", 20))
            .merge(("sessions.touch_interval_secs", 1))
    })
    .await;
    app.system_clock = true;
    app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let browser = Browser::launch().await;
    browser.sign_in(&server.base_url, "alice", PASSWORD).await;
    browser.goto(&server.url("/account")).await;
    let title = browser.title().await;
    browser.tab_to("[data-testid=change-password]").await;

    // 26 s idle timeout, warning in the last 20 s: it opens after about 6 s.
    wait_until(&browser, DIALOG_OPEN, 12).await;
    let stay = browser.focus_on("[data-testid=stay-signed-in]").await;
    assert_eq!(
        stay.text, "Stay signed in",
        "the focus moves into the dialog"
    );
    let state = browser
        .client
        .execute(
            "const dialog = document.querySelector('[data-testid=idle-warning]');
             const named = (attribute) => dialog.getAttribute(attribute).split(' ')
               .map((id) => document.getElementById(id).textContent.replace(/\\s+/g, ' ').trim()).join(' ');
             const countdown = dialog.querySelector('[data-idle-countdown]');
             const box = dialog.getBoundingClientRect();
             return [dialog.matches(':modal'), named('aria-labelledby'), named('aria-describedby'),
                     countdown.closest('[aria-live], [role=alert], [role=status]') === null,
                     dialog.querySelector('[data-idle-announcement]').textContent,
                     dialog.querySelector('[data-idle-announcement]').getAttribute('role'),
                     box.height / window.innerHeight];",
            vec![],
        )
        .await
        .expect("js");
    let (modal, name, description, quiet, announced, live, share): (
        bool,
        String,
        String,
        bool,
        String,
        String,
        f64,
    ) = serde_json::from_value(state).expect("the dialog's state");
    assert!(modal, "a modal dialog: the page behind it is inert");
    assert_eq!(name, "You’re about to be signed out");
    assert!(
        description.starts_with("For your security, you will be signed out in ")
            && description.ends_with(" seconds."),
        "{description}"
    );
    assert!(quiet, "the countdown is not read out at every tick");
    assert_eq!(
        announced, "",
        "its opening is announced by the dialog itself"
    );
    assert_eq!(live, "status");
    assert!(share < 0.34, "the dialog covers {share} of the height");
    assert_eq!(browser.title().await, title, "the page keeps its title");

    // Tab and Shift+Tab go round its two buttons and never leave it.
    browser.press(fantoccini::key::Key::Tab).await;
    assert!(browser.focus_matches("[data-testid=idle-sign-out]").await);
    browser.press(fantoccini::key::Key::Tab).await;
    assert!(browser.focus_matches("[data-testid=stay-signed-in]").await);
    shift_tab(&browser).await;
    assert!(browser.focus_matches("[data-testid=idle-sign-out]").await);
    shift_tab(&browser).await;
    assert!(browser.focus_matches("[data-testid=stay-signed-in]").await);

    // A third of a small phone's screen at most (a viewport of 320 by 568), axe-clean at both
    // widths.
    browser
        .client
        .set_window_size(320, 568)
        .await
        .expect("resize the window");
    let chrome = browser
        .client
        .execute("return window.outerHeight - window.innerHeight", vec![])
        .await
        .expect("js")
        .as_u64()
        .expect("a number");
    browser
        .client
        .set_window_size(320, 568 + u32::try_from(chrome).expect("a small number"))
        .await
        .expect("resize the window");
    let found = browser
        .client
        .execute(
            "return [window.innerWidth, window.innerHeight,
                     document.querySelector('[data-testid=idle-warning]').getBoundingClientRect().height]",
            vec![],
        )
        .await
        .expect("js");
    let (width, height, dialog): (f64, f64, f64) =
        serde_json::from_value(found).expect("the viewport and the dialog's height");
    assert_eq!((width, height), (320.0, 568.0));
    assert!(
        dialog <= height / 3.0,
        "at 320 by 568 the dialog is {dialog} px high"
    );
    browser.screenshot("idle-warning").await;
    assert!(browser.focus_matches("[data-testid=stay-signed-in]").await);

    // Near the end the time left is said once more, in a polite status message.
    wait_until(
        &browser,
        "return document.querySelector('[data-idle-announcement]').textContent !== ''",
        16,
    )
    .await;
    let announced = browser
        .client
        .execute(
            "return document.querySelector('[data-idle-announcement]').textContent",
            vec![],
        )
        .await
        .expect("js");
    let announced = announced.as_str().expect("text").to_owned();
    assert!(
        announced.starts_with("You will be signed out in ") && announced.ends_with(" seconds."),
        "{announced}"
    );

    // Escape is "Stay signed in": the dialog closes, the focus is back where it was, and the
    // server gives a whole idle timeout again (asked with the page's own request, not activity).
    browser.press(fantoccini::key::Key::Escape).await;
    wait_until(&browser, DIALOG_CLOSED, 3).await;
    assert!(
        browser.focus_matches("[data-testid=change-password]").await,
        "the focus is back where it was"
    );
    assert_eq!(browser.path().await, "/account", "no navigation");
    let left = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/session/idle', { headers: { Accept: 'application/json' } })
               .then((r) => r.json()).then((body) => done(body.idle_seconds_left));",
            vec![],
        )
        .await
        .expect("js");
    assert!(
        left.as_i64().is_some_and(|left| left > 20),
        "Escape moved the deadline: {left}"
    );
    browser.close().await;
}

const FIREFOX_WINDOWS: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0";

/// Each activity entry as a person reads it: its words (with "Warning: " for a screen reader),
/// whether it is marked a warning, and the text of its "This wasn't me" link, if any.
async fn activity(browser: &Browser) -> Vec<(String, bool, Option<String>)> {
    let found = browser
        .client
        .execute(
            "return [...document.querySelectorAll('[data-testid=security-event]')].map((entry) => {
               const what = entry.querySelector('.what').cloneNode(true);
               what.querySelectorAll('[aria-hidden=true]').forEach((e) => e.remove());
               const link = entry.querySelector('[data-testid=not-me]');
               return [what.textContent.trim(), entry.classList.contains('warning'),
                       link === null ? null : link.textContent.replace(/\\s+/g, ' ').trim()];
             })",
            vec![],
        )
        .await
        .expect("js");
    serde_json::from_value(found).expect("the activity")
}

#[rocket::async_test]
async fn a_first_day_in_the_activity_is_short_plain_and_names_the_devices() {
    let _one = exclusive().await;
    let app = TestApp::with(|f| f.merge(("sessions.idle_timeout_secs", 300))).await;
    let server = app.serve().await;
    let laptop = Browser::launch().await;
    let password = "violet tractor mango seventeen";

    // Sign up on the laptop, sign in on a second browser.
    laptop.goto(&server.url("/register")).await;
    laptop.fill("username", "dana").await;
    laptop.fill("password", password).await;
    laptop.fill("password_confirm", password).await;
    laptop.submit("[data-testid=register-form]").await;
    assert_eq!(laptop.path().await, "/account");
    let other = Browser::launch_as(FIREFOX_WINDOWS).await;
    other.sign_in(&server.base_url, "dana", password).await;
    assert_eq!(other.path().await, "/account");

    // From the laptop, with the keyboard, sign the other browser out, mistyping the password
    // once when asked for it.
    laptop.goto(&server.url("/account")).await;
    laptop.tab_to("[data-testid=revoke-session]").await;
    laptop.press_enter_and_wait().await;
    assert!(laptop.path().await.starts_with("/confirm"));
    laptop.fill("password", "violet tractor mango").await;
    laptop.submit("[data-testid=confirm-form]").await;
    assert!(laptop.has_testid("confirm-error").await);
    laptop.fill("password", password).await;
    laptop.submit("[data-testid=confirm-form]").await;
    assert_eq!(laptop.path().await, "/account");
    assert_eq!(laptop.title().await, "Your account · secure-sessions");
    let notice = laptop.focus_on("[data-testid=notice]").await;
    assert_eq!(
        (notice.role.as_str(), notice.text.as_str()),
        ("alert", "Signed out 1 device."),
        "what happened is said first, where the focus is"
    );

    // Six entries; one warning, the other browser's sign-in, and "This wasn't me" on it alone.
    let seen = activity(&laptop).await;
    let this_wasnt_me = "This wasn't me: Signed in from a new device,";
    let expected = [
        (
            "Firefox on Windows 10 was signed out from Chrome on Linux (this device)",
            false,
        ),
        ("Password confirmed for a sensitive action", false),
        ("Password mistyped when asked to enter it again", false),
        ("Warning: Signed in from a new device", true),
        ("Signed in", false),
        ("Account created", false),
    ];
    assert_eq!(seen.len(), expected.len(), "{seen:#?}");
    for ((what, warning, link), (expected_what, expected_warning)) in seen.iter().zip(expected) {
        assert_eq!((what.as_str(), *warning), (expected_what, expected_warning));
        assert_eq!(
            link.as_deref().map(|link| link.starts_with(this_wasnt_me)),
            expected_warning.then_some(true),
            "{what}: {link:?}"
        );
    }
    let entry = laptop.by_testid("security-event").await;
    assert!(
        entry
            .text()
            .await
            .expect("text")
            .contains("from Chrome on Linux (this device)")
    );
    // The screenshots show the activity, not the top of the page.
    laptop
        .client
        .execute(
            "document.getElementById('activity-heading').scrollIntoView()",
            vec![],
        )
        .await
        .expect("js");
    laptop.screenshot("account-activity").await;
    // A comfortable target: "This wasn't me" is at least 24 px tall.
    assert!(height_of(&laptop, "[data-testid=not-me]").await >= 24.0);
    laptop.close().await;
    other.close().await;
}

#[rocket::async_test]
async fn every_page_reads_well_at_desktop_and_phone_width() {
    let _one = exclusive().await;
    let app = TestApp::new().await;
    app.create_user("root", Role::Admin).await;
    app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let admin = Browser::launch().await;
    let alice = Browser::launch_in_time_zone("Asia/Kolkata").await;

    admin.sign_in(&server.base_url, "root", PASSWORD).await;
    alice.sign_in(&server.base_url, "alice", PASSWORD).await;
    admin.goto(&server.url("/account")).await;
    // A comfortable target: the header's "Sign out" is at least 24 px tall.
    assert!(height_of(&admin, "[data-testid=logout]").await >= 24.0);
    let admin_signed_in_at = admin.text_of("signed-in-at").await;

    admin.goto(&server.url("/admin")).await;
    assert_eq!(admin.path().await, "/confirm?next=%2Fadmin");
    assert!(
        admin
            .text_of("confirm-purpose")
            .await
            .starts_with("To open the administration page, enter your password again."),
        "no action waits: the page it opens is named instead"
    );
    admin.screenshot("confirm").await;
    admin.fill("password", PASSWORD).await;
    admin.submit("[data-testid=confirm-form]").await;
    assert_eq!(admin.path().await, "/admin");
    admin.screenshot("admin").await;

    admin.goto(&server.url("/account/not-me")).await;
    admin.screenshot("not-me").await;

    // Alice has not confirmed her password lately: the form asks for the current one.
    alice.goto(&server.url("/account/password")).await;
    alice.fill("current_password", "wrong").await;
    alice
        .fill("new_password", "violet tractor mango seventeen")
        .await;
    alice
        .fill("new_password_confirm", "violet tractor mango seventeen")
        .await;
    alice.submit("[data-testid=password-form]").await;
    assert!(alice.title().await.starts_with("Error: "));
    assert_eq!(
        focused_field(&alice).await,
        (
            "current_password".to_owned(),
            Some("true".to_owned()),
            "Your current password is not correct.".to_owned()
        )
    );
    alice.screenshot("password-errors").await;
    // Control borders and the focus ring reach 3:1 against the card (WCAG 1.4.11).
    assert!(contrast_on_white(&alice, "#new_password", "border-top-color").await >= 3.0);
    assert!(contrast_on_white(&alice, "#current_password", "outline-color").await >= 3.0);
    assert!(contrast_on_white(&alice, "#current_password", "border-top-color").await >= 3.0);

    // A page that is not there keeps the signed-in header.
    admin.goto(&server.url("/no/such/page")).await;
    assert!(admin.has_testid("logout").await, "still signed in");
    admin.screenshot("not-found-signed-in").await;

    // Times read in the reader's time zone, where the browser tells it (UTC, labelled, otherwise).
    alice.goto(&server.url("/account")).await;
    let signed_in_at = alice.text_of("signed-in-at").await;
    assert!(
        signed_in_at.ends_with(" IST") || signed_in_at.ends_with(" GMT+5:30"),
        "{signed_in_at}"
    );
    assert!(admin_signed_in_at.ends_with(" UTC"), "{admin_signed_in_at}");

    // Registration says what is wrong with a name.
    let visitor = Browser::launch().await;
    visitor
        .goto(&server.url("/login?reason=session_limit"))
        .await;
    assert!(
        visitor
            .text_of("login-reason")
            .await
            .contains("more devices than allowed (5 at once)")
    );
    visitor.screenshot("login-session-limit").await;
    visitor.goto(&server.url("/register")).await;
    visitor.fill("username", "bob smith").await;
    visitor
        .fill("password", "violet tractor mango seventeen")
        .await;
    visitor
        .fill("password_confirm", "violet tractor mango seventeen")
        .await;
    visitor.submit("[data-testid=register-form]").await;
    assert_eq!(
        focused_field(&visitor).await,
        (
            "username".to_owned(),
            Some("true".to_owned()),
            "Spaces are not allowed in a username. Usernames are 3 to 32 characters: letters, digits, '.', '_' or '-', starting with a letter or digit."
                .to_owned()
        )
    );
    assert_eq!(value_of(&visitor, "#username").await, "bob smith");
    assert_eq!(value_of(&visitor, "#password").await, "", "never sent back");
    visitor.screenshot("register-bad-name").await;
    visitor.goto(&server.url("/no/such/page")).await;
    visitor.screenshot("not-found").await;
    visitor.close().await;
    admin.close().await;
    alice.close().await;
}
