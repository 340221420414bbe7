//! A database outage, for real: the test's own PostgreSQL server is stopped. Every request is
//! answered 503 promptly, nobody is signed out or sent to the sign-in page, and once the server
//! is back the same cookie and token work again.

use std::time::{Duration, Instant};

use rocket::http::{Accept, ContentType, Method, Status};
use secure_sessions::db::DEFAULT_ACQUIRE_TIMEOUT_MS;
use secure_sessions::users::Role;
use serde_json::json;

use crate::support::cluster::Cluster;
use crate::support::http::{Device, Reply};
use crate::support::{PASSWORD, TestApp};

/// Generous: with the default `acquire_timeout_ms` (1 s) the pool gives up after a second.
const PROMPTLY: Duration = Duration::from_secs(3);

#[rocket::async_test]
async fn while_postgresql_is_down_every_request_gets_a_prompt_503_and_nobody_is_signed_out() {
    let cluster = Cluster::start();
    let app = TestApp::on(cluster.url("postgres"), |figment| {
        figment.merge((
            "databases.main.acquire_timeout_ms",
            DEFAULT_ACQUIRE_TIMEOUT_MS,
        ))
    })
    .await;
    let client = app.client().await; // migrates the new cluster's database
    let alice_id = app.create_user("alice", Role::User).await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let csrf = alice.get("/account").await.csrf_token();
    let cookie = alice.session_cookie().expect("signed in");
    let tokens = Device::new(&client)
        .post_json(
            "/api/token",
            &json!({"username": "alice", "password": PASSWORD}),
        )
        .await
        .json();
    let access_token = tokens["access_token"].as_str().unwrap().to_owned();

    cluster.stop();

    let form = |path: &str, body: String| {
        alice
            .request(Method::Post, path)
            .header(ContentType::Form)
            .body(body)
    };
    let requests = [
        ("GET /", alice.request(Method::Get, "/")),
        ("GET /account", alice.request(Method::Get, "/account")),
        ("GET /login", alice.request(Method::Get, "/login")),
        (
            "GET /account/password",
            alice.request(Method::Get, "/account/password"),
        ),
        (
            "POST /logout",
            form("/logout", format!("csrf_token={csrf}")),
        ),
        (
            "POST /session/keepalive",
            form("/session/keepalive", format!("csrf_token={csrf}")).header(Accept::JSON),
        ),
        ("GET /healthz", alice.request(Method::Get, "/healthz")),
    ];
    for (what, request) in requests {
        let started = Instant::now();
        let reply = alice.send(request).await;
        assert_answered_unavailable(&reply, what, started);
    }
    assert_eq!(
        alice.session_cookie().as_deref(),
        Some(cookie.as_str()),
        "the browser keeps its cookie"
    );

    let api = Device::new(&client);
    let started = Instant::now();
    let reply = api.with_bearer(Method::Get, "/api/me", &access_token).await;
    assert_answered_unavailable(&reply, "GET /api/me", started);
    assert_eq!(reply.error_code(), "service_unavailable");
    let started = Instant::now();
    let reply = Device::new(&client).sign_in("alice", PASSWORD).await;
    assert_answered_unavailable(&reply, "POST /login", started);

    cluster.start_again();
    let account = alice.get("/account").await;
    assert_eq!(
        account.status,
        Status::Ok,
        "the same cookie works again: {}",
        account.body
    );
    assert_eq!(
        account.testid_text("account-username").as_deref(),
        Some("alice")
    );
    assert_eq!(
        api.with_bearer(Method::Get, "/api/me", &access_token)
            .await
            .status,
        Status::Ok
    );
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NOT NULL",
    )
    .bind(alice_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(ended, 0, "the outage ended no session");
}

fn assert_answered_unavailable(reply: &Reply, what: &str, started: Instant) {
    assert_eq!(
        reply.status,
        Status::ServiceUnavailable,
        "{what}: {:?} {}",
        reply.header("Location"),
        reply.body
    );
    assert!(
        started.elapsed() < PROMPTLY,
        "{what} took {:?}",
        started.elapsed()
    );
    assert!(
        reply.set_cookie("__Host-sid").is_none(),
        "{what} touched the session cookie"
    );
}
