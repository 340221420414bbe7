//! Device-bound sessions (DBSC, DESIGN section 13), driven by a DBSC client written here: a
//! P-256 key per device and ES256 proofs, as a browser makes them. The clock is moved, never
//! slept through (the test profile's bound cookie lives 5 s, its idle timeout is 20 s).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rocket::futures::future::join_all;
use rocket::http::{Header, Method, Status};
use rocket::tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use rocket::tokio::net::TcpStream;
use secure_sessions::session::token::SessionToken;
use secure_sessions::users::Role;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::support::dbsc::{DbscKey, b64, parse_challenge, parse_offer};
use crate::support::http::{Device, Reply};
use crate::support::{PASSWORD, TestApp};

const REGISTER: &str = "/session/dbsc/register";
const REFRESH: &str = "/session/dbsc/refresh";
const BOUND_COOKIE_SECS: i64 = 5; // the test profile's bound_cookie_secs

/// The registration challenge the device's next page offers.
async fn offered_challenge(device: &Device<'_>) -> String {
    let page = device.get("/account").await;
    assert_eq!(page.status, Status::Ok, "{}", page.body);
    let offer = page
        .header("Secure-Session-Registration")
        .expect("a page of an unbound session offers binding");
    let (path, challenge) = parse_offer(offer);
    assert_eq!(path, REGISTER);
    challenge
}

async fn register(device: &Device<'_>, proof: Option<&str>) -> Reply {
    let mut request = device.request(Method::Post, REGISTER);
    if let Some(proof) = proof {
        request = request.header(Header::new("Secure-Session-Response", proof.to_owned()));
    }
    device.send(request).await
}

/// Signs in and binds the session to `key`; returns the session's public id.
async fn sign_in_bound(device: &Device<'_>, key: &DbscKey) -> String {
    device.sign_in("alice", PASSWORD).await;
    let challenge = offered_challenge(device).await;
    let reply = register(device, Some(&key.registration_proof(&challenge))).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    reply.json()["session_identifier"]
        .as_str()
        .expect("a session identifier")
        .to_owned()
}

/// A refresh request as the browser sends it: the session id, and the proof when it has one.
async fn refresh(device: &Device<'_>, session_id: Option<&str>, proof: Option<&str>) -> Reply {
    let mut request = device.request(Method::Post, REFRESH);
    if let Some(id) = session_id {
        request = request.header(Header::new("Sec-Secure-Session-Id", id.to_owned()));
    }
    if let Some(proof) = proof {
        request = request.header(Header::new("Secure-Session-Response", proof.to_owned()));
    }
    device.send(request).await
}

/// The challenge a refresh without proof is answered with (403 + `Secure-Session-Challenge`).
async fn challenge(device: &Device<'_>, session_id: &str) -> String {
    let reply = refresh(device, Some(session_id), None).await;
    assert_eq!(reply.status, Status::Forbidden, "{}", reply.body);
    let (challenge, id) = parse_challenge(
        reply
            .header("Secure-Session-Challenge")
            .expect("a challenge"),
    );
    assert_eq!(id, session_id);
    challenge
}

/// The whole refresh, as a browser whose bound cookie expired does it.
async fn signed_refresh(device: &Device<'_>, session_id: &str, key: &DbscKey) -> Reply {
    device.forget_cookie("__Host-sid");
    let challenge = challenge(device, session_id).await;
    refresh(
        device,
        Some(session_id),
        Some(&key.refresh_proof(&challenge)),
    )
    .await
}

struct Row {
    dbsc_key: Option<Vec<u8>>,
    bound_until: Option<OffsetDateTime>,
    revoke_reason: Option<String>,
    key: Vec<u8>,
}

async fn row(app: &TestApp, session_id: &str) -> Row {
    let id = Uuid::parse_str(session_id).unwrap();
    let (dbsc_key, bound_until, revoke_reason, key) = sqlx::query_as(
        "SELECT dbsc_key, bound_until, revoke_reason, key FROM sessions WHERE public_id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    Row {
        dbsc_key,
        bound_until,
        revoke_reason,
        key,
    }
}

/// The user's refused-proof entries, oldest first: how many proofs each counts, and the latest's reason.
async fn refused_proofs(app: &TestApp, user_id: i64) -> Vec<(i32, String)> {
    sqlx::query_as("SELECT repeats, detail FROM security_events WHERE user_id = $1 AND kind = 'binding_proof_refused' ORDER BY id")
        .bind(user_id)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

fn assert_refused(reply: &Reply, status: Status, error: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.error_code(), error, "{}", reply.body);
    assert!(
        reply.set_cookie("__Host-sid").is_none(),
        "a refusal sets no session cookie"
    );
}

/// The account page works with the device's cookie (and says who is signed in).
async fn signed_in(device: &Device<'_>) -> bool {
    device
        .get("/account")
        .await
        .testid_text("account-username")
        .as_deref()
        == Some("alice")
}

#[rocket::async_test]
async fn pages_of_an_unbound_session_offer_binding_and_nothing_else_does() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);

    let login = alice.get("/login").await;
    assert!(
        login.header("Secure-Session-Registration").is_none(),
        "no session, no offer"
    );
    alice.sign_in("alice", PASSWORD).await;
    let first = offered_challenge(&alice).await;
    assert_eq!(first.len(), 43, "256 random bits, base64url");
    app.advance_secs(1);
    assert_eq!(
        offered_challenge(&alice).await,
        first,
        "the offer stands while it is fresh: no write per page"
    );
    let csrf = alice.get("/account").await.csrf_token();
    let keepalive = alice
        .post_form("/session/keepalive", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(keepalive.status, Status::Ok);
    assert!(
        keepalive.header("Secure-Session-Registration").is_none(),
        "only pages offer"
    );

    // Past half its lifetime (2.5 min) a page offers a new one; the old one no longer binds.
    let app = TestApp::with(|f| {
        f.merge(("sessions.idle_timeout_secs", 3600))
            .merge(("sessions.absolute_timeout_secs", 7200))
    })
    .await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let first = offered_challenge(&alice).await;
    app.advance_secs(151);
    let second = offered_challenge(&alice).await;
    assert_ne!(first, second);
    let key = DbscKey::generate();
    assert_refused(
        &register(&alice, Some(&key.registration_proof(&first))).await,
        Status::Forbidden,
        "invalid_challenge",
    );
    assert_eq!(
        register(&alice, Some(&key.registration_proof(&second)))
            .await
            .status,
        Status::Ok
    );
    assert!(
        alice
            .get("/account")
            .await
            .header("Secure-Session-Registration")
            .is_none(),
        "a bound session is not offered again"
    );
}

#[rocket::async_test]
async fn pages_opened_at_once_all_offer_the_one_challenge_on_offer() {
    // Every page of a new session finds no offer and asks for one: one write wins, and a page
    // whose write lost must not offer a challenge that cannot bind.
    const ROUNDS: usize = 12;
    const PAGES: usize = 8;
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let alice = Device::new(&client);
        alice.sign_in("alice", PASSWORD).await;
        let pages = join_all((0..PAGES).map(|_| alice.get("/account"))).await;
        assert!(pages.iter().all(|page| page.status == Status::Ok));
        let key = SessionToken::parse(&alice.session_cookie().unwrap())
            .unwrap()
            .key();
        let on_offer: String =
            sqlx::query_scalar("/* test */ SELECT dbsc_offer FROM sessions WHERE key = $1")
                .bind(key.as_bytes())
                .fetch_one(&app.pool)
                .await
                .unwrap();
        let offered: Vec<String> = pages
            .iter()
            .filter_map(|page| page.header("Secure-Session-Registration"))
            .map(|offer| parse_offer(offer).1)
            .collect();
        if offered.is_empty() || offered.iter().any(|challenge| *challenge != on_offer) {
            failures.push(format!(
                "round {round}: {} pages offered {offered:?}, on offer {on_offer}",
                offered.len()
            ));
        }
        // Sessions beyond the cap would end the oldest: keep one at a time.
        alice.sign_out().await;
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[rocket::async_test]
async fn registration_binds_the_session_answers_its_configuration_and_sets_a_short_lived_cookie() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice
        .extra_headers
        .lock()
        .unwrap()
        .push(("sec-ch-ua".into(), r#""Chromium";v="156""#.into()));
    alice.sign_in("alice", PASSWORD).await;
    let token = alice.session_cookie().unwrap();
    let (session_id, _) = alice.devices().await.remove(0);
    let key = DbscKey::generate();

    let challenge = offered_challenge(&alice).await;
    // Chromium's registration request carries no client hints: that is no fingerprint change.
    let hints = std::mem::take(&mut *alice.extra_headers.lock().unwrap());
    let reply = register(&alice, Some(&key.registration_proof(&challenge))).await;
    *alice.extra_headers.lock().unwrap() = hints;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    assert_eq!(reply.header("Content-Type"), Some("application/json"));
    let config = reply.json();
    assert_eq!(
        config["session_identifier"],
        json!(session_id),
        "the session's public id"
    );
    assert_eq!(config["refresh_url"], json!(REFRESH));
    assert_eq!(
        config["scope"],
        json!({"include_site": false}),
        "this origin only"
    );
    assert_eq!(config["credentials"].as_array().map(Vec::len), Some(1));
    let credential = &config["credentials"][0];
    assert_eq!(credential["type"], json!("cookie"));
    assert_eq!(credential["name"], json!("__Host-sid"));

    // The same token, set again with exactly the attributes the configuration names, and short-lived.
    let set_cookie = reply
        .headers
        .iter()
        .find(|(n, v)| n == "Set-Cookie" && v.starts_with("__Host-sid="))
        .unwrap()
        .1
        .clone();
    let attributes = credential["attributes"].as_str().unwrap();
    assert_eq!(
        set_cookie,
        format!("__Host-sid={token}; {attributes}; Max-Age={BOUND_COOKIE_SECS}")
    );
    for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(
            attributes.split("; ").any(|a| a == attribute),
            "{attributes} lacks {attribute}"
        );
    }

    let stored = row(&app, &session_id).await;
    assert_eq!(
        stored.dbsc_key,
        Some(key.public_key_bytes()),
        "the device's public key is on the session row"
    );
    let deadline = stored.bound_until.unwrap() - app.clock_now();
    assert_eq!(deadline.whole_seconds(), BOUND_COOKIE_SECS);
    assert_eq!(
        app.event_kinds(user_id).await,
        vec!["sign_in", "session_bound"]
    );

    let page = alice.get("/account").await;
    assert_eq!(
        page.html()
            .select(r#"[data-testid="session-row"][data-current="true"][data-bound="true"]"#)
            .len(),
        1,
        "{}",
        page.body
    );
    assert_eq!(
        page.testid_text("session-bound").as_deref(),
        Some("Bound to this device's key")
    );
    assert!(
        page.shows("Session bound to this device's key"),
        "{}",
        page.body
    );
}

#[rocket::async_test]
async fn every_refused_registration_is_a_4xx_that_leaves_the_session_unbound_and_is_recorded() {
    let app = TestApp::with(|f| {
        f.merge(("sessions.idle_timeout_secs", 3600))
            .merge(("sessions.absolute_timeout_secs", 7200))
    })
    .await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let (session_id, _) = alice.devices().await.remove(0);
    let key = DbscKey::generate();
    let other = DbscKey::generate();
    let challenge = offered_challenge(&alice).await;
    let header = |alg: &str| json!({"alg": alg, "typ": "dbsc+jwt", "jwk": key.jwk()});
    let payload = json!({"jti": challenge});

    assert_refused(
        &register(&alice, None).await,
        Status::BadRequest,
        "missing_proof",
    );
    let cases = [
        (
            "not a jwt".to_owned(),
            Status::BadRequest,
            "malformed_proof",
        ),
        (
            key.refresh_proof(&challenge),
            Status::BadRequest,
            "malformed_proof",
        ), // no key in the header
        (
            key.sign(
                &json!({"alg": "ES256", "typ": "JWT", "jwk": key.jwk()}),
                &payload,
            ),
            Status::BadRequest,
            "malformed_proof",
        ),
        (
            key.sign(&header("ES256"), &json!({})),
            Status::BadRequest,
            "malformed_proof",
        ),
        (
            key.sign(&header("HS256"), &payload),
            Status::BadRequest,
            "unsupported_algorithm",
        ),
        // Signed with the key it names, so only the algorithm's name is wrong: "ES256" is
        // matched exactly, not as a family or in any case.
        (
            key.sign(&header("ES384"), &payload),
            Status::BadRequest,
            "unsupported_algorithm",
        ),
        (
            key.sign(&header("es256"), &payload),
            Status::BadRequest,
            "unsupported_algorithm",
        ),
        (
            format!(
                "{}.{}.",
                b64(r#"{"alg":"none","typ":"dbsc+jwt"}"#),
                b64(&payload.to_string())
            ),
            Status::BadRequest,
            "unsupported_algorithm",
        ),
        // Signed by another key than the one it names.
        (
            other.sign(&header("ES256"), &payload),
            Status::Unauthorized,
            "invalid_signature",
        ),
        // A challenge this server never offered to this session.
        (
            key.registration_proof("made-up-challenge"),
            Status::Forbidden,
            "invalid_challenge",
        ),
    ];
    for (counted, (proof, status, error)) in (1..).zip(&cases) {
        assert_refused(&register(&alice, Some(proof)).await, *status, error);
        assert_eq!(
            row(&app, &session_id).await.dbsc_key,
            None,
            "{error}: still unbound"
        );
        let refused = refused_proofs(&app, user_id).await;
        assert_eq!(refused.len(), 1, "one entry counts them: {refused:?}");
        assert_eq!(refused[0].0, counted, "{error}: counted");
        if *error == "unsupported_algorithm" {
            assert!(refused[0].1.contains("algorithm other than ES256"));
        }
    }
    // Another session's challenge does not bind this one.
    let bob = Device::new(&client);
    bob.sign_in("alice", PASSWORD).await;
    let bobs = offered_challenge(&bob).await;
    assert_refused(
        &register(&alice, Some(&key.registration_proof(&bobs))).await,
        Status::Forbidden,
        "invalid_challenge",
    );
    // A challenge older than five minutes does not either (the page would offer a new one by then).
    app.advance_secs(5 * 60);
    assert_refused(
        &register(&alice, Some(&key.registration_proof(&challenge))).await,
        Status::Forbidden,
        "invalid_challenge",
    );
    assert_eq!(row(&app, &session_id).await.dbsc_key, None);
    assert!(signed_in(&alice).await, "the session carries on, unbound");

    // Single use: once bound, the same proof, or any other key, is refused.
    let fresh = offered_challenge(&alice).await;
    let proof = key.registration_proof(&fresh);
    assert_eq!(register(&alice, Some(&proof)).await.status, Status::Ok);
    assert_refused(
        &register(&alice, Some(&proof)).await,
        Status::Conflict,
        "already_bound",
    );
    assert_refused(
        &register(&alice, Some(&other.registration_proof(&fresh))).await,
        Status::Conflict,
        "already_bound",
    );
    assert_eq!(
        row(&app, &session_id).await.dbsc_key,
        Some(key.public_key_bytes()),
        "still bound to the first key"
    );

    // Counted per hour of the clock: the five minutes above may have crossed into a second.
    let refused = refused_proofs(&app, user_id).await;
    assert!(refused.len() <= 2, "{refused:?}");
    assert_eq!(
        refused
            .iter()
            .map(|(repeats, _)| usize::try_from(*repeats).unwrap())
            .sum::<usize>(),
        cases.len() + 2 + 2,
        "every refused proof is counted: {refused:?}"
    );
    assert!(
        refused.last().unwrap().1.contains("already bound"),
        "{refused:?}"
    );
}

#[rocket::async_test]
async fn a_refresh_signed_with_the_devices_key_rotates_the_token_and_the_old_one_dies_at_once() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    let key = DbscKey::generate();
    let session_id = sign_in_bound(&alice, &key).await;
    let old = alice.session_cookie().unwrap();

    // No proof: 403 with a challenge for this session. The id may come quoted or bare.
    let unquoted = challenge(&alice, &session_id).await;
    let quoted = refresh(&alice, Some(&format!("\"{session_id}\"")), None).await;
    assert_eq!(quoted.status, Status::Forbidden);
    let (quoted, _) = parse_challenge(quoted.header("Secure-Session-Challenge").unwrap());
    assert_ne!(unquoted, quoted, "every challenge is fresh");

    app.advance_secs(BOUND_COOKIE_SECS - 1);
    let reply = refresh(
        &alice,
        Some(&session_id),
        Some(&format!("\"{}\"", key.refresh_proof(&quoted))),
    )
    .await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    assert_eq!(reply.json()["session_identifier"], json!(session_id));
    let cookie = reply.set_cookie("__Host-sid").expect("a new bound cookie");
    assert_eq!(
        cookie.max_age(),
        Some(time::Duration::seconds(BOUND_COOKIE_SECS))
    );
    let new = alice.session_cookie().unwrap();
    assert_ne!(new, old, "rotated");
    assert_eq!(
        row(&app, &session_id).await.key,
        SessionToken::parse(&new).unwrap().key().as_bytes()
    );

    // The old token is gone at once; the new one lives its own five seconds.
    let thief = Device::new(&client);
    thief.set_cookie("__Host-sid", &old);
    assert_eq!(
        thief.get("/account").await.location(),
        "/login?reason=login_required&next=%2Faccount"
    );
    app.advance_secs(BOUND_COOKIE_SECS - 1);
    assert!(signed_in(&alice).await);
    // A proof over a challenge already used is refused, with a fresh challenge to sign instead.
    let replay = refresh(&alice, Some(&session_id), Some(&key.refresh_proof(&quoted))).await;
    assert_refused(&replay, Status::Forbidden, "invalid_challenge");
    assert!(replay.header("Secure-Session-Challenge").is_some());
    assert_eq!(
        row(&app, &session_id).await.key,
        SessionToken::parse(&new).unwrap().key().as_bytes(),
        "unchanged"
    );
    assert_eq!(
        app.event_kinds(user_id).await,
        vec!["sign_in", "session_bound", "binding_proof_refused"],
        "refreshes themselves are not news"
    );
}

#[rocket::async_test]
async fn a_copied_bound_cookie_is_refused_once_its_time_is_up_even_before_the_browser_refreshes() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    let key = DbscKey::generate();
    let session_id = sign_in_bound(&alice, &key).await;

    // Malware copies the cookie, and the headers with it: same browser, same address.
    let thief = Device::new(&client);
    let copied = alice.session_cookie().unwrap();
    thief.set_cookie("__Host-sid", &copied);
    assert!(
        signed_in(&thief).await,
        "within the bound lifetime the copy works: the window DBSC leaves"
    );
    app.advance_secs(BOUND_COOKIE_SECS);
    let refused = thief.get("/account").await;
    assert_eq!(
        refused.location(),
        "/login?reason=bound_cookie_expired&next=%2Faccount"
    );
    let login = thief.get(refused.location()).await;
    assert!(
        login
            .testid_text("login-reason")
            .unwrap()
            .contains("bound to a device"),
        "{}",
        login.body
    );
    // Refused, and nothing more: the copy cannot end the owner's session either.
    let stored = row(&app, &session_id).await;
    assert_eq!(stored.revoke_reason, None);

    // The owner's browser refreshes with its key and carries on; the copy stays dead.
    assert_eq!(
        signed_refresh(&alice, &session_id, &key).await.status,
        Status::Ok
    );
    assert!(signed_in(&alice).await);
    thief.set_cookie("__Host-sid", &copied);
    assert!(
        !signed_in(&thief).await,
        "the copied token died with the refresh"
    );
    // Without the key the thief cannot refresh: a proof from another key is refused.
    let thief_key = DbscKey::generate();
    let challenge = challenge(&thief, &session_id).await;
    let forged = refresh(
        &thief,
        Some(&session_id),
        Some(&thief_key.refresh_proof(&challenge)),
    )
    .await;
    assert_refused(&forged, Status::Unauthorized, "invalid_signature");
    assert!(signed_in(&alice).await, "the owner is untouched");
}

#[rocket::async_test]
async fn every_refused_refresh_is_a_4xx_that_changes_nothing_and_refused_proofs_are_recorded() {
    let app = TestApp::with(|f| {
        f.merge(("sessions.idle_timeout_secs", 3600))
            .merge(("sessions.absolute_timeout_secs", 7200))
    })
    .await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    let key = DbscKey::generate();
    let session_id = sign_in_bound(&alice, &key).await;
    alice.forget_cookie("__Host-sid");
    let before = row(&app, &session_id).await.key;

    // No session id, or one that names no bound session: nothing to refresh.
    assert_refused(
        &refresh(&alice, None, None).await,
        Status::BadRequest,
        "missing_session_id",
    );
    assert_refused(
        &refresh(&alice, Some("not-a-uuid"), None).await,
        Status::BadRequest,
        "missing_session_id",
    );
    let unknown = refresh(&alice, Some(&Uuid::new_v4().to_string()), None).await;
    assert_eq!(unknown.status, Status::Unauthorized);
    assert_eq!(
        unknown.json(),
        json!({"continue": false, "error": "unauthorized", "reason": "login_required"})
    );
    let unbound_device = Device::new(&client);
    unbound_device.sign_in("alice", PASSWORD).await;
    let unbound_id = unbound_device
        .devices()
        .await
        .into_iter()
        .find(|(_, current)| *current)
        .unwrap()
        .0;
    assert_eq!(
        refresh(&alice, Some(&unbound_id), None).await.json()["continue"],
        json!(false),
        "an unbound session has no key to prove"
    );

    let c1 = challenge(&alice, &session_id).await;
    let other = DbscKey::generate();
    let header = json!({"alg": "ES256", "typ": "dbsc+jwt"});
    let cases = [
        (
            other.refresh_proof(&c1),
            Status::Unauthorized,
            "invalid_signature",
        ),
        // A key in the header is not trusted at refresh: the stored one is.
        (
            other.sign(
                &json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": other.jwk()}),
                &json!({"jti": c1}),
            ),
            Status::Unauthorized,
            "invalid_signature",
        ),
        (
            key.refresh_proof("never-issued"),
            Status::Forbidden,
            "invalid_challenge",
        ),
        (
            key.sign(
                &json!({"alg": "RS256", "typ": "dbsc+jwt"}),
                &json!({"jti": c1}),
            ),
            Status::BadRequest,
            "unsupported_algorithm",
        ),
        // Signed with the session's key over a live challenge: only the algorithm's name is wrong.
        (
            key.sign(
                &json!({"alg": "ES384", "typ": "dbsc+jwt"}),
                &json!({"jti": c1}),
            ),
            Status::BadRequest,
            "unsupported_algorithm",
        ),
        (
            key.sign(
                &json!({"alg": "es256", "typ": "dbsc+jwt"}),
                &json!({"jti": c1}),
            ),
            Status::BadRequest,
            "unsupported_algorithm",
        ),
        (
            format!(
                "{}.{}.",
                b64(r#"{"alg":"none","typ":"dbsc+jwt"}"#),
                b64(&json!({"jti": c1}).to_string())
            ),
            Status::BadRequest,
            "unsupported_algorithm",
        ),
        (
            key.sign(&header, &json!({"nonce": c1})),
            Status::BadRequest,
            "malformed_proof",
        ),
        ("a.b.c".to_owned(), Status::BadRequest, "malformed_proof"),
        (
            format!("{}x", key.refresh_proof(&c1)),
            Status::BadRequest,
            "malformed_proof",
        ),
    ];
    for (proof, status, error) in &cases {
        assert_refused(
            &refresh(&alice, Some(&session_id), Some(proof)).await,
            *status,
            error,
        );
        assert_eq!(
            row(&app, &session_id).await.key,
            before,
            "{error}: the token is unchanged"
        );
    }
    // The signature is checked before the challenge is used up: the owner can still answer c1.
    assert_eq!(
        refresh(&alice, Some(&session_id), Some(&key.refresh_proof(&c1)))
            .await
            .status,
        Status::Ok
    );
    let before = row(&app, &session_id).await.key;
    // A challenge issued for another session does not refresh this one.
    let other_session = Device::new(&client);
    let other_id = sign_in_bound(&other_session, &DbscKey::generate()).await;
    let foreign = challenge(&other_session, &other_id).await;
    assert_refused(
        &refresh(
            &alice,
            Some(&session_id),
            Some(&key.refresh_proof(&foreign)),
        )
        .await,
        Status::Forbidden,
        "invalid_challenge",
    );
    // A challenge answered after five minutes is too old.
    let c2 = challenge(&alice, &session_id).await;
    app.advance_secs(5 * 60);
    let late = refresh(&alice, Some(&session_id), Some(&key.refresh_proof(&c2))).await;
    assert_refused(&late, Status::Forbidden, "invalid_challenge");
    assert_eq!(row(&app, &session_id).await.key, before);

    let refused = refused_proofs(&app, user_id).await;
    assert_eq!(
        refused
            .iter()
            .map(|(repeats, _)| usize::try_from(*repeats).unwrap())
            .sum::<usize>(),
        cases.len() + 2,
        "every refused proof is counted: {refused:?}"
    );
    // The refusal came with a fresh challenge, which the owner's browser signs.
    let fresh = parse_challenge(late.header("Secure-Session-Challenge").unwrap()).0;
    assert_eq!(
        refresh(&alice, Some(&session_id), Some(&key.refresh_proof(&fresh)))
            .await
            .status,
        Status::Ok
    );
    let page = alice.get("/account").await;
    assert!(
        page.shows("A proof of this device's key was refused"),
        "{}",
        page.body
    );
}

#[rocket::async_test]
async fn a_refresh_for_an_ended_session_stops_the_browser_and_its_next_page_says_why() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    let key = DbscKey::generate();
    let session_id = sign_in_bound(&laptop, &key).await;

    // Signed out from another device (a password change there), while the laptop's bound
    // cookie had already expired: its browser finds out through the refresh.
    let phone = Device::new(&client);
    phone.sign_in("alice", PASSWORD).await;
    let new_password = "violet tractor mango seventeen";
    phone
        .post_from(
            "/account/password",
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", new_password),
                ("new_password_confirm", new_password),
            ],
        )
        .await;
    laptop.forget_cookie("__Host-sid");
    let reply = refresh(&laptop, Some(&session_id), None).await;
    assert_eq!(reply.status, Status::Unauthorized, "{}", reply.body);
    assert_eq!(
        reply.json(),
        json!({"continue": false, "error": "unauthorized", "reason": "password_changed"})
    );
    assert!(reply.header("Secure-Session-Challenge").is_none());
    // The note is a cookie named after the session cookie, holding the public reason code.
    let note = reply
        .set_cookie("__Host-sid-ended")
        .expect("the refresh leaves a note for the next page");
    assert_eq!(note.value(), "password_changed");
    let page = laptop.get("/account").await;
    assert_eq!(
        page.location(),
        "/login?reason=password_changed&next=%2Faccount"
    );
    assert!(
        laptop.cookie("__Host-sid-ended").is_none(),
        "the note is read once"
    );
    assert_eq!(
        laptop.get("/account").await.location(),
        "/login?reason=login_required&next=%2Faccount"
    );
}

#[rocket::async_test]
async fn refreshes_do_not_keep_an_idle_session_alive_and_the_idle_timeout_ends_it() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    let key = DbscKey::generate();
    let session_id = sign_in_bound(&alice, &key).await;
    let idle = i64::from(app.config().idle_timeout_secs);

    // The browser refreshes every few seconds (say an open tab), but nobody clicks.
    let mut elapsed = 0;
    while elapsed + 4 < idle {
        app.advance_secs(4);
        elapsed += 4;
        assert_eq!(
            signed_refresh(&alice, &session_id, &key).await.status,
            Status::Ok,
            "at {elapsed}s"
        );
    }
    app.advance_secs(idle - elapsed);
    let reply = refresh(&alice, Some(&session_id), None).await;
    assert_eq!(reply.status, Status::Unauthorized);
    assert_eq!(
        reply.json()["reason"],
        json!("idle_timeout"),
        "{}",
        reply.body
    );
    assert_eq!(
        row(&app, &session_id).await.revoke_reason.as_deref(),
        Some("idle_timeout")
    );
    assert_eq!(
        app.event_kinds(user_id).await.last().map(String::as_str),
        Some("idle_timeout")
    );
    assert_eq!(
        alice.get("/account").await.location(),
        "/login?reason=idle_timeout&next=%2Faccount"
    );
}

#[rocket::async_test]
async fn a_bound_session_keeps_its_forms_working_across_refreshes_and_stays_bound_through_rotations()
 {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    let key = DbscKey::generate();
    let session_id = sign_in_bound(&alice, &key).await;

    // A page is open; the browser refreshes underneath it twice; its form still posts.
    let csrf = alice.get("/account").await.csrf_token();
    for _ in 0..2 {
        app.advance_secs(4);
        assert_eq!(
            signed_refresh(&alice, &session_id, &key).await.status,
            Status::Ok
        );
    }
    let keepalive = alice
        .post_form("/session/keepalive", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(keepalive.status, Status::Ok, "{}", keepalive.body);

    // Confirming the password rotates the token as always; the session stays bound and the new
    // cookie is short-lived too.
    let before = alice.session_cookie().unwrap();
    let confirmed = alice.confirm(PASSWORD).await;
    assert_eq!(confirmed.location(), "/account");
    let cookie = confirmed.set_cookie("__Host-sid").unwrap();
    assert_ne!(cookie.value(), before);
    assert_eq!(
        cookie.max_age(),
        Some(time::Duration::seconds(BOUND_COOKIE_SECS))
    );
    let stored = row(&app, &session_id).await;
    assert_eq!(stored.dbsc_key, Some(key.public_key_bytes()));
    assert_eq!(
        (stored.bound_until.unwrap() - app.clock_now()).whole_seconds(),
        BOUND_COOKIE_SECS
    );
    // Forms rendered after the rotation carry the new token's value; the old one is refused.
    let page = alice.get("/account").await;
    assert_ne!(page.csrf_token(), csrf);
    let stale = alice
        .post_form("/session/keepalive", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(stale.status, Status::Forbidden);
    app.advance_secs(BOUND_COOKIE_SECS);
    assert_eq!(
        alice.get("/account").await.location(),
        "/login?reason=bound_cookie_expired&next=%2Faccount"
    );
    assert_eq!(
        signed_refresh(&alice, &session_id, &key).await.status,
        Status::Ok
    );
    let keepalive = alice
        .post_form("/session/keepalive", &[("csrf_token", &page.csrf_token())])
        .await;
    assert_eq!(keepalive.status, Status::Ok);
}

#[rocket::async_test]
async fn a_browser_without_dbsc_keeps_its_long_lived_cookie_and_token() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    let signed_in_reply = alice.sign_in("alice", PASSWORD).await;
    let config = app.config();
    let cookie = signed_in_reply.set_cookie("__Host-sid").unwrap();
    let long = i64::from(config.absolute_timeout_secs + config.tombstone_grace_secs);
    assert_eq!(cookie.max_age(), Some(time::Duration::seconds(long)));
    for _ in 0..3 {
        app.advance_secs(BOUND_COOKIE_SECS * 2);
        assert!(
            signed_in(&alice).await,
            "an unbound token is not held to bound_cookie_secs"
        );
    }
    assert_eq!(alice.devices().await.len(), 1);
    assert!(
        alice
            .get("/account")
            .await
            .html()
            .select(r#"[data-bound="true"]"#)
            .is_empty()
    );
}

/// Runs `rounds` races of `racers` refreshes at once, each over its own challenge; returns how
/// many rounds did not end with exactly one winner and one new token.
async fn refresh_races(rounds: usize, racers: usize) -> usize {
    let app = TestApp::with(|f| f.merge(("sessions.idle_timeout_secs", 3600))).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    let key = DbscKey::generate();
    let session_id = sign_in_bound(&alice, &key).await;
    let mut failed = 0;
    for _ in 0..rounds {
        let mut challenges = Vec::new();
        for _ in 0..racers {
            challenges.push(challenge(&alice, &session_id).await);
        }
        let proofs: Vec<String> = challenges
            .iter()
            .map(|challenge| key.refresh_proof(challenge))
            .collect();
        let devices: Vec<Device<'_>> = (0..racers).map(|_| Device::new(&client)).collect();
        let replies = join_all(
            devices
                .iter()
                .zip(&proofs)
                .map(|(device, proof)| refresh(device, Some(&session_id), Some(proof))),
        )
        .await;
        let winners: Vec<&Device<'_>> = devices
            .iter()
            .zip(&replies)
            .filter(|(_, r)| r.status == Status::Ok)
            .map(|(d, _)| d)
            .collect();
        // A loser's challenge was issued under the token the winner replaced: refused, with a
        // fresh one to sign (a 403, which a browser answers, not a 4xx that ends its session).
        let losers_refused = replies.iter().filter(|r| r.status != Status::Ok).all(|r| {
            r.status == Status::Forbidden
                && r.error_code() == "invalid_challenge"
                && r.header("Secure-Session-Challenge").is_some()
        });
        let one_live_token = match winners.as_slice() {
            [winner] => signed_in(winner).await,
            _ => false,
        };
        if winners.len() != 1 || !losers_refused || !one_live_token {
            eprintln!(
                "round failed: {:?}",
                replies
                    .iter()
                    .map(|reply| reply.status.code)
                    .collect::<Vec<_>>()
            );
            failed += 1;
        }
        alice.forget_cookie("__Host-sid");
    }
    failed
}

#[rocket::async_test]
async fn of_concurrent_refreshes_of_one_session_exactly_one_wins() {
    let failed = refresh_races(20, 8).await;
    assert_eq!(
        failed, 0,
        "{failed} of 20 rounds did not have exactly one winner"
    );
}

#[rocket::async_test]
async fn of_concurrent_refreshes_with_one_proof_exactly_one_wins() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    let key = DbscKey::generate();
    let session_id = sign_in_bound(&alice, &key).await;
    let challenge = challenge(&alice, &session_id).await;
    let proof = key.refresh_proof(&challenge);
    let devices: Vec<Device<'_>> = (0..20).map(|_| Device::new(&client)).collect();
    let replies = join_all(
        devices
            .iter()
            .map(|device| refresh(device, Some(&session_id), Some(&proof))),
    )
    .await;
    let statuses: Vec<Status> = replies.iter().map(|reply| reply.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == Status::Ok).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == Status::Ok || *s == Status::Forbidden),
        "{statuses:?}"
    );
}

#[rocket::async_test]
async fn a_form_posted_from_another_site_to_the_dbsc_endpoints_changes_nothing() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let (session_id, _) = alice.devices().await.remove(0);
    let challenge = offered_challenge(&alice).await;

    // A form can carry the cookie (were SameSite not there) and any field, but not the headers.
    let fields = [
        ("Secure-Session-Response", challenge.as_str()),
        ("Sec-Secure-Session-Id", session_id.as_str()),
    ];
    assert_refused(
        &alice.post_form(REGISTER, &fields).await,
        Status::BadRequest,
        "missing_proof",
    );
    assert_refused(
        &alice.post_form(REFRESH, &fields).await,
        Status::BadRequest,
        "missing_session_id",
    );
    assert_eq!(row(&app, &session_id).await.dbsc_key, None);
    assert_eq!(app.event_kinds(user_id).await, vec!["sign_in"]);
}

/// Asks `port` for challenges to `session_id` over one keep-alive connection, as a stranger who
/// knows the id can: no cookie, no proof. Stops when `stop` is set or the `budget` shared by
/// every connection runs out; counts each challenge answered in `challenged`, and returns the
/// status line and body of any other answer.
async fn ask_for_challenges(
    port: u16,
    session_id: String,
    budget: Arc<AtomicI64>,
    challenged: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> Vec<String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut stream = BufReader::new(stream);
    let request = format!(
        "POST {REFRESH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nSec-Secure-Session-Id: {session_id}\r\nContent-Length: 0\r\n\r\n"
    );
    let mut other = Vec::new();
    while !stop.load(Ordering::Relaxed) && budget.fetch_sub(1, Ordering::Relaxed) > 0 {
        stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        let mut status = String::new();
        stream.read_line(&mut status).await.unwrap();
        let (mut length, mut challenge) = (0, false);
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).await.unwrap();
            let line = line.trim_end().to_ascii_lowercase();
            if line.is_empty() {
                break;
            }
            if let Some(value) = line.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
            challenge |= line.starts_with("secure-session-challenge:");
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.unwrap();
        if status.starts_with("HTTP/1.1 403") && challenge {
            challenged.fetch_add(1, Ordering::Relaxed);
        } else {
            other.push(format!("{status} {}", String::from_utf8_lossy(&body)));
        }
    }
    other
}

/// Waits (without asserting how long) until `count` reaches `at_least`.
async fn until(count: &AtomicUsize, at_least: usize) {
    while count.load(Ordering::Relaxed) < at_least {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_challenge_requests_never_fails_the_owners_refresh() {
    // Sixteen keep-alive connections of a stranger, at most 40,000 requests in all; the owner
    // answers only after 500 challenges were issued to the stranger after theirs.
    const CONNECTIONS: usize = 16;
    const AT_MOST: i64 = 40_000;
    const BEFORE_THE_OWNER_ANSWERS: usize = 500;
    const AT_LEAST: usize = 4_000;
    let app = TestApp::with(|f| f.merge(("sessions.idle_timeout_secs", 3600))).await;
    app.create_user("alice", Role::User).await;
    // The owner's browser talks to one app instance, the stranger to another on the database.
    let client = app.client().await;
    let alice = Device::new(&client);
    let key = DbscKey::generate();
    let session_id = sign_in_bound(&alice, &key).await;
    let server = app.serve().await;
    alice.forget_cookie("__Host-sid");
    let owners = challenge(&alice, &session_id).await;

    let budget = Arc::new(AtomicI64::new(AT_MOST));
    let challenged = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let flood: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            tokio::spawn(ask_for_challenges(
                server.port,
                session_id.clone(),
                budget.clone(),
                challenged.clone(),
                stop.clone(),
            ))
        })
        .collect();

    until(&challenged, BEFORE_THE_OWNER_ANSWERS).await;
    let answered = refresh(&alice, Some(&session_id), Some(&key.refresh_proof(&owners))).await;
    // And a whole refresh, challenge and answer, in the thick of it.
    alice.forget_cookie("__Host-sid");
    let whole = signed_refresh(&alice, &session_id, &key).await;
    let flood_still_on = budget.load(Ordering::Relaxed) > 0;
    until(&challenged, AT_LEAST).await;
    stop.store(true, Ordering::Relaxed);
    let mut other = Vec::new();
    for connection in flood {
        other.extend(connection.await.unwrap());
    }
    let elapsed = started.elapsed();
    let total = challenged.load(Ordering::Relaxed);
    eprintln!(
        "{total} challenges over {CONNECTIONS} connections in {elapsed:?}: {:.0} per second",
        total as f64 / elapsed.as_secs_f64()
    );

    assert_eq!(answered.status, Status::Ok, "{}", answered.body);
    assert_eq!(whole.status, Status::Ok, "{}", whole.body);
    assert!(flood_still_on, "the owner's refreshes ran during the flood");
    assert!(
        other.is_empty(),
        "every stranger got a challenge: {other:?}"
    );
    assert!(signed_in(&alice).await, "the owner is still signed in");
}

#[rocket::async_test]
async fn the_oldest_of_many_outstanding_challenges_still_refreshes() {
    // Whatever number of challenges were asked for after it: nothing caps them, as nothing keeps
    // them (a cap would let a stranger push out the owner's).
    let app = TestApp::with(|f| f.merge(("sessions.idle_timeout_secs", 3600))).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    let key = DbscKey::generate();
    let session_id = sign_in_bound(&alice, &key).await;
    alice.forget_cookie("__Host-sid");
    let stranger = Device::new(&client);
    let oldest = challenge(&alice, &session_id).await;
    let mut later = Vec::new();
    for _ in 0..100 {
        later.push(challenge(&stranger, &session_id).await);
    }
    later.sort();
    later.dedup();
    assert_eq!(later.len(), 100, "every challenge is fresh");
    let reply = refresh(&alice, Some(&session_id), Some(&key.refresh_proof(&oldest))).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    // The token they were issued under is gone: every other one died with it.
    let reply = refresh(
        &alice,
        Some(&session_id),
        Some(&key.refresh_proof(&later[0])),
    )
    .await;
    assert_refused(&reply, Status::Forbidden, "invalid_challenge");
}

#[rocket::async_test]
async fn a_refresh_challenge_is_answerable_for_five_minutes_and_not_a_second_longer() {
    let app = TestApp::with(|f| {
        f.merge(("sessions.idle_timeout_secs", 3600))
            .merge(("sessions.absolute_timeout_secs", 7200))
    })
    .await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    let key = DbscKey::generate();
    let session_id = sign_in_bound(&alice, &key).await;
    alice.forget_cookie("__Host-sid");
    // On a whole second: a challenge carries its issue time to the second.
    let nanos = i64::from(app.clock_now().nanosecond());
    app.clock
        .advance(time::Duration::nanoseconds(1_000_000_000 - nanos));

    let stale = challenge(&alice, &session_id).await;
    app.advance_secs(1);
    let fresh = challenge(&alice, &session_id).await;
    app.advance_secs(5 * 60 - 1);
    // Now `stale` is five minutes old to the nanosecond, `fresh` a second less.
    let late = refresh(&alice, Some(&session_id), Some(&key.refresh_proof(&stale))).await;
    assert_refused(&late, Status::Forbidden, "invalid_challenge");
    let reply = refresh(&alice, Some(&session_id), Some(&key.refresh_proof(&fresh))).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
}

#[rocket::async_test]
async fn a_challenge_altered_in_any_part_is_refused() {
    let app = TestApp::with(|f| f.merge(("sessions.idle_timeout_secs", 3600))).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    let key = DbscKey::generate();
    let session_id = sign_in_bound(&alice, &key).await;
    alice.forget_cookie("__Host-sid");
    let issued = challenge(&alice, &session_id).await;
    let bytes = URL_SAFE_NO_PAD.decode(&issued).unwrap();
    assert_eq!(bytes.len(), 8 + 16 + 32, "issue time, nonce, tag");
    let altered = |change: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = bytes.clone();
        change(&mut bytes);
        URL_SAFE_NO_PAD.encode(bytes)
    };
    let later = |bytes: &mut Vec<u8>| {
        let issued_at = i64::from_be_bytes(bytes[..8].try_into().unwrap());
        bytes[..8].copy_from_slice(&(issued_at + 3600).to_be_bytes());
    };
    for forged in [
        altered(&later),                           // an hour more to live
        altered(&|bytes| bytes[8] ^= 1),           // another nonce
        altered(&|bytes| bytes[8 + 16 + 31] ^= 1), // another tag
        altered(&|bytes| bytes.truncate(8 + 16)),  // no tag
        altered(&|bytes| bytes.push(0)),           // a byte more
    ] {
        let reply = refresh(&alice, Some(&session_id), Some(&key.refresh_proof(&forged))).await;
        assert_refused(&reply, Status::Forbidden, "invalid_challenge");
    }
    let reply = refresh(&alice, Some(&session_id), Some(&key.refresh_proof(&issued))).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
}

/// A refresh challenge is signed with a key only this deployment has (made at random on first
/// use and kept in the database). A thief who has the cookie and, for a moment, the device's key
/// could otherwise mint challenges dated in the future and sign them in advance, to refresh long
/// after losing the device: minted with any key a server might fall back on, each is refused.
/// The same minting with the deployment's own key is accepted, so the refusals are the key's.
#[rocket::async_test]
async fn a_challenge_minted_without_the_deployments_secret_key_is_refused() {
    use hmac::{Hmac, Mac};
    let app = TestApp::with(|f| f.merge(("sessions.idle_timeout_secs", 3600))).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    let key = DbscKey::generate();
    let session_id = sign_in_bound(&alice, &key).await;
    alice.forget_cookie("__Host-sid");
    challenge(&alice, &session_id).await;
    let token_key: Vec<u8> = sqlx::query_scalar("SELECT key FROM sessions WHERE public_id = $1")
        .bind(Uuid::parse_str(&session_id).unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    // The layout of crates/core/src/session/dbsc.rs (`RefreshChallenge`), an hour ahead.
    let mint = |mac_key: &[u8]| {
        let issued_at = (app.clock_now().unix_timestamp() + 3600).to_be_bytes();
        let nonce = [7u8; 16];
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(mac_key).unwrap();
        mac.update(b"secure-sessions DBSC refresh challenge v1");
        mac.update(Uuid::parse_str(&session_id).unwrap().as_bytes());
        mac.update(&token_key);
        mac.update(&issued_at);
        mac.update(&nonce);
        let mut bytes = issued_at.to_vec();
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&mac.finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    };
    for guess in [&[][..], &[0], &[1], &[0; 32]] {
        let reply = refresh(
            &alice,
            Some(&session_id),
            Some(&key.refresh_proof(&mint(guess))),
        )
        .await;
        assert_refused(&reply, Status::Forbidden, "invalid_challenge");
    }
    let secret: Vec<u8> = sqlx::query_scalar("SELECT key FROM dbsc_challenge_key")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(secret.len(), 32, "a key of 32 random bytes");
    let reply = refresh(
        &alice,
        Some(&session_id),
        Some(&key.refresh_proof(&mint(&secret))),
    )
    .await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
}

#[rocket::async_test]
async fn a_high_s_signature_refreshes_once_like_its_low_s_twin() {
    // (r, s) and (r, n - s) both verify. Signers make either, so neither is refused,
    // and the challenge, not the signature's spelling, is what makes a proof single use.
    let app = TestApp::with(|f| f.merge(("sessions.idle_timeout_secs", 3600))).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    let key = DbscKey::generate();
    let session_id = sign_in_bound(&alice, &key).await;
    alice.forget_cookie("__Host-sid");
    let issued = challenge(&alice, &session_id).await;
    let high = key.refresh_proof_high_s(&issued);
    let low = key.refresh_proof_low_s(&issued);
    assert_ne!(high, low);
    let reply = refresh(&alice, Some(&session_id), Some(&high)).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    let replay = refresh(&alice, Some(&session_id), Some(&low)).await;
    assert_refused(&replay, Status::Forbidden, "invalid_challenge");
}

#[rocket::async_test]
async fn a_flood_of_refused_proofs_is_one_counted_entry_per_session_and_hour() {
    let app = TestApp::with(|f| {
        f.merge(("sessions.idle_timeout_secs", 3 * 3600))
            .merge(("sessions.absolute_timeout_secs", 6 * 3600))
    })
    .await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    let key = DbscKey::generate();
    let session_id = sign_in_bound(&alice, &key).await;
    // At the start of an hour of the clock, so the flood falls within one.
    let now = app.clock_now().unix_timestamp();
    app.advance_secs(3600 - now.rem_euclid(3600));

    // A stranger with the session's id and a key of their own, 200 proofs, 20 at a time.
    let stranger_key = DbscKey::generate();
    let strangers: Vec<Device<'_>> = (0..20).map(|_| Device::new(&client)).collect();
    let issued = challenge(&strangers[0], &session_id).await;
    let forged = stranger_key.refresh_proof(&issued);
    for _ in 0..10 {
        let replies = join_all(
            strangers
                .iter()
                .map(|stranger| refresh(stranger, Some(&session_id), Some(&forged))),
        )
        .await;
        for reply in &replies {
            assert_refused(reply, Status::Unauthorized, "invalid_signature");
        }
    }
    let refused = refused_proofs(&app, user_id).await;
    assert_eq!(refused.len(), 1, "one entry: {refused:?}");
    assert_eq!(refused[0].0, 200, "counting every one");
    // The owner's browser renews its bound cookie (the clock moved past it) and looks.
    let renewed = signed_refresh(&alice, &session_id, &key).await;
    assert_eq!(renewed.status, Status::Ok, "{}", renewed.body);
    let page = alice.get("/account").await;
    assert!(
        page.shows(
            "A proof of this device's key was refused (the session is unchanged) (200 times)"
        ),
        "{}",
        page.body
    );

    // The next hour starts an entry of its own.
    app.advance_secs(3600);
    let reply = refresh(&strangers[0], Some(&session_id), Some(&forged)).await;
    assert_refused(&reply, Status::Unauthorized, "invalid_signature");
    let refused = refused_proofs(&app, user_id).await;
    assert_eq!(
        refused
            .iter()
            .map(|(repeats, _)| *repeats)
            .collect::<Vec<_>>(),
        vec![200, 1]
    );
}
