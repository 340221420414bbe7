//! Several tabs of one browser: what the session promises holds whatever the other tabs do.

use std::time::Duration;

use fantoccini::Locator;
use fantoccini::wd::WindowHandle;
use rocket::tokio::time::sleep;
use secure_sessions::users::Role;
use serde_json::json;
use time::OffsetDateTime;

use crate::harness::{Browser, exclusive};
use crate::support::{PASSWORD, TestApp};

/// Polls (up to `seconds`) until the current tab is on a path starting with `prefix`.
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

/// Opens a new tab of the same browser and makes it the current one.
async fn open_tab(browser: &Browser) -> WindowHandle {
    let tab = browser
        .client
        .new_window(true)
        .await
        .expect("new tab")
        .handle;
    switch_to(browser, &tab).await;
    tab
}

async fn switch_to(browser: &Browser, tab: &WindowHandle) {
    browser
        .client
        .switch_to_window(tab.clone())
        .await
        .expect("switch tab");
}

/// The user's one session: its revoke reason, last-seen and revocation time.
async fn the_session(
    app: &TestApp,
    user_id: i64,
) -> (Option<String>, OffsetDateTime, Option<OffsetDateTime>) {
    sqlx::query_as(
        "SELECT revoke_reason, last_seen_at, revoked_at FROM sessions WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_one(&app.pool)
    .await
    .expect("one session")
}

#[rocket::async_test]
async fn idle_tabs_never_keep_the_session_alive_and_it_ends_idle_timeout_after_the_last_action() {
    let _one = exclusive().await;
    let mut app = TestApp::with(|f| {
        f.merge(("sessions.idle_timeout_secs", 6))
            .merge(("sessions.idle_warning_secs", 3))
            .merge(("sessions.touch_interval_secs", 1))
    })
    .await;
    app.system_clock = true;
    let user_id = app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let browser = Browser::launch().await;
    browser.sign_in(&server.base_url, "alice", PASSWORD).await;
    assert_eq!(browser.path().await, "/account");
    let mut tabs = vec![browser.client.window().await.expect("this tab")];
    // Two more tabs on the account page, opened a little apart: each page load is the person's
    // doing, and each tab's countdown runs out at its own time.
    for _ in 0..2 {
        sleep(Duration::from_millis(1200)).await;
        tabs.push(open_tab(&browser).await);
        browser.goto(&server.url("/account")).await;
        assert_eq!(browser.path().await, "/account");
    }
    let (_, seen_at_last_action, _) = the_session(&app, user_id).await;

    // Nobody touches anything now. Every tab's countdown runs out and the page asks the server:
    // none of that is activity, so the session ends and every tab shows why.
    for tab in &tabs {
        switch_to(&browser, tab).await;
        let path = wait_for_path(&browser, "/login", 40).await;
        assert_eq!(path, "/login?reason=idle_timeout&next=%2Faccount");
    }
    let (reason, last_seen, revoked_at) = the_session(&app, user_id).await;
    assert_eq!(reason.as_deref(), Some("idle_timeout"));
    assert_eq!(
        last_seen, seen_at_last_action,
        "no tab's own request counted as activity"
    );
    let idle_timeout = time::Duration::seconds(6);
    assert!(revoked_at.expect("revoked") >= last_seen + idle_timeout);
    assert_eq!(
        app.event_kinds(user_id).await,
        vec!["sign_in", "idle_timeout"]
    );
    browser.close().await;
}

#[rocket::async_test]
async fn sign_out_in_a_tab_older_than_another_tabs_confirmation_signs_out_and_a_cross_site_form_does_not()
 {
    let _one = exclusive().await;
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let server = app.serve().await;
    let browser = Browser::launch().await;
    browser.sign_in(&server.base_url, "alice", PASSWORD).await;
    assert_eq!(browser.path().await, "/account");
    let older = browser.client.window().await.expect("this tab");

    // A page of another site (an opaque origin) posts a sign-out form to the app: the browser
    // says so, and keeps the SameSite=Lax cookie home. Nothing changes.
    open_tab(&browser).await;
    browser
        .client
        .execute(
            "const form = document.createElement('form');
             form.method = 'post';
             form.action = arguments[0];
             document.body.appendChild(form);
             form.submit();",
            vec![json!(server.url("/logout"))],
        )
        .await
        .expect("post the form");
    wait_for_path(&browser, "/logout", 10).await;
    browser.wait_loaded().await;
    let text = browser
        .client
        .execute("return document.body.innerText", vec![])
        .await
        .expect("js");
    assert!(
        text.as_str()
            .is_some_and(|text| text.contains("did not come from this site")),
        "the forged sign-out is refused: {text}"
    );
    browser.goto(&server.url("/account")).await;
    assert_eq!(browser.path().await, "/account", "still signed in");
    browser.client.close_window().await.expect("close the tab");
    switch_to(&browser, &older).await;

    // Another tab confirms the password, which gives the session a new token.
    open_tab(&browser).await;
    browser.goto(&server.url("/confirm")).await;
    browser.fill("password", PASSWORD).await;
    browser.submit("[data-testid=confirm-form]").await;
    assert_eq!(browser.path().await, "/account");
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(live, 1);

    // "Sign out" in the tab opened before the confirmation signs the person out.
    switch_to(&browser, &older).await;
    browser
        .click_and_wait(Locator::Css("[data-testid=logout]"))
        .await;
    assert_eq!(browser.path().await, "/login?reason=signed_out");
    let (reason, _, _) = the_session(&app, user_id).await;
    assert_eq!(reason.as_deref(), Some("signed_out"));
    browser.goto(&server.url("/account")).await;
    assert!(browser.path().await.starts_with("/login"));
    browser.close().await;
}
