//! Hostile and broken input gets a clear 4xx or the normal page, never a 500 or a stack trace;
//! a database outage gets a 503 page and the app recovers without a restart.

use rocket::http::{ContentType, Method, Status};
use secure_sessions::users::Role;
use sqlx::{Connection, Executor, PgConnection};

use crate::support::http::{CHROME_LINUX, Device};
use crate::support::raw::RawRequest;
use crate::support::{PASSWORD, TestApp, server_url};

fn assert_no_internals(body: &str) {
    for leak in [
        "panicked",
        "RUST_BACKTRACE",
        "sqlx",
        "stack backtrace",
        "src/",
    ] {
        assert!(!body.contains(leak), "response leaks {leak:?}: {body}");
    }
}

#[rocket::async_test]
async fn malformed_oversized_and_repeated_cookies_count_as_no_session() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let good = alice.session_cookie().unwrap();
    // Raw bytes over a real socket: no client library would send these.
    let server = app.serve().await;

    let probes = [
        "Cookie: __Host-sid=not-a-token".to_owned(),
        format!("Cookie: __Host-sid={}", "A".repeat(4000)),
        "Cookie: __Host-sid=%%%%; __Host-sid=".to_owned(),
        format!("Cookie: __Host-sid={}x", &good[..42]),
        "Cookie: ;;;==;__Host-sid".to_owned(),
    ];
    for cookie in &probes {
        let response = RawRequest::get("/account")
            .header(cookie.as_str())
            .send(server.port)
            .await;
        assert_eq!(response.status, 303, "{cookie:.60}: {:.300}", response.head);
        assert_eq!(
            response.location(),
            "/login?reason=login_required&next=%2Faccount",
            "{cookie:.60}"
        );
    }
    // A control character is refused by the HTTP layer itself, before any handler.
    let response = RawRequest::get("/account")
        .header("Cookie: __Host-sid=\"\u{1}\"")
        .send(server.port)
        .await;
    assert_eq!(response.status, 400, "{:.300}", response.head);

    // The real token still works through the same path, so the probes above were really checked.
    // (Same User-Agent as at sign-in: the fingerprint binds it.)
    let user_agent = format!("User-Agent: {CHROME_LINUX}");
    let response = RawRequest::get("/account")
        .header(format!("Cookie: __Host-sid={good}"))
        .header(user_agent.as_str())
        .send(server.port)
        .await;
    assert_eq!(response.status, 200, "{:.300}", response.head);
    assert_eq!(
        response.html().testid_text("account-username").as_deref(),
        Some("alice")
    );

    // A repeated cookie: a junk copy next to the real one never yields a 500.
    let response = RawRequest::get("/account")
        .header(format!("Cookie: __Host-sid=junk; __Host-sid={good}"))
        .header(user_agent)
        .send(server.port)
        .await;
    assert!(
        matches!(response.status, 200 | 303),
        "{:.300}",
        response.head
    );
}

#[rocket::async_test]
async fn broken_forms_get_a_4xx_page_not_a_500() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let visitor = Device::new(&client);
    let csrf = visitor.get("/login").await.csrf_token();

    let missing_fields = visitor.post_form("/login", &[("csrf_token", &csrf)]).await;
    assert_eq!(missing_fields.status, Status::UnprocessableEntity);
    assert_no_internals(&missing_fields.body);

    let huge = "x".repeat(100 * 1024);
    let huge_field = visitor
        .post_form(
            "/login",
            &[
                ("username", &huge),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(huge_field.status, Status::PayloadTooLarge);
    assert_no_internals(&huge_field.body);

    let megabyte_password = "p".repeat(1024 * 1024);
    let reply = visitor
        .post_form(
            "/login",
            &[
                ("username", "alice"),
                ("password", &megabyte_password),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(reply.status, Status::PayloadTooLarge);

    let invalid_utf8 = visitor
        .send(
            visitor
                .request(Method::Post, "/login")
                .header(ContentType::Form)
                .body(b"username=%FF%FE&password=x&csrf_token=y"),
        )
        .await;
    assert!(
        invalid_utf8.status.code >= 400 && invalid_utf8.status.code < 500,
        "{}",
        invalid_utf8.status
    );
    assert_no_internals(&invalid_utf8.body);

    let wrong_type = visitor
        .send(
            visitor
                .request(Method::Post, "/login")
                .header(ContentType::JSON)
                .body("{}"),
        )
        .await;
    assert!(
        wrong_type.status.code >= 400 && wrong_type.status.code < 500,
        "{}",
        wrong_type.status
    );
}

#[rocket::async_test]
async fn sql_metacharacters_are_just_characters() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let visitor = Device::new(&client);
    for username in [
        "alice' OR '1'='1",
        "alice'; DROP TABLE users; --",
        "\" OR 1=1 --",
        "%",
        "_lice",
    ] {
        let reply = visitor.sign_in(username, PASSWORD).await;
        assert_eq!(reply.status, Status::Ok, "{username}");
        assert_eq!(
            reply.testid_text("login-error").as_deref(),
            Some("Incorrect username or password.")
        );
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(users, 1);
}

#[rocket::async_test]
async fn an_over_long_password_is_refused_without_hashing() {
    let app = TestApp::new().await;
    let alice_id = app.create_user("alice", Role::User).await;
    // A stored hash argon2 cannot work with (its output is missing): any password that reaches
    // argon2 for alice fails loudly, so the normal refusal below proves none did.
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0")
        .bind(alice_id)
        .execute(&app.pool)
        .await
        .unwrap();
    let client = app.client().await;
    let visitor = Device::new(&client);
    let reply = visitor.sign_in("alice", &"p".repeat(1025)).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    assert_eq!(
        reply.testid_text("login-error").as_deref(),
        Some("Incorrect username or password.")
    );

    // The probe works: a password of an allowed length does reach argon2, which fails on the
    // broken hash (a 500 here is that sabotaged row, never an input's doing).
    let hashed = visitor.sign_in("alice", &"p".repeat(1024)).await;
    assert_eq!(hashed.status, Status::InternalServerError);
}

/// The app speaks HTTP/1.1 only, the one protocol its tests cover. Rocket's HTTP/2, on by default,
/// took any client that opened with HTTP/2's preface, and Rocket sets it up with no limit on
/// streams and 16 MiB header lists.
#[rocket::async_test]
async fn a_client_opening_with_the_http2_preface_gets_no_http2() {
    use rocket::tokio::io::{AsyncReadExt, AsyncWriteExt};
    use rocket::tokio::net::TcpStream;
    use rocket::tokio::time::{Duration, timeout};

    let app = TestApp::new().await;
    let server = app.serve().await;
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect to the app");
    // How an HTTP/2 client without TLS begins (RFC 9113, 3.3): the preface, then its SETTINGS
    // frame (empty: length 0, type 4, no flags, stream 0).
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .expect("send the preface");
    let mut reply = Vec::new();
    timeout(Duration::from_secs(10), stream.read_to_end(&mut reply))
        .await
        .expect("the app closes the connection (an HTTP/2 server keeps it open)")
        .expect("read the reply");
    // An HTTP/2 server answers with a SETTINGS frame of its own and keeps the connection open;
    // HTTP/1.1 cannot parse the preface, and hyper closes the connection without a word.
    assert!(
        reply.is_empty(),
        "the app answered HTTP/2's preface: {reply:?}"
    );
}

#[rocket::async_test]
async fn unknown_pages_get_a_friendly_404() {
    let app = TestApp::new().await;
    let client = app.client().await;
    let reply = Device::new(&client).get("/wp-admin/../../etc/passwd").await;
    assert_eq!(reply.status, Status::NotFound);
    assert!(reply.shows("There is no page at this address."));
}

async fn set_connections_allowed(database_url: &str, allowed: bool) {
    let name = database_url.rsplit('/').next().unwrap();
    let mut admin = PgConnection::connect(&server_url()).await.unwrap();
    admin
        .execute(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allowed}").as_str())
        .await
        .unwrap();
    if !allowed {
        let kill = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        );
        admin.execute(kill.as_str()).await.unwrap();
    }
    admin.close().await.ok();
}

#[rocket::async_test]
async fn a_database_outage_gives_503_pages_and_the_app_recovers_without_a_restart() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    assert_eq!(alice.get("/healthz").await.status, Status::Ok);

    set_connections_allowed(&app.database_url, false).await;
    let health = alice.get("/healthz").await;
    assert_eq!(health.status, Status::ServiceUnavailable);
    let account = alice.get("/account").await;
    assert_eq!(account.status, Status::ServiceUnavailable);
    assert!(account.shows("briefly unavailable"), "{}", account.body);
    assert_no_internals(&account.body);
    assert!(
        alice.session_cookie().is_some(),
        "an outage does not sign anyone out"
    );
    let sign_in = Device::new(&client).sign_in("alice", PASSWORD).await;
    assert_eq!(sign_in.status, Status::ServiceUnavailable);

    set_connections_allowed(&app.database_url, true).await;
    assert_eq!(alice.get("/healthz").await.status, Status::Ok);
    let account = alice.get("/account").await;
    assert_eq!(account.status, Status::Ok);
    assert_eq!(
        account.testid_text("account-username").as_deref(),
        Some("alice")
    );
}

/// Text no person types but an attacker sends: NUL, every C0 and C1 control, bidi overrides,
/// invisible and non-characters, and very long values (within the body limits).
fn hostile_texts() -> Vec<String> {
    let c0: String = (0x01u8..0x20).map(char::from).collect();
    let c1: String = std::iter::once('\u{7f}')
        .chain((0x80u32..0xa0).filter_map(char::from_u32))
        .collect();
    vec![
        "\0".to_owned(),
        "alice\0".to_owned(),
        "\0alice".to_owned(),
        "al\0ice with a longer tail".to_owned(),
        format!("a{c0}b"),
        format!("a{c1}b"),
        "\u{1b}[2J\u{1b}[31malice".to_owned(),
        "alice\r\nSet-Cookie: x=y".to_owned(),
        "\u{202e}ecila".to_owned(),
        "\u{2066}alice\u{2069}\u{200f}\u{200e}\u{61c}".to_owned(),
        "\u{200b}\u{200d}\u{feff}".to_owned(),
        "\u{fffe}\u{ffff}\u{10ffff}\u{e000}".to_owned(),
        "al\u{130}ce \u{131}".to_owned(),
        "a".repeat(4000),
        "\u{e4}".repeat(3000),
        format!("{}\0{}", "b".repeat(2000), "\u{202e}".repeat(500)),
    ]
}

/// Sends `fields` with one of them replaced by each hostile text, and checks every answer.
async fn probe_form(
    device: &Device<'_>,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
    also_csrf: bool,
) {
    let csrf = device.get(page).await.csrf_token();
    let mut names: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
    if also_csrf {
        names.push("csrf_token");
    }
    for name in names {
        for hostile in hostile_texts() {
            let mut all: Vec<(&str, &str)> = vec![("csrf_token", csrf.as_str())];
            all.extend_from_slice(fields);
            for field in all.iter_mut().filter(|(field, _)| *field == name) {
                field.1 = hostile.as_str();
            }
            let reply = device.post_form(action, &all).await;
            assert!(
                reply.status.code < 500,
                "{action} {name}={hostile:.40?}: {} {:.300}",
                reply.status,
                reply.body
            );
            assert_no_internals(&reply.body);
        }
    }
}

#[rocket::async_test]
async fn control_characters_bidi_overrides_and_long_values_in_any_field_never_give_a_5xx() {
    // Budgets far above the probes, so every probe reaches the code behind the throttle.
    let app = TestApp::with(|f| {
        f.merge(("sessions.throttle_account_failures", 100_000))
            .merge(("sessions.throttle_ip_failures", 100_000))
    })
    .await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let visitor = Device::new(&client);
    let login = [
        ("username", "alice"),
        ("password", PASSWORD),
        ("next", "/account"),
    ];
    probe_form(&visitor, "/login", "/login", &login, true).await;

    let strong = "violet tractor mango seventeen";
    let register = [
        ("username", "newcomer"),
        ("password", strong),
        ("password_confirm", strong),
    ];
    // Every probe changes one field, so none of them is a valid sign-up: no account appears.
    probe_form(
        &Device::new(&client),
        "/register",
        "/register",
        &register,
        true,
    )
    .await;
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(users, 1);

    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let change = [
        ("current_password", PASSWORD),
        ("new_password", strong),
        ("new_password_confirm", strong),
    ];
    probe_form(
        &alice,
        "/account/password",
        "/account/password",
        &change,
        true,
    )
    .await;
    probe_form(
        &alice,
        "/confirm",
        "/confirm",
        &[("password", PASSWORD), ("next", "/account")],
        true,
    )
    .await;
    assert_eq!(
        alice.get("/account").await.status,
        Status::Ok,
        "alice is still signed in"
    );

    let script = Device::new(&client);
    let refresh_token = script
        .post_json(
            "/api/token",
            &serde_json::json!({ "username": "alice", "password": PASSWORD }),
        )
        .await
        .json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for hostile in hostile_texts() {
        let bodies = [
            (
                "/api/token",
                serde_json::json!({ "username": hostile, "password": PASSWORD }),
            ),
            (
                "/api/token",
                serde_json::json!({ "username": "alice", "password": hostile }),
            ),
            (
                "/api/token/refresh",
                serde_json::json!({ "refresh_token": hostile }),
            ),
            (
                "/api/token/refresh",
                serde_json::json!({ "refresh_token": format!("{refresh_token}{hostile}") }),
            ),
        ];
        for (path, body) in bodies {
            let reply = script.post_json(path, &body).await;
            assert!(
                reply.status.code < 500,
                "{path} {hostile:.40?}: {} {:.300}",
                reply.status,
                reply.body
            );
            assert!(
                reply.status.code >= 400,
                "{path} {hostile:.40?} was accepted: {}",
                reply.body
            );
            assert_no_internals(&reply.body);
        }
    }
    // JSON that no Rust string can hold: a lone surrogate.
    for body in [
        r#"{"username":"\ud800","password":"x"}"#,
        r#"{"refresh_token":"\udfff"}"#,
    ] {
        for path in ["/api/token", "/api/token/refresh"] {
            let reply = script
                .send(
                    script
                        .request(Method::Post, path)
                        .header(ContentType::JSON)
                        .body(body),
                )
                .await;
            assert!(
                reply.status.code >= 400 && reply.status.code < 500,
                "{path} {body}: {}",
                reply.status
            );
        }
    }
}

#[rocket::async_test]
async fn a_nul_in_the_username_is_the_normal_refusal_on_the_form_and_the_api() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let visitor = Device::new(&client);
    let reply = visitor.sign_in("alice\0", PASSWORD).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    assert_eq!(
        reply.testid_text("login-error").as_deref(),
        Some("Incorrect username or password.")
    );
    let reply = visitor
        .post_json(
            "/api/token",
            &serde_json::json!({ "username": "al\0ice", "password": PASSWORD }),
        )
        .await;
    assert_eq!(reply.status, Status::Unauthorized, "{}", reply.body);
    assert_eq!(reply.error_code(), "invalid_credentials");
}
