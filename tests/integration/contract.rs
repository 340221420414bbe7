//! Contract details a client can rely on: every state-changing form checks its CSRF token before
//! anything else, and refuses unread what the browser says another site sent; a JSON client
//! learns that it needs a confirmation by a stable code, and no response names the server software.

use rocket::http::{Accept, ContentType, Cookie, Header, Method, Status};
use secure_sessions::users::Role;
use time::OffsetDateTime;

use crate::support::http::{Device, FIREFOX_WINDOWS, Reply, form_body};
use crate::support::{PASSWORD, TestApp};

/// Every field name any form of the app reads, so a request can be complete but for its token.
const EVERY_OTHER_FIELD: [(&str, &str); 10] = [
    ("username", "mallory"),
    ("password", PASSWORD),
    ("password_confirm", PASSWORD),
    ("current_password", PASSWORD),
    ("new_password", "violet tractor mango seventeen"),
    ("new_password_confirm", "violet tractor mango seventeen"),
    ("next", "/account"),
    ("ceremony", "00000000-0000-4000-8000-000000000000"),
    ("name", "Phone"),
    ("credential", "{}"),
];

fn assert_refused_as_forged(reply: &Reply, what: &str) {
    assert_eq!(reply.status, Status::Forbidden, "{what}: {}", reply.body);
    assert!(
        reply.shows("did not come from this site"),
        "{what}: {}",
        reply.body
    );
}

#[rocket::async_test]
async fn every_state_changing_form_refuses_a_missing_or_foreign_csrf_token_with_403_before_reading_its_fields()
 {
    let app = TestApp::new().await;
    app.create_user("admin", Role::Admin).await;
    let bob_id = app.create_user("bob", Role::User).await;
    let client = app.client().await;
    let admin = Device::new(&client);
    let admin_phone = Device::with(&client, FIREFOX_WINDOWS, "203.0.113.9");
    let bob = Device::new(&client);
    admin.sign_in("admin", PASSWORD).await;
    admin_phone.sign_in("admin", PASSWORD).await;
    bob.sign_in("bob", PASSWORD).await;
    // Confirmed, so the privileged actions get as far as their form.
    assert_eq!(admin.confirm(PASSWORD).await.location(), "/account");
    let (phone_id, _) = admin
        .devices()
        .await
        .into_iter()
        .find(|(_, current)| !current)
        .expect("the phone");
    // Tokens that are real, but not this browser's: another session's, another visitor's.
    let other_session_token = admin_phone.get("/account").await.csrf_token();
    let other_visitor_token = Device::new(&client).get("/login").await.csrf_token();
    let events_before: i64 = sqlx::query_scalar("SELECT count(*) FROM security_events")
        .fetch_one(&app.pool)
        .await
        .unwrap();

    // Every form route the app has (the token API takes JSON and bearer tokens, the DBSC endpoints
    // signed proofs in headers no form can set: none of them reads a form).
    let form_routes: Vec<String> = secure_sessions::routes::routes()
        .into_iter()
        .filter(|route| route.method == Method::Post)
        .filter(|route| {
            !route.uri.path().starts_with("/api/")
                && !route.uri.path().starts_with("/session/dbsc/")
        })
        .map(|route| {
            let path = route.uri.path().to_owned();
            let id = if path.starts_with("/admin/users/") {
                bob_id.to_string()
            } else if path.starts_with("/account/passkeys/") {
                // A passkey id: a number (none exists; the token is checked first).
                "1".to_owned()
            } else {
                phone_id.clone()
            };
            path.replace("<id>", &id)
        })
        .collect();
    assert_eq!(form_routes.len(), 19, "{form_routes:?}");

    for path in &form_routes {
        for token in [
            None,
            Some(""),
            Some(other_session_token.as_str()),
            Some(other_visitor_token.as_str()),
        ] {
            let token_field = token.map(|token| ("csrf_token", token));
            // Without the token, and with it wrong: alone, and next to every other field.
            let bare: Vec<(&str, &str)> = token_field.into_iter().collect();
            let complete: Vec<(&str, &str)> =
                token_field.into_iter().chain(EVERY_OTHER_FIELD).collect();
            for fields in [bare, complete] {
                let reply = admin.post_form(path, &fields).await;
                assert_refused_as_forged(
                    &reply,
                    &format!("{path} with {} fields, token {token:?}", fields.len()),
                );
            }
        }
    }

    // Nothing happened: nobody signed out, nothing recorded, every account as it was.
    let events_after: i64 = sqlx::query_scalar("SELECT count(*) FROM security_events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(events_after, events_before);
    let ended: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(ended, 0);
    assert_eq!(
        admin.get("/admin").await.status,
        Status::Ok,
        "still signed in and confirmed"
    );
    assert_eq!(admin_phone.get("/account").await.status, Status::Ok);
    assert_eq!(bob.get("/account").await.status, Status::Ok);

    // With the right token the form's fields are read as before: a missing one is 422.
    let incomplete = admin
        .post_from("/account/password", "/account/password", &[])
        .await;
    assert_eq!(incomplete.status, Status::UnprocessableEntity);
    let visitor = Device::new(&client);
    let csrf = visitor.get("/login").await.csrf_token();
    let incomplete = visitor.post_form("/login", &[("csrf_token", &csrf)]).await;
    assert_eq!(incomplete.status, Status::UnprocessableEntity);
}

/// An empty CSRF token matches nothing, not even an empty expected one. Only a server holding
/// the app's key can seal a double-submit cookie, but the check does not lean on that: a visitor
/// whose sealed cookie holds an empty token, posting an empty field, is refused like any forger.
#[rocket::async_test]
async fn an_empty_csrf_token_never_matches_not_even_an_empty_sealed_cookie() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let visitor = Device::new(&client);
    for path in ["/login", "/register"] {
        let fields = [
            ("csrf_token", ""),
            ("username", "alice"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ];
        let request = visitor
            .request(Method::Post, path)
            .private_cookie(Cookie::new("__Host-csrf", ""))
            .header(ContentType::Form)
            .body(form_body(&fields));
        let reply = visitor.send(request).await;
        assert_refused_as_forged(&reply, path);
        assert!(reply.set_cookie("__Host-sid").is_none(), "{path}");
    }
}

#[rocket::async_test]
async fn a_json_client_without_a_recent_confirmation_gets_the_confirmation_required_code() {
    let app = TestApp::new().await;
    app.create_user("admin", Role::Admin).await;
    let client = app.client().await;
    let admin = Device::new(&client);
    admin.sign_in("admin", PASSWORD).await;
    let csrf = admin.get("/account").await.csrf_token();

    let post = |path: &'static str, token: &str| {
        let request = admin
            .request(Method::Post, path)
            .header(ContentType::Form)
            .header(Accept::JSON);
        admin.send(request.body(format!("csrf_token={token}")))
    };
    let reply = post("/account/sessions/revoke-others", &csrf).await;
    assert_eq!(reply.status, Status::Forbidden);
    assert_eq!(
        reply.error_code(),
        "confirmation_required",
        "{}",
        reply.body
    );
    let reply = admin
        .send(admin.request(Method::Get, "/admin").header(Accept::JSON))
        .await;
    assert_eq!(reply.status, Status::Forbidden);
    assert_eq!(
        reply.error_code(),
        "confirmation_required",
        "{}",
        reply.body
    );

    // Once confirmed, a wrong CSRF token is told apart from a missing confirmation.
    admin.confirm(PASSWORD).await;
    let reply = post("/account/sessions/revoke-others", "forged").await;
    assert_eq!(reply.status, Status::Forbidden);
    assert_eq!(reply.error_code(), "forbidden", "{}", reply.body);
    // A browser (no JSON asked for) is still sent to confirm, as before.
    let browser = Device::new(&client);
    browser.sign_in("admin", PASSWORD).await;
    assert_eq!(
        browser.get("/admin").await.location(),
        "/confirm?next=%2Fadmin"
    );
}

#[rocket::async_test]
async fn no_response_names_the_server_software() {
    let app = TestApp::new().await;
    let client = app.client().await;
    let visitor = Device::new(&client);
    for path in [
        "/login",
        "/healthz",
        "/static/app.css",
        "/no-such-page",
        "/account",
    ] {
        let reply = visitor.get(path).await;
        assert_eq!(
            reply.header("Server"),
            None,
            "{path} ({}) names the server",
            reply.status
        );
    }
}

/// What the browser says about where a request comes from, as a page of another site or of a
/// sibling subdomain makes it send (an older browser sends only `Origin`).
const ELSEWHERE: [(&str, &str); 4] = [
    ("Sec-Fetch-Site", "cross-site"),
    ("Sec-Fetch-Site", "same-site"),
    ("Origin", "https://evil.example"),
    ("Origin", "null"),
];

async fn post_with(
    device: &Device<'_>,
    path: &str,
    header: (&str, &str),
    fields: &[(&str, &str)],
) -> Reply {
    let request = device
        .request(Method::Post, path)
        .header(ContentType::Form)
        .header(Header::new(header.0.to_owned(), header.1.to_owned()))
        .body(form_body(fields));
    device.send(request).await
}

async fn last_seen_of_all(app: &TestApp) -> Vec<OffsetDateTime> {
    sqlx::query_scalar("SELECT last_seen_at FROM sessions ORDER BY public_id")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[rocket::async_test]
async fn every_state_changing_form_refuses_what_the_browser_says_another_site_sent_before_any_work()
{
    let app = TestApp::new().await;
    app.create_user("admin", Role::Admin).await;
    let bob_id = app.create_user("bob", Role::User).await;
    let client = app.client().await;
    let admin = Device::new(&client);
    let admin_phone = Device::with(&client, FIREFOX_WINDOWS, "203.0.113.9");
    admin.sign_in("admin", PASSWORD).await;
    admin_phone.sign_in("admin", PASSWORD).await;
    assert_eq!(admin.confirm(PASSWORD).await.location(), "/account");
    let (phone_id, _) = admin
        .devices()
        .await
        .into_iter()
        .find(|(_, current)| !current)
        .expect("the phone");
    let csrf = admin.get("/account").await.csrf_token();
    let visitor = Device::new(&client);
    let visitor_csrf = visitor.get("/login").await.csrf_token();
    let events_before: i64 = sqlx::query_scalar("SELECT count(*) FROM security_events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    // Past the touch interval: any request that looked the session up would write last-seen.
    app.advance_secs(i64::from(app.config().touch_interval_secs()) + 1);
    let seen_before = last_seen_of_all(&app).await;

    let form_routes: Vec<String> = secure_sessions::routes::routes()
        .into_iter()
        .filter(|route| route.method == Method::Post)
        .filter(|route| {
            !route.uri.path().starts_with("/api/")
                && !route.uri.path().starts_with("/session/dbsc/")
        })
        .map(|route| {
            let path = route.uri.path().to_owned();
            let id = if path.starts_with("/admin/users/") {
                bob_id.to_string()
            } else if path.starts_with("/account/passkeys/") {
                // A passkey id: a number (none exists; the token is checked first).
                "1".to_owned()
            } else {
                phone_id.clone()
            };
            path.replace("<id>", &id)
        })
        .collect();
    assert_eq!(form_routes.len(), 19, "{form_routes:?}");

    for path in &form_routes {
        for header in ELSEWHERE {
            // The right token and every field, the right password included: only the
            // browser's word refuses it.
            let (device, token) = if path.starts_with("/login") || path == "/register" {
                (&visitor, visitor_csrf.as_str())
            } else {
                (&admin, csrf.as_str())
            };
            let mut fields = vec![("csrf_token", token)];
            fields.extend([
                ("username", "admin"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
                ("current_password", PASSWORD),
                ("new_password", "violet tractor mango seventeen"),
                ("new_password_confirm", "violet tractor mango seventeen"),
                ("next", "/account"),
            ]);
            let reply = post_with(device, path, header, &fields).await;
            let what = format!("{path} with {header:?}");
            assert_refused_as_forged(&reply, &what);
            assert!(reply.header("Set-Cookie").is_none(), "{what}");
            assert!(reply.header("Clear-Site-Data").is_none(), "{what}");
        }
    }

    // Nothing happened, not even a lookup's write: nobody signed in, out or touched.
    let events_after: i64 = sqlx::query_scalar("SELECT count(*) FROM security_events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(events_after, events_before);
    assert_eq!(last_seen_of_all(&app).await, seen_before);
    let ended: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(ended, 0);
    assert_eq!(visitor.session_cookie(), None);

    // What the browser says came from this site, or says nothing about, is checked as before.
    let same_origin = post_with(
        &admin,
        "/session/keepalive",
        ("Sec-Fetch-Site", "same-origin"),
        &[("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(same_origin.status, Status::Ok);
    let request = admin
        .request(Method::Post, "/session/keepalive")
        .header(ContentType::Form)
        .header(Header::new("Host", "app.example:8000"))
        .header(Header::new("Origin", "https://app.example:8000"))
        .body(form_body(&[("csrf_token", &csrf)]));
    assert_eq!(admin.send(request).await.status, Status::Ok);
    let forged = post_with(
        &admin,
        "/session/keepalive",
        ("Sec-Fetch-Site", "same-origin"),
        &[("csrf_token", "forged")],
    )
    .await;
    assert_refused_as_forged(&forged, "a same-origin form with a wrong token");
    assert_eq!(
        admin
            .post_form("/session/keepalive", &[("csrf_token", &csrf)])
            .await
            .status,
        Status::Ok
    );
}

#[rocket::async_test]
async fn a_sign_out_that_brings_no_session_ends_nothing_and_clears_nothing() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;

    // A form on another site, in an older browser (no Fetch Metadata): the SameSite=Lax cookie
    // stays home, and no token comes with it.
    let forged = Device::new(&client).post_form("/logout", &[]).await;
    assert_eq!(forged.status, Status::SeeOther);
    assert_eq!(forged.location(), "/login?reason=login_required");
    assert_eq!(forged.header("Set-Cookie"), None);
    assert_eq!(forged.header("Clear-Site-Data"), None);
    assert_eq!(alice.get("/account").await.status, Status::Ok);
}
