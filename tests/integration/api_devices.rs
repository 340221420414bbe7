//! The account's devices over the token API: listing them, ending one, ending all others; the
//! password re-checked through the signed-in budget, and another account's devices out of reach.

use rocket::http::{ContentType, Header, Method, Status};
use secure_sessions::users::Role;
use serde_json::{Value, json};

use crate::support::http::{CHROME_LINUX, Device, FIREFOX_WINDOWS, Reply};
use crate::support::{PASSWORD, TestApp};

const CLI: &str = "curl/8.5.0";

/// Signs in over the API; returns the access token.
async fn api_sign_in(client: &Device<'_>, username: &str) -> String {
    let reply = client
        .post_json(
            "/api/token",
            &json!({ "username": username, "password": PASSWORD }),
        )
        .await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    reply.json()["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

async fn list(client: &Device<'_>, access: &str) -> Reply {
    client
        .with_bearer(Method::Get, "/api/sessions", access)
        .await
}

/// A bearer request with a JSON body.
async fn send_json(
    client: &Device<'_>,
    method: Method,
    path: &str,
    access: &str,
    body: &Value,
) -> Reply {
    client
        .send(
            client
                .request(method, path)
                .header(Header::new("Authorization", format!("Bearer {access}")))
                .header(ContentType::JSON)
                .body(body.to_string()),
        )
        .await
}

async fn end_device(client: &Device<'_>, access: &str, id: &str, password: &str) -> Reply {
    send_json(
        client,
        Method::Delete,
        &format!("/api/sessions/{id}"),
        access,
        &json!({ "password": password }),
    )
    .await
}

async fn end_others(client: &Device<'_>, access: &str, password: &str) -> Reply {
    send_json(
        client,
        Method::Post,
        "/api/sessions/revoke-others",
        access,
        &json!({ "password": password }),
    )
    .await
}

fn assert_refused(reply: &Reply, status: Status, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.header("Content-Type"), Some("application/json"));
    assert_eq!(reply.error_code(), code, "{}", reply.body);
}

/// The public id of a browser's own session, as its account page shows it.
async fn own_id(browser: &Device<'_>) -> String {
    browser
        .devices()
        .await
        .into_iter()
        .find(|(_, current)| *current)
        .expect("this device's row")
        .0
}

#[rocket::async_test]
async fn an_api_client_lists_the_account_devices_and_knows_which_one_it_is() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    app.create_user("bob", Role::User).await;
    let client = app.client().await;
    let browser = Device::with(&client, CHROME_LINUX, "198.51.100.7");
    browser.sign_in("alice", PASSWORD).await;
    let bob = Device::with(&client, FIREFOX_WINDOWS, "203.0.113.5");
    bob.sign_in("bob", PASSWORD).await;
    let cli = Device::with(&client, CLI, "192.0.2.44");
    let access = api_sign_in(&cli, "alice").await;

    let reply = list(&cli, &access).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    assert_eq!(reply.header("Cache-Control"), Some("no-store"));
    let sessions = reply.json()["sessions"]
        .as_array()
        .expect("sessions")
        .clone();
    assert_eq!(
        sessions.len(),
        2,
        "alice's two devices, not bob's: {sessions:?}"
    );
    let browser_id = own_id(&browser).await;
    let (this, other): (Vec<&Value>, Vec<&Value>) = sessions
        .iter()
        .partition(|device| device["current"] == true);
    assert_eq!(this.len(), 1);
    assert_eq!(this[0]["kind"], "api");
    assert_eq!(this[0]["ip"], "192.0.2.44");
    assert_eq!(this[0]["bound"], false);
    assert_eq!(other[0]["id"], browser_id.as_str());
    assert_eq!(other[0]["kind"], "browser");
    assert_eq!(other[0]["device"], "Chrome on Linux");
    assert_eq!(other[0]["ip"], "198.51.100.7");
    for device in &sessions {
        for field in ["signed_in_at", "last_active_at"] {
            let at = device[field].as_str().expect(field);
            assert!(
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .is_ok(),
                "{field} is RFC 3339: {at}"
            );
        }
    }
    assert!(!reply.body.contains(&access), "no token in the list");

    assert_refused(
        &cli.get("/api/sessions").await,
        Status::Unauthorized,
        "missing_token",
    );
}

#[rocket::async_test]
async fn an_api_client_with_the_password_ends_another_device_which_learns_it_was_revoked() {
    let app = TestApp::new().await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let browser = Device::new(&client);
    browser.sign_in("alice", PASSWORD).await;
    let cli = Device::with(&client, CLI, "192.0.2.44");
    let access = api_sign_in(&cli, "alice").await;
    let browser_id = own_id(&browser).await;

    let reply = end_device(&cli, &access, &browser_id, PASSWORD).await;
    assert_eq!(reply.status, Status::NoContent, "{}", reply.body);
    assert_eq!(
        browser.get("/account").await.location(),
        "/login?reason=revoked&next=%2Faccount"
    );
    let kinds = app.event_kinds(alice_id).await;
    assert_eq!(kinds.last().map(String::as_str), Some("session_revoked"));
    // Ended once: a second try finds nothing to end.
    assert_refused(
        &end_device(&cli, &access, &browser_id, PASSWORD).await,
        Status::NotFound,
        "no_such_session",
    );
    assert_eq!(
        cli.with_bearer(Method::Get, "/api/me", &access)
            .await
            .status,
        Status::Ok,
        "the caller's own family goes on"
    );
}

#[rocket::async_test]
async fn a_stolen_access_token_without_the_password_cannot_end_devices_and_its_guesses_are_throttled()
 {
    let app = TestApp::new().await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let browser = Device::new(&client);
    browser.sign_in("alice", PASSWORD).await;
    let thief = Device::with(&client, CLI, "192.0.2.66");
    let access = api_sign_in(&thief, "alice").await;
    let browser_id = own_id(&browser).await;

    let limit = app.config().throttle_session_failures;
    for _ in 0..limit {
        assert_refused(
            &end_device(&thief, &access, &browser_id, "a wrong guess!").await,
            Status::Forbidden,
            "invalid_password",
        );
    }
    assert_refused(
        &end_others(&thief, &access, "another wrong guess").await,
        Status::TooManyRequests,
        "too_many_attempts",
    );
    let throttled = end_device(&thief, &access, &browser_id, PASSWORD).await;
    assert_refused(&throttled, Status::TooManyRequests, "too_many_attempts");
    assert!(
        throttled
            .header("Retry-After")
            .and_then(|secs| secs.parse::<u32>().ok())
            .is_some_and(|secs| secs > 0),
        "Retry-After in seconds"
    );
    assert_eq!(
        browser.get("/account").await.status,
        Status::Ok,
        "the owner is still signed in"
    );
    let failed = app
        .event_kinds(alice_id)
        .await
        .into_iter()
        .filter(|kind| kind == "confirm_failed")
        .count();
    assert_eq!(failed, limit as usize, "each wrong password is recorded");
    // The guesses spent this token family's budget, not the account's sign-in budget.
    let owner_cli = Device::with(&client, CLI, "198.51.100.1");
    api_sign_in(&owner_cli, "alice").await;
}

#[rocket::async_test]
async fn another_accounts_device_is_a_404_and_is_never_revoked() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let bob_id = app.create_user("bob", Role::User).await;
    let client = app.client().await;
    let bob = Device::with(&client, FIREFOX_WINDOWS, "203.0.113.5");
    bob.sign_in("bob", PASSWORD).await;
    let bob_session = own_id(&bob).await;
    let cli = Device::with(&client, CLI, "192.0.2.44");
    let access = api_sign_in(&cli, "alice").await;

    assert_refused(
        &end_device(&cli, &access, &bob_session, PASSWORD).await,
        Status::NotFound,
        "no_such_session",
    );
    assert_eq!(
        bob.get("/account").await.status,
        Status::Ok,
        "bob is still signed in"
    );
    assert!(
        !app.event_kinds(bob_id)
            .await
            .contains(&"session_revoked".to_owned())
    );
    for malformed in ["not-a-uuid", "1", "%27%20OR%201%3D1"] {
        assert_refused(
            &end_device(&cli, &access, malformed, PASSWORD).await,
            Status::NotFound,
            "no_such_session",
        );
    }
    // Its own family ends through /api/logout.
    let own = list(&cli, &access).await.json()["sessions"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_refused(
        &end_device(&cli, &access, &own, PASSWORD).await,
        Status::Conflict,
        "current_session",
    );
    // A body that is not JSON, or has no password.
    let form = cli
        .send(
            cli.request(Method::Post, "/api/sessions/revoke-others")
                .header(Header::new("Authorization", format!("Bearer {access}")))
                .header(ContentType::Form)
                .body("password=x"),
        )
        .await;
    assert_eq!(form.status, Status::UnsupportedMediaType);
    let empty = send_json(
        &cli,
        Method::Post,
        "/api/sessions/revoke-others",
        &access,
        &json!({}),
    )
    .await;
    assert_eq!(empty.status, Status::UnprocessableEntity);
    assert_eq!(bob.get("/account").await.status, Status::Ok);
}

#[rocket::async_test]
async fn revoke_others_over_the_api_ends_every_other_device_and_keeps_this_family() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    app.create_user("bob", Role::User).await;
    let client = app.client().await;
    let laptop = Device::with(&client, CHROME_LINUX, "198.51.100.7");
    laptop.sign_in("alice", PASSWORD).await;
    let desktop = Device::with(&client, FIREFOX_WINDOWS, "198.51.100.8");
    desktop.sign_in("alice", PASSWORD).await;
    let bob = Device::with(&client, FIREFOX_WINDOWS, "203.0.113.5");
    bob.sign_in("bob", PASSWORD).await;
    let script = Device::with(&client, CLI, "192.0.2.10");
    let other_access = api_sign_in(&script, "alice").await;
    let cli = Device::with(&client, CLI, "192.0.2.44");
    let access = api_sign_in(&cli, "alice").await;

    let reply = end_others(&cli, &access, PASSWORD).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    assert_eq!(reply.json(), json!({ "revoked": 3 }));
    for browser in [&laptop, &desktop] {
        assert_eq!(
            browser.get("/account").await.location(),
            "/login?reason=revoked&next=%2Faccount"
        );
    }
    assert_eq!(
        script
            .with_bearer(Method::Get, "/api/me", &other_access)
            .await
            .status,
        Status::Unauthorized
    );
    assert_eq!(
        cli.with_bearer(Method::Get, "/api/me", &access)
            .await
            .status,
        Status::Ok
    );
    let left = list(&cli, &access).await.json()["sessions"]
        .as_array()
        .expect("sessions")
        .len();
    assert_eq!(left, 1);
    assert_eq!(
        bob.get("/account").await.status,
        Status::Ok,
        "another account is untouched"
    );
}
