//! Test mode (DESIGN section 14): the guards around `/__test/` — off by default, refused in the
//! release profile without a second switch, loud at start, direct loopback clients only — and
//! what each hook does.

use std::process::Command;

use rocket::error::ErrorKind;
use rocket::figment::Figment;
use rocket::http::uri::Host;
use rocket::http::{Accept, ContentType, Header, Method, Status};
use rocket::local::asynchronous::LocalRequest;
use secure_sessions::users::Role;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::support::binary::RunningApp;
use crate::support::http::{CHROME_LINUX, Device, FIREFOX_WINDOWS, Reply};
use crate::support::raw::RawRequest;
use crate::support::{PASSWORD, TestApp, random_secret_key};

fn test_mode(figment: Figment) -> Figment {
    figment.merge(("sessions.test_hooks", true))
}

/// A `/__test/` call as a suite on this machine makes it: JSON in, JSON out, `Host: 127.0.0.1`.
async fn hook(device: &Device<'_>, path: &str, body: Value) -> Reply {
    hook_with(device, path, body, &[]).await
}

/// The same with extra headers; a `Host` among them replaces the loopback one.
async fn hook_with(
    device: &Device<'_>,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> Reply {
    let mut request = device
        .request(Method::Post, path)
        .header(ContentType::JSON)
        .header(Accept::JSON)
        .body(body.to_string());
    let mut host = "127.0.0.1:8000";
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("Host") {
            host = value;
        } else {
            request = request.header(Header::new(name.to_string(), value.to_string()));
        }
    }
    device.send(with_host(request, host)).await
}

/// The local client does not parse a `Host` header: it takes the host as the server would
/// have parsed it.
fn with_host<'c>(mut request: LocalRequest<'c>, host: &str) -> LocalRequest<'c> {
    request
        .inner_mut()
        .set_host(Host::parse_owned(host.to_owned()).expect("a valid host"));
    request
}

/// One valid call of every hook, for the tests that expect all of them refused.
fn every_hook() -> [(&'static str, Value); 4] {
    [
        ("/__test/clock/advance", json!({ "secs": 1800 })),
        (
            "/__test/users",
            json!({ "username": "mallory", "password": "mallory-password", "role": "admin" }),
        ),
        ("/__test/sessions/revoke", json!({ "username": "alice" })),
        ("/__test/reset", json!({})),
    ]
}

async fn user_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Nothing any refused call could have done happened: same clock, same accounts, alice still in.
async fn assert_untouched(app: &TestApp, before: OffsetDateTime, alice: &Device<'_>) {
    assert_eq!(app.clock_now(), before, "the clock did not move");
    assert_eq!(user_count(app).await, 1, "no account was created or erased");
    assert_eq!(
        alice.get("/account").await.status,
        Status::Ok,
        "alice is still signed in"
    );
}

#[rocket::async_test]
async fn with_test_mode_off_there_is_no_test_route() {
    let app = TestApp::new().await;
    assert!(!app.config().test_hooks, "off by default");
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let before = app.clock_now();

    for (path, body) in every_hook() {
        let reply = hook(&alice, path, body).await;
        assert_eq!(reply.status, Status::NotFound, "{path}");
        assert_eq!(reply.error_code(), "not_found");
    }
    assert_eq!(alice.get("/__test/").await.status, Status::NotFound);
    assert_untouched(&app, before, &alice).await;
}

#[rocket::async_test]
async fn test_routes_serve_only_direct_loopback_clients() {
    let app = TestApp::with(test_mode).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let before = app.clock_now();

    // Another machine, even one that claims to be the loopback in a header.
    let remote = Device::with(&client, CHROME_LINUX, "203.0.113.9");
    for (path, body) in every_hook() {
        assert_eq!(
            hook(&remote, path, body.clone()).await.status,
            Status::NotFound,
            "{path} from 203.0.113.9"
        );
        let claims = hook_with(&remote, path, body, &[("X-Real-IP", "127.0.0.1")]).await;
        assert_eq!(
            claims.status,
            Status::NotFound,
            "{path} from 203.0.113.9 claiming 127.0.0.1"
        );
    }
    // A request forwarded by a proxy on this machine: the peer is loopback, the client is not.
    let local = Device::new(&client);
    let advance = json!({ "secs": 1800 });
    for header in [
        ("X-Forwarded-For", "203.0.113.9"),
        ("Forwarded", "for=203.0.113.9"),
        ("X-Real-IP", "203.0.113.9"),
    ] {
        let reply = hook_with(&local, "/__test/clock/advance", advance.clone(), &[header]).await;
        assert_eq!(reply.status, Status::NotFound, "forwarded with {header:?}");
    }
    // A page whose host name was re-pointed at 127.0.0.1 (DNS rebinding) names itself in Host.
    let rebound = hook_with(
        &local,
        "/__test/clock/advance",
        advance.clone(),
        &[("Host", "attacker.example")],
    )
    .await;
    assert_eq!(rebound.status, Status::NotFound, "Host: attacker.example");
    // A request with no known peer address at all.
    let anonymous = client
        .post("/__test/clock/advance")
        .header(ContentType::JSON)
        .body(advance.to_string());
    let anonymous = with_host(anonymous, "127.0.0.1").dispatch().await;
    assert_eq!(anonymous.status(), Status::NotFound, "no peer address");
    assert_untouched(&app, before, &alice).await;

    // The same call straight from the loopback is served, over IPv4 and IPv6, by any loopback name.
    let reply = hook(&local, "/__test/clock/advance", json!({ "secs": 60 })).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    let reply = hook_with(
        &local,
        "/__test/clock/advance",
        json!({ "secs": 60 }),
        &[("Host", "localhost:8000")],
    )
    .await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    let ipv6 = Device::with(&client, CHROME_LINUX, "::1");
    let reply = hook_with(
        &ipv6,
        "/__test/clock/advance",
        json!({ "secs": 60 }),
        &[("Host", "[::1]:8000")],
    )
    .await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    assert_eq!(app.clock_now(), before + time::Duration::seconds(180));

    // Behind a proxy configured to name the client in a header of its own choosing.
    let app =
        TestApp::with(|figment| test_mode(figment).merge(("ip_header", "X-Client-Address"))).await;
    let client = app.client().await;
    let proxied = hook_with(
        &Device::new(&client),
        "/__test/reset",
        json!({}),
        &[("X-Client-Address", "203.0.113.9")],
    )
    .await;
    assert_eq!(
        proxied.status,
        Status::NotFound,
        "forwarded with the configured ip_header"
    );
    assert_eq!(
        hook(&Device::new(&client), "/__test/reset", json!({}))
            .await
            .status,
        Status::NoContent
    );
}

#[rocket::async_test]
async fn a_cross_site_form_cannot_use_the_test_routes() {
    let app = TestApp::with(test_mode).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let before = app.clock_now();

    // What an HTML form on another site can send: urlencoded or plain text, never JSON.
    for content_type in [ContentType::Form, ContentType::Plain] {
        for (path, _) in every_hook() {
            let request = alice
                .request(Method::Post, path)
                .header(content_type.clone())
                .body("secs=1800");
            let reply = alice.send(with_host(request, "127.0.0.1:8000")).await;
            assert_eq!(
                reply.status,
                Status::UnsupportedMediaType,
                "{path} as {content_type}"
            );
        }
    }
    assert_untouched(&app, before, &alice).await;
}

#[rocket::async_test]
async fn test_mode_refuses_to_start_in_the_release_profile_without_the_second_switch() {
    let app = TestApp::with(|figment| test_mode(figment).select("release")).await;
    let Err(error) = rocket::local::asynchronous::Client::untracked(app.rocket()).await else {
        panic!("the launch must be refused");
    };
    match error.kind() {
        ErrorKind::FailedFairings(failed) => {
            assert!(
                failed.iter().any(|fairing| fairing.name == "Test hooks"),
                "{failed:?}"
            );
        }
        other => panic!("expected the test hooks stage to fail the launch, got {other}"),
    }

    // Both switches: a deliberate test deployment of the release profile starts and serves.
    let app = TestApp::with(|figment| {
        test_mode(figment)
            .select("release")
            .merge(("sessions.test_hooks_in_release", true))
    })
    .await;
    let client = app.client().await;
    let reply = hook(
        &Device::new(&client),
        "/__test/clock/advance",
        json!({ "secs": 1 }),
    )
    .await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    // The second switch alone turns nothing on.
    let app = TestApp::with(|figment| {
        figment
            .select("release")
            .merge(("sessions.test_hooks_in_release", true))
    })
    .await;
    let client = app.client().await;
    let reply = hook(
        &Device::new(&client),
        "/__test/clock/advance",
        json!({ "secs": 1 }),
    )
    .await;
    assert_eq!(reply.status, Status::NotFound);
}

/// Sets the app binary's environment: `app`'s database and a secret key of its own, in `profile`,
/// with `sessions` as its `[sessions]` settings.
fn app_binary<'a>(
    app: &'a TestApp,
    profile: &'a str,
    sessions: &'a str,
) -> impl FnOnce(&mut Command) + 'a {
    move |command| {
        command
            .env("DATABASE_URL", &app.database_url)
            .env("ROCKET_PROFILE", profile)
            .env("ROCKET_SECRET_KEY", random_secret_key())
            .env("ROCKET_SESSIONS", sessions);
    }
}

#[rocket::async_test]
async fn the_app_binary_warns_loudly_in_test_mode_and_refuses_it_in_the_release_profile() {
    let app = TestApp::new().await;

    // The release profile: the binary stops at once, saying why.
    let said = RunningApp::refused(app_binary(&app, "release", "{test_hooks=true}")).await;
    assert!(
        said.contains("test_hooks is on in the release profile: refusing to start"),
        "{said}"
    );

    // The test profile (whose log level shows warnings and errors only): it starts, and says
    // loudly what it is, whatever the log level.
    let configure = app_binary(&app, "test", "{test_hooks=true}");
    let mut running = RunningApp::start(|command| {
        configure(command);
        command.env("ROCKET_LOG_LEVEL", "off");
    })
    .await;

    // Its clock is real time plus what the suite adds.
    let answer = RawRequest::post("/__test/clock/advance")
        .json(&json!({"secs": 1800}))
        .send(running.port)
        .await;
    running.stop();
    let said = running.log();

    assert_eq!(answer.status, 200, "{}", answer.head);
    let now = OffsetDateTime::parse(
        answer.json()["now"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ahead = now - OffsetDateTime::now_utc();
    assert!(
        ahead > time::Duration::minutes(29) && ahead <= time::Duration::minutes(30),
        "{ahead}"
    );
    assert!(
        said.contains("WARNING: TEST MODE IS ON"),
        "the warning is printed even with log_level off: {said}"
    );
    assert!(
        said.contains("ERASE EVERY ACCOUNT AND SESSION")
            && said.contains("Never run this in production"),
        "{said}"
    );
}

#[rocket::async_test]
async fn advancing_the_clock_ends_an_idle_session_without_waiting() {
    let app = TestApp::with(test_mode).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let idle = app.config().idle_timeout_secs;
    let start = app.clock_now();

    let reply = hook(&alice, "/__test/clock/advance", json!({ "secs": idle - 1 })).await;
    assert_eq!(reply.status, Status::Ok);
    assert_eq!(
        reply.json()["now"],
        json!(
            app.clock_now()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        )
    );
    assert_eq!(
        alice.get("/account").await.status,
        Status::Ok,
        "one second before the timeout"
    );
    hook(&alice, "/__test/clock/advance", json!({ "secs": idle })).await;
    assert_eq!(
        alice.get("/account").await.location(),
        "/login?reason=idle_timeout&next=%2Faccount"
    );
    assert_eq!(
        app.clock_now(),
        start + time::Duration::seconds(i64::from(2 * idle - 1))
    );

    // Forward only, and a number of seconds.
    for body in [
        json!({ "secs": -5 }),
        json!({ "secs": "1800" }),
        json!({}),
        json!({ "secs": 1, "extra": 1 }),
    ] {
        assert_eq!(
            hook(&alice, "/__test/clock/advance", body.clone())
                .await
                .status,
            Status::UnprocessableEntity,
            "{body}"
        );
    }
    assert_eq!(
        app.clock_now(),
        start + time::Duration::seconds(i64::from(2 * idle - 1))
    );
}

#[rocket::async_test]
async fn a_created_user_signs_in_with_its_password_and_role() {
    let app = TestApp::with(test_mode).await;
    let client = app.client().await;
    let suite = Device::new(&client);
    let boss = json!({ "username": "Boss", "password": "boss-password-1", "role": "admin" });
    let reply = hook(&suite, "/__test/users", boss).await;
    assert_eq!(reply.status, Status::Created, "{}", reply.body);
    assert_eq!(reply.json()["username"], "Boss");
    assert_eq!(reply.json()["role"], "admin");
    let reply = hook(
        &suite,
        "/__test/users",
        json!({ "username": "carol", "password": "carol-password" }),
    )
    .await;
    assert_eq!(reply.json()["role"], "user", "user is the default role");

    let boss = Device::new(&client);
    assert_eq!(
        boss.sign_in("boss", "boss-password-1").await.location(),
        "/account"
    );
    let account = boss.get("/account").await;
    assert_eq!(
        account.testid_text("account-role").as_deref(),
        Some("admin")
    );
    let carol = Device::with(&client, FIREFOX_WINDOWS, "127.0.0.1");
    carol.sign_in("carol", "carol-password").await;
    assert_eq!(
        carol
            .get("/account")
            .await
            .testid_text("account-role")
            .as_deref(),
        None
    );

    let refusals = [
        (
            json!({ "username": "BOSS", "password": "another-password" }),
            Status::Conflict,
            "username_taken",
        ),
        (
            json!({ "username": "x", "password": "long-enough" }),
            Status::UnprocessableEntity,
            "invalid_username",
        ),
        (
            json!({ "username": "dave", "password": "short" }),
            Status::UnprocessableEntity,
            "invalid_password",
        ),
        (
            json!({ "username": "dave", "password": "long-enough", "role": "Admin" }),
            Status::UnprocessableEntity,
            "invalid_role",
        ),
    ];
    for (body, status, code) in refusals {
        let reply = hook(&suite, "/__test/users", body.clone()).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (status, code),
            "{body}"
        );
    }
    assert_eq!(user_count(&app).await, 2);
}

/// A device's own session id, as its account page shows it.
async fn own_session_id(device: &Device<'_>) -> String {
    let page = device.get("/account").await.html();
    let rows = page.select(r#"[data-testid="session-row"][data-current="true"]"#);
    let row = rows.first().expect("this device's row");
    row.value()
        .attr("data-session-id")
        .expect("a session id")
        .to_owned()
}

#[rocket::async_test]
async fn signing_a_user_out_ends_every_session_and_each_device_is_told_why() {
    let app = TestApp::with(test_mode).await;
    let alice_id = app.create_user("alice", Role::User).await;
    app.create_user("bob", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    let phone = Device::with(&client, FIREFOX_WINDOWS, "127.0.0.1");
    let bob = Device::new(&client);
    laptop.sign_in("alice", PASSWORD).await;
    phone.sign_in("alice", PASSWORD).await;
    bob.sign_in("bob", PASSWORD).await;

    let reply = hook(
        &laptop,
        "/__test/sessions/revoke",
        json!({ "username": "ALICE" }),
    )
    .await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    assert_eq!(reply.json(), json!({ "revoked": 2 }));
    for device in [&laptop, &phone] {
        let login = device.get("/account").await.location().to_owned();
        assert_eq!(login, "/login?reason=revoked&next=%2Faccount");
        assert_eq!(
            device
                .get(&login)
                .await
                .testid_text("login-reason")
                .as_deref(),
            Some(
                "This device was signed out from another device or by an administrator. \
             If this wasn’t you, change your password after signing in."
            )
        );
    }
    assert_eq!(
        bob.get("/account").await.status,
        Status::Ok,
        "other accounts keep their sessions"
    );
    assert_eq!(
        app.event_kinds(alice_id).await.last().map(String::as_str),
        Some("sessions_revoked_by_admin")
    );

    let reply = hook(
        &laptop,
        "/__test/sessions/revoke",
        json!({ "username": "nobody" }),
    )
    .await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (Status::NotFound, "no_such_user")
    );
}

#[rocket::async_test]
async fn signing_one_session_out_by_its_id_keeps_the_others() {
    let app = TestApp::with(test_mode).await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    let phone = Device::with(&client, FIREFOX_WINDOWS, "127.0.0.1");
    laptop.sign_in("alice", PASSWORD).await;
    phone.sign_in("alice", PASSWORD).await;
    let phone_id = own_session_id(&phone).await;

    let reply = hook(
        &laptop,
        "/__test/sessions/revoke",
        json!({ "session_id": phone_id }),
    )
    .await;
    assert_eq!(reply.json(), json!({ "revoked": 1 }));
    assert_eq!(
        phone.get("/account").await.location(),
        "/login?reason=revoked&next=%2Faccount"
    );
    assert_eq!(laptop.get("/account").await.status, Status::Ok);
    assert_eq!(
        app.event_kinds(alice_id).await.last().map(String::as_str),
        Some("session_revoked")
    );

    let again = hook(
        &laptop,
        "/__test/sessions/revoke",
        json!({ "session_id": phone_id }),
    )
    .await;
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (Status::NotFound, "no_such_session")
    );
    for body in [
        json!({}),
        json!({ "username": "alice", "session_id": phone_id }),
        json!({ "session_id": "not-a-uuid" }),
    ] {
        assert_eq!(
            hook(&laptop, "/__test/sessions/revoke", body.clone())
                .await
                .status,
            Status::UnprocessableEntity,
            "{body}"
        );
    }
    assert_eq!(laptop.get("/account").await.status, Status::Ok);
}

#[rocket::async_test]
async fn reset_empties_every_table_and_a_signed_in_device_must_sign_in_again() {
    let app = TestApp::with(test_mode).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let stranger = Device::with(&client, FIREFOX_WINDOWS, "127.0.0.1");
    stranger.sign_in("alice", "wrong password").await;
    let api = alice
        .post_json(
            "/api/token",
            &json!({ "username": "alice", "password": PASSWORD }),
        )
        .await;
    assert_eq!(api.status, Status::Ok);
    hook(&alice, "/__test/clock/advance", json!({ "secs": 10 })).await;
    let before = app.clock_now();

    let reply = hook(&alice, "/__test/reset", json!({})).await;
    assert_eq!(reply.status, Status::NoContent, "{}", reply.body);

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() AND tablename <> '_sqlx_migrations'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(tables.len() >= 5, "{tables:?}");
    for table in &tables {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert_eq!(rows, 0, "{table} is empty");
    }
    let migrations: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(migrations > 0, "the schema's record is kept");
    assert_eq!(app.clock_now(), before, "the clock keeps its offset");

    assert_eq!(
        alice.get("/account").await.location(),
        "/login?reason=login_required&next=%2Faccount"
    );
    let reply = hook(
        &alice,
        "/__test/users",
        json!({ "username": "alice", "password": "a-new-password" }),
    )
    .await;
    assert_eq!(reply.json()["id"], 1, "ids start again");
    assert_eq!(
        alice.sign_in("alice", "a-new-password").await.location(),
        "/account"
    );
    assert_eq!(
        hook(&alice, "/__test/reset", json!({ "all": true }))
            .await
            .status,
        Status::UnprocessableEntity
    );
    assert_eq!(
        alice.get("/account").await.status,
        Status::Ok,
        "a refused reset erased nothing"
    );
}
