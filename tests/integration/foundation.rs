//! Sign-in, the account page and sign-out (DESIGN sections 3, 5, 6, 8).

use rocket::http::{Method, Status};
use rocket::local::asynchronous::Client;
use secure_sessions::db::MIGRATOR;
use secure_sessions::session::token::SessionToken;
use secure_sessions::users::{self, Role, Username};
use sha2::{Digest, Sha256};
use sqlx::{Connection, Executor, PgConnection};
use time::OffsetDateTime;

use crate::support::http::{CHROME_LINUX, Device, FIREFOX_WINDOWS, Reply};
use crate::support::{PASSWORD, TestApp, empty_database};

#[rocket::async_test]
async fn a_protected_page_without_a_session_redirects_to_login_with_reason_and_next() {
    let app = TestApp::new().await;
    let client = app.client().await;
    let visitor = Device::new(&client);
    let reply = visitor.get("/account").await;
    assert_eq!(reply.status, Status::SeeOther);
    assert_eq!(
        reply.location(),
        "/login?reason=login_required&next=%2Faccount"
    );
    let login = visitor.get(reply.location()).await;
    assert_eq!(
        login.testid_text("login-reason").as_deref(),
        Some("Please sign in to continue.")
    );
}

#[rocket::async_test]
async fn the_start_page_sends_visitors_to_login_and_members_to_their_account() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    assert_eq!(alice.get("/").await.location(), "/login");
    alice.sign_in("alice", PASSWORD).await;
    assert_eq!(alice.get("/").await.location(), "/account");
}

#[rocket::async_test]
async fn signing_in_sets_a_host_prefixed_secure_http_only_lax_cookie() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    let reply = alice.sign_in("alice", PASSWORD).await;
    assert_eq!(reply.status, Status::SeeOther);
    assert_eq!(reply.location(), "/account");

    let cookie = reply.set_cookie("__Host-sid").expect("a session cookie");
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.same_site(), Some(rocket::http::SameSite::Lax));
    assert_eq!(cookie.path(), Some("/"));
    assert_eq!(cookie.domain(), None);
    let config = app.config();
    let lifetime = i64::from(config.absolute_timeout_secs + config.tombstone_grace_secs);
    assert_eq!(
        cookie.max_age().map(time::SignedDuration::whole_seconds),
        Some(lifetime)
    );
    // 256 bits, base64url without padding.
    assert_eq!(cookie.value().len(), 43);
    assert!(
        cookie
            .value()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
}

#[rocket::async_test]
async fn the_database_keeps_only_the_sha256_of_the_token() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let cookie = alice.session_cookie().expect("signed in");

    let keys: Vec<Vec<u8>> = sqlx::query_scalar("SELECT key FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let raw = SessionToken::parse(&cookie).unwrap();
    let expected: [u8; 32] = Sha256::digest(base64_decode(&cookie)).into();
    assert_eq!(keys, vec![expected.to_vec()]);
    assert_eq!(raw.key().as_bytes(), &expected);
    // Nothing in the row holds the cookie value itself.
    let dump: String = sqlx::query_scalar("SELECT row_to_json(s)::text FROM sessions s")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!dump.contains(&cookie));
}

fn base64_decode(value: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value)
        .unwrap()
}

#[rocket::async_test]
async fn the_account_page_shows_who_you_are_and_when_this_session_signed_in() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let page = alice.get("/account").await;
    assert_eq!(page.status, Status::Ok);
    assert_eq!(
        page.testid_text("account-username").as_deref(),
        Some("alice")
    );
    // An ordinary account's role goes without saying.
    assert_eq!(page.testid_text("account-role").as_deref(), None);
    let expected = secure_sessions::html::format_time(app.clock_now());
    assert_eq!(page.testid_text("signed-in-at"), Some(expected));
    assert_eq!(page.count_testid("session-row"), 1);
    assert_eq!(
        page.html()
            .select(r#"[data-testid="session-row"][data-current="true"]"#)
            .len(),
        1
    );
    assert!(page.shows("Chrome on Linux"));
}

/// A page of a live session sets no cookie: the token and its CSRF token stay as they are, and
/// nothing else (no note clearing, no stray cookie) churns the browser's jar or a cache's key.
#[rocket::async_test]
async fn a_live_sessions_pages_set_no_cookie() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    for path in ["/account", "/account/password", "/account", "/confirm"] {
        let page = alice.get(path).await;
        assert_eq!(page.status, Status::Ok, "{path}");
        let set: Vec<_> = page
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("Set-Cookie"))
            .collect();
        assert!(set.is_empty(), "{path} set {set:?}");
    }
}

#[rocket::async_test]
async fn after_sign_in_the_user_lands_on_the_local_page_they_asked_for() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    let redirect = alice.get("/account?tab=devices").await;
    let login_url = redirect.location().to_owned();
    assert!(login_url.contains("next="), "{login_url}");
    let reply = alice.sign_in_to(&login_url, "alice", PASSWORD).await;
    assert_eq!(reply.location(), "/account?tab=devices");
}

#[rocket::async_test]
async fn a_next_that_leaves_the_site_falls_back_to_the_account_page() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    for next in [
        "//evil.example",
        "https://evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
    ] {
        let alice = Device::new(&client);
        let page = alice.get("/login").await;
        let reply = alice
            .post_form(
                "/login",
                &[
                    ("username", "alice"),
                    ("password", PASSWORD),
                    ("csrf_token", &page.csrf_token()),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(reply.location(), "/account", "next={next}");
        // The login page never carries it into the form either.
        let login = alice
            .get(&format!(
                "/login?next={}",
                crate::support::http::form_encode(next)
            ))
            .await;
        assert!(!login.body.contains("evil.example"), "next={next}");
    }
}

#[rocket::async_test]
async fn wrong_password_and_unknown_user_get_the_same_message() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let visitor = Device::new(&client);
    let wrong_password = visitor.sign_in("alice", "not the password at all").await;
    let unknown_user = visitor.sign_in("mallory", PASSWORD).await;
    for reply in [&wrong_password, &unknown_user] {
        assert_eq!(reply.status, Status::Ok);
        assert_eq!(
            reply.testid_text("login-error").as_deref(),
            Some("Incorrect username or password.")
        );
        assert!(reply.set_cookie("__Host-sid").is_none());
    }
    assert_eq!(app.event_kinds(user_id).await, vec!["sign_in_failed"]);
}

#[rocket::async_test]
async fn usernames_are_case_insensitive_at_sign_in() {
    let app = TestApp::new().await;
    app.create_user("Alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    assert_eq!(
        alice.sign_in("aLiCe", PASSWORD).await.location(),
        "/account"
    );
}

#[rocket::async_test]
async fn sign_in_destroys_the_session_the_browser_came_with() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    // Two tabs with the sign-in form open: signing in from the second replaces the first session.
    let csrf = alice.get("/login").await.csrf_token();
    let form = [
        ("username", "alice"),
        ("password", PASSWORD),
        ("csrf_token", csrf.as_str()),
    ];
    alice.post_form("/login", &form).await;
    let first = alice.session_cookie().unwrap();
    alice.post_form("/login", &form).await;
    let second = alice.session_cookie().unwrap();
    assert_ne!(first, second, "sign-in always issues a new token");
    assert_eq!(
        app.session_row(&first).await.unwrap().0.as_deref(),
        Some("signed_out")
    );

    // An attacker who planted or kept the first token gets nothing from it.
    let attacker = Device::new(&client);
    attacker.set_cookie("__Host-sid", &first);
    assert!(
        attacker
            .get("/account")
            .await
            .location()
            .starts_with("/login?reason=")
    );
}

#[rocket::async_test]
async fn a_token_nobody_issued_is_refused_and_cleared() {
    let app = TestApp::new().await;
    let client = app.client().await;
    let attacker = Device::new(&client);
    attacker.set_cookie("__Host-sid", &SessionToken::generate().expose());
    let reply = attacker.get("/account").await;
    assert_eq!(
        reply.location(),
        "/login?reason=login_required&next=%2Faccount"
    );
    let cleared = reply
        .set_cookie("__Host-sid")
        .expect("the cookie is cleared");
    assert_eq!(cleared.value(), "");
    assert_eq!(cleared.secure(), Some(true));
    assert_eq!(cleared.path(), Some("/"));
}

#[rocket::async_test]
async fn signing_out_revokes_the_row_clears_the_cookie_and_the_site_data() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let token = alice.session_cookie().unwrap();

    let reply = alice.sign_out().await;
    assert_eq!(reply.status, Status::SeeOther);
    assert_eq!(reply.location(), "/login?reason=signed_out");
    assert_eq!(
        reply.header("Clear-Site-Data"),
        Some("\"cookies\", \"storage\"")
    );
    let cleared = reply.set_cookie("__Host-sid").expect("cookie cleared");
    assert_eq!(cleared.value(), "");
    assert_eq!(
        cleared.max_age().map(time::SignedDuration::whole_seconds),
        Some(0)
    );
    assert_eq!(
        (cleared.secure(), cleared.http_only(), cleared.path()),
        (Some(true), Some(true), Some("/"))
    );
    assert_eq!(alice.session_cookie(), None);

    assert_eq!(
        app.session_row(&token).await,
        Some((Some("signed_out".into()), user_id))
    );
    assert_eq!(app.event_kinds(user_id).await, vec!["sign_in", "sign_out"]);
    let login = alice.get("/login?reason=signed_out").await;
    assert_eq!(
        login.testid_text("login-reason").as_deref(),
        Some("You have been signed out.")
    );

    // Replaying the old cookie does not bring the session back.
    let replay = Device::new(&client);
    replay.set_cookie("__Host-sid", &token);
    assert_eq!(
        replay.get("/account").await.location(),
        "/login?reason=signed_out&next=%2Faccount"
    );
    assert_eq!(
        app.session_row(&token).await,
        Some((Some("signed_out".into()), user_id))
    );
}

#[rocket::async_test]
async fn forms_without_the_right_csrf_token_are_refused_with_403() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);

    // No token, then a token that is not the one in this browser's cookie.
    let foreign_token = Device::new(&client).get("/login").await.csrf_token();
    alice.get("/login").await;
    for token in ["", foreign_token.as_str()] {
        let reply = alice
            .post_form(
                "/login",
                &[
                    ("username", "alice"),
                    ("password", PASSWORD),
                    ("csrf_token", token),
                ],
            )
            .await;
        assert_eq!(reply.status, Status::Forbidden, "token {token:?}");
        assert!(reply.shows("did not come from this site"));
    }
    let register = alice
        .post_form(
            "/register",
            &[
                ("username", "bob"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
                ("csrf_token", &foreign_token),
            ],
        )
        .await;
    assert_eq!(register.status, Status::Forbidden);

    alice.sign_in("alice", PASSWORD).await;
    let logout = alice
        .post_form("/logout", &[("csrf_token", &foreign_token)])
        .await;
    assert_eq!(logout.status, Status::Forbidden);
    assert_eq!(
        alice.get("/account").await.status,
        Status::Ok,
        "still signed in"
    );
}

#[rocket::async_test]
async fn registering_signs_the_new_account_in() {
    let app = TestApp::new().await;
    let client = app.client().await;
    let bob = Device::new(&client);
    let csrf = bob.get("/register").await.csrf_token();
    let password = "violet tractor mango seventeen";
    let reply = bob
        .post_form(
            "/register",
            &[
                ("username", "bob"),
                ("password", password),
                ("password_confirm", password),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(reply.location(), "/account");
    assert_eq!(
        bob.get("/account")
            .await
            .testid_text("account-username")
            .as_deref(),
        Some("bob")
    );

    // The new password works from another browser.
    let other = Device::new(&client);
    assert_eq!(other.sign_in("BOB", password).await.location(), "/account");
}

#[rocket::async_test]
async fn registration_explains_what_is_wrong() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let visitor = Device::new(&client);
    let strong = "violet tractor mango seventeen";
    let cases = [
        ("al", strong, strong, "Usernames are 3 to 32 characters"),
        ("bob", "password1", "password1", "too easy to guess"),
        ("bob", "short", "short", "at least 8 characters"),
        (
            "bob",
            strong,
            "violet tractor mango eighteen",
            "do not match",
        ),
        ("ALICE", strong, strong, "That username is taken"),
    ];
    for (username, password, confirm, message) in cases {
        let csrf = visitor.get("/register").await.csrf_token();
        let reply = visitor
            .post_form(
                "/register",
                &[
                    ("username", username),
                    ("password", password),
                    ("password_confirm", confirm),
                    ("csrf_token", &csrf),
                ],
            )
            .await;
        assert_eq!(reply.status, Status::Ok, "{username}/{password}");
        assert!(
            reply.shows(message),
            "expected {message:?} for {username}/{password}: {}",
            reply.body
        );
        assert!(reply.set_cookie("__Host-sid").is_none());
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[rocket::async_test]
async fn unknown_reason_codes_show_no_message_and_are_not_echoed() {
    let app = TestApp::new().await;
    let client = app.client().await;
    let visitor = Device::new(&client);
    let page = visitor
        .get("/login?reason=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .await;
    assert_eq!(page.status, Status::Ok);
    assert_eq!(page.count_testid("login-reason"), 0);
    assert!(!page.body.contains("alert(1)"));
}

#[rocket::async_test]
async fn every_response_carries_the_security_headers_and_pages_are_not_stored() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    for path in ["/login", "/account", "/no-such-page", "/healthz"] {
        let reply = alice.get(path).await;
        assert_eq!(
            reply.header("Content-Security-Policy"),
            Some(
                "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
            ),
            "{path}"
        );
        assert_eq!(
            reply.header("X-Content-Type-Options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            reply.header("Referrer-Policy"),
            Some("same-origin"),
            "{path}"
        );
        assert_eq!(reply.header("Cache-Control"), Some("no-store"), "{path}");
        assert_eq!(
            reply.header("Strict-Transport-Security"),
            None,
            "no HSTS outside the release profile"
        );
    }
}

#[rocket::async_test]
async fn in_the_release_profile_every_response_tells_browsers_to_keep_to_https() {
    // The release profile as the app's own configuration stack defines it (the code's safe
    // defaults and Rocket.toml), on the real routes and the real header fairing.
    let app = TestApp::with(|figment| figment.select("release")).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    assert_eq!(
        alice.sign_in("alice", PASSWORD).await.status,
        Status::SeeOther
    );
    for path in [
        "/login",
        "/account",
        "/no-such-page",
        "/healthz",
        "/static/app.css",
    ] {
        let reply = alice.get(path).await;
        assert_eq!(
            reply.header("Strict-Transport-Security"),
            Some("max-age=63072000; includeSubDomains"),
            "{path}: {}",
            reply.status
        );
    }
}

#[rocket::async_test]
async fn the_role_is_read_fresh_on_every_request() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    assert_eq!(
        alice
            .get("/account")
            .await
            .testid_text("account-role")
            .as_deref(),
        None
    );
    sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1")
        .bind(user_id)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        alice
            .get("/account")
            .await
            .testid_text("account-role")
            .as_deref(),
        Some("admin")
    );
}

#[rocket::async_test]
async fn a_disabled_account_loses_its_session_at_the_next_click_and_cannot_sign_in() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    sqlx::query("UPDATE users SET disabled = TRUE WHERE id = $1")
        .bind(user_id)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        alice.get("/account").await.location(),
        "/login?reason=revoked&next=%2Faccount"
    );
    let again = alice.sign_in("alice", PASSWORD).await;
    assert_eq!(
        again.testid_text("login-error").as_deref(),
        Some(ACCOUNT_DISABLED)
    );
    assert_eq!(alice.session_cookie(), None);
}

const ACCOUNT_DISABLED: &str =
    "This account has been disabled. Please contact an administrator to have it enabled again.";

#[rocket::async_test]
async fn a_disabled_account_is_told_so_after_the_right_password_and_only_then() {
    const WRONG: &str = "not the password at all";
    let app = TestApp::new().await;
    let alice_id = app.create_user("alice", Role::User).await;
    app.create_user("carol", Role::User).await;
    sqlx::query("UPDATE users SET disabled = TRUE WHERE id = $1")
        .bind(alice_id)
        .execute(&app.pool)
        .await
        .unwrap();
    let client = app.client().await;
    let browser = Device::new(&client);

    let right = browser.sign_in("alice", PASSWORD).await;
    assert_eq!(right.status, Status::Ok);
    assert_eq!(
        right.testid_text("login-error").as_deref(),
        Some(ACCOUNT_DISABLED)
    );
    assert_eq!(browser.session_cookie(), None);

    // A wrong password for the disabled account gets the page any wrong password gets: that of
    // an enabled account (a name of the same length), and that of a name no account has.
    let wrong = browser.sign_in("alice", WRONG).await;
    let enabled = browser.sign_in("carol", WRONG).await;
    let unknown = browser.sign_in("nobod", WRONG).await;
    assert_eq!(
        wrong.testid_text("login-error").as_deref(),
        Some("Incorrect username or password.")
    );
    for other in [&enabled, &unknown] {
        assert_eq!(wrong.status, other.status);
        assert_eq!(
            wrong.body,
            other
                .body
                .replace("carol", "alice")
                .replace("nobod", "alice")
        );
    }

    // The token API alike.
    let api = |username: &'static str, password: &'static str| {
        let browser = &browser;
        async move {
            browser
                .post_json(
                    "/api/token",
                    &serde_json::json!({ "username": username, "password": password }),
                )
                .await
        }
    };
    let right = api("alice", PASSWORD).await;
    assert_eq!(right.status, Status::Forbidden);
    assert_eq!(right.body, r#"{"error":"account_disabled"}"#);
    for username in ["alice", "carol", "nobod"] {
        let wrong = api(username, WRONG).await;
        assert_eq!(wrong.status, Status::Unauthorized, "{username}");
        assert_eq!(
            wrong.body, r#"{"error":"invalid_credentials"}"#,
            "{username}"
        );
    }
}

#[rocket::async_test]
async fn json_clients_get_a_401_body_instead_of_a_redirect() {
    let app = TestApp::new().await;
    let client = app.client().await;
    let script = Device::new(&client);
    let reply = script
        .send(
            script
                .request(Method::Get, "/account")
                .header(rocket::http::Accept::JSON),
        )
        .await;
    assert_eq!(reply.status, Status::Unauthorized);
    assert_eq!(
        reply.body,
        r#"{"error":"unauthorized","reason":"login_required"}"#
    );
}

#[rocket::async_test]
async fn the_device_list_names_each_browser() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::with(&client, CHROME_LINUX, "198.51.100.7");
    let desktop = Device::with(&client, FIREFOX_WINDOWS, "203.0.113.9");
    laptop.sign_in("alice", PASSWORD).await;
    desktop.sign_in("alice", PASSWORD).await;
    let page = laptop.get("/account").await;
    assert_eq!(page.count_testid("session-row"), 2);
    assert!(page.shows("Chrome on Linux") && page.shows("198.51.100.7"));
    assert!(page.shows("Firefox on Windows") && page.shows("203.0.113.9"));
    assert_eq!(
        page.html()
            .select(r#"[data-testid="session-row"][data-current="true"]"#)
            .len(),
        1
    );
}

/// Signs `username` up from a browser of its own; the reply to the form.
async fn sign_up(client: &Client, username: &str) -> Reply {
    let visitor = Device::new(client);
    let csrf = visitor.get("/register").await.csrf_token();
    let password = "violet tractor mango seventeen";
    visitor
        .post_form(
            "/register",
            &[
                ("username", username),
                ("password", password),
                ("password_confirm", password),
                ("csrf_token", &csrf),
            ],
        )
        .await
}

#[rocket::async_test]
async fn a_name_that_looks_like_an_existing_account_is_refused_at_sign_up() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    app.create_user("bob", Role::User).await;
    let client = app.client().await;
    for look_alike in ["aIice", "a1ice", "alice.", "al_ice", "A1ice", "b0b"] {
        let reply = sign_up(&client, look_alike).await;
        assert_eq!(reply.status, Status::Ok, "{look_alike}");
        assert!(
            reply.shows("looks too much like one that is"),
            "{look_alike}: {}",
            reply.body
        );
        assert!(reply.set_cookie("__Host-sid").is_none(), "{look_alike}");
    }
    let names: Vec<String> = sqlx::query_scalar("SELECT username FROM users ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(names, ["alice", "bob"]);
    // A name that only resembles one is still free.
    assert_eq!(sign_up(&client, "alicia").await.location(), "/account");
}

/// Accounts made before look-alikes were refused get their key from migrations/0019, in SQL:
/// it must be the one the app computes, or a new look-alike of an old account would get in. Of
/// old accounts that already look alike, the oldest holds the key and both keep working.
#[rocket::async_test]
async fn accounts_older_than_the_look_alike_rule_get_the_key_the_app_computes() {
    let database = empty_database().await;
    let mut conn = PgConnection::connect(&database.url).await.unwrap();
    let (before, rule): (Vec<_>, Vec<_>) = MIGRATOR.iter().partition(|m| m.version < 19);
    for migration in before {
        conn.execute(&*migration.sql).await.unwrap();
    }
    let names = [
        "alice",
        "aIice", // already looked like alice
        "abcdefghijklmnopqrstuvwxyz",
        "ZYXWVUTSRQPONMLKJIHGFEDCBA",
        "0123456789._-x",
        "Mm1I0o.emma_",
    ];
    for name in names {
        sqlx::query(
            "INSERT INTO users (username, password_hash, created_at) VALUES ($1, 'x', now())",
        )
        .bind(name)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    conn.execute(&*rule[0].sql).await.unwrap();

    let keys: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT username, look_alike_key FROM users ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for (name, key) in keys {
        let computed = Username::parse(&name).unwrap().look_alike_key();
        if name == "aIice" {
            assert_eq!(key, None, "the newer of two look-alikes");
        } else {
            assert_eq!(key, Some(computed), "{name}");
        }
    }
    let look_alike = Username::parse("a1ice").unwrap();
    let created = users::store::create(
        &mut conn,
        &look_alike,
        "x",
        Role::User,
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert_eq!(created, None, "a new look-alike of an old account");
}
