//! Anomaly detection: a session used from two networks by turns, an API token family refreshed
//! far faster than it needs, and a sign-in from a new device and network right after failed
//! guesses, in a browser or over the token API. Thresholds are settings; a phone moving between
//! Wi-Fi and mobile data never trips them.

use rocket::http::Status;
use secure_sessions::clock::AppClock;
use secure_sessions::session::reaper::reap_once;
use secure_sessions::users::Role;
use serde_json::json;

use crate::support::html::{select_in, text_of};
use crate::support::http::{CHROME_LINUX, Device, FIREFOX_WINDOWS, Reply};
use crate::support::{PASSWORD, TestApp};

const HOME_WIFI: &str = "198.51.100.7";
const MOBILE_DATA: &str = "203.0.113.200";
const OFFICE_WIFI: &str = "192.0.2.40";
const THIEF: &str = "203.0.113.66";
const MINUTE: i64 = 60;

/// The production timeouts: the walks below take hours of the test clock.
async fn app_with_production_timeouts() -> TestApp {
    TestApp::with(|figment| {
        figment
            .merge(("sessions.idle_timeout_secs", 1800))
            .merge(("sessions.absolute_timeout_secs", 43200))
            .merge(("sessions.touch_interval_secs", 60))
    })
    .await
}

fn kinds_of(kinds: &[String], kind: &str) -> usize {
    kinds.iter().filter(|k| k.as_str() == kind).count()
}

fn assert_ended(reply: &Reply, reason: &str) {
    assert_eq!(
        reply.location(),
        format!("/login?reason={reason}&next=%2Faccount"),
        "{}",
        reply.body
    );
}

#[rocket::async_test]
async fn a_cookie_used_from_two_networks_by_turns_ends_the_session_with_network_alternation() {
    let app = app_with_production_timeouts().await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let mut owner = Device::with(&client, CHROME_LINUX, HOME_WIFI);
    owner.sign_in("alice", PASSWORD).await;
    // A copy of the cookie, replayed with the same browser headers from another network.
    let thief = Device::with(&client, CHROME_LINUX, THIEF);
    thief.set_cookie("__Host-sid", &owner.session_cookie().expect("cookie"));
    let token = owner.session_cookie().expect("cookie");

    // Both active: the requests interleave, and the session's network flips with each. The first
    // change is a new network; each later one a return to the network just left. The eighth
    // return in a row, each within a minute of the change before, ends the session.
    let mut turn = 0;
    let ended = loop {
        turn += 1;
        app.advance_secs(20);
        let device = if turn % 2 == 1 { &thief } else { &owner };
        let reply = device.get("/account").await;
        if reply.status != Status::Ok {
            break reply;
        }
        assert!(turn < 20, "the session outlived twenty turns");
    };
    assert_eq!(turn, 9, "one change, then eight returns");
    assert_ended(&ended, "network_alternation");
    assert_ended(&owner.get("/account").await, "network_alternation");
    assert_eq!(
        app.session_row(&token).await.expect("row").0.as_deref(),
        Some("network_alternation")
    );
    let kinds = app.event_kinds(alice_id).await;
    assert_eq!(kinds_of(&kinds, "network_changed"), 8);
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("network_alternation")
    );

    // The sign-in page says what happened; signing in again, the activity shows it.
    let login = owner.get("/login?reason=network_alternation").await;
    assert!(
        login
            .testid_text("login-reason")
            .is_some_and(|text| text.contains("used from two networks")),
        "{}",
        login.body
    );
    owner.ip = HOME_WIFI.parse().expect("ip");
    owner.sign_in("alice", PASSWORD).await;
    let page = owner.get("/account").await;
    assert!(
        page.body
            .contains("this session was used from two networks by turns within minutes"),
        "{}",
        page.body
    );
}

#[rocket::async_test]
async fn a_phone_switching_between_wifi_and_mobile_data_all_day_stays_signed_in() {
    let app = app_with_production_timeouts().await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let mut phone = Device::with(&client, CHROME_LINUX, HOME_WIFI);
    phone.sign_in("alice", PASSWORD).await;
    let mut changes = 0;
    let mut go = async |network: &str, after_secs: i64| {
        app.advance_secs(after_secs);
        phone.ip = network.parse().expect("ip");
        let reply = phone.get("/account").await;
        assert_eq!(
            reply.status,
            Status::Ok,
            "on {network} after {} changes: {}",
            changes,
            reply.location()
        );
        changes += 1;
    };

    // Leaving home: the Wi-Fi comes and goes at the door, seven quick returns in a row (one short
    // of the limit), then mobile data for the walk.
    for network in [
        MOBILE_DATA,
        HOME_WIFI,
        MOBILE_DATA,
        HOME_WIFI,
        MOBILE_DATA,
        HOME_WIFI,
        MOBILE_DATA,
        HOME_WIFI,
    ] {
        go(network, 40).await;
    }
    go(MOBILE_DATA, 2 * MINUTE).await;
    // The walk, twenty minutes on mobile data; then the office's Wi-Fi for the morning.
    for _ in 0..4 {
        go(MOBILE_DATA, 5 * MINUTE).await;
    }
    go(OFFICE_WIFI, 5 * MINUTE).await;
    for _ in 0..10 {
        go(OFFICE_WIFI, 20 * MINUTE).await;
    }
    // Lunch on mobile data, back to the office, and the office Wi-Fi flaky all afternoon: a
    // switch every two minutes, each return later than a minute after the change before.
    go(MOBILE_DATA, 10 * MINUTE).await;
    go(OFFICE_WIFI, 25 * MINUTE).await;
    for _ in 0..40 {
        go(MOBILE_DATA, 2 * MINUTE).await;
        go(OFFICE_WIFI, 2 * MINUTE).await;
    }
    // Home on mobile data, then the home Wi-Fi, with another flaky doorway.
    go(MOBILE_DATA, 20 * MINUTE).await;
    for network in [HOME_WIFI, MOBILE_DATA, HOME_WIFI, MOBILE_DATA, HOME_WIFI] {
        go(network, 30).await;
    }

    let kinds = app.event_kinds(alice_id).await;
    assert_eq!(kinds_of(&kinds, "network_alternation"), 0);
    assert!(kinds_of(&kinds, "network_changed") > 30, "{kinds:?}");
    assert_eq!(phone.get("/account").await.status, Status::Ok);
}

#[rocket::async_test]
async fn the_alternation_thresholds_are_settings() {
    let app = TestApp::with(|figment| {
        figment
            .merge(("sessions.network_alternations_max", 2))
            .merge(("sessions.network_alternation_window_secs", 10))
    })
    .await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let mut alice = Device::with(&client, CHROME_LINUX, HOME_WIFI);
    alice.sign_in("alice", PASSWORD).await;

    // Returns eleven seconds apart: outside the window, never counted.
    for network in [MOBILE_DATA, HOME_WIFI, MOBILE_DATA, HOME_WIFI, MOBILE_DATA] {
        app.advance_secs(11);
        alice.ip = network.parse().expect("ip");
        assert_eq!(alice.get("/account").await.status, Status::Ok);
    }
    // Two within ten seconds each: the end.
    app.advance_secs(5);
    alice.ip = HOME_WIFI.parse().expect("ip");
    assert_eq!(alice.get("/account").await.status, Status::Ok);
    app.advance_secs(5);
    alice.ip = MOBILE_DATA.parse().expect("ip");
    assert_ended(&alice.get("/account").await, "network_alternation");
}

async fn api_refresh(client: &Device<'_>, refresh_token: &str) -> Reply {
    client
        .post_json(
            "/api/token/refresh",
            &json!({ "refresh_token": refresh_token }),
        )
        .await
}

fn tokens(reply: &Reply) -> (String, String) {
    assert_eq!(reply.status, Status::Ok, "{}", reply.body);
    let body = reply.json();
    (
        body["access_token"].as_str().expect("access").to_owned(),
        body["refresh_token"].as_str().expect("refresh").to_owned(),
    )
}

#[rocket::async_test]
async fn an_api_family_refreshed_far_faster_than_its_access_tokens_need_is_ended() {
    let app = TestApp::new().await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let script = Device::with(&client, "curl/8.5.0", "192.0.2.44");
    let (mut access, mut refresh) = tokens(
        &script
            .post_json(
                "/api/token",
                &json!({ "username": "alice", "password": PASSWORD }),
            )
            .await,
    );

    // Ten refreshes within one access token's fifteen minutes are allowed (restarts, retries) ...
    for _ in 0..10 {
        app.advance_secs(30);
        (access, refresh) = tokens(&api_refresh(&script, &refresh).await);
    }
    // ... the eleventh ends the family.
    app.advance_secs(30);
    let refused = api_refresh(&script, &refresh).await;
    assert_eq!(refused.status, Status::Unauthorized);
    assert_eq!(refused.error_code(), "invalid_grant");
    let me = script
        .with_bearer(rocket::http::Method::Get, "/api/me", &access)
        .await;
    assert_eq!(
        me.status,
        Status::Unauthorized,
        "the latest access token died with its family"
    );
    let kinds = app.event_kinds(alice_id).await;
    assert_eq!(kinds.last().map(String::as_str), Some("refresh_too_fast"));
    let (detail,): (String,) = sqlx::query_as(
        "SELECT detail FROM security_events WHERE kind = 'refresh_too_fast' AND user_id = $1",
    )
    .bind(alice_id)
    .fetch_one(&app.pool)
    .await
    .expect("event");
    assert_eq!(detail, "11 refreshes within 900 seconds");
}

#[rocket::async_test]
async fn an_api_client_refreshing_as_its_access_tokens_expire_runs_for_days() {
    let app = TestApp::new().await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let script = Device::with(&client, "curl/8.5.0", "192.0.2.44");
    let (_, mut refresh) = tokens(
        &script
            .post_json(
                "/api/token",
                &json!({ "username": "alice", "password": PASSWORD }),
            )
            .await,
    );
    // A day of refreshes every 14 minutes, with a burst of five after each restart at noon.
    for step in 0..(24 * 60 / 14) {
        app.advance_secs(14 * MINUTE);
        (_, refresh) = tokens(&api_refresh(&script, &refresh).await);
        if step == 50 {
            for _ in 0..5 {
                app.advance_secs(10);
                (_, refresh) = tokens(&api_refresh(&script, &refresh).await);
            }
        }
    }
    assert_eq!(
        kinds_of(&app.event_kinds(alice_id).await, "refresh_too_fast"),
        0
    );
}

/// One `suspicious_sign_in` was recorded, and the owner's `/account` lists it first: flagged,
/// explained, from the thief's address, with "This wasn't me".
async fn assert_flagged_first(app: &TestApp, user_id: i64, owner: &Device<'_>) {
    let kinds = app.event_kinds(user_id).await;
    assert_eq!(kinds_of(&kinds, "suspicious_sign_in"), 1, "{kinds:?}");
    let page = owner.get("/account").await;
    let html = page.html();
    let first = *html
        .testids("security-event")
        .first()
        .expect("an activity entry");
    let text = text_of(first);
    assert_eq!(first.value().attr("data-flagged"), Some("true"), "{text}");
    assert!(
        text.contains(
            "Signed in from a new device and a new network right after failed sign-in attempts"
        ),
        "{text}"
    );
    assert_eq!(
        select_in(first, r#"[data-testid="not-me"]"#).len(),
        1,
        "{text}"
    );
    assert!(text.contains(THIEF), "{text}");
}

#[rocket::async_test]
async fn a_sign_in_from_a_new_device_and_network_right_after_failed_guesses_is_shown_first() {
    let app = app_with_production_timeouts().await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::with(&client, CHROME_LINUX, HOME_WIFI);
    laptop.sign_in("alice", PASSWORD).await;

    // Someone guesses from elsewhere, and gets in.
    let guesser = Device::with(&client, FIREFOX_WINDOWS, THIEF);
    for guess in ["password1", "alice2024", "letmein!!"] {
        app.advance_secs(MINUTE);
        guesser.sign_in("alice", guess).await;
    }
    app.advance_secs(MINUTE);
    guesser.sign_in("alice", PASSWORD).await;
    // Later activity would push it down a list ordered by time.
    app.advance_secs(MINUTE);
    laptop.sign_out().await;
    laptop.sign_in("alice", PASSWORD).await;

    assert_flagged_first(&app, alice_id, &laptop).await;
}

#[rocket::async_test]
async fn a_flagged_sign_in_stays_first_until_the_owner_acts_on_it() {
    let app = app_with_production_timeouts().await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::with(&client, CHROME_LINUX, HOME_WIFI);
    laptop.sign_in("alice", PASSWORD).await;
    let guesser = Device::with(&client, FIREFOX_WINDOWS, THIEF);
    for guess in ["password1", "alice2024", "letmein!!"] {
        app.advance_secs(MINUTE);
        guesser.sign_in("alice", guess).await;
    }
    app.advance_secs(MINUTE);
    guesser.sign_in("alice", PASSWORD).await;

    // Far more activity after it than the page lists (20 entries).
    for _ in 0..15 {
        app.advance_secs(MINUTE);
        laptop.sign_out().await;
        laptop.sign_in("alice", PASSWORD).await;
    }
    let kinds = app.event_kinds(alice_id).await;
    let after = kinds.len()
        - 1
        - kinds
            .iter()
            .position(|k| k == "suspicious_sign_in")
            .unwrap();
    assert!(after > 20, "{after} entries after it");
    assert_flagged_first(&app, alice_id, &laptop).await;

    // Confirming the password is not acting on it.
    laptop.confirm(PASSWORD).await;
    assert_flagged_first(&app, alice_id, &laptop).await;

    // The owner signs the guesser's device out: dealt with, it is no longer pinned first.
    let (guessers, _) = laptop
        .devices()
        .await
        .into_iter()
        .find(|(_, current)| !current)
        .expect("the guesser's device");
    let reply = laptop
        .post_from(
            "/account",
            &format!("/account/sessions/{guessers}/revoke"),
            &[],
        )
        .await;
    assert_eq!(reply.location(), "/account");
    let page = laptop.get("/account").await;
    assert!(
        page.html().select("[data-flagged]").is_empty(),
        "{}",
        page.body
    );
}

/// The account's networks are remembered by the security log, as its devices are, not by session
/// rows the reaper deletes: days later, with every row gone, a thief who gets in after guessing is
/// still flagged, and the owner's new phone on the home network is not.
#[rocket::async_test]
async fn networks_are_remembered_after_every_session_row_is_reaped() {
    let app = app_with_production_timeouts().await;
    let config = app.config();
    let clock = AppClock::new(app.clock.clone());
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::with(&client, CHROME_LINUX, HOME_WIFI);
    laptop.sign_in("alice", PASSWORD).await;
    laptop.sign_out().await;
    app.advance_secs(
        i64::from(config.absolute_timeout_secs) + i64::from(config.tombstone_grace_secs) + 1,
    );
    let reaped = reap_once(&mut app.pool.acquire().await.unwrap(), &config, &clock)
        .await
        .unwrap();
    assert!(reaped >= 1, "the laptop's session row is gone: {reaped}");

    let guesser = Device::with(&client, FIREFOX_WINDOWS, THIEF);
    for guess in ["password1", "alice2024", "letmein!!"] {
        app.advance_secs(MINUTE);
        guesser.sign_in("alice", guess).await;
    }
    app.advance_secs(MINUTE);
    guesser.sign_in("alice", PASSWORD).await;
    let kinds = app.event_kinds(alice_id).await;
    assert_eq!(kinds_of(&kinds, "suspicious_sign_in"), 1, "{kinds:?}");

    // An hour on, more guesses; then the owner on a new phone at home (the same /24).
    app.advance_secs(61 * MINUTE);
    for guess in ["qwerty123", "alice1990", "sunshine!"] {
        app.advance_secs(MINUTE);
        guesser.sign_in("alice", guess).await;
    }
    let phone = Device::with(
        &client,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1",
        "198.51.100.201",
    );
    phone.sign_in("alice", PASSWORD).await;
    let kinds = app.event_kinds(alice_id).await;
    assert_eq!(kinds_of(&kinds, "sign_in_failed"), 6, "{kinds:?}");
    assert_eq!(
        kinds_of(&kinds, "suspicious_sign_in"),
        1,
        "a new device on a known network is not flagged: {kinds:?}"
    );
}

#[rocket::async_test]
async fn an_owner_who_mistypes_or_signs_in_from_a_known_place_is_not_flagged() {
    let app = app_with_production_timeouts().await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::with(&client, CHROME_LINUX, HOME_WIFI);
    laptop.sign_in("alice", PASSWORD).await;

    // Two typos, then a new laptop in a café: new device, new network, but only two failures.
    let new_laptop = Device::with(&client, FIREFOX_WINDOWS, OFFICE_WIFI);
    new_laptop.sign_in("alice", "typo one").await;
    new_laptop.sign_in("alice", "typo two").await;
    new_laptop.sign_in("alice", PASSWORD).await;
    // Three failures, then a sign-in from a known device on the known network.
    app.advance_secs(2 * 60 * MINUTE);
    for typo in ["first typo", "second typo", "third typo"] {
        laptop.sign_in("alice", typo).await;
    }
    laptop.sign_in("alice", PASSWORD).await;
    // Three failures more than an hour before a sign-in from a new device and network.
    app.advance_secs(2 * 60 * MINUTE);
    let phone = Device::with(
        &client,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1",
        MOBILE_DATA,
    );
    for typo in ["typo number a", "typo number b", "typo number c"] {
        phone.sign_in("alice", typo).await;
    }
    app.advance_secs(61 * MINUTE);
    phone.sign_in("alice", PASSWORD).await;

    let kinds = app.event_kinds(alice_id).await;
    assert_eq!(kinds_of(&kinds, "sign_in_failed"), 8, "{kinds:?}");
    assert_eq!(kinds_of(&kinds, "suspicious_sign_in"), 0, "{kinds:?}");
    assert!(
        phone
            .get("/account")
            .await
            .html()
            .select("[data-flagged]")
            .is_empty()
    );
}

#[rocket::async_test]
async fn a_token_api_sign_in_from_a_new_device_and_network_right_after_failed_guesses_is_shown_first()
 {
    let app = app_with_production_timeouts().await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::with(&client, CHROME_LINUX, HOME_WIFI);
    laptop.sign_in("alice", PASSWORD).await;

    // Someone guesses over the token API from elsewhere, and gets a token.
    let script = Device::with(&client, "python-requests/2.32", THIEF);
    for guess in ["password1", "alice2024", "letmein!!"] {
        app.advance_secs(MINUTE);
        let refused = script
            .post_json(
                "/api/token",
                &json!({ "username": "alice", "password": guess }),
            )
            .await;
        assert_eq!(refused.status, Status::Unauthorized);
    }
    app.advance_secs(MINUTE);
    tokens(
        &script
            .post_json(
                "/api/token",
                &json!({ "username": "alice", "password": PASSWORD }),
            )
            .await,
    );
    // Later activity would push it down a list ordered by time.
    app.advance_secs(MINUTE);
    laptop.sign_out().await;
    laptop.sign_in("alice", PASSWORD).await;

    assert_flagged_first(&app, alice_id, &laptop).await;
}

#[rocket::async_test]
async fn a_token_api_sign_in_without_failed_guesses_before_it_is_not_flagged() {
    let app = app_with_production_timeouts().await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::with(&client, CHROME_LINUX, HOME_WIFI);
    laptop.sign_in("alice", PASSWORD).await;
    // Two typos, then the owner's new script on a new network: not enough failures.
    let script = Device::with(&client, "python-requests/2.32", OFFICE_WIFI);
    for typo in ["typo one", "typo two"] {
        script
            .post_json(
                "/api/token",
                &json!({ "username": "alice", "password": typo }),
            )
            .await;
    }
    tokens(
        &script
            .post_json(
                "/api/token",
                &json!({ "username": "alice", "password": PASSWORD }),
            )
            .await,
    );
    let kinds = app.event_kinds(alice_id).await;
    assert_eq!(kinds_of(&kinds, "suspicious_sign_in"), 0, "{kinds:?}");
    assert!(!laptop.get("/account").await.body.contains("data-flagged"));
}
