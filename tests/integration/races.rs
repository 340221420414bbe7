//! Races, each run two ways: deterministically (a test transaction holds the lock the defence
//! relies on, so the contender is caught at the worst moment every time) and with real
//! concurrency, repeated, through the app.

use std::future::Future;
use std::pin::pin;
use std::time::{Duration, Instant};

use rocket::futures::future::join_all;
use rocket::http::Status;
use rocket::tokio::{select, time::sleep};
use secure_sessions::client::ClientInfo;
use secure_sessions::events::EventKind;
use secure_sessions::session::fingerprint::Fingerprint;
use secure_sessions::session::token::SessionToken;
use secure_sessions::session::{self, Aal, Activity, LiveSession, Reason, Validated, api, store};
use secure_sessions::throttle::{self, Admission};
use secure_sessions::users::{self, CheckedCredentials, Password, Role};
use serde_json::json;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::support::http::{CHROME_LINUX, Device, Reply};
use crate::support::{PASSWORD, TestApp, password_hasher};

const NEW_PASSWORD: &str = "violet tractor mango seventeen";

/// Backends of this test's database that wait for a lock another transaction holds.
async fn lock_waiters(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("query pg_stat_activity")
}

/// Polls `contender` until `waiters` backends wait for a lock, or until it ends (`Some`: it
/// never had to wait).
async fn until_waiting<F: Future + Unpin>(
    app: &TestApp,
    waiters: i64,
    contender: &mut F,
) -> Option<F::Output> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        select! {
            output = &mut *contender => return Some(output),
            _ = sleep(Duration::from_millis(5)) => {
                if lock_waiters(app).await >= waiters {
                    return None;
                }
                assert!(Instant::now() < deadline, "the contender neither waited nor finished");
            }
        }
    }
}

/// Runs `contender` while `holder` is open, until it waits for a lock (the holder's) or ends
/// without waiting; then commits `holder` and lets the contender finish. Returns the
/// contender's output and whether it had to wait.
async fn while_held<T>(
    app: &TestApp,
    holder: Transaction<'_, Postgres>,
    contender: impl Future<Output = T>,
) -> (T, bool) {
    let mut contender = pin!(contender);
    let early = until_waiting(app, 1, &mut contender).await;
    holder.commit().await.expect("commit the holder");
    match early {
        Some(output) => (output, false),
        None => (contender.await, true),
    }
}

/// A client as a test drives the session functions directly.
fn client_info(user_agent: &str, bind: u8) -> ClientInfo {
    ClientInfo {
        ip: "198.51.100.7".into(),
        user_agent: user_agent.into(),
        fingerprint: Fingerprint {
            bind: [bind; 32],
            watch: [0; 32],
        },
    }
}

async fn live_rows(app: &TestApp, user_id: i64, kind: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM sessions WHERE user_id = $1 AND kind = $2 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(kind)
    .fetch_one(&app.pool)
    .await
    .expect("count sessions")
}

async fn is_live(app: &TestApp, public_id: Uuid) -> bool {
    sqlx::query_scalar("SELECT revoked_at IS NULL FROM sessions WHERE public_id = $1")
        .bind(public_id)
        .fetch_one(&app.pool)
        .await
        .expect("the session row")
}

async fn request_tokens(device: &Device<'_>, username: &str, password: &str) -> Reply {
    device
        .post_json(
            "/api/token",
            &json!({ "username": username, "password": password }),
        )
        .await
}

async fn change_password(device: &Device<'_>, csrf: &str) -> Reply {
    let fields = [
        ("current_password", PASSWORD),
        ("new_password", NEW_PASSWORD),
        ("new_password_confirm", NEW_PASSWORD),
        ("csrf_token", csrf),
    ];
    device.post_form("/account/password", &fields).await
}

/// Validates a token as a request's guard would, and returns the live session.
async fn validated(app: &TestApp, token: &SessionToken, client: &ClientInfo) -> LiveSession {
    let mut conn = app.pool.acquire().await.unwrap();
    match session::validate(
        &mut conn,
        token,
        client,
        &app.config(),
        Activity::Person,
        app.clock_now(),
    )
    .await
    .unwrap()
    {
        Validated::Live(session) => *session,
        Validated::Ended(reason) => panic!("the session ended: {reason:?}"),
        Validated::Superseded(_) => panic!("the token was replaced by a rotation"),
    }
}

/// The user's credentials as a password check would find them now.
async fn checked(app: &TestApp, user_id: i64) -> CheckedCredentials {
    let mut conn = app.pool.acquire().await.unwrap();
    users::store::find_credentials_by_id(&mut conn, user_id)
        .await
        .unwrap()
        .expect("the user")
        .checked()
}

/// Starts a browser session directly, committed; returns its token and public id.
async fn started(app: &TestApp, user_id: i64, client: &ClientInfo) -> (SessionToken, Uuid) {
    let credentials = checked(app, user_id).await;
    let mut tx = app.pool.begin().await.unwrap();
    let started = session::start(
        &mut tx,
        credentials,
        None,
        client,
        &app.config(),
        Aal::Aal1,
        app.clock_now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let started = started.expect("current credentials");
    (started.token, started.public_id)
}

// ---------------------------------------------------------------- item 1: credentials change --

#[derive(Debug, Clone, Copy)]
enum Change {
    Password,
    Disable,
    /// An admin disables the account and enables it again, both while the sign-in waits.
    DisableAndEnable,
    SignOutEverywhere,
}

/// The change as the app makes it, in `tx` (which then holds the user's row until it commits).
async fn apply(app: &TestApp, tx: &mut Transaction<'_, Postgres>, change: Change, user_id: i64) {
    let now = app.clock_now();
    match change {
        Change::Password => {
            let hash = password_hasher(1)
                .hash(&Password::parse(NEW_PASSWORD.into()).unwrap())
                .await
                .unwrap();
            users::store::set_password_hash(tx, user_id, &hash)
                .await
                .unwrap();
            session::end_all_for_user(tx, user_id, None, Reason::PasswordChanged, now)
                .await
                .unwrap();
        }
        Change::Disable => {
            users::store::set_disabled(tx, user_id, true).await.unwrap();
            session::end_all_for_user(tx, user_id, None, Reason::Revoked, now)
                .await
                .unwrap();
        }
        Change::DisableAndEnable => {
            users::store::set_disabled(tx, user_id, true).await.unwrap();
            session::end_all_for_user(tx, user_id, None, Reason::Revoked, now)
                .await
                .unwrap();
            users::store::set_disabled(tx, user_id, false)
                .await
                .unwrap();
        }
        Change::SignOutEverywhere => {
            session::end_all_for_user(tx, user_id, None, Reason::Revoked, now)
                .await
                .unwrap();
        }
    }
}

#[rocket::async_test]
async fn a_sign_in_whose_password_check_came_before_a_credentials_change_creates_nothing() {
    let app = TestApp::new().await;
    let client = app.client().await;
    let changes = [
        Change::Password,
        Change::Disable,
        Change::DisableAndEnable,
        Change::SignOutEverywhere,
    ];
    for (round, change) in changes.into_iter().enumerate() {
        for api in [false, true] {
            let name = format!("alice{round}{}", if api { "api" } else { "web" });
            let user_id = app.create_user(&name, Role::User).await;
            let device = Device::new(&client);
            // The change is made but not committed: the sign-in checks the old password, then
            // waits for the user's row, and the change commits while it waits.
            let mut holder = app.pool.begin().await.unwrap();
            apply(&app, &mut holder, change, user_id).await;
            let sign_in = async {
                if api {
                    request_tokens(&device, &name, PASSWORD).await
                } else {
                    device.sign_in(&name, PASSWORD).await
                }
            };
            let (reply, waited) = while_held(&app, holder, sign_in).await;
            assert!(waited, "{change:?}: the sign-in waited for the user's row");
            if api {
                assert_eq!(
                    reply.status,
                    Status::Unauthorized,
                    "{change:?}: {}",
                    reply.body
                );
                assert_eq!(reply.error_code(), "invalid_credentials");
            } else {
                assert_eq!(
                    reply.status,
                    Status::Ok,
                    "{change:?}: the form again, not a redirect: {:?}",
                    reply.headers
                );
                assert_eq!(
                    reply.testid_text("login-error").as_deref(),
                    Some("Incorrect username or password.")
                );
            }
            assert_eq!(
                live_rows(&app, user_id, if api { "api" } else { "browser" }).await,
                0,
                "{change:?} api={api}"
            );
            if let Change::Disable = change {
                // Enabling the account again brings nothing back that started before.
                let mut conn = app.pool.acquire().await.unwrap();
                users::store::set_disabled(&mut conn, user_id, false)
                    .await
                    .unwrap();
                assert_eq!(
                    live_rows(&app, user_id, if api { "api" } else { "browser" }).await,
                    0
                );
                if !api {
                    assert_ne!(device.get("/account").await.status, Status::Ok);
                }
            }
        }
    }
}

#[rocket::async_test]
async fn sign_ins_with_the_old_password_racing_a_password_change_leave_nothing_alive() {
    let app = TestApp::with(|figment| {
        figment
            .merge(("sessions.throttle_account_failures", 10_000))
            .merge(("sessions.throttle_ip_failures", 10_000))
            .merge(("sessions.max_sessions_per_user", 1000))
            .merge(("sessions.max_api_families_per_user", 1000))
    })
    .await;
    let client = app.client().await;
    // How long a password change takes here, so the sign-ins can be spread across it.
    app.create_user("probe", Role::User).await;
    let probe = Device::new(&client);
    probe.sign_in("probe", PASSWORD).await;
    let csrf = probe.get("/account/password").await.csrf_token();
    let started_at = Instant::now();
    assert_eq!(change_password(&probe, &csrf).await.status, Status::Ok);
    let span = started_at.elapsed();

    const ROUNDS: u32 = 4;
    const SIGN_INS: u32 = 24;
    let (mut survivors, mut working_cookies) = (0, 0);
    for round in 0..ROUNDS {
        let name = format!("alice{round}");
        let user_id = app.create_user(&name, Role::User).await;
        let changer = Device::new(&client);
        changer.sign_in(&name, PASSWORD).await;
        let changer_id: Uuid = changer.devices().await[0].0.parse().unwrap();
        let csrf = changer.get("/account/password").await.csrf_token();
        let browsers: Vec<Device<'_>> = (0..SIGN_INS).map(|_| Device::new(&client)).collect();
        let mut forms = Vec::new();
        for browser in &browsers {
            forms.push(browser.get("/login").await.csrf_token());
        }
        let scripts: Vec<Device<'_>> = (0..SIGN_INS).map(|_| Device::new(&client)).collect();

        // Browser and API sign-ins with the old password, one pair every few milliseconds from
        // the moment the change starts until well after it has committed.
        let step = span * 2 / SIGN_INS;
        let browser_sign_ins = join_all(browsers.iter().zip(&forms).zip(0..).map(
            |((browser, csrf), i)| {
                let name = &name;
                async move {
                    sleep(step * i).await;
                    browser
                        .post_form(
                            "/login",
                            &[
                                ("username", name),
                                ("password", PASSWORD),
                                ("csrf_token", csrf),
                            ],
                        )
                        .await
                }
            },
        ));
        let api_sign_ins = join_all(scripts.iter().zip(0..).map(|(script, i)| {
            let name = &name;
            async move {
                sleep(step * i).await;
                request_tokens(script, name, PASSWORD).await
            }
        }));
        let (_, _, changed) = rocket::tokio::join!(
            browser_sign_ins,
            api_sign_ins,
            change_password(&changer, &csrf)
        );
        assert_eq!(changed.status, Status::Ok);

        let alive: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND public_id <> $2",
        )
        .bind(user_id)
        .bind(changer_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        survivors += alive;
        for browser in &browsers {
            if browser.session_cookie().is_some()
                && browser.get("/account").await.status == Status::Ok
            {
                working_cookies += 1;
            }
        }
    }
    let attempts = ROUNDS * SIGN_INS * 2;
    assert_eq!(
        (survivors, working_cookies),
        (0, 0),
        "of {attempts} sign-ins with the old password, {survivors} left a session or token family alive \
         ({working_cookies} browsers still signed in)"
    );
}

// ------------------------------------------------------- item 2: ending a session that rotates --

#[rocket::async_test]
async fn ending_a_session_finds_it_after_a_concurrent_rotation() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = client_info("Firefox", 1);
    let now = app.clock_now();

    // Logout: the guard validated the old token; a confirmation rotated it meanwhile.
    let (token, public_id) = started(&app, user_id, &client).await;
    let live = validated(&app, &token, &client).await;
    let mut tx = app.pool.begin().await.unwrap();
    let rotated = session::rotate(&mut tx, &live, None, &app.config(), now)
        .await
        .unwrap()
        .expect("rotated");
    tx.commit().await.unwrap();
    let mut conn = app.pool.acquire().await.unwrap();
    session::end(
        &mut conn,
        live.user_id,
        live.public_id,
        Reason::SignedOut,
        &client,
        now,
    )
    .await
    .unwrap();
    assert!(
        !is_live(&app, public_id).await,
        "the sign-out ended the session"
    );
    let mut conn = app.pool.acquire().await.unwrap();
    let config = app.config();
    let after = session::validate(&mut conn, &rotated, &client, &config, Activity::Person, now)
        .await
        .unwrap();
    assert!(
        matches!(after, Validated::Ended(Reason::SignedOut)),
        "its new token is dead too"
    );

    // "Sign out all others" from a session that rotated meanwhile keeps that session.
    let (token, public_id) = started(&app, user_id, &client).await;
    let (_, other) = started(&app, user_id, &client).await;
    let live = validated(&app, &token, &client).await;
    let mut tx = app.pool.begin().await.unwrap();
    session::rotate(&mut tx, &live, None, &app.config(), now)
        .await
        .unwrap()
        .expect("rotated");
    tx.commit().await.unwrap();
    let mut tx = app.pool.begin().await.unwrap();
    session::end_others(
        &mut tx,
        &live,
        Reason::Revoked,
        EventKind::SessionRevoked,
        &client,
        now,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(is_live(&app, public_id).await, "the current session stays");
    assert!(!is_live(&app, other).await, "the other one ends");

    // Signing one device out by its id, from a session that rotated meanwhile: never itself.
    let (token, public_id) = started(&app, user_id, &client).await;
    let live = validated(&app, &token, &client).await;
    let mut tx = app.pool.begin().await.unwrap();
    session::rotate(&mut tx, &live, None, &app.config(), now)
        .await
        .unwrap()
        .expect("rotated");
    tx.commit().await.unwrap();
    let mut conn = app.pool.acquire().await.unwrap();
    assert!(
        !store::revoke_other(
            &mut conn,
            user_id,
            public_id,
            live.public_id,
            Reason::Revoked,
            now
        )
        .await
        .unwrap()
    );
    assert!(
        is_live(&app, public_id).await,
        "a session does not sign itself out as 'another device'"
    );
}

#[rocket::async_test]
async fn a_sign_out_racing_a_rotation_of_its_session_ends_it_every_time() {
    let app = TestApp::with(|figment| {
        figment
            .merge(("sessions.throttle_account_failures", 10_000))
            .merge(("sessions.throttle_ip_failures", 10_000))
    })
    .await;
    let client = app.client().await;
    const ROUNDS: usize = 10;
    let mut left_alive = 0;
    for round in 0..ROUNDS {
        // Every other round the rotation is a password change rather than a confirmation.
        let password_change = round % 2 == 1;
        let name = format!("alice{round}");
        app.create_user(&name, Role::User).await;
        let alice = Device::new(&client);
        alice.sign_in(&name, PASSWORD).await;
        let public_id: Uuid = alice.devices().await[0].0.parse().unwrap();
        let csrf = alice.get("/account").await.csrf_token();

        // A transaction holds the session's row, so the rotation waits for it once its password
        // is checked; the sign-out, checked with the still-valid token, waits behind the rotation.
        let mut holder = app.pool.begin().await.unwrap();
        sqlx::query("SELECT 1 FROM sessions WHERE public_id = $1 FOR UPDATE")
            .bind(public_id)
            .execute(&mut *holder)
            .await
            .unwrap();
        let rotation = if password_change {
            alice.post_form(
                "/account/password",
                &[
                    ("current_password", PASSWORD),
                    ("new_password", NEW_PASSWORD),
                    ("new_password_confirm", NEW_PASSWORD),
                    ("csrf_token", &csrf),
                ],
            )
        } else {
            alice.post_form(
                "/confirm",
                &[
                    ("password", PASSWORD),
                    ("csrf_token", &csrf),
                    ("next", "/account"),
                ],
            )
        };
        let sign_out = alice.post_form("/logout", &[("csrf_token", &csrf)]);
        let mut rotation = pin!(rotation);
        assert!(
            until_waiting(&app, 1, &mut rotation).await.is_none(),
            "the rotation waits for the row"
        );
        let mut both = pin!(rocket::futures::future::join(rotation, sign_out));
        assert!(
            until_waiting(&app, 2, &mut both).await.is_none(),
            "the sign-out waits behind it"
        );
        holder.commit().await.unwrap();
        let (_, signed_out) = both.await;

        assert_eq!(signed_out.location(), "/login?reason=signed_out");
        if is_live(&app, public_id).await {
            left_alive += 1;
        }
    }
    assert_eq!(
        left_alive, 0,
        "of {ROUNDS} sign-outs, {left_alive} answered 'signed out' and left the session alive"
    );
}

#[rocket::async_test]
async fn a_session_ended_by_its_guard_ends_even_when_its_token_rotates_meanwhile() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let owner = client_info("Firefox", 1);
    let thief = client_info("curl", 2);
    let (token, public_id) = started(&app, user_id, &owner).await;

    // The owner's confirmation rotates (uncommitted) while a thief's request with the old token
    // fails the fingerprint check: the guard's revocation waits, and must still land.
    let mut holder = app.pool.begin().await.unwrap();
    let new = SessionToken::generate();
    assert!(
        store::rotate(
            &mut holder,
            &token.key(),
            &new.key(),
            None,
            app.clock_now(),
            app.clock_now()
        )
        .await
        .unwrap()
    );
    let config = app.config();
    let check = async {
        let mut conn = app.pool.acquire().await.unwrap();
        let now = app.clock_now();
        session::validate(&mut conn, &token, &thief, &config, Activity::Person, now)
            .await
            .unwrap()
    };
    let (validated, waited) = while_held(&app, holder, check).await;
    assert!(waited);
    assert!(matches!(
        validated,
        Validated::Ended(Reason::FingerprintMismatch)
    ));
    assert!(
        !is_live(&app, public_id).await,
        "the fingerprint mismatch ended the session"
    );
}

#[rocket::async_test]
async fn the_cap_ends_a_session_whose_token_rotates_while_the_cap_waits_for_it() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = client_info("Firefox", 1);
    let cap = i64::from(app.config().max_sessions_per_user);
    let mut sessions = Vec::new();
    for _ in 0..cap {
        sessions.push(started(&app, user_id, &client).await);
        app.advance_secs(1);
    }
    // The least recently used session rotates (uncommitted) as a sixth sign-in evicts it.
    let (oldest_token, oldest_id) = &sessions[0];
    let mut holder = app.pool.begin().await.unwrap();
    let new = SessionToken::generate();
    assert!(
        store::rotate(
            &mut holder,
            &oldest_token.key(),
            &new.key(),
            None,
            app.clock_now(),
            app.clock_now()
        )
        .await
        .unwrap()
    );
    let sixth = async { started(&app, user_id, &client).await };
    let (_, waited) = while_held(&app, holder, sixth).await;
    assert!(waited);
    assert_eq!(live_rows(&app, user_id, "browser").await, cap);
    assert!(!is_live(&app, *oldest_id).await);
}

// ------------------------------------------------ item 11: defences proven whatever the timing --

/// The API family of an access token.
async fn family_of(app: &TestApp, access_token: &str) -> Uuid {
    let key = SessionToken::parse(access_token).unwrap().key();
    sqlx::query_scalar("SELECT public_id FROM sessions WHERE key = $1")
        .bind(key.as_bytes())
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[rocket::async_test]
async fn of_two_refreshes_from_one_generation_the_second_always_loses() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let script = Device::new(&client);
    for round in 0..5 {
        let reply = request_tokens(&script, "alice", PASSWORD).await;
        let access = reply.json()["access_token"].as_str().unwrap().to_owned();
        let refresh_token = reply.json()["refresh_token"].as_str().unwrap().to_owned();
        let family = family_of(&app, &access).await;

        // Both refreshes read generation 0, then wait for the family's row; the first to get it
        // moves the family on, and the second's compare-and-swap must find generation 1.
        let mut holder = app.pool.begin().await.unwrap();
        sqlx::query("SELECT 1 FROM sessions WHERE public_id = $1 FOR UPDATE")
            .bind(family)
            .execute(&mut *holder)
            .await
            .unwrap();
        let body = json!({ "refresh_token": refresh_token });
        let refresh = || script.post_json("/api/token/refresh", &body);
        let mut both = pin!(rocket::futures::future::join(refresh(), refresh()));
        assert!(
            until_waiting(&app, 2, &mut both).await.is_none(),
            "both refreshes wait for the family's row"
        );
        holder.commit().await.unwrap();
        let (first, second) = both.await;

        let statuses = [first.status, second.status];
        assert_eq!(
            statuses
                .iter()
                .filter(|status| **status == Status::Ok)
                .count(),
            1,
            "round {round}: {statuses:?}"
        );
        let loser = if first.status == Status::Ok {
            &second
        } else {
            &first
        };
        assert_eq!(loser.error_code(), "invalid_grant");
        let (generation, tokens): (i32, i64) = sqlx::query_as(
            "SELECT s.generation, (SELECT count(*) FROM refresh_tokens r WHERE r.family = s.public_id)
             FROM sessions s WHERE s.public_id = $1",
        )
        .bind(family)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(
            (generation, tokens),
            (1, 2),
            "round {round}: one refresh, one new refresh token"
        );
    }
}

#[rocket::async_test]
async fn a_sign_in_counts_against_the_cap_only_after_the_one_before_it_commits() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let cap = i64::from(app.config().max_sessions_per_user);
    let info = client_info("Firefox", 1);
    for _ in 1..cap {
        started(&app, user_id, &info).await;
        app.advance_secs(1);
    }
    // The cap-th sign-in is under way (uncommitted); another one through the app must wait for
    // it, or both would count the same cap - 1 committed sessions and keep cap + 1.
    let credentials = checked(&app, user_id).await;
    let mut holder = app.pool.begin().await.unwrap();
    session::start(
        &mut holder,
        credentials,
        None,
        &info,
        &app.config(),
        Aal::Aal1,
        app.clock_now(),
    )
    .await
    .unwrap()
    .expect("started");
    let device = Device::new(&client);
    let (reply, waited) = while_held(&app, holder, device.sign_in("alice", PASSWORD)).await;
    assert_eq!(reply.location(), "/account");
    assert!(waited, "the second sign-in waited for the first");
    assert_eq!(live_rows(&app, user_id, "browser").await, cap);
}

#[rocket::async_test]
async fn an_api_sign_in_counts_against_the_family_cap_only_after_the_one_before_it_commits() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let cap = i64::from(app.config().max_api_families_per_user);
    let info = client_info("curl", 1);
    let config = app.config();
    for _ in 1..cap {
        let credentials = checked(&app, user_id).await;
        let mut tx = app.pool.begin().await.unwrap();
        api::issue(&mut tx, credentials, &info, &config, app.clock_now())
            .await
            .unwrap()
            .expect("issued");
        tx.commit().await.unwrap();
        app.advance_secs(1);
    }
    // The cap-th family is being issued (uncommitted); another sign-in through the API must wait.
    let credentials = checked(&app, user_id).await;
    let mut holder = app.pool.begin().await.unwrap();
    api::issue(&mut holder, credentials, &info, &config, app.clock_now())
        .await
        .unwrap()
        .expect("issued");
    let script = Device::new(&client);
    let (reply, waited) =
        while_held(&app, holder, request_tokens(&script, "alice", PASSWORD)).await;
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    assert!(waited, "the second sign-in waited for the first");
    assert_eq!(live_rows(&app, user_id, "api").await, cap);
}

/// The throttle's locks are per account and per address: a sign-in waits for an attempt at the
/// same account, or from the same address, to be counted, and for no other. One lock for every
/// account would still count right, but every sign-in would take its turn behind every other.
#[rocket::async_test]
async fn a_sign_in_waits_for_an_attempt_at_its_account_or_from_its_address_and_for_no_other() {
    let app = TestApp::new().await;
    for username in ["alice", "bob", "carol"] {
        app.create_user(username, Role::User).await;
    }
    let client = app.client().await;
    let config = app.config();
    let alice = users::Username::parse("alice").unwrap();
    let (home, office) = ("198.51.100.7", "203.0.113.9");
    // An attempt at alice from home, counted and not yet committed.
    let counting = async || {
        let mut holder = app.pool.begin().await.unwrap();
        let admitted =
            throttle::begin_sign_in(&mut holder, &config, Some(&alice), home, app.clock_now())
                .await
                .unwrap();
        assert!(matches!(admitted, Admission::Admitted(_)));
        holder
    };
    let cases = [
        ("bob", office, false),
        ("alice", office, true),
        ("carol", home, true),
    ];
    for (username, address, must_wait) in cases {
        let device = Device::with(&client, CHROME_LINUX, address);
        let holder = counting().await;
        let (reply, waited) = while_held(&app, holder, device.sign_in(username, PASSWORD)).await;
        assert_eq!(reply.location(), "/account", "{username} from {address}");
        assert_eq!(waited, must_wait, "{username} from {address} waited");
    }
}

#[rocket::async_test]
async fn a_sign_up_counts_against_the_limit_only_after_the_one_before_it_commits() {
    let app = TestApp::new().await;
    let client = app.client().await;
    let config = app.config();
    let address = "198.51.100.7";
    let mut conn = app.pool.acquire().await.unwrap();
    for _ in 1..config.throttle_ip_sign_ups {
        let admitted = throttle::begin_sign_up(&mut conn, &config, address, app.clock_now())
            .await
            .unwrap();
        assert!(matches!(admitted, Admission::Admitted(())));
    }
    // The last sign-up the limit allows is under way (counted, uncommitted); another one through
    // the app must wait for it, or both would count the same committed sign-ups and go ahead.
    let mut holder = app.pool.begin().await.unwrap();
    let last = throttle::begin_sign_up(&mut holder, &config, address, app.clock_now())
        .await
        .unwrap();
    assert!(matches!(last, Admission::Admitted(())));
    let device = Device::with(&client, CHROME_LINUX, address);
    let password = NEW_PASSWORD;
    let sign_up = async {
        let csrf = device.get("/register").await.csrf_token();
        let fields = [
            ("username", "latecomer"),
            ("password", password),
            ("password_confirm", password),
            ("csrf_token", &csrf),
        ];
        device.post_form("/register", &fields).await
    };
    let (reply, waited) = while_held(&app, holder, sign_up).await;
    assert_eq!(reply.status, Status::TooManyRequests, "{}", reply.body);
    assert!(waited, "the second sign-up waited for the first");
}

/// Signs `username` up through the form.
async fn sign_up(device: &Device<'_>, username: &str) -> Reply {
    let csrf = device.get("/register").await.csrf_token();
    let fields = [
        ("username", username),
        ("password", NEW_PASSWORD),
        ("password_confirm", NEW_PASSWORD),
        ("csrf_token", &csrf),
    ];
    device.post_form("/register", &fields).await
}

#[rocket::async_test]
async fn a_sign_up_for_a_look_alike_name_waits_for_the_one_under_way_and_is_refused() {
    let app = TestApp::new().await;
    let client = app.client().await;
    // `alice` is being created (uncommitted): no query can see it yet, only its unique key.
    let alice = users::Username::parse("alice").unwrap();
    let mut holder = app.pool.begin().await.unwrap();
    users::store::create(&mut holder, &alice, "x", Role::User, app.clock_now())
        .await
        .unwrap()
        .expect("created");
    let device = Device::new(&client);
    let (reply, waited) = while_held(&app, holder, sign_up(&device, "aIice")).await;
    assert!(waited, "the look-alike's sign-up waited for the first");
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    assert!(
        reply.shows("looks too much like one that is"),
        "{}",
        reply.body
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[rocket::async_test]
async fn of_two_sign_ups_racing_for_look_alike_names_exactly_one_wins_every_time() {
    let app = TestApp::new().await;
    let client = app.client().await;
    for round in 0..20 {
        // Two browsers on addresses of their own, so no sign-up limit is reached.
        let first = Device::with(&client, CHROME_LINUX, &format!("198.51.100.{}", 2 * round));
        let second = Device::with(&client, CHROME_LINUX, &format!("203.0.113.{round}"));
        let (name, look_alike) = (format!("alice{round}"), format!("a1ice{round}"));
        let replies = join_all([sign_up(&first, &name), sign_up(&second, &look_alike)]).await;
        let signed_up = replies
            .iter()
            .filter(|reply| reply.status == Status::SeeOther)
            .count();
        assert_eq!(signed_up, 1, "round {round}");
        let refused = replies
            .iter()
            .find(|reply| reply.status == Status::Ok)
            .expect("one refused");
        assert!(
            refused.shows("looks too much like one that is"),
            "{}",
            refused.body
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 20);
}

#[rocket::async_test]
async fn a_sign_out_sent_with_the_token_a_rotation_just_replaced_ends_the_session_every_time() {
    let app = TestApp::with(|figment| {
        figment
            .merge(("sessions.throttle_account_failures", 10_000))
            .merge(("sessions.throttle_ip_failures", 10_000))
    })
    .await;
    let client = app.client().await;
    const ROUNDS: u64 = 30;
    let mut left_alive = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("alice{round}");
        app.create_user(&name, Role::User).await;
        let alice = Device::new(&client);
        alice.sign_in(&name, PASSWORD).await;
        let public_id: Uuid = alice.devices().await[0].0.parse().unwrap();
        let csrf = alice.get("/account").await.csrf_token();

        // One tab confirms the password (a rotation); another tab's "Sign out" leaves 0 to 58 ms
        // later, with the cookie the browser held when the confirmation began: it reaches the
        // server before, during or after the rotation commits.
        let confirmation = alice.post_form(
            "/confirm",
            &[
                ("password", PASSWORD),
                ("csrf_token", &csrf),
                ("next", "/account"),
            ],
        );
        let sign_out = alice.post_form("/logout", &[("csrf_token", &csrf)]);
        let delay = Duration::from_millis(round * 2);
        let sign_out = async move {
            sleep(delay).await;
            sign_out.await
        };
        let (_, signed_out) = rocket::futures::future::join(confirmation, sign_out).await;

        assert_eq!(signed_out.location(), "/login?reason=signed_out");
        if is_live(&app, public_id).await {
            left_alive.push(round);
        }
    }
    assert!(
        left_alive.is_empty(),
        "of {ROUNDS} sign-outs, those of rounds {left_alive:?} answered 'signed out' and left the session alive"
    );
}

#[rocket::async_test]
async fn the_token_a_rotation_replaced_is_recognised_for_a_few_seconds_and_never_after() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let public_id: Uuid = alice.devices().await[0].0.parse().unwrap();
    let old_csrf = alice.get("/account").await.csrf_token();
    let old_token = alice.session_cookie().unwrap();
    assert_eq!(alice.confirm(PASSWORD).await.location(), "/account");
    assert_ne!(alice.session_cookie().unwrap(), old_token);

    // Only the old token's SHA-256 is kept.
    let previous_key: Vec<u8> =
        sqlx::query_scalar("SELECT previous_key FROM sessions WHERE public_id = $1")
            .bind(public_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let old_key = SessionToken::parse(&old_token).unwrap().key();
    assert_eq!(previous_key, old_key.as_bytes());

    // Requests another tab sent before the new cookie reached the browser.
    let late = Device::new(&client);
    late.set_cookie("__Host-sid", &old_token);
    let page = late.get("/account").await;
    assert_eq!(page.status, Status::SeeOther);
    assert_eq!(
        page.location(),
        "/account",
        "a page is asked for again, with the browser's new cookie"
    );
    assert!(page.header("Set-Cookie").is_none(), "the new cookie stays");
    for action in ["/account/sessions/revoke-others", "/session/keepalive"] {
        let form = late.post_form(action, &[("csrf_token", &old_csrf)]).await;
        assert_eq!(form.status, Status::Forbidden, "{action}");
        assert!(form.header("Set-Cookie").is_none(), "{action}");
        assert!(form.header("Clear-Site-Data").is_none(), "{action}");
    }
    assert!(is_live(&app, public_id).await);
    assert_eq!(alice.get("/account").await.status, Status::Ok);

    // After the grace the old token is nobody's: a sign-out with it ends nothing, clears nothing.
    app.advance_secs(6);
    let too_late = late
        .post_form("/logout", &[("csrf_token", &old_csrf)])
        .await;
    assert_eq!(too_late.location(), "/login?reason=login_required");
    assert!(too_late.header("Clear-Site-Data").is_none());
    assert!(is_live(&app, public_id).await);
    assert_eq!(alice.get("/account").await.status, Status::Ok);

    // Within the grace of the next rotation, a sign-out with the token it replaced ends the
    // session, and the browser's new cookie with it.
    let csrf = alice.get("/account").await.csrf_token();
    let token = alice.session_cookie().unwrap();
    assert_eq!(alice.confirm(PASSWORD).await.location(), "/account");
    let late = Device::new(&client);
    late.set_cookie("__Host-sid", &token);
    // Not with another token, though: a forgery that got hold of the old cookie ends nothing.
    let forged = late
        .post_form("/logout", &[("csrf_token", &old_csrf)])
        .await;
    assert_eq!(forged.status, Status::Forbidden);
    assert!(forged.header("Set-Cookie").is_none());
    assert!(is_live(&app, public_id).await);
    let signed_out = late.post_form("/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(signed_out.location(), "/login?reason=signed_out");
    assert!(signed_out.header("Clear-Site-Data").is_some());
    assert!(!is_live(&app, public_id).await);
    assert_eq!(
        alice.get("/account").await.location(),
        "/login?reason=signed_out&next=%2Faccount"
    );
}
