//! The security activity on the account page, as its owner reads it (docs/security.md, "The
//! activity log"): warnings only where a second look is due, repeats as one entry, the devices
//! named, "This wasn't me" only where it helps, and a device new only the first time.

use rocket::http::Status;
use secure_sessions::clock::AppClock;
use secure_sessions::session::reaper::reap_once;
use secure_sessions::users::Role;

use crate::support::html::{select_in, text_of};
use crate::support::http::{Device, FIREFOX_WINDOWS, Reply};
use crate::support::{PASSWORD, TestApp};

const NEW_PASSWORD: &str = "violet tractor mango seventeen";

/// Time passes in minutes here: sessions outlive it.
async fn app() -> TestApp {
    TestApp::with(|f| {
        f.merge(("sessions.idle_timeout_secs", 3600))
            .merge(("sessions.absolute_timeout_secs", 7200))
    })
    .await
}

/// Each entry of the activity: its words, whether it is a warning, how many times it counts,
/// whether it offers "This wasn't me", and its "from" line.
#[derive(Debug, PartialEq)]
struct Seen {
    what: String,
    warning: bool,
    count: String,
    not_me: bool,
    meta: String,
}

fn activity(page: &Reply) -> Vec<Seen> {
    let html = page.html();
    html.testids("security-event")
        .into_iter()
        .map(|entry| Seen {
            what: text_of(select_in(entry, ".what")[0]),
            warning: entry.value().attr("class") == Some("warning"),
            count: entry.value().attr("data-count").unwrap_or("").to_owned(),
            not_me: !select_in(entry, r#"[data-testid="not-me"]"#).is_empty(),
            meta: text_of(select_in(entry, ".meta")[0]),
        })
        .collect()
}

async fn sign_up(device: &Device<'_>, username: &str) {
    let csrf = device.get("/register").await.csrf_token();
    let reply = device
        .post_form(
            "/register",
            &[
                ("username", username),
                ("password", NEW_PASSWORD),
                ("password_confirm", NEW_PASSWORD),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(reply.location(), "/account", "{}", reply.body);
}

async fn user_id(app: &TestApp, username: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
        .bind(username)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[rocket::async_test]
async fn a_first_day_reads_as_plain_entries_but_for_the_other_browsers_sign_in() {
    let app = app().await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    let phone = Device::with(&client, FIREFOX_WINDOWS, "203.0.113.9");
    sign_up(&laptop, "alice").await;
    app.advance_secs(60);
    phone.sign_in("alice", NEW_PASSWORD).await;
    app.advance_secs(60);

    // The laptop signs the phone out, mistyping its password once when asked for it.
    let (phone_id, _) = laptop
        .devices()
        .await
        .into_iter()
        .find(|(_, current)| !current)
        .expect("the phone");
    let revoke = format!("/account/sessions/{phone_id}/revoke");
    let reply = laptop.post_from("/account", &revoke, &[]).await;
    assert_eq!(reply.location(), "/confirm?next=%2Faccount");
    let typo = laptop
        .confirm_at("/confirm?next=%2Faccount", "violet tractor mango")
        .await;
    assert_eq!(typo.status, Status::Ok, "the typo is refused");
    let confirmed = laptop
        .confirm_at("/confirm?next=%2Faccount", NEW_PASSWORD)
        .await;
    assert_eq!(confirmed.location(), "/account");
    assert!(phone.get("/account").await.location().starts_with("/login"));

    let seen = activity(&laptop.get("/account").await);
    let what: Vec<(&str, bool, bool)> = seen
        .iter()
        .map(|entry| (entry.what.as_str(), entry.warning, entry.not_me))
        .collect();
    assert_eq!(
        what,
        [
            (
                "Firefox on Windows 10 was signed out from Chrome on Linux (this device)",
                false,
                false
            ),
            ("Password confirmed for a sensitive action", false, false),
            (
                "Password mistyped when asked to enter it again",
                false,
                false
            ),
            ("⚠Warning: Signed in from a new device", true, true),
            ("Signed in", false, false),
            ("Account created", false, false),
        ],
        "{seen:#?}"
    );
    assert!(
        seen[3].meta.contains("from Firefox on Windows 10 ·"),
        "{seen:#?}"
    );
    for entry in [&seen[0], &seen[1], &seen[2], &seen[4], &seen[5]] {
        assert!(
            entry.meta.contains("from Chrome on Linux (this device)"),
            "{entry:#?}"
        );
    }
}

#[rocket::async_test]
async fn wrong_passwords_in_a_row_are_one_entry_with_their_count_and_span() {
    let app = app().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    let guesser = Device::with(&client, FIREFOX_WINDOWS, "192.0.2.66");
    // Two typos on the laptop before it signs in: the owner's own, plain.
    for _ in 0..2 {
        laptop.sign_in("alice", "not the password").await;
        app.advance_secs(20);
    }
    laptop.sign_in("alice", PASSWORD).await;
    // Three guesses from elsewhere, a minute apart: one warning.
    for _ in 0..3 {
        app.advance_secs(60);
        guesser.sign_in("alice", "a wrong guess").await;
    }

    let page = laptop.get("/account").await;
    let seen = activity(&page);
    let what: Vec<(&str, bool, &str, bool)> = seen
        .iter()
        .map(|entry| {
            (
                entry.what.as_str(),
                entry.warning,
                entry.count.as_str(),
                entry.not_me,
            )
        })
        .collect();
    assert_eq!(
        what,
        [
            (
                "⚠Warning: Failed sign-in attempt (wrong password) (3 times)",
                true,
                "3",
                true
            ),
            ("Signed in", false, "1", false),
            (
                "Password mistyped when signing in (2 times)",
                false,
                "2",
                false
            ),
        ],
        "{seen:#?}"
    );
    // The span of a group: two times, the first and the last.
    let html = page.html();
    let guesses = html.testids("security-event")[0];
    let times: Vec<String> = select_in(guesses, ".meta time")
        .into_iter()
        .map(|time| time.value().attr("datetime").unwrap().to_owned())
        .collect();
    assert_eq!(times.len(), 2, "{times:?}");
    assert!(times[0] < times[1], "first to last: {times:?}");
    assert!(seen[0].meta.contains(" to "), "{}", seen[0].meta);
    assert!(seen[0].meta.contains("from Firefox on Windows 10 ·"));
}

#[rocket::async_test]
async fn a_device_is_new_only_the_first_time_the_log_sees_it_sign_in() {
    let app = app().await;
    let config = app.config();
    let clock = AppClock::new(app.clock.clone());
    let client = app.client().await;
    let laptop = Device::new(&client);
    let phone = Device::with(&client, FIREFOX_WINDOWS, "203.0.113.9");
    // The device the account was created on is not new.
    sign_up(&laptop, "alice").await;
    let alice = user_id(&app, "alice").await;
    let new_devices = || async {
        app.event_kinds(alice)
            .await
            .iter()
            .filter(|kind| *kind == "new_device")
            .count()
    };
    assert_eq!(new_devices().await, 0);
    phone.sign_in("alice", NEW_PASSWORD).await;
    assert_eq!(new_devices().await, 1, "a browser never seen before is new");
    phone.sign_out().await;
    phone.sign_in("alice", NEW_PASSWORD).await;
    assert_eq!(new_devices().await, 1, "the same browser again is not");

    // Days later every session row is gone (reaped past its expiry), the log remains: neither
    // device is new when it comes back.
    app.advance_secs(
        i64::from(config.absolute_timeout_secs) + i64::from(config.tombstone_grace_secs) + 1,
    );
    let reaped = reap_once(&mut app.pool.acquire().await.unwrap(), &config, &clock)
        .await
        .unwrap();
    assert!(reaped >= 3, "{reaped}");
    laptop.sign_in("alice", NEW_PASSWORD).await;
    phone.sign_in("alice", NEW_PASSWORD).await;
    assert_eq!(new_devices().await, 1, "{:?}", app.event_kinds(alice).await);
    let seen = activity(&laptop.get("/account").await);
    assert_eq!(
        (seen[0].what.as_str(), seen[0].warning, seen[0].not_me),
        ("Signed in", false, true),
        "another device's ordinary sign-in: plain, and still disowned if it was not the owner"
    );
}
