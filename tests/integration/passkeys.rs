//! Passkeys through the app's own endpoints, answered by a software authenticator
//! (`support::passkey`) with real signatures: registration after a confirmation, sign-in at
//! `aal2`, and every answer that must be refused with a 4xx (replayed or foreign ceremony
//! state, a wrong origin or RP id, a counter going backwards, a removed passkey).

use rocket::futures::future::join_all;
use rocket::http::Status;
use secure_sessions::clock::AppClock;
use secure_sessions::config::SessionConfig;
use secure_sessions::users::Role;
use serde_json::Value;

use crate::support::http::{Device, Reply};
use crate::support::passkey::SoftAuthenticator;
use crate::support::{PASSWORD, TestApp};

const ORIGIN: &str = "https://app.example";

/// The confirmation window shorter than the test profile's idle timeout, so it can pass while
/// the session lives.
const CONFIRM_WINDOW_SECS: i64 = 5;

async fn app() -> TestApp {
    TestApp::with(|figment| {
        figment
            .merge(("sessions.passkey_origin", ORIGIN))
            .merge(("sessions.confirm_window_secs", CONFIRM_WINDOW_SECS))
    })
    .await
}

/// Signs `device` in with the password and confirms it, as the account page asks first.
async fn signed_in_and_confirmed(device: &Device<'_>) {
    assert_eq!(
        device.sign_in("alice", PASSWORD).await.status,
        Status::SeeOther
    );
    assert_eq!(device.confirm(PASSWORD).await.status, Status::SeeOther);
}

/// Asks for registration options: the ceremony id and the options.
async fn registration_options(device: &Device<'_>) -> (String, Value) {
    let reply = device
        .post_from("/account", "/account/passkeys/options", &[])
        .await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    let body = reply.json();
    (body["ceremony"].as_str().unwrap().to_owned(), body)
}

async fn add(device: &Device<'_>, ceremony: &str, name: &str, credential: &str) -> Reply {
    device
        .post_from(
            "/account",
            "/account/passkeys",
            &[
                ("ceremony", ceremony),
                ("name", name),
                ("credential", credential),
            ],
        )
        .await
}

/// Registers a passkey named `name` on the signed-in, confirmed `device`.
async fn register(device: &Device<'_>, authenticator: &mut SoftAuthenticator, name: &str) {
    let (ceremony, body) = registration_options(device).await;
    let answer = authenticator.register(&body["options"], ORIGIN);
    let reply = add(device, &ceremony, name, &answer).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
}

/// A sign-in ceremony started by `device` (not signed in): its id and options.
async fn sign_in_options(device: &Device<'_>) -> (String, Value) {
    let reply = device
        .post_from("/login", "/login/passkey/options", &[])
        .await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    let body = reply.json();
    (body["ceremony"].as_str().unwrap().to_owned(), body)
}

async fn finish_sign_in(device: &Device<'_>, ceremony: &str, credential: &str) -> Reply {
    device
        .post_from(
            "/login",
            "/login/passkey",
            &[("ceremony", ceremony), ("credential", credential)],
        )
        .await
}

/// The error message of a refused ceremony.
fn refusal(reply: &Reply) -> String {
    reply.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[rocket::async_test]
async fn a_passkey_added_after_a_confirmation_signs_in_at_aal2() {
    let app = app().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    signed_in_and_confirmed(&laptop).await;
    let mut authenticator = SoftAuthenticator::new();
    register(&laptop, &mut authenticator, "Work laptop").await;
    let account = laptop.get("/account").await;
    assert_eq!(account.count_testid("passkey-row"), 1);
    assert!(account.shows("Work laptop"), "{}", account.body);
    assert!(account.shows("never used"));

    let phone = Device::with(
        &client,
        "Mozilla/5.0 (Android 14) Chrome/130",
        "203.0.113.9",
    );
    let (ceremony, body) = sign_in_options(&phone).await;
    let answer = authenticator.sign_in(&body["options"], ORIGIN);
    let reply = finish_sign_in(&phone, &ceremony, &answer).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    assert_eq!(reply.json()["redirect"], "/account");
    assert!(phone.session_cookie().is_some(), "a session started");

    // The phone's session is aal2 on the device list, the laptop's (password) aal1.
    let page = phone.get("/account").await.html();
    let levels: Vec<(bool, String)> = page
        .testids("session-row")
        .into_iter()
        .map(|row| {
            (
                row.value().attr("data-current") == Some("true"),
                row.value().attr("data-aal").unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        levels,
        vec![(true, "aal2".to_owned()), (false, "aal1".to_owned())]
    );
    assert!(phone.get("/account").await.shows("last used"));
    let kinds = app.event_kinds(user_id).await;
    for kind in ["passkey_added", "passkey_sign_in", "new_device"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}

#[rocket::async_test]
async fn adding_or_removing_a_passkey_needs_a_recent_confirmation() {
    let app = app().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let device = Device::new(&client);
    device.sign_in("alice", PASSWORD).await;
    let reply = device
        .post_from("/account", "/account/passkeys/options", &[])
        .await;
    assert_eq!(
        reply.status,
        Status::SeeOther,
        "to /confirm: {}",
        reply.body
    );
    assert!(
        reply.location().starts_with("/confirm"),
        "{}",
        reply.location()
    );

    device.confirm(PASSWORD).await;
    let mut authenticator = SoftAuthenticator::new();
    register(&device, &mut authenticator, "Phone").await;
    let page = device.get("/account").await;
    let id = page.html().testids("passkey-row")[0]
        .value()
        .attr("data-passkey-id")
        .unwrap()
        .to_owned();
    // Past the confirmation window: the remove button is gone and the endpoint refuses.
    app.advance_secs(CONFIRM_WINDOW_SECS + 1);
    assert_eq!(
        device.get("/account").await.count_testid("passkey-remove"),
        0
    );
    let action = format!("/account/passkeys/{id}/remove");
    let reply = device.post_from("/account", &action, &[]).await;
    assert!(
        reply.location().starts_with("/confirm"),
        "{}",
        reply.location()
    );
    assert_eq!(device.get("/account").await.count_testid("passkey-row"), 1);
}

#[rocket::async_test]
async fn a_registration_ceremony_is_used_once_and_only_by_the_session_that_started_it() {
    let app = app().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let one = Device::new(&client);
    let other = Device::with(
        &client,
        "Mozilla/5.0 (Macintosh) Firefox/130",
        "198.51.100.4",
    );
    signed_in_and_confirmed(&one).await;
    signed_in_and_confirmed(&other).await;

    // Another session of the same account cannot finish this session's ceremony.
    let (ceremony, body) = registration_options(&one).await;
    let answer = SoftAuthenticator::new().register(&body["options"], ORIGIN);
    let reply = add(&other, &ceremony, "Stolen", &answer).await;
    assert_eq!(reply.status, Status::BadRequest);
    assert!(
        refusal(&reply).contains("expired or was already used"),
        "{}",
        reply.body
    );

    // Its owner can, once; the same answer again is refused.
    let reply = add(&one, &ceremony, "Mine", &answer).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    let reply = add(&one, &ceremony, "Mine again", &answer).await;
    assert_eq!(reply.status, Status::BadRequest);
    assert_eq!(one.get("/account").await.count_testid("passkey-row"), 1);
}

#[rocket::async_test]
async fn a_sign_in_ceremony_is_used_once_by_the_browser_that_started_it_before_it_expires() {
    let app = app().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let owner = Device::new(&client);
    signed_in_and_confirmed(&owner).await;
    let mut authenticator = SoftAuthenticator::new();
    register(&owner, &mut authenticator, "Key").await;

    // Started by one browser, answered from another: refused, and no session.
    let started_by = Device::with(&client, "Mozilla/5.0 (X11) Chrome/130", "192.0.2.1");
    let thief = Device::with(&client, "Mozilla/5.0 (X11) Chrome/130", "192.0.2.2");
    let (ceremony, body) = sign_in_options(&started_by).await;
    let answer = authenticator.sign_in(&body["options"], ORIGIN);
    thief.get("/login").await;
    let reply = finish_sign_in(&thief, &ceremony, &answer).await;
    assert_eq!(reply.status, Status::BadRequest, "{}", reply.body);
    assert!(thief.session_cookie().is_none());

    // The stranger's try took nothing: the browser that started it signs in, once.
    let reply = finish_sign_in(&started_by, &ceremony, &answer).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    assert!(started_by.session_cookie().is_some());
    // The very same answer again, from a browser with the same pre-session cookie: refused.
    let again = Device::with(&client, "Mozilla/5.0 (X11) Chrome/130", "192.0.2.1");
    again.set_cookie("__Host-csrf", &started_by.cookie("__Host-csrf").unwrap());
    let reply = finish_sign_in(&again, &ceremony, &answer).await;
    assert_eq!(reply.status, Status::BadRequest);
    assert!(
        refusal(&reply).contains("expired or was already used"),
        "{}",
        reply.body
    );
    assert!(again.session_cookie().is_none());

    // Past its lifetime, a ceremony is refused, and the reaper deletes it.
    let late = Device::new(&client);
    let (ceremony, body) = sign_in_options(&late).await;
    let answer = authenticator.sign_in(&body["options"], ORIGIN);
    app.advance_secs(i64::from(app.config().passkey_ceremony_secs) + 1);
    let reply = finish_sign_in(&late, &ceremony, &answer).await;
    assert_eq!(reply.status, Status::BadRequest);
    let mut conn = app.pool.acquire().await.unwrap();
    sign_in_options(&late).await;
    app.advance_secs(i64::from(app.config().passkey_ceremony_secs) + 1);
    // In batches of one: the reaper goes on while a batch comes back full.
    let batches_of_one = SessionConfig {
        reaper_batch_size: 1,
        ..app.config()
    };
    let reaped = secure_sessions::session::reaper::expire_passkey_ceremonies(
        &mut conn,
        &batches_of_one,
        &AppClock::new(app.clock.clone()),
    )
    .await
    .unwrap();
    // The refused one (an expired ceremony is never taken) and the one started after it.
    assert_eq!(reaped, 2);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM passkey_ceremonies")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[rocket::async_test]
async fn an_answer_for_another_origin_or_rp_id_is_refused() {
    let app = app().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let owner = Device::new(&client);
    signed_in_and_confirmed(&owner).await;
    let mut authenticator = SoftAuthenticator::new();

    // Registration made for a look-alike site is refused.
    let (ceremony, body) = registration_options(&owner).await;
    let answer = authenticator.register(&body["options"], "https://app.example.evil");
    let reply = add(&owner, &ceremony, "Phished", &answer).await;
    assert_eq!(reply.status, Status::BadRequest, "{}", reply.body);
    register(&owner, &mut authenticator, "Real").await;

    let visitor = Device::with(&client, "Mozilla/5.0 (X11) Chrome/130", "192.0.2.7");
    let (ceremony, body) = sign_in_options(&visitor).await;
    let phished =
        authenticator.assertion(&body["options"], "https://evil.example", "app.example", 5);
    let reply = finish_sign_in(&visitor, &ceremony, &phished).await;
    assert_eq!(reply.status, Status::BadRequest, "{}", reply.body);

    let (ceremony, body) = sign_in_options(&visitor).await;
    let other_rp = authenticator.assertion(&body["options"], ORIGIN, "evil.example", 6);
    let reply = finish_sign_in(&visitor, &ceremony, &other_rp).await;
    assert_eq!(reply.status, Status::BadRequest, "{}", reply.body);
    assert!(visitor.session_cookie().is_none());
}

#[rocket::async_test]
async fn a_counter_that_goes_backwards_is_refused() {
    let app = app().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let owner = Device::new(&client);
    signed_in_and_confirmed(&owner).await;
    let mut authenticator = SoftAuthenticator::new();
    register(&owner, &mut authenticator, "Key").await;

    let visitor = Device::with(&client, "Mozilla/5.0 (X11) Chrome/130", "192.0.2.7");
    let (ceremony, body) = sign_in_options(&visitor).await;
    let answer = authenticator.assertion(&body["options"], ORIGIN, "app.example", 10);
    assert_eq!(
        finish_sign_in(&visitor, &ceremony, &answer).await.status,
        Status::Ok
    );

    // A copy of the key, behind the real one: its counter says so.
    let copy = Device::with(&client, "Mozilla/5.0 (X11) Chrome/130", "192.0.2.8");
    for counter in [10, 9] {
        let (ceremony, body) = sign_in_options(&copy).await;
        let answer = authenticator.assertion(&body["options"], ORIGIN, "app.example", counter);
        let reply = finish_sign_in(&copy, &ceremony, &answer).await;
        assert_eq!(reply.status, Status::BadRequest, "{}", reply.body);
        assert!(refusal(&reply).contains("counter"), "{}", reply.body);
    }
    assert!(copy.session_cookie().is_none());
    let stored: i64 = sqlx::query_scalar("SELECT counter FROM passkeys")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 10);
}

#[rocket::async_test]
async fn a_removed_passkey_signs_in_no_more() {
    let app = app().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let owner = Device::new(&client);
    signed_in_and_confirmed(&owner).await;
    let mut authenticator = SoftAuthenticator::new();
    register(&owner, &mut authenticator, "Old key").await;
    let page = owner.get("/account").await;
    let id = page.html().testids("passkey-row")[0]
        .value()
        .attr("data-passkey-id")
        .unwrap()
        .to_owned();
    let action = format!("/account/passkeys/{id}/remove");
    let reply = owner.post_from("/account", &action, &[]).await;
    assert_eq!(reply.location(), "/account");
    assert_eq!(owner.get("/account").await.count_testid("passkey-row"), 0);
    // Gone already: 404, not a second event.
    assert_eq!(
        owner.post_from("/account", &action, &[]).await.status,
        Status::NotFound
    );
    let kinds = app.event_kinds(user_id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "passkey_removed").count(), 1);

    let visitor = Device::with(&client, "Mozilla/5.0 (X11) Chrome/130", "192.0.2.7");
    let (ceremony, body) = sign_in_options(&visitor).await;
    let answer = authenticator.sign_in(&body["options"], ORIGIN);
    let reply = finish_sign_in(&visitor, &ceremony, &answer).await;
    assert_eq!(reply.status, Status::BadRequest, "{}", reply.body);
    assert!(refusal(&reply).contains("not registered"), "{}", reply.body);
    assert!(visitor.session_cookie().is_none());
    // The password is still a way in.
    assert_eq!(
        visitor.sign_in("alice", PASSWORD).await.status,
        Status::SeeOther
    );
}

#[rocket::async_test]
async fn malformed_answers_get_a_400_and_forged_forms_a_403() {
    let app = app().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let visitor = Device::new(&client);
    let (ceremony, _) = sign_in_options(&visitor).await;
    for (ceremony, credential) in [
        (ceremony.as_str(), "{not json"),
        (ceremony.as_str(), r#"{"id": 1}"#),
        ("not-a-uuid", "{}"),
    ] {
        let reply = finish_sign_in(&visitor, ceremony, credential).await;
        assert_eq!(
            reply.status,
            Status::BadRequest,
            "{credential}: {}",
            reply.body
        );
        assert!(!refusal(&reply).is_empty());
    }
    // Without the CSRF token: refused before anything is read.
    let reply = visitor.post_form("/login/passkey/options", &[]).await;
    assert_eq!(reply.status, Status::Forbidden);
}

/// The level of `device`'s own row on its account page (`data-aal`).
async fn own_level(device: &Device<'_>) -> String {
    let page = device.get("/account").await.html();
    page.testids("session-row")
        .into_iter()
        .find(|row| row.value().attr("data-current") == Some("true"))
        .and_then(|row| row.value().attr("data-aal"))
        .unwrap_or_default()
        .to_owned()
}

/// A confirmation ceremony started by `device` from `page`: its id and options.
async fn confirm_options(device: &Device<'_>, page: &str) -> (String, Value) {
    let reply = device
        .post_from(page, "/confirm/passkey/options", &[])
        .await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    let body = reply.json();
    (body["ceremony"].as_str().unwrap().to_owned(), body)
}

/// Sends a confirmation's answer from the confirmation page `page`, with the `next` and the
/// waiting action it names, as its script does.
async fn finish_confirm(device: &Device<'_>, page: &str, ceremony: &str, answer: &str) -> Reply {
    let html = device.get(page).await.html();
    let block = html.select("[data-passkey-confirm]").into_iter().next();
    let next = block
        .as_ref()
        .and_then(|block| block.value().attr("data-next"))
        .unwrap_or("/account")
        .to_owned();
    let action = block.and_then(|block| block.value().attr("data-action").map(str::to_owned));
    let mut fields = vec![
        ("ceremony", ceremony),
        ("credential", answer),
        ("next", next.as_str()),
    ];
    if let Some(action) = action.as_deref() {
        fields.push(("action", action));
    }
    device.post_from(page, "/confirm/passkey", &fields).await
}

/// Confirms with the passkey from the confirmation page `page`, as its button does.
async fn confirm_with_passkey(
    device: &Device<'_>,
    authenticator: &mut SoftAuthenticator,
    page: &str,
) -> Reply {
    let (ceremony, body) = confirm_options(device, page).await;
    let answer = authenticator.sign_in(&body["options"], ORIGIN);
    finish_confirm(device, page, &ceremony, &answer).await
}

/// Signs `device` in with the passkey: an `aal2` session.
async fn passkey_sign_in(device: &Device<'_>, authenticator: &mut SoftAuthenticator) {
    let (ceremony, body) = sign_in_options(device).await;
    let answer = authenticator.sign_in(&body["options"], ORIGIN);
    let reply = finish_sign_in(device, &ceremony, &answer).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
}

#[rocket::async_test]
async fn a_passkey_confirmation_raises_the_session_to_aal2_and_a_password_one_never_does() {
    let app = app().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    signed_in_and_confirmed(&laptop).await;
    assert_eq!(own_level(&laptop).await, "aal1");
    let mut authenticator = SoftAuthenticator::new();
    register(&laptop, &mut authenticator, "Laptop").await;

    // The confirmation page offers the passkey beside the password.
    app.advance_secs(CONFIRM_WINDOW_SECS + 1);
    let page = laptop.get("/confirm").await;
    assert_eq!(page.count_testid("confirm-with-passkey"), 1);
    assert_eq!(page.count_testid("confirm-form"), 1);
    // A password confirmation, however often, leaves the session at aal1.
    assert_eq!(laptop.confirm(PASSWORD).await.status, Status::SeeOther);
    assert_eq!(own_level(&laptop).await, "aal1");

    let reply = confirm_with_passkey(&laptop, &mut authenticator, "/confirm").await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    assert_eq!(reply.json()["redirect"], "/account");
    assert_eq!(own_level(&laptop).await, "aal2");
    let kinds = app.event_kinds(user_id).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "passkey_confirmed").count(),
        1,
        "{kinds:?}"
    );
    // The raise is the session's own: the level stays once the confirmation lapses.
    app.advance_secs(CONFIRM_WINDOW_SECS + 1);
    assert_eq!(own_level(&laptop).await, "aal2");
}

/// The confirmation's options name the passkey as it was when they were made. A sign-in with the
/// real key since then moves the counter on: a copy answering the confirmation with a counter
/// past the options' but not past the sign-in's is refused.
#[rocket::async_test]
async fn a_confirmation_refuses_a_counter_that_a_sign_in_since_its_options_has_passed() {
    let app = app().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    signed_in_and_confirmed(&laptop).await;
    let mut authenticator = SoftAuthenticator::new();
    register(&laptop, &mut authenticator, "Key").await;
    app.advance_secs(CONFIRM_WINDOW_SECS + 1);
    let (ceremony, body) = confirm_options(&laptop, "/confirm").await;

    let visitor = Device::with(&client, "Mozilla/5.0 (X11) Chrome/130", "192.0.2.7");
    let (signing_in, options) = sign_in_options(&visitor).await;
    let answer = authenticator.assertion(&options["options"], ORIGIN, "app.example", 10);
    assert_eq!(
        finish_sign_in(&visitor, &signing_in, &answer).await.status,
        Status::Ok
    );

    let copy = authenticator.assertion(&body["options"], ORIGIN, "app.example", 5);
    let reply = finish_confirm(&laptop, "/confirm", &ceremony, &copy).await;
    assert_eq!(reply.status, Status::BadRequest, "{}", reply.body);
    assert!(refusal(&reply).contains("counter"), "{}", reply.body);
    assert_eq!(own_level(&laptop).await, "aal1");
    let stored: i64 = sqlx::query_scalar("SELECT counter FROM passkeys")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 10);
}

#[rocket::async_test]
async fn a_confirmation_ceremony_is_used_once_and_only_by_the_session_that_started_it() {
    let app = app().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let one = Device::new(&client);
    let other = Device::with(
        &client,
        "Mozilla/5.0 (Macintosh) Firefox/130",
        "198.51.100.4",
    );
    signed_in_and_confirmed(&one).await;
    signed_in_and_confirmed(&other).await;
    let mut authenticator = SoftAuthenticator::new();
    register(&one, &mut authenticator, "Key").await;

    // Another session of the same account, with a valid answer to this session's challenge:
    // refused, recorded against it, and it stays at aal1.
    let (ceremony, body) = confirm_options(&one, "/confirm").await;
    let answer = authenticator.sign_in(&body["options"], ORIGIN);
    let reply = finish_confirm(&other, "/confirm", &ceremony, &answer).await;
    assert_eq!(reply.status, Status::BadRequest, "{}", reply.body);
    assert!(
        refusal(&reply).contains("expired or was already used"),
        "{}",
        reply.body
    );
    assert_eq!(own_level(&other).await, "aal1");

    // Its owner can, once; the same answer again is refused.
    let reply = finish_confirm(&one, "/confirm", &ceremony, &answer).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    let reply = finish_confirm(&one, "/confirm", &ceremony, &answer).await;
    assert_eq!(reply.status, Status::BadRequest, "{}", reply.body);
    assert_eq!(own_level(&one).await, "aal2");
    assert_eq!(own_level(&other).await, "aal1");

    // Past its lifetime, a ceremony is refused.
    let (ceremony, body) = confirm_options(&other, "/confirm").await;
    let answer = authenticator.sign_in(&body["options"], ORIGIN);
    app.advance_secs(i64::from(app.config().passkey_ceremony_secs) + 1);
    other.sign_in("alice", PASSWORD).await;
    let reply = finish_confirm(&other, "/confirm", &ceremony, &answer).await;
    assert_eq!(reply.status, Status::BadRequest, "{}", reply.body);

    // Each refusal is a failed confirmation of the session that sent it.
    let kinds = app.event_kinds(user_id).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "confirm_failed").count(),
        3,
        "{kinds:?}"
    );
}

#[rocket::async_test]
async fn failed_passkey_confirmations_spend_the_sessions_confirmation_budget() {
    let app = app().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let device = Device::new(&client);
    signed_in_and_confirmed(&device).await;
    let mut authenticator = SoftAuthenticator::new();
    register(&device, &mut authenticator, "Key").await;
    let budget = app.config().throttle_session_failures;
    for _ in 0..budget {
        let (ceremony, body) = confirm_options(&device, "/confirm").await;
        let phished =
            authenticator.assertion(&body["options"], "https://evil.example", "app.example", 50);
        let reply = finish_confirm(&device, "/confirm", &ceremony, &phished).await;
        assert_eq!(reply.status, Status::BadRequest, "{}", reply.body);
    }
    // Spent: the right passkey waits, and so does the right password.
    let reply = confirm_with_passkey(&device, &mut authenticator, "/confirm").await;
    assert_eq!(reply.status, Status::TooManyRequests, "{}", reply.body);
    assert_eq!(
        device.confirm(PASSWORD).await.status,
        Status::TooManyRequests
    );
    assert_eq!(own_level(&device).await, "aal1");
}

#[rocket::async_test]
async fn a_session_signed_in_with_a_passkey_confirms_with_it_to_change_the_password() {
    let app = app().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    signed_in_and_confirmed(&laptop).await;
    let mut authenticator = SoftAuthenticator::new();
    register(&laptop, &mut authenticator, "Key").await;
    let phone = Device::with(
        &client,
        "Mozilla/5.0 (Android 14) Chrome/130",
        "203.0.113.9",
    );
    passkey_sign_in(&phone, &mut authenticator).await;

    // An aal2 session: the password form is not enough, the passkey is asked for.
    let reply = phone.get("/account/password").await;
    assert_eq!(reply.location(), "/confirm?next=%2Faccount%2Fpassword");
    let page = phone.get(reply.location()).await;
    assert_eq!(page.count_testid("confirm-form"), 0, "{}", page.body);
    assert_eq!(page.count_testid("confirm-with-passkey"), 1);
    assert_eq!(
        page.testid_text("confirm-level").as_deref(),
        Some(
            "Your password is not enough here: this session signed in or confirmed with a \
             passkey, so it confirms with one too."
        ),
        "the page says why: the session's own level"
    );
    // A password confirmation sent anyway is recorded, but does not open the form.
    phone.confirm_at("/confirm", PASSWORD).await;
    assert!(
        phone
            .get("/account/password")
            .await
            .location()
            .starts_with("/confirm"),
    );
    let reply = phone
        .post_from(
            "/account",
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "violet tractor mango seventeen"),
                ("new_password_confirm", "violet tractor mango seventeen"),
            ],
        )
        .await;
    assert_eq!(reply.location(), "/confirm?next=%2Faccount%2Fpassword");

    // With the passkey: back to the form, which no longer asks for the current password.
    let reply = confirm_with_passkey(
        &phone,
        &mut authenticator,
        "/confirm?next=%2Faccount%2Fpassword",
    )
    .await;
    assert_eq!(reply.json()["redirect"], "/account/password");
    let page = phone.get("/account/password").await;
    assert_eq!(page.status, Status::Ok);
    assert!(
        page.html().field("current_password").is_none(),
        "{}",
        page.body
    );

    // The laptop's aal1 session changes it with the password, as before.
    let page = laptop.get("/account/password").await;
    assert_eq!(page.status, Status::Ok);
}

#[rocket::async_test]
async fn a_session_signed_in_with_a_passkey_confirms_with_it_to_remove_one() {
    let app = app().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    signed_in_and_confirmed(&laptop).await;
    let mut authenticator = SoftAuthenticator::new();
    register(&laptop, &mut authenticator, "Key").await;
    let phone = Device::with(
        &client,
        "Mozilla/5.0 (Android 14) Chrome/130",
        "203.0.113.9",
    );
    passkey_sign_in(&phone, &mut authenticator).await;
    let page = phone.get("/account").await;
    let id = page.html().testids("passkey-row")[0]
        .value()
        .attr("data-passkey-id")
        .unwrap()
        .to_owned();
    let action = format!("/account/passkeys/{id}/remove");

    // Confirmed with the password only: no remove button, and the endpoint refuses.
    phone.confirm(PASSWORD).await;
    assert_eq!(
        phone.get("/account").await.count_testid("passkey-remove"),
        0
    );
    let reply = phone.post_from("/account", &action, &[]).await;
    assert!(
        reply.location().starts_with("/confirm"),
        "{}",
        reply.location()
    );
    assert_eq!(phone.get("/account").await.count_testid("passkey-row"), 1);

    let reply = confirm_with_passkey(&phone, &mut authenticator, "/confirm?next=%2Faccount").await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    assert_eq!(
        phone.get("/account").await.count_testid("passkey-remove"),
        1
    );
    assert_eq!(
        phone.post_from("/account", &action, &[]).await.location(),
        "/account"
    );
    assert_eq!(phone.get("/account").await.count_testid("passkey-row"), 0);
}

#[rocket::async_test]
async fn an_admin_with_a_passkey_confirms_with_it_and_one_without_keeps_the_password() {
    let app = app().await;
    app.create_user("root", Role::Admin).await;
    let bob = app.create_user("bob", Role::User).await;
    let client = app.client().await;
    let admin = Device::new(&client);
    assert_eq!(
        admin.sign_in("root", PASSWORD).await.status,
        Status::SeeOther
    );
    // No passkey: the password opens /admin, as before.
    admin.confirm_at("/confirm?next=%2Fadmin", PASSWORD).await;
    assert_eq!(admin.get("/admin").await.status, Status::Ok);

    let mut authenticator = SoftAuthenticator::new();
    register(&admin, &mut authenticator, "Admin key").await;
    // With one, a password confirmation no longer does.
    app.advance_secs(CONFIRM_WINDOW_SECS + 1);
    admin.confirm_at("/confirm?next=%2Fadmin", PASSWORD).await;
    let reply = admin.get("/admin").await;
    assert_eq!(reply.location(), "/confirm?next=%2Fadmin");

    // An action asked for now waits; the confirmation page asks for the passkey only, a
    // password sent anyway does not run it, and the passkey does, once.
    let disable = format!("/admin/users/{bob}/disable");
    let reply = admin.post_from("/account", &disable, &[]).await;
    assert_eq!(reply.location(), "/confirm?next=%2Fadmin");
    let page = admin.get("/confirm?next=%2Fadmin").await;
    assert_eq!(page.count_testid("confirm-form"), 0, "{}", page.body);
    assert!(page.shows("disable bob"), "{}", page.body);
    assert_eq!(
        page.testid_text("confirm-level").as_deref(),
        Some(
            "Your password is not enough here: this action asks for a passkey whenever your \
             account has one."
        ),
        "the page says why: the setting of what waits, not this password session's level"
    );
    let forged = admin
        .post_from(
            "/account",
            "/confirm",
            &[
                ("password", PASSWORD),
                ("next", "/admin"),
                ("action", &format!("admin_disable:{bob}")),
            ],
        )
        .await;
    assert_eq!(forged.status, Status::SeeOther);
    assert!(
        !app.event_kinds(bob)
            .await
            .iter()
            .any(|k| k == "account_disabled")
    );
    // The forged post took the waiting action: ask again, then confirm with the passkey.
    admin.post_from("/account", &disable, &[]).await;
    let reply = confirm_with_passkey(&admin, &mut authenticator, "/confirm?next=%2Fadmin").await;
    assert_eq!(reply.json()["redirect"], "/admin");
    assert!(
        app.event_kinds(bob)
            .await
            .iter()
            .any(|k| k == "account_disabled")
    );
    assert_eq!(admin.get("/admin").await.status, Status::Ok);
    assert_eq!(own_level(&admin).await, "aal2");
}

#[rocket::async_test]
async fn refused_passkey_sign_ins_are_failed_sign_ins_that_make_a_later_one_suspicious() {
    let app = app().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let owner = Device::new(&client);
    signed_in_and_confirmed(&owner).await;
    let mut authenticator = SoftAuthenticator::new();
    register(&owner, &mut authenticator, "Key").await;

    // A stranger on a new device and network, with answers that do not check out.
    let stranger = Device::with(&client, "Mozilla/5.0 (X11) Chrome/130", "192.0.2.99");
    let failures = app.config().suspicious_sign_in_failures;
    for counter in 0..failures {
        let (ceremony, body) = sign_in_options(&stranger).await;
        let phished = authenticator.assertion(
            &body["options"],
            "https://evil.example",
            "app.example",
            100 + counter,
        );
        let reply = finish_sign_in(&stranger, &ceremony, &phished).await;
        assert_eq!(reply.status, Status::BadRequest, "{}", reply.body);
    }
    let kinds = app.event_kinds(user_id).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "sign_in_failed").count(),
        usize::try_from(failures).unwrap(),
        "{kinds:?}"
    );
    let page = owner.get("/account").await;
    assert!(
        page.shows("a passkey's answer was refused"),
        "{}",
        page.body
    );

    // Then in, from there: flagged as suspicious, as after wrong passwords.
    assert_eq!(
        stranger.sign_in("alice", PASSWORD).await.status,
        Status::SeeOther
    );
    let kinds = app.event_kinds(user_id).await;
    assert!(kinds.iter().any(|k| k == "suspicious_sign_in"), "{kinds:?}");
}

#[rocket::async_test]
async fn a_passkey_sign_in_from_a_new_device_offers_this_wasnt_me() {
    let app = app().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    signed_in_and_confirmed(&laptop).await;
    let mut authenticator = SoftAuthenticator::new();
    register(&laptop, &mut authenticator, "Key").await;
    let phone = Device::with(
        &client,
        "Mozilla/5.0 (Android 14) Chrome/130",
        "203.0.113.9",
    );
    passkey_sign_in(&phone, &mut authenticator).await;

    let page = laptop.get("/account").await.html();
    let entry = page
        .testids("security-event")
        .into_iter()
        .find(|entry| crate::support::html::text_of(*entry).contains("Signed in from a new device"))
        .expect("the phone's sign-in is listed as a new device");
    assert_eq!(entry.value().attr("class"), Some("warning"));
    assert_eq!(
        crate::support::html::select_in(entry, r#"[data-testid="not-me"]"#).len(),
        1,
        "with \"This wasn't me\""
    );
}

#[rocket::async_test]
async fn a_passkey_session_lives_by_its_levels_timeouts_and_a_password_one_by_aal1s() {
    let app = app().await;
    let user_id = app.create_user("alice", Role::User).await;
    let config = app.config();
    // The test profile's aal1 timeouts, and aal2's unset: twice them (within NIST's bounds).
    let (idle, absolute) = (
        i64::from(config.idle_timeout_secs),
        i64::from(config.absolute_timeout_secs),
    );
    assert_eq!(i64::from(config.aal2_idle_timeout_secs()), 2 * idle);
    assert_eq!(i64::from(config.aal2_absolute_timeout_secs()), 2 * absolute);
    let client = app.client().await;
    let laptop = Device::new(&client);
    signed_in_and_confirmed(&laptop).await;
    let mut authenticator = SoftAuthenticator::new();
    register(&laptop, &mut authenticator, "Key").await;
    let phone = Device::with(
        &client,
        "Mozilla/5.0 (Android 14) Chrome/130",
        "203.0.113.9",
    );
    passkey_sign_in(&phone, &mut authenticator).await;
    let tablet = Device::with(&client, "Mozilla/5.0 (iPad) Safari/17", "203.0.113.10");
    passkey_sign_in(&tablet, &mut authenticator).await;

    // Idle past aal1's timeout, within aal2's: the password session has ended, the passkey ones
    // live; the device list counts the idle tablet, not the laptop.
    app.advance_secs(idle + 1);
    let page = phone.get("/account").await;
    assert_eq!(page.status, Status::Ok);
    let levels: Vec<String> = page
        .html()
        .testids("session-row")
        .into_iter()
        .filter_map(|row| row.value().attr("data-aal").map(str::to_owned))
        .collect();
    assert_eq!(levels, vec!["aal2", "aal2"], "{}", page.body);
    assert_eq!(
        laptop.get("/account").await.location(),
        "/login?reason=idle_timeout&next=%2Faccount"
    );
    // Idle past aal2's too (the tablet, not seen since sign-in): the reason code is the same.
    app.advance_secs(idle);
    assert_eq!(
        tablet.get("/account").await.location(),
        "/login?reason=idle_timeout&next=%2Faccount"
    );

    // Active, the phone outlives aal1's lifetime, and ends at aal2's.
    let mut elapsed = 2 * idle + 1;
    while elapsed + idle < 2 * absolute {
        assert_eq!(
            phone.get("/account").await.status,
            Status::Ok,
            "at {elapsed}s"
        );
        app.advance_secs(idle);
        elapsed += idle;
    }
    assert!(elapsed > absolute);
    app.advance_secs(2 * absolute - elapsed);
    assert_eq!(
        phone.get("/account").await.location(),
        "/login?reason=session_expired&next=%2Faccount"
    );
    let kinds = app.event_kinds(user_id).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "idle_timeout").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(kinds.last().map(String::as_str), Some("session_expired"));
}

#[rocket::async_test]
async fn a_raised_session_takes_aal2s_idle_timeout_but_keeps_its_sign_ins_lifetime() {
    let app = app().await;
    app.create_user("alice", Role::User).await;
    let config = app.config();
    let (idle, absolute) = (
        i64::from(config.idle_timeout_secs),
        i64::from(config.absolute_timeout_secs),
    );
    let client = app.client().await;
    let laptop = Device::new(&client);
    signed_in_and_confirmed(&laptop).await;
    let mut authenticator = SoftAuthenticator::new();
    register(&laptop, &mut authenticator, "Key").await;
    let reply = confirm_with_passkey(&laptop, &mut authenticator, "/confirm").await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);

    // From the next request on, the raised session has aal2's idle timeout.
    app.advance_secs(idle + 1);
    assert_eq!(laptop.get("/account").await.status, Status::Ok);
    assert_eq!(own_level(&laptop).await, "aal2");
    // But not a longer life: it ends when the password sign-in would have.
    let mut elapsed = idle + 1;
    while elapsed + idle < absolute {
        app.advance_secs(idle);
        elapsed += idle;
        assert_eq!(
            laptop.get("/account").await.status,
            Status::Ok,
            "at {elapsed}s"
        );
    }
    app.advance_secs(absolute - elapsed);
    assert_eq!(
        laptop.get("/account").await.location(),
        "/login?reason=session_expired&next=%2Faccount"
    );
}

#[rocket::async_test]
async fn explicit_aal2_timeouts_apply_to_passkey_sessions_only() {
    let app = TestApp::with(|figment| {
        figment
            .merge(("sessions.passkey_origin", ORIGIN))
            .merge(("sessions.aal2_idle_timeout_secs", 10))
    })
    .await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    signed_in_and_confirmed(&laptop).await;
    let mut authenticator = SoftAuthenticator::new();
    register(&laptop, &mut authenticator, "Key").await;
    let phone = Device::with(
        &client,
        "Mozilla/5.0 (Android 14) Chrome/130",
        "203.0.113.9",
    );
    passkey_sign_in(&phone, &mut authenticator).await;

    // Set tighter than aal1's 20 s: the passkey session ends first.
    app.advance_secs(11);
    assert_eq!(
        phone.get("/account").await.location(),
        "/login?reason=idle_timeout&next=%2Faccount"
    );
    assert_eq!(laptop.get("/account").await.status, Status::Ok);
}

/// The same answer to one confirmation ceremony, sent several times at once by its session:
/// the ceremony is taken by one of them (`take_ceremony` deletes as it reads), so the session is
/// confirmed and raised once, and each of the others is refused.
#[rocket::async_test]
async fn concurrent_answers_to_one_confirmation_ceremony_confirm_once() {
    const ROUNDS: usize = 10;
    // Under the session's budget of failed confirmations, so every loser is a 400, not a 429.
    const AT_ONCE: usize = 4;
    let app = app().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let device = Device::new(&client);
    signed_in_and_confirmed(&device).await;
    let mut authenticator = SoftAuthenticator::new();
    register(&device, &mut authenticator, "Key").await;
    for round in 0..ROUNDS {
        // A fresh aal1 session, and so a fresh budget, each round.
        device.sign_out().await;
        assert_eq!(
            device.sign_in("alice", PASSWORD).await.status,
            Status::SeeOther
        );
        let (ceremony, body) = confirm_options(&device, "/confirm").await;
        let answer = authenticator.sign_in(&body["options"], ORIGIN);
        let csrf = device.get("/confirm").await.csrf_token();
        let fields = [
            ("csrf_token", csrf.as_str()),
            ("ceremony", ceremony.as_str()),
            ("credential", answer.as_str()),
            ("next", "/account"),
        ];
        let replies =
            join_all((0..AT_ONCE).map(|_| device.post_form("/confirm/passkey", &fields))).await;
        let statuses: Vec<Status> = replies.iter().map(|reply| reply.status).collect();
        assert_eq!(
            statuses
                .iter()
                .filter(|status| **status == Status::Ok)
                .count(),
            1,
            "round {round}: {statuses:?}"
        );
        // The others: the ceremony gone (400), or the token the winner rotated away (403).
        assert!(
            statuses
                .iter()
                .all(|status| [Status::Ok, Status::BadRequest, Status::Forbidden].contains(status)),
            "round {round}: {statuses:?}"
        );
        assert_eq!(own_level(&device).await, "aal2", "round {round}");
    }
    let kinds = app.event_kinds(user_id).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "passkey_confirmed").count(),
        ROUNDS,
        "{kinds:?}"
    );
}
