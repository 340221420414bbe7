//! The token API: issue, rotation on refresh, reuse detection, the concurrent-refresh race,
//! expiry on the moved clock, sign-out and revocation, and every refusal as JSON.

use rocket::futures::future::join_all;
use rocket::http::{ContentType, Header, Method, Status};
use secure_sessions::session::token::SessionToken;
use secure_sessions::session::{Reason, store};
use secure_sessions::users::Role;
use serde_json::json;

use crate::support::http::{Device, Reply};
use crate::support::{PASSWORD, TestApp};

const FIFTEEN_MINUTES: i64 = 15 * 60;
const SEVEN_DAYS: i64 = 7 * 24 * 60 * 60;

/// An access and refresh token as a client keeps them.
struct Pair {
    access: String,
    refresh: String,
}

impl Pair {
    fn of(reply: &Reply) -> Pair {
        assert_eq!(reply.status, Status::Ok, "{}", reply.body);
        let body = reply.json();
        Pair {
            access: body["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            refresh: body["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
        }
    }
}

async fn request_tokens(client: &Device<'_>, username: &str, password: &str) -> Reply {
    client
        .post_json(
            "/api/token",
            &json!({ "username": username, "password": password }),
        )
        .await
}

async fn sign_in(client: &Device<'_>) -> Pair {
    Pair::of(&request_tokens(client, "alice", PASSWORD).await)
}

async fn refresh(client: &Device<'_>, refresh_token: &str) -> Reply {
    client
        .post_json(
            "/api/token/refresh",
            &json!({ "refresh_token": refresh_token }),
        )
        .await
}

async fn me(client: &Device<'_>, access_token: &str) -> Reply {
    client
        .with_bearer(Method::Get, "/api/me", access_token)
        .await
}

fn sha256(token: &str) -> Vec<u8> {
    SessionToken::parse(token)
        .expect("a token")
        .key()
        .as_bytes()
        .to_vec()
}

/// The API family rows of the test database as (revoke reason, generation).
async fn families(app: &TestApp) -> Vec<(Option<String>, i32)> {
    sqlx::query_as(
        "SELECT revoke_reason, generation FROM sessions WHERE kind = 'api' ORDER BY created_at",
    )
    .fetch_all(&app.pool)
    .await
    .expect("query sessions")
}

fn assert_refused(reply: &Reply, status: Status, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(
        reply.header("Content-Type"),
        Some("application/json"),
        "{}",
        reply.body
    );
    assert_eq!(reply.error_code(), code, "{}", reply.body);
}

#[rocket::async_test]
async fn a_client_trades_a_password_for_tokens_and_reads_who_it_is() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let script = Device::with(&client, "curl/8.5.0", "198.51.100.7");

    let reply = request_tokens(&script, "ALICE", PASSWORD).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    assert_eq!(reply.header("Cache-Control"), Some("no-store"));
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], FIFTEEN_MINUTES);
    let pair = Pair::of(&reply);
    for token in [&pair.access, &pair.refresh] {
        assert_eq!(token.len(), 43, "256 bits, base64url without padding");
    }
    assert_ne!(pair.access, pair.refresh);

    let who = me(&script, &pair.access).await;
    assert_eq!(who.status, Status::Ok);
    assert_eq!(who.json(), json!({ "username": "alice", "role": "user" }));

    // Only hashes are stored: the family's key is the access token's, the refresh token has its own row.
    let (key, expires_in_secs): (Vec<u8>, f64) = sqlx::query_as(
        "SELECT key, extract(epoch FROM expires_at - created_at)::float8 FROM sessions WHERE kind = 'api'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(key, sha256(&pair.access));
    assert_eq!(expires_in_secs, SEVEN_DAYS as f64);
    let refresh_keys: Vec<Vec<u8>> = sqlx::query_scalar("SELECT key FROM refresh_tokens")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(refresh_keys, vec![sha256(&pair.refresh)]);
    let dump: String = sqlx::query_scalar(
        "SELECT (SELECT json_agg(s)::text FROM sessions s) || (SELECT json_agg(r)::text FROM refresh_tokens r)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(!dump.contains(&pair.access) && !dump.contains(&pair.refresh));
    assert_eq!(app.event_kinds(user_id).await, vec!["api_token_issued"]);
}

#[rocket::async_test]
async fn wrong_credentials_get_one_json_refusal_and_no_token() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let disabled_id = app.create_user("bob", Role::User).await;
    sqlx::query("UPDATE users SET disabled = TRUE WHERE id = $1")
        .bind(disabled_id)
        .execute(&app.pool)
        .await
        .unwrap();
    let client = app.client().await;
    let script = Device::new(&client);

    for (username, password) in [
        ("alice", "not the password at all"),
        ("mallory", PASSWORD),
        ("bob", "not the password at all"),
        ("alice", "short"),
    ] {
        let reply = request_tokens(&script, username, password).await;
        assert_refused(&reply, Status::Unauthorized, "invalid_credentials");
        assert_eq!(
            reply.json(),
            json!({ "error": "invalid_credentials" }),
            "{username}"
        );
    }
    // Only the right password learns that the account is disabled.
    let disabled = request_tokens(&script, "bob", PASSWORD).await;
    assert_refused(&disabled, Status::Forbidden, "account_disabled");
    assert_eq!(disabled.json(), json!({ "error": "account_disabled" }));
    assert_eq!(families(&app).await, vec![]);
    assert_eq!(app.event_kinds(user_id).await, vec!["sign_in_failed"]);
}

#[rocket::async_test]
async fn a_refresh_rotates_both_tokens_and_the_old_ones_stop_working_at_once() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let script = Device::new(&client);
    let first = sign_in(&script).await;

    app.advance_secs(60);
    let reply = refresh(&script, &first.refresh).await;
    assert_eq!(reply.json()["expires_in"], FIFTEEN_MINUTES);
    let second = Pair::of(&reply);
    assert_ne!(second.access, first.access);
    assert_ne!(second.refresh, first.refresh);

    assert_refused(
        &me(&script, &first.access).await,
        Status::Unauthorized,
        "invalid_token",
    );
    assert_eq!(me(&script, &second.access).await.status, Status::Ok);
    assert_eq!(families(&app).await, vec![(None, 1)]);

    // And again: each refresh token is good for exactly one new pair.
    let third = Pair::of(&refresh(&script, &second.refresh).await);
    assert_eq!(me(&script, &third.access).await.status, Status::Ok);
    assert_refused(
        &me(&script, &second.access).await,
        Status::Unauthorized,
        "invalid_token",
    );
    assert_eq!(families(&app).await, vec![(None, 2)]);
}

#[rocket::async_test]
async fn a_reused_refresh_token_ends_the_whole_family_and_is_recorded() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let owner = Device::new(&client);
    let thief = Device::with(&client, "python-requests/2.32", "203.0.113.66");
    let stolen = sign_in(&owner).await;
    let current = Pair::of(&refresh(&owner, &stolen.refresh).await);

    // The thief presents the refresh token the owner already used.
    let reuse = refresh(&thief, &stolen.refresh).await;
    assert_refused(&reuse, Status::Unauthorized, "invalid_grant");

    // The whole family is over, the owner's newest tokens included.
    assert_refused(
        &me(&owner, &current.access).await,
        Status::Unauthorized,
        "invalid_token",
    );
    assert_refused(
        &refresh(&owner, &current.refresh).await,
        Status::Unauthorized,
        "invalid_grant",
    );
    assert_eq!(
        families(&app).await,
        vec![(Some(Reason::Revoked.code().to_owned()), 1)]
    );
    assert_eq!(
        app.event_kinds(user_id).await,
        vec!["api_token_issued", "refresh_reuse"]
    );

    // Presenting it yet again changes nothing and records nothing more.
    assert_refused(
        &refresh(&thief, &stolen.refresh).await,
        Status::Unauthorized,
        "invalid_grant",
    );
    assert_eq!(
        app.event_kinds(user_id).await,
        vec!["api_token_issued", "refresh_reuse"]
    );

    // The owner sees it on the account page as a warning.
    let browser = Device::new(&client);
    browser.sign_in("alice", PASSWORD).await;
    let page = browser.get("/account").await;
    assert!(
        page.shows("an already used refresh token was presented again"),
        "{}",
        page.body
    );
}

#[rocket::async_test]
async fn of_fifty_concurrent_refreshes_with_one_token_exactly_one_succeeds() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let script = Device::new(&client);
    let pair = sign_in(&script).await;

    let replies = join_all((0..50).map(|_| refresh(&script, &pair.refresh))).await;
    let winners = replies
        .iter()
        .filter(|reply| reply.status == Status::Ok)
        .count();
    assert_eq!(
        winners,
        1,
        "{:?}",
        replies.iter().map(|reply| reply.status).collect::<Vec<_>>()
    );
    for reply in replies.iter().filter(|reply| reply.status != Status::Ok) {
        assert_refused(reply, Status::Unauthorized, "invalid_grant");
    }
    // One new pair was issued, no more. (Whether the losers that came after the winner's commit
    // also ended the family as reuse depends on timing; either way nothing else was issued.)
    let refresh_tokens: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_tokens")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(refresh_tokens, 2);
    let generations: Vec<i32> = families(&app)
        .await
        .into_iter()
        .map(|(_, generation)| generation)
        .collect();
    assert_eq!(generations, vec![1]);
}

/// Up to the very instant its fifteen minutes end, and not at it. (Last-seen is written at most
/// every ten seconds here, so the request at the end writes nothing: its own check decides.)
#[rocket::async_test]
async fn an_access_token_works_for_fifteen_minutes_and_a_refresh_brings_a_new_one() {
    let app = TestApp::with(|f| f.merge(("sessions.touch_interval_secs", 10))).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let script = Device::new(&client);
    let pair = sign_in(&script).await;

    app.advance_secs(FIFTEEN_MINUTES - 1);
    assert_eq!(me(&script, &pair.access).await.status, Status::Ok);
    app.advance_secs(1);
    assert_refused(
        &me(&script, &pair.access).await,
        Status::Unauthorized,
        "invalid_token",
    );

    let next = Pair::of(&refresh(&script, &pair.refresh).await);
    assert_eq!(me(&script, &next.access).await.status, Status::Ok);
}

#[rocket::async_test]
async fn the_family_ends_seven_days_after_sign_in_however_often_it_refreshes() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let script = Device::new(&client);
    let pair = sign_in(&script).await;

    // Ten minutes before the end, a refresh still works, but its access token stops at the end.
    app.advance_secs(SEVEN_DAYS - 600);
    let reply = refresh(&script, &pair.refresh).await;
    assert_eq!(reply.json()["expires_in"], 600);
    let last = Pair::of(&reply);
    app.advance_secs(599);
    assert_eq!(me(&script, &last.access).await.status, Status::Ok);

    app.advance_secs(1);
    assert_refused(
        &me(&script, &last.access).await,
        Status::Unauthorized,
        "invalid_token",
    );
    assert_refused(
        &refresh(&script, &last.refresh).await,
        Status::Unauthorized,
        "invalid_grant",
    );
}

#[rocket::async_test]
async fn an_api_family_is_listed_on_the_account_page_until_the_client_signs_out() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let browser = Device::new(&client);
    let script = Device::with(&client, "curl/8.5.0", "198.51.100.7");
    browser.sign_in("alice", PASSWORD).await;
    let pair = sign_in(&script).await;

    let page = browser.get("/account").await;
    assert_eq!(page.count_testid("session-row"), 2);
    assert!(
        page.html()
            .texts(".kind")
            .iter()
            .any(|kind| kind == "App or script"),
        "{}",
        page.body
    );
    assert!(page.shows("198.51.100.7"));

    let logout = script
        .with_bearer(Method::Post, "/api/logout", &pair.access)
        .await;
    assert_eq!(logout.status, Status::NoContent);
    assert_refused(
        &me(&script, &pair.access).await,
        Status::Unauthorized,
        "invalid_token",
    );
    assert_refused(
        &refresh(&script, &pair.refresh).await,
        Status::Unauthorized,
        "invalid_grant",
    );
    assert_eq!(
        families(&app).await,
        vec![(Some("signed_out".to_owned()), 0)]
    );
    assert_eq!(
        app.event_kinds(user_id).await,
        vec!["sign_in", "api_token_issued", "api_sign_out"]
    );

    let page = browser.get("/account").await;
    assert_eq!(page.count_testid("session-row"), 1);
    assert!(
        !page
            .html()
            .texts(".kind")
            .iter()
            .any(|kind| kind == "App or script"),
        "{}",
        page.body
    );
}

#[rocket::async_test]
async fn revoking_the_family_row_ends_its_access_and_refresh_tokens() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let script = Device::new(&client);
    let pair = Pair::of(&refresh(&script, &sign_in(&script).await.refresh).await);

    // What the account page, a password change or an admin does: revoke the row by its key.
    let key = SessionToken::parse(&pair.access).unwrap().key();
    let mut conn = app.pool.acquire().await.unwrap();
    assert!(
        store::revoke(&mut conn, &key, Reason::Revoked, app.clock_now())
            .await
            .unwrap()
    );

    assert_refused(
        &me(&script, &pair.access).await,
        Status::Unauthorized,
        "invalid_token",
    );
    assert_refused(
        &refresh(&script, &pair.refresh).await,
        Status::Unauthorized,
        "invalid_grant",
    );
}

#[rocket::async_test]
async fn a_disabled_account_loses_api_access_at_the_next_request() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let script = Device::new(&client);
    let pair = sign_in(&script).await;
    sqlx::query("UPDATE users SET disabled = TRUE WHERE id = $1")
        .bind(user_id)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_refused(
        &me(&script, &pair.access).await,
        Status::Unauthorized,
        "invalid_token",
    );
    assert_refused(
        &refresh(&script, &pair.refresh).await,
        Status::Unauthorized,
        "invalid_grant",
    );
}

#[rocket::async_test]
async fn requests_without_a_usable_bearer_token_get_a_json_401_with_a_challenge() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let script = Device::new(&client);
    let pair = sign_in(&script).await;
    let browser = Device::new(&client);
    browser.sign_in("alice", PASSWORD).await;
    let cookie = browser.session_cookie().unwrap();

    let missing = script.get("/api/me").await;
    assert_refused(&missing, Status::Unauthorized, "missing_token");
    assert_eq!(missing.header("WWW-Authenticate"), Some("Bearer"));

    let huge = "A".repeat(10_000);
    let presented = [
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer not-a-token".to_owned(),
        format!("Bearer {huge}"),
        format!("Bearer {}", SessionToken::generate().expose()),
        format!("Basic {}", pair.access),
        format!("Bearer {}", pair.refresh),
        format!("Bearer {cookie}"),
    ];
    for authorization in presented {
        let reply = script
            .send(
                script
                    .request(Method::Get, "/api/me")
                    .header(Header::new("Authorization", authorization.clone())),
            )
            .await;
        assert_refused(&reply, Status::Unauthorized, "invalid_token");
        assert_eq!(
            reply.header("WWW-Authenticate"),
            Some("Bearer error=\"invalid_token\""),
            "{authorization:.40}"
        );
    }
    // Two headers: refused rather than one of them picked.
    let twice = script
        .send(
            script
                .request(Method::Get, "/api/me")
                .header(Header::new(
                    "Authorization",
                    format!("Bearer {}", pair.access),
                ))
                .header(Header::new("Authorization", "Bearer x")),
        )
        .await;
    assert_refused(&twice, Status::Unauthorized, "invalid_token");
    // The scheme is case-insensitive.
    let lower = script
        .send(script.request(Method::Get, "/api/me").header(Header::new(
            "Authorization",
            format!("bearer {}", pair.access),
        )))
        .await;
    assert_eq!(lower.status, Status::Ok);
    assert_refused(
        &script.post_json("/api/logout", &json!({})).await,
        Status::Unauthorized,
        "missing_token",
    );
}

#[rocket::async_test]
async fn an_access_token_is_not_a_session_cookie_nor_a_refresh_token() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let script = Device::new(&client);
    let pair = sign_in(&script).await;

    let browser = Device::new(&client);
    browser.set_cookie("__Host-sid", &pair.access);
    assert!(
        browser
            .get("/account")
            .await
            .location()
            .starts_with("/login?reason=login_required")
    );

    for refresh_token in [
        pair.access.as_str(),
        "",
        "garbage",
        &SessionToken::generate().expose(),
    ] {
        assert_refused(
            &refresh(&script, refresh_token).await,
            Status::Unauthorized,
            "invalid_grant",
        );
    }
    assert_eq!(
        me(&script, &pair.access).await.status,
        Status::Ok,
        "nothing above harmed the family"
    );
}

#[rocket::async_test]
async fn bodies_that_are_not_the_expected_json_get_a_json_4xx() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let script = Device::new(&client);
    let credentials = json!({ "username": "alice", "password": PASSWORD }).to_string();
    let huge = json!({ "username": "alice", "password": "p".repeat(100 * 1024) }).to_string();

    for path in ["/api/token", "/api/token/refresh"] {
        let post = |content_type: Option<ContentType>, body: String| {
            let mut request = script.request(Method::Post, path).body(body);
            if let Some(content_type) = content_type {
                request = request.header(content_type);
            }
            script.send(request)
        };
        let cases = [
            (
                Some(ContentType::JSON),
                "{\"username\": \"alice\",".to_owned(),
                Status::BadRequest,
                "bad_request",
            ),
            (
                Some(ContentType::JSON),
                "not json at all".to_owned(),
                Status::BadRequest,
                "bad_request",
            ),
            (
                Some(ContentType::JSON),
                "{}".to_owned(),
                Status::UnprocessableEntity,
                "unprocessable",
            ),
            (
                Some(ContentType::JSON),
                "{\"username\": 5, \"refresh_token\": []}".to_owned(),
                Status::UnprocessableEntity,
                "unprocessable",
            ),
            (
                Some(ContentType::JSON),
                huge.clone(),
                Status::PayloadTooLarge,
                "too_large",
            ),
            (
                Some(ContentType::Form),
                "username=alice&password=x".to_owned(),
                Status::UnsupportedMediaType,
                "unsupported_media_type",
            ),
            (
                Some(ContentType::Plain),
                credentials.clone(),
                Status::UnsupportedMediaType,
                "unsupported_media_type",
            ),
            (
                None,
                credentials.clone(),
                Status::UnsupportedMediaType,
                "unsupported_media_type",
            ),
        ];
        for (content_type, body, status, code) in cases {
            let reply = post(content_type.clone(), body.clone()).await;
            assert_refused(&reply, status, code);
            assert!(
                !reply.body.contains(PASSWORD),
                "{path} {content_type:?} {body:.40}"
            );
        }
        let invalid_utf8 = script
            .send(
                script
                    .request(Method::Post, path)
                    .header(ContentType::JSON)
                    .body(b"{\"username\": \"\xff\"}"),
            )
            .await;
        assert_refused(&invalid_utf8, Status::BadRequest, "bad_request");
    }
    let wrong_method = script.get("/api/token").await;
    assert_eq!(wrong_method.status, Status::NotFound);
    assert_eq!(wrong_method.error_code(), "not_found");
    // None of the above was a sign-in attempt.
    assert_eq!(families(&app).await, vec![]);
}

/// The API family's public id as the account page lists it (the row that is not this browser).
async fn family_id_on_account_page(browser: &Device<'_>) -> String {
    let devices = browser.devices().await;
    assert_eq!(devices.len(), 2, "this browser and one API family");
    devices
        .into_iter()
        .find(|(_, current)| !current)
        .map(|(id, _)| id)
        .expect("the API family")
}

#[rocket::async_test]
async fn an_api_family_signed_out_from_the_account_page_stays_out_even_after_refreshing() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let browser = Device::new(&client);
    let script = Device::new(&client);
    browser.sign_in("alice", PASSWORD).await;
    let first = sign_in(&script).await;
    let family = family_id_on_account_page(&browser).await;

    // The family refreshes after the page was rendered: its key changes, its public id does not.
    let current = Pair::of(&refresh(&script, &first.refresh).await);
    browser.confirm(PASSWORD).await;
    let reply = browser
        .post_from(
            "/account",
            &format!("/account/sessions/{family}/revoke"),
            &[],
        )
        .await;
    assert_eq!(reply.location(), "/account");

    assert_refused(
        &me(&script, &current.access).await,
        Status::Unauthorized,
        "invalid_token",
    );
    assert_refused(
        &refresh(&script, &current.refresh).await,
        Status::Unauthorized,
        "invalid_grant",
    );
    assert_eq!(families(&app).await, vec![(Some("revoked".to_owned()), 1)]);
}

#[rocket::async_test]
async fn signing_out_all_other_devices_ends_api_families_too() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let browser = Device::new(&client);
    let script = Device::new(&client);
    browser.sign_in("alice", PASSWORD).await;
    let pair = sign_in(&script).await;
    browser.confirm(PASSWORD).await;
    assert_eq!(
        browser
            .post_from("/account", "/account/sessions/revoke-others", &[])
            .await
            .location(),
        "/account"
    );

    assert_refused(
        &me(&script, &pair.access).await,
        Status::Unauthorized,
        "invalid_token",
    );
    assert_refused(
        &refresh(&script, &pair.refresh).await,
        Status::Unauthorized,
        "invalid_grant",
    );
    assert_eq!(
        browser.get("/account").await.status,
        Status::Ok,
        "this browser stays signed in"
    );
}

#[rocket::async_test]
async fn changing_the_password_ends_every_api_family() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let browser = Device::new(&client);
    let script = Device::new(&client);
    browser.sign_in("alice", PASSWORD).await;
    let pair = sign_in(&script).await;
    browser.confirm(PASSWORD).await;
    let new_password = "violet tractor mango seventeen";
    let fields = [
        ("current_password", PASSWORD),
        ("new_password", new_password),
        ("new_password_confirm", new_password),
    ];
    assert_eq!(
        browser
            .post_from("/account/password", "/account/password", &fields)
            .await
            .status,
        Status::Ok
    );

    assert_refused(
        &me(&script, &pair.access).await,
        Status::Unauthorized,
        "invalid_token",
    );
    assert_refused(
        &refresh(&script, &pair.refresh).await,
        Status::Unauthorized,
        "invalid_grant",
    );
    assert_eq!(
        families(&app).await,
        vec![(Some("password_changed".to_owned()), 0)]
    );
    assert_refused(
        &request_tokens(&script, "alice", PASSWORD).await,
        Status::Unauthorized,
        "invalid_credentials",
    );
    assert_eq!(
        request_tokens(&script, "alice", new_password).await.status,
        Status::Ok
    );
}

#[rocket::async_test]
async fn an_admin_signing_an_account_out_or_disabling_it_ends_its_api_families() {
    let app = TestApp::new().await;
    app.create_user("root", Role::Admin).await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let admin = Device::new(&client);
    admin.sign_in("root", PASSWORD).await;
    admin.confirm(PASSWORD).await;
    let script = Device::new(&client);

    let pair = sign_in(&script).await;
    admin
        .post_from(
            "/admin",
            &format!("/admin/users/{alice_id}/revoke-sessions"),
            &[],
        )
        .await;
    assert_refused(
        &me(&script, &pair.access).await,
        Status::Unauthorized,
        "invalid_token",
    );
    assert_refused(
        &refresh(&script, &pair.refresh).await,
        Status::Unauthorized,
        "invalid_grant",
    );

    let pair = sign_in(&script).await;
    admin
        .post_from("/admin", &format!("/admin/users/{alice_id}/disable"), &[])
        .await;
    assert_refused(
        &me(&script, &pair.access).await,
        Status::Unauthorized,
        "invalid_token",
    );
    assert_refused(
        &refresh(&script, &pair.refresh).await,
        Status::Unauthorized,
        "invalid_grant",
    );
    assert_refused(
        &request_tokens(&script, "alice", PASSWORD).await,
        Status::Forbidden,
        "account_disabled",
    );
}

#[rocket::async_test]
async fn an_eleventh_api_sign_in_ends_the_least_recently_used_family() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let script = Device::new(&client);
    let cap = app.config().max_api_families_per_user as usize;
    assert_eq!(cap, 10, "the default");
    let mut pairs = Vec::new();
    for _ in 0..cap {
        pairs.push(sign_in(&script).await);
        app.advance_secs(30);
    }
    // The first family is the oldest but in use: the second becomes the least recently used.
    assert_eq!(me(&script, &pairs[0].access).await.status, Status::Ok);
    app.advance_secs(30);
    let newest = sign_in(&script).await;

    assert_refused(
        &me(&script, &pairs[1].access).await,
        Status::Unauthorized,
        "invalid_token",
    );
    assert_refused(
        &refresh(&script, &pairs[1].refresh).await,
        Status::Unauthorized,
        "invalid_grant",
    );
    for pair in [&pairs[0], &pairs[2], &pairs[cap - 1], &newest] {
        assert_eq!(me(&script, &pair.access).await.status, Status::Ok);
    }
    let reasons: Vec<Option<String>> = families(&app)
        .await
        .into_iter()
        .map(|(reason, _)| reason)
        .collect();
    assert_eq!(
        reasons.iter().filter(|reason| reason.is_none()).count(),
        cap
    );
    assert_eq!(reasons[1].as_deref(), Some("session_limit"));
    assert_eq!(
        app.event_kinds(user_id).await.last().map(String::as_str),
        Some("session_limit")
    );

    // The owner sees it on the account page, as for a browser beyond the cap.
    let browser = Device::new(&client);
    browser.sign_in("alice", PASSWORD).await;
    assert!(
        browser
            .get("/account")
            .await
            .shows("too many devices signed in")
    );
}

#[rocket::async_test]
async fn forty_parallel_api_sign_ins_never_leave_more_than_the_family_cap_alive() {
    // Each sign-in counts as a failure until its password is proven right: lift the throttle,
    // this test is about the cap.
    let app = TestApp::with(|figment| {
        figment
            .merge(("sessions.throttle_account_failures", 1000))
            .merge(("sessions.throttle_ip_failures", 1000))
    })
    .await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let scripts: Vec<Device<'_>> = (0..40).map(|_| Device::new(&client)).collect();
    let replies = join_all(
        scripts
            .iter()
            .map(|script| request_tokens(script, "alice", PASSWORD)),
    )
    .await;
    assert!(
        replies.iter().all(|reply| reply.status == Status::Ok),
        "every sign-in succeeds"
    );

    let cap = app.config().max_api_families_per_user as usize;
    let live = families(&app)
        .await
        .into_iter()
        .filter(|(reason, _)| reason.is_none())
        .count();
    assert_eq!(live, cap);
    let mut working = 0;
    for reply in &replies {
        if me(&scripts[0], reply.json()["access_token"].as_str().unwrap())
            .await
            .status
            == Status::Ok
        {
            working += 1;
        }
    }
    assert_eq!(working, cap);
    let evictions = app
        .event_kinds(user_id)
        .await
        .iter()
        .filter(|kind| *kind == "session_limit")
        .count();
    assert_eq!(evictions, 40 - cap);
}
