//! How sessions end: idle and absolute timeouts, fingerprint changes, tombstones and the reaper
//! (DESIGN sections 4 and 5). The clock is moved, never slept through.

use rocket::http::{Accept, Header, Method, Status};
use secure_sessions::clock::AppClock;
use secure_sessions::session::reaper::reap_once;
use secure_sessions::session::token::SessionToken;
use secure_sessions::session::{Reason, SessionKind, store};
use secure_sessions::users::Role;
use time::OffsetDateTime;

use crate::support::http::{Device, FIREFOX_WINDOWS};
use crate::support::{PASSWORD, TestApp};

async fn last_seen(app: &TestApp, cookie: &str) -> OffsetDateTime {
    let key = SessionToken::parse(cookie).unwrap().key();
    sqlx::query_scalar("SELECT last_seen_at FROM sessions WHERE key = $1")
        .bind(key.as_bytes())
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[rocket::async_test]
async fn an_idle_session_ends_with_idle_timeout_and_the_login_page_says_why() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let token = alice.session_cookie().unwrap();
    let idle = i64::from(app.config().idle_timeout_secs);

    app.advance_secs(idle - 1);
    assert_eq!(
        alice.get("/account").await.status,
        Status::Ok,
        "one second before the timeout"
    );
    app.advance_secs(idle);
    let reply = alice.get("/account").await;
    assert_eq!(
        reply.location(),
        "/login?reason=idle_timeout&next=%2Faccount"
    );
    assert_eq!(
        app.session_row(&token).await.unwrap().0.as_deref(),
        Some("idle_timeout")
    );
    assert_eq!(
        app.event_kinds(user_id).await,
        vec!["sign_in", "idle_timeout"]
    );

    let login = alice.get(reply.location()).await;
    assert_eq!(
        login.testid_text("login-reason").as_deref(),
        Some("You were signed out because you were inactive for a while.")
    );
    let back = alice.sign_in_to(reply.location(), "alice", PASSWORD).await;
    assert_eq!(
        back.location(),
        "/account",
        "after signing in again they land where they were"
    );
}

#[rocket::async_test]
async fn activity_keeps_a_session_alive_until_its_absolute_expiry() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let config = app.config();
    let step = i64::from(config.idle_timeout_secs) / 2;
    let mut elapsed = 0;
    while elapsed + step < i64::from(config.absolute_timeout_secs) {
        app.advance_secs(step);
        elapsed += step;
        assert_eq!(
            alice.get("/account").await.status,
            Status::Ok,
            "active at {elapsed}s"
        );
    }
    app.advance_secs(i64::from(config.absolute_timeout_secs) - elapsed);
    assert_eq!(
        alice.get("/account").await.location(),
        "/login?reason=session_expired&next=%2Faccount"
    );
    assert_eq!(
        app.event_kinds(user_id).await.last().map(String::as_str),
        Some("session_expired")
    );
    let login = alice.get("/login?reason=session_expired").await;
    assert_eq!(
        login.testid_text("login-reason").as_deref(),
        Some("Your session has expired. Please sign in again.")
    );
}

#[rocket::async_test]
async fn last_seen_is_written_at_most_once_per_touch_interval() {
    let app = TestApp::with(|f| {
        f.merge(("sessions.touch_interval_secs", 10))
            .merge(("sessions.idle_timeout_secs", 30))
    })
    .await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let token = alice.session_cookie().unwrap();
    let signed_in = last_seen(&app, &token).await;

    app.advance_secs(9);
    alice.get("/account").await;
    assert_eq!(
        last_seen(&app, &token).await,
        signed_in,
        "no write within the touch interval"
    );
    app.advance_secs(1);
    alice.get("/account").await;
    assert_eq!(
        last_seen(&app, &token).await,
        app.clock_now(),
        "written once the interval has passed"
    );
}

#[rocket::async_test]
async fn the_idle_timeout_may_come_up_to_one_touch_interval_early_never_late() {
    let app = TestApp::with(|f| {
        f.merge(("sessions.touch_interval_secs", 10))
            .merge(("sessions.idle_timeout_secs", 30))
    })
    .await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    // A request 9 s after sign-in is not written down (inside the touch interval)...
    app.advance_secs(9);
    assert_eq!(alice.get("/account").await.status, Status::Ok);
    // ...so the session ends 30 s after the last *recorded* activity: 21 s after the last request.
    app.advance_secs(21);
    assert_eq!(
        alice.get("/account").await.location(),
        "/login?reason=idle_timeout&next=%2Faccount"
    );
}

#[rocket::async_test]
async fn a_changed_user_agent_revokes_the_session_as_fingerprint_mismatch() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let token = alice.session_cookie().unwrap();

    let thief = Device::with(&client, FIREFOX_WINDOWS, "127.0.0.1");
    thief.set_cookie("__Host-sid", &token);
    assert_eq!(
        thief.get("/account").await.location(),
        "/login?reason=fingerprint_mismatch&next=%2Faccount"
    );
    assert_eq!(
        app.session_row(&token).await.unwrap().0.as_deref(),
        Some("fingerprint_mismatch")
    );
    assert_eq!(
        app.event_kinds(user_id).await,
        vec!["sign_in", "fingerprint_mismatch"]
    );
    // The owner's browser, too, is now signed out, and learns why.
    assert_eq!(
        alice.get("/account").await.location(),
        "/login?reason=fingerprint_mismatch&next=%2Faccount"
    );
}

#[rocket::async_test]
async fn a_changed_accept_language_is_a_binding_change_too() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice
        .extra_headers
        .lock()
        .unwrap()
        .push(("Accept-Language".into(), "en-GB".into()));
    alice.sign_in("alice", PASSWORD).await;
    assert_eq!(alice.get("/account").await.status, Status::Ok);
    *alice.extra_headers.lock().unwrap() = vec![("Accept-Language".into(), "ru-RU".into())];
    assert_eq!(
        alice.get("/account").await.location(),
        "/login?reason=fingerprint_mismatch&next=%2Faccount"
    );
}

#[rocket::async_test]
async fn a_new_network_keeps_the_session_records_it_and_ends_privileged_confirmation() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let mut alice = Device::with(&client, crate::support::http::CHROME_LINUX, "198.51.100.7");
    alice.sign_in("alice", PASSWORD).await;
    let token = alice.session_cookie().unwrap();
    let key = SessionToken::parse(&token).unwrap().key();
    let confirmed_until = app.clock_now() + time::Duration::minutes(10);
    sqlx::query("UPDATE sessions SET confirmed_until = $2 WHERE key = $1")
        .bind(key.as_bytes())
        .bind(confirmed_until)
        .execute(&app.pool)
        .await
        .unwrap();

    // Same /24: nothing to note.
    alice.ip = "198.51.100.200".parse().unwrap();
    assert_eq!(alice.get("/account").await.status, Status::Ok);
    assert_eq!(app.event_kinds(user_id).await, vec!["sign_in"]);

    // Another network: still signed in, but recorded, and sudo mode is gone.
    alice.ip = "203.0.113.5".parse().unwrap();
    let page = alice.get("/account").await;
    assert_eq!(page.status, Status::Ok);
    assert!(page.shows("Network changed during a session"));
    assert_eq!(
        app.event_kinds(user_id).await,
        vec!["sign_in", "network_changed"]
    );
    let (ip, confirmed): (String, Option<OffsetDateTime>) =
        sqlx::query_as("SELECT ip, confirmed_until FROM sessions WHERE key = $1")
            .bind(key.as_bytes())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((ip.as_str(), confirmed), ("203.0.113.5", None));
}

#[rocket::async_test]
async fn with_ip_in_the_binding_group_a_new_network_ends_the_session() {
    let app = TestApp::with(|f| {
        f.merge(("sessions.fingerprint_bind", ["user-agent", "ip"]))
            .merge(("sessions.fingerprint_watch", Vec::<String>::new()))
    })
    .await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let mut alice = Device::with(&client, crate::support::http::CHROME_LINUX, "198.51.100.7");
    alice.sign_in("alice", PASSWORD).await;
    alice.ip = "198.51.100.99".parse().unwrap();
    assert_eq!(
        alice.get("/account").await.status,
        Status::Ok,
        "same /24 prefix"
    );
    alice.ip = "203.0.113.5".parse().unwrap();
    assert_eq!(
        alice.get("/account").await.location(),
        "/login?reason=fingerprint_mismatch&next=%2Faccount"
    );
}

#[rocket::async_test]
async fn a_device_signed_out_elsewhere_learns_the_reason_from_the_tombstone() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    for reason in [
        Reason::Revoked,
        Reason::PasswordChanged,
        Reason::SessionLimit,
        Reason::SignedOut,
    ] {
        let alice = Device::new(&client);
        alice.sign_in("alice", PASSWORD).await;
        let key = SessionToken::parse(&alice.session_cookie().unwrap())
            .unwrap()
            .key();
        store::revoke(
            &mut app.pool.acquire().await.unwrap(),
            &key,
            reason,
            app.clock_now(),
        )
        .await
        .unwrap();

        let reply = alice.get("/account").await;
        assert_eq!(
            reply.location(),
            format!("/login?reason={}&next=%2Faccount", reason.code())
        );
        let login = alice.get(reply.location()).await;
        assert_eq!(
            login.testid_text("login-reason"),
            Some(reason.message(app.config().max_sessions_per_user)),
            "{reason:?}"
        );
    }
}

#[rocket::async_test]
async fn every_reason_code_has_a_message_on_the_login_page() {
    let app = TestApp::new().await;
    let client = app.client().await;
    let visitor = Device::new(&client);
    for reason in Reason::ALL {
        let page = visitor
            .get(&format!("/login?reason={}", reason.code()))
            .await;
        assert_eq!(
            page.testid_text("login-reason"),
            Some(reason.message(app.config().max_sessions_per_user)),
            "{reason:?}"
        );
    }
}

#[rocket::async_test]
async fn a_late_write_after_sign_out_does_not_bring_the_session_back() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let token = alice.session_cookie().unwrap();
    let key = SessionToken::parse(&token).unwrap().key();
    // A request that read the session before the sign-out writes after it.
    alice.sign_out().await;
    let mut conn = app.pool.acquire().await.unwrap();
    app.advance_secs(5);
    let touch = store::Touch {
        kind: SessionKind::Browser,
        now: app.clock_now(),
        seen_before: app.clock_now(),
        seen_after: None,
        aal2: None,
        admin: None,
    };
    assert!(!store::touch(&mut conn, &key, &touch).await.unwrap());
    let fingerprint = secure_sessions::session::fingerprint::Fingerprint {
        bind: [0; 32],
        watch: [1; 32],
    };
    let alternation = store::Alternation {
        changed_after: app.clock_now(),
        max_returns: 1,
    };
    assert_eq!(
        store::record_network_change(
            &mut conn,
            &key,
            &fingerprint,
            "203.0.113.9",
            &alternation,
            true,
            app.clock_now()
        )
        .await
        .unwrap(),
        None
    );
    assert!(
        !store::revoke(&mut conn, &key, Reason::IdleTimeout, app.clock_now())
            .await
            .unwrap()
    );
    assert_eq!(
        app.session_row(&token).await.unwrap().0.as_deref(),
        Some("signed_out"),
        "the first reason stands"
    );

    let replay = Device::new(&client);
    replay.set_cookie("__Host-sid", &token);
    assert_eq!(
        replay.get("/account").await.location(),
        "/login?reason=signed_out&next=%2Faccount"
    );
}

#[rocket::async_test]
async fn an_expired_session_is_explained_until_the_reaper_removes_it_after_the_grace() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let token = alice.session_cookie().unwrap();
    let config = app.config();
    let clock = AppClock::new(app.clock.clone());

    app.advance_secs(i64::from(config.absolute_timeout_secs));
    let replay = Device::new(&client);
    replay.set_cookie("__Host-sid", &token);
    assert!(
        replay
            .get("/account")
            .await
            .location()
            .starts_with("/login?reason=session_expired")
    );
    replay.set_cookie("__Host-sid", &token);
    assert_eq!(
        reap_once(&mut app.pool.acquire().await.unwrap(), &config, &clock)
            .await
            .unwrap(),
        0,
        "kept during the grace"
    );
    assert!(
        replay
            .get("/account")
            .await
            .location()
            .starts_with("/login?reason=session_expired")
    );

    app.advance_secs(i64::from(config.tombstone_grace_secs) + 1);
    assert_eq!(
        reap_once(&mut app.pool.acquire().await.unwrap(), &config, &clock)
            .await
            .unwrap(),
        1
    );
    assert_eq!(app.session_row(&token).await, None);
    replay.set_cookie("__Host-sid", &token);
    assert!(
        replay
            .get("/account")
            .await
            .location()
            .starts_with("/login?reason=login_required")
    );
}

#[rocket::async_test]
async fn two_reapers_at_once_delete_every_expired_row_exactly_once_and_nothing_else() {
    let app = TestApp::with(|f| f.merge(("sessions.reaper_batch_size", 50))).await;
    let user_id = app.create_user("alice", Role::User).await;
    let now = app.clock_now();
    let config = app.config();
    let long_gone = now - config.tombstone_grace() - time::Duration::seconds(1);
    // 1000 rows past expiry + grace, 10 still inside the grace, 10 live.
    for (count, expires_at) in [
        (1000, long_gone),
        (10, now - time::Duration::seconds(1)),
        (10, now + time::Duration::hours(1)),
    ] {
        sqlx::query(
            "INSERT INTO sessions (key, public_id, user_id, kind, created_at, last_seen_at, expires_at,
                                   fingerprint_bind, fingerprint_watch, ip, user_agent)
             SELECT sha256(gen_random_uuid()::text::bytea), gen_random_uuid(), $1, 'browser', $2, $2, $2,
                    '\\x00', '\\x00', '', ''
             FROM generate_series(1, $3)",
        )
        .bind(user_id)
        .bind(expires_at)
        .bind(count)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let clock = AppClock::new(app.clock.clone());
    let (mut one, mut other) = (
        app.pool.acquire().await.unwrap(),
        app.pool.acquire().await.unwrap(),
    );
    let (first, second) = rocket::tokio::join!(
        reap_once(&mut one, &config, &clock),
        reap_once(&mut other, &config, &clock)
    );
    assert_eq!(first.unwrap() + second.unwrap(), 1000);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 20);
}

#[rocket::async_test]
async fn json_clients_learn_the_reason_as_json() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    app.advance_secs(i64::from(app.config().idle_timeout_secs));
    let reply = alice
        .send(alice.request(Method::Get, "/account").header(Accept::JSON))
        .await;
    assert_eq!(reply.status, Status::Unauthorized);
    assert_eq!(
        reply.body,
        r#"{"error":"unauthorized","reason":"idle_timeout"}"#
    );
}

#[rocket::async_test]
async fn stay_signed_in_extends_the_session_and_needs_the_csrf_token() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let idle = i64::from(app.config().idle_timeout_secs);
    let page = alice.get("/account").await;
    assert_eq!(page.idle_seconds_left(), Some(idle.to_string()));
    assert_eq!(page.count_testid("idle-warning"), 1);
    let csrf = page.csrf_token();

    app.advance_secs(idle - 2);
    let forged = alice
        .post_form("/session/keepalive", &[("csrf_token", "forged")])
        .await;
    assert_eq!(forged.status, Status::Forbidden);
    let reply = alice
        .send(
            alice
                .request(Method::Post, "/session/keepalive")
                .header(rocket::http::ContentType::Form)
                .header(Header::new("Accept", "application/json"))
                .body(format!("csrf_token={csrf}")),
        )
        .await;
    assert_eq!(reply.status, Status::Ok);
    assert_eq!(reply.body, format!(r#"{{"idle_seconds_left":{idle}}}"#));
    app.advance_secs(idle - 2);
    assert_eq!(
        alice.get("/account").await.status,
        Status::Ok,
        "the keepalive counted as activity"
    );
}

/// A page opened before last-seen is due to be written again counts down from the last time it
/// was written, which is what the session's idle timeout counts from: the warning never promises
/// more time than the session has.
#[rocket::async_test]
async fn a_page_opened_between_writes_of_last_seen_counts_down_from_the_last_write() {
    let app = TestApp::with(|f| {
        f.merge(("sessions.idle_timeout_secs", 120))
            .merge(("sessions.absolute_timeout_secs", 3600))
            .merge(("sessions.touch_interval_secs", 60))
            .merge(("sessions.idle_warning_secs", 30))
    })
    .await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    assert_eq!(
        alice.get("/account").await.idle_seconds_left().as_deref(),
        Some("120")
    );
    app.advance_secs(40);
    assert_eq!(
        alice.get("/account").await.idle_seconds_left().as_deref(),
        Some("80")
    );
    app.advance_secs(79);
    assert_eq!(alice.get("/account").await.status, Status::Ok);
}

#[rocket::async_test]
async fn stay_signed_in_extends_the_session_even_when_it_was_touched_within_the_touch_interval() {
    // A touch interval longer than the time the warning gives: when the person presses "Stay
    // signed in", the last write of last-seen is more recent than the interval, so the lookup
    // alone would not write it again.
    let app = TestApp::with(|f| {
        f.merge(("sessions.idle_timeout_secs", 120))
            .merge(("sessions.absolute_timeout_secs", 3600))
            .merge(("sessions.touch_interval_secs", 100))
            .merge(("sessions.idle_warning_secs", 30))
    })
    .await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let csrf = alice.get("/account").await.csrf_token();

    app.advance_secs(95); // 25 seconds left: the warning is up
    let reply = alice
        .send(
            alice
                .request(Method::Post, "/session/keepalive")
                .header(rocket::http::ContentType::Form)
                .header(Accept::JSON)
                .body(format!("csrf_token={csrf}")),
        )
        .await;
    assert_eq!(reply.status, Status::Ok);
    assert_eq!(reply.body, r#"{"idle_seconds_left":120}"#);

    app.advance_secs(30); // past the deadline the session had before the keepalive
    assert_eq!(
        alice.get("/account").await.status,
        Status::Ok,
        "\"Stay signed in\" moved the idle deadline"
    );
}
