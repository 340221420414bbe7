//! Sign-in throttling: per account and per address, before any password is checked, with a
//! growing delay that always ends. The clock is moved, never slept on.

use rocket::futures::future::join_all;
use rocket::http::Status;
use secure_sessions::throttle;
use secure_sessions::users::Role;
use secure_sessions::users::hashing::PasswordHasher;
use serde_json::json;

use crate::support::http::{Device, Reply};
use crate::support::{PASSWORD, TestApp};

const WRONG: &str = "not the password at all";
const REJECTED: &str = "Incorrect username or password.";

/// Failure rows in the database, as (per account, per address).
async fn failure_rows(app: &TestApp) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE scope = 'account'), count(*) FILTER (WHERE scope = 'ip') FROM sign_in_failures",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count failures")
}

/// Signs in through the form and expects the plain rejection.
async fn fail_to_sign_in(device: &Device<'_>, username: &str) {
    let reply = device.sign_in(username, WRONG).await;
    assert_eq!(reply.status, Status::Ok, "{username}: {}", reply.body);
    assert_eq!(
        reply.testid_text("login-error").as_deref(),
        Some(REJECTED),
        "{username}"
    );
}

fn assert_throttled(reply: &Reply, retry_after_secs: u32) {
    assert_eq!(reply.status, Status::TooManyRequests, "{}", reply.body);
    assert_eq!(
        reply.header("Retry-After"),
        Some(retry_after_secs.to_string().as_str())
    );
    assert!(reply.set_cookie("__Host-sid").is_none());
}

async fn request_tokens(device: &Device<'_>, username: &str, password: &str) -> Reply {
    device
        .post_json(
            "/api/token",
            &json!({ "username": username, "password": password }),
        )
        .await
}

#[rocket::async_test]
async fn after_five_wrong_passwords_the_sixth_attempt_waits_even_with_the_right_password() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    for _ in 0..5 {
        fail_to_sign_in(&alice, "alice").await;
    }

    let throttled = alice.sign_in("alice", PASSWORD).await;
    assert_throttled(&throttled, 60);
    assert_eq!(
        throttled.testid_text("login-error").as_deref(),
        Some("Too many failed sign-in attempts. Please wait 1 minute and try again.")
    );
    assert_eq!(
        throttled.count_testid("login-form"),
        1,
        "the form stays, to try again later"
    );
    // The password was never looked at: the attempt left no failure and no event behind.
    assert_eq!(failure_rows(&app).await, (5, 5));
    assert_eq!(app.event_kinds(user_id).await, vec!["sign_in_failed"; 5]);
}

#[rocket::async_test]
async fn the_wait_doubles_with_each_further_failure_and_the_right_password_works_once_it_has_passed()
 {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    for _ in 0..5 {
        fail_to_sign_in(&alice, "alice").await;
    }
    assert_throttled(&alice.sign_in("alice", WRONG).await, 60);
    app.advance_secs(59);
    assert_throttled(&alice.sign_in("alice", WRONG).await, 1);

    app.advance_secs(1);
    fail_to_sign_in(&alice, "alice").await;
    assert_throttled(&alice.sign_in("alice", PASSWORD).await, 120);
    app.advance_secs(120);
    fail_to_sign_in(&alice, "alice").await;
    assert_throttled(&alice.sign_in("alice", PASSWORD).await, 240);

    app.advance_secs(240);
    assert_eq!(
        alice.sign_in("alice", PASSWORD).await.location(),
        "/account"
    );
    // The account starts afresh; the address keeps its seven failures.
    assert_eq!(failure_rows(&app).await, (0, 7));
    fail_to_sign_in(&Device::new(&client), "alice").await;
}

#[rocket::async_test]
async fn a_successful_sign_in_resets_the_accounts_count() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    for _ in 0..4 {
        fail_to_sign_in(&alice, "alice").await;
    }
    assert_eq!(
        alice.sign_in("alice", PASSWORD).await.location(),
        "/account"
    );
    let other = Device::new(&client);
    for _ in 0..4 {
        fail_to_sign_in(&other, "alice").await;
    }
    assert_eq!(failure_rows(&app).await, (4, 8));
}

/// The reaper deletes in batches of three here: ten rows take four, the reaper going on while a
/// batch comes back full.
#[rocket::async_test]
async fn failures_leave_the_count_when_the_window_has_passed_and_the_reaper_deletes_them() {
    let app = TestApp::with(|f| f.merge(("sessions.reaper_batch_size", 3))).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    for _ in 0..5 {
        fail_to_sign_in(&alice, "alice").await;
    }
    app.advance_secs(14 * 60);
    assert_eq!(
        throttle::forget_old(
            &mut app.pool.acquire().await.unwrap(),
            &app.config(),
            app.clock_now()
        )
        .await
        .unwrap(),
        0
    );
    app.advance_secs(60);
    assert_eq!(
        throttle::forget_old(
            &mut app.pool.acquire().await.unwrap(),
            &app.config(),
            app.clock_now()
        )
        .await
        .unwrap(),
        10
    );
    assert_eq!(failure_rows(&app).await, (0, 0));
    assert_eq!(
        alice.sign_in("alice", PASSWORD).await.location(),
        "/account"
    );
}

#[rocket::async_test]
async fn an_office_behind_one_address_gets_fifty_failures_before_the_address_waits() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let office = Device::with(&client, crate::support::http::CHROME_LINUX, "198.51.100.7");
    // Different usernames each time, so no account reaches its own threshold.
    for n in 0..49 {
        fail_to_sign_in(&office, &format!("colleague{n}")).await;
    }
    assert_eq!(
        office.sign_in("alice", PASSWORD).await.location(),
        "/account",
        "49 failures still let people in"
    );
    let office = Device::with(&client, crate::support::http::CHROME_LINUX, "198.51.100.7");
    fail_to_sign_in(&office, "colleague49").await;

    assert_throttled(&office.sign_in("alice", PASSWORD).await, 60);
    assert_throttled(&office.sign_in("someone-else", PASSWORD).await, 60);
    // Another address is not affected.
    let elsewhere = Device::with(&client, crate::support::http::CHROME_LINUX, "203.0.113.9");
    assert_eq!(
        elsewhere.sign_in("alice", PASSWORD).await.location(),
        "/account"
    );
}

/// A client holding an IPv6 /64 (what one subscriber usually gets) cannot rotate through its
/// addresses for a fresh budget each: the network is one address to the throttle.
#[rocket::async_test]
async fn every_address_of_one_ipv6_network_shares_its_budget() {
    let app = TestApp::with(|f| f.merge(("sessions.throttle_ip_failures", 3))).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let from = |ip| Device::with(&client, crate::support::http::CHROME_LINUX, ip);
    // A new address and a new username each time, so no address and no account reaches a
    // threshold of its own.
    for (n, ip) in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:8000::1"]
        .into_iter()
        .enumerate()
    {
        fail_to_sign_in(&from(ip), &format!("colleague{n}")).await;
    }

    let same_network = from("2001:db8:1:2:ffff:ffff:ffff:ffff");
    assert_throttled(&same_network.sign_in("alice", PASSWORD).await, 60);
    // The next /64 is another subscriber.
    let next_network = from("2001:db8:1:3::1");
    assert_eq!(
        next_network.sign_in("alice", PASSWORD).await.location(),
        "/account"
    );
}

#[rocket::async_test]
async fn unknown_and_differently_cased_usernames_are_counted_like_real_ones() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let visitor = Device::new(&client);
    for username in ["Alice", "ALICE", "alice", "aLiCe", "alicE"] {
        fail_to_sign_in(&visitor, username).await;
    }
    assert_throttled(&visitor.sign_in("alice", PASSWORD).await, 60);

    for _ in 0..5 {
        fail_to_sign_in(&visitor, "nobody").await;
    }
    let probe = visitor.sign_in("nobody", WRONG).await;
    assert_throttled(&probe, 60);
}

#[rocket::async_test]
async fn the_token_endpoint_is_throttled_the_same_way() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let script = Device::new(&client);
    for _ in 0..5 {
        let reply = request_tokens(&script, "alice", WRONG).await;
        assert_eq!(reply.status, Status::Unauthorized);
        assert_eq!(reply.error_code(), "invalid_credentials");
    }
    let throttled = request_tokens(&script, "alice", PASSWORD).await;
    assert_throttled(&throttled, 60);
    assert_eq!(throttled.json(), json!({ "error": "too_many_attempts" }));

    // The login form shares the count: it is one account.
    assert_throttled(&Device::new(&client).sign_in("alice", PASSWORD).await, 60);

    app.advance_secs(60);
    assert_eq!(
        request_tokens(&script, "alice", PASSWORD).await.status,
        Status::Ok
    );
    assert_eq!(failure_rows(&app).await, (0, 5));
}

/// Twenty guesses at once at one account, ten times over (an account and an address each time,
/// so each round starts afresh): a race that slips a guess past the threshold only now and then
/// still shows in one of the rounds.
#[rocket::async_test]
async fn parallel_guesses_cannot_slip_past_the_threshold() {
    let app = TestApp::new().await;
    let client = app.client().await;
    for round in 1..=10 {
        let username = format!("alice{round}");
        app.create_user(&username, Role::User).await;
        let address = format!("198.51.100.{round}");
        let attacker = Device::with(&client, crate::support::http::CHROME_LINUX, &address);

        let replies = join_all((0..20).map(|_| request_tokens(&attacker, &username, WRONG))).await;
        let statuses: Vec<Status> = replies.iter().map(|reply| reply.status).collect();
        // Each admitted attempt counts as a failure before its password is checked, so exactly
        // five passwords were checked however the twenty interleaved.
        let count = |wanted: Status| statuses.iter().filter(|status| **status == wanted).count();
        assert_eq!(
            (count(Status::Unauthorized), count(Status::TooManyRequests)),
            (5, 15),
            "round {round}: {statuses:?}"
        );
        assert_eq!(failure_rows(&app).await, (5 * round, 5 * round));
    }
}

#[rocket::async_test]
async fn guessing_the_password_at_confirmation_or_password_change_is_throttled_too() {
    // A long idle timeout: the test moves the clock by minutes.
    let app = TestApp::with(|f| f.merge(("sessions.idle_timeout_secs", 3600))).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let thief = Device::new(&client);
    thief.sign_in("alice", PASSWORD).await;

    // Someone holding the cookie guesses at /confirm, then at the password change.
    for _ in 0..3 {
        assert!(
            thief
                .confirm(WRONG)
                .await
                .shows("That password is not correct.")
        );
    }
    let change = |current: &'static str| {
        [
            ("current_password", current),
            ("new_password", "violet tractor mango seventeen"),
            ("new_password_confirm", "violet tractor mango seventeen"),
        ]
    };
    for _ in 0..2 {
        let reply = thief
            .post_from("/account/password", "/account/password", &change(WRONG))
            .await;
        assert!(reply.shows("Your current password is not correct."));
    }
    let confirm = thief.confirm(PASSWORD).await;
    assert_throttled(&confirm, 60);
    assert_eq!(
        confirm.testid_text("confirm-error").as_deref(),
        Some("Too many wrong passwords. Please wait 1 minute and try again.")
    );
    let change_reply = thief
        .post_from("/account/password", "/account/password", &change(PASSWORD))
        .await;
    assert_eq!(change_reply.status, Status::TooManyRequests);
    assert!(change_reply.shows("Too many wrong passwords"));
    assert_eq!(recheck_rows(&app).await, 5);

    // Once the wait has passed, the right password works and resets the count.
    app.advance_secs(61);
    assert_eq!(thief.confirm(PASSWORD).await.location(), "/account");
    assert_eq!(recheck_rows(&app).await, 0);
}

/// Rows of the re-check budget (wrong passwords of signed-in sessions).
async fn recheck_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sign_in_failures WHERE scope = 'session'")
        .fetch_one(&app.pool)
        .await
        .expect("count re-checks")
}

/// An unknown username costs the argon2 work a wrong password does: each refusal sends exactly
/// one password to the hashing threads, whoever's name it carries. (The answers' times are
/// measured by `scripts/bench-sign-in-timing`, never asserted by a test.)
#[rocket::async_test]
async fn an_unknown_username_costs_the_one_hash_a_wrong_password_costs() {
    // Budgets far above the tries, so every attempt checks its password.
    let app = TestApp::with(|f| {
        f.merge(("sessions.throttle_account_failures", 1000))
            .merge(("sessions.throttle_ip_failures", 1000))
    })
    .await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let hasher = client.rocket().state::<PasswordHasher>().unwrap();
    let script = Device::new(&client);
    for username in ["alice", "nobody", "Nobody", "alice"] {
        let before = hasher.counts().hashed;
        let reply = request_tokens(&script, username, WRONG).await;
        assert_eq!(reply.error_code(), "invalid_credentials", "{username}");
        assert_eq!(hasher.counts().hashed, before + 1, "{username}: one hash");
    }
}

/// A stranger's address, so their failures do not share the test devices' address budget.
const STRANGER_IP: &str = "203.0.113.66";

#[rocket::async_test]
async fn strangers_and_a_thief_guessing_cannot_keep_the_owner_from_signing_the_thief_out() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    // The thief's browser holds a session of alice's (a stolen cookie).
    let thief = Device::with(
        &client,
        crate::support::http::FIREFOX_WINDOWS,
        "198.51.100.99",
    );
    thief.sign_in("alice", PASSWORD).await;

    // Anyone can fail to sign in as alice until sign-in waits...
    let stranger = Device::with(&client, crate::support::http::CHROME_LINUX, STRANGER_IP);
    for _ in 0..5 {
        fail_to_sign_in(&stranger, "alice").await;
    }
    assert_throttled(&stranger.sign_in("alice", PASSWORD).await, 60);
    // ... and the thief can guess on the stolen session until it waits.
    for _ in 0..5 {
        assert!(
            thief
                .confirm(WRONG)
                .await
                .shows("That password is not correct.")
        );
    }
    assert_throttled(&thief.confirm(PASSWORD).await, 60);

    // Neither touches the owner's own budget: "This wasn't me" signs the thief out.
    let confirmed = alice
        .confirm_at("/confirm?next=%2Faccount%2Fnot-me", PASSWORD)
        .await;
    assert_eq!(confirmed.location(), "/account/not-me");
    assert_eq!(
        alice
            .post_from("/account/not-me", "/account/not-me", &[])
            .await
            .location(),
        "/account/password"
    );
    assert_eq!(
        app.session_row(&thief.session_cookie().unwrap())
            .await
            .unwrap()
            .0
            .as_deref(),
        Some("revoked")
    );
    // And the password change (which re-checks the current password) goes through too.
    let new_password = "violet tractor mango seventeen";
    let change = [
        ("current_password", PASSWORD),
        ("new_password", new_password),
        ("new_password_confirm", new_password),
    ];
    let changed = alice
        .post_from("/account/password", "/account/password", &change)
        .await;
    assert_eq!(
        changed.count_testid("password-changed"),
        1,
        "{}",
        changed.body
    );
    assert!(
        app.event_kinds(user_id)
            .await
            .contains(&"password_changed".to_owned())
    );
}

#[rocket::async_test]
async fn wrong_passwords_on_a_signed_in_session_do_not_drain_the_sign_in_budget() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let thief = Device::new(&client);
    thief.sign_in("alice", PASSWORD).await;
    for _ in 0..10 {
        thief.confirm(WRONG).await;
    }
    assert_throttled(&thief.confirm(PASSWORD).await, 60);
    // Re-checks are counted per session, apart from sign-in failures.
    assert_eq!(failure_rows(&app).await, (0, 0));

    // The owner still signs in on another device, and confirms there.
    let alice = Device::with(
        &client,
        crate::support::http::FIREFOX_WINDOWS,
        "198.51.100.1",
    );
    assert_eq!(
        alice.sign_in("alice", PASSWORD).await.location(),
        "/account"
    );
    assert_eq!(alice.confirm(PASSWORD).await.location(), "/account");
    assert_eq!(
        request_tokens(&alice, "alice", PASSWORD).await.status,
        Status::Ok
    );
}

/// The re-check budget and the sign-in budget have thresholds of their own: set apart, each is
/// spent at its own, never at the other's.
#[rocket::async_test]
async fn the_re_check_budget_and_the_sign_in_budget_each_keep_their_own_threshold() {
    let app = TestApp::with(|f| {
        f.merge(("sessions.throttle_session_failures", 2))
            .merge(("sessions.throttle_account_failures", 4))
    })
    .await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let thief = Device::new(&client);
    assert_eq!(
        thief.sign_in("alice", PASSWORD).await.location(),
        "/account"
    );
    for _ in 0..2 {
        assert!(
            thief
                .confirm(WRONG)
                .await
                .shows("That password is not correct.")
        );
    }
    let confirm = thief.confirm(PASSWORD).await;
    assert_throttled(&confirm, 60);
    assert!(
        confirm.shows("Too many wrong passwords"),
        "{}",
        confirm.body
    );

    // Three failed sign-ins stay below the account's threshold of four.
    let visitor = Device::with(
        &client,
        crate::support::http::FIREFOX_WINDOWS,
        "198.51.100.1",
    );
    for _ in 0..3 {
        fail_to_sign_in(&visitor, "alice").await;
    }
    assert_eq!(
        visitor.sign_in("alice", PASSWORD).await.location(),
        "/account"
    );
    // That sign-in reset the account's count: four more reach the threshold.
    let visitor = Device::with(
        &client,
        crate::support::http::FIREFOX_WINDOWS,
        "198.51.100.1",
    );
    for _ in 0..4 {
        fail_to_sign_in(&visitor, "alice").await;
    }
    assert_throttled(&visitor.sign_in("alice", PASSWORD).await, 60);
}

/// How a look-alike of `alice` must be answered once alice's sign-in budget is spent.
#[derive(Debug, Clone, Copy, PartialEq)]
enum LookAlike {
    /// The same account in its canonical form: it shares alice's budget.
    SameAccount,
    /// Cannot be a username (usernames are ASCII): an unknown user.
    NoAccount,
}

const LOOK_ALIKES: [(&str, LookAlike); 16] = [
    ("ALICE", LookAlike::SameAccount),
    ("aLiCe", LookAlike::SameAccount),
    (" alice ", LookAlike::SameAccount),
    ("\talice\n", LookAlike::SameAccount),
    ("\u{a0}alice\u{3000}", LookAlike::SameAccount),
    ("al\u{130}ce", LookAlike::NoAccount), // İ, LATIN CAPITAL LETTER I WITH DOT ABOVE
    ("AL\u{130}CE", LookAlike::NoAccount),
    ("al\u{131}ce", LookAlike::NoAccount), // ı, LATIN SMALL LETTER DOTLESS I
    ("ali\u{307}ce", LookAlike::NoAccount), // i + COMBINING DOT ABOVE
    (
        "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}",
        LookAlike::NoAccount,
    ), // fullwidth ａｌｉｃｅ
    (
        "\u{ff21}\u{ff2c}\u{ff29}\u{ff23}\u{ff25}",
        LookAlike::NoAccount,
    ), // fullwidth ＡＬＩＣＥ
    ("ali\u{200b}ce", LookAlike::NoAccount), // ZERO WIDTH SPACE
    ("\u{200d}alice", LookAlike::NoAccount), // ZERO WIDTH JOINER
    ("alice\u{feff}", LookAlike::NoAccount), // ZERO WIDTH NO-BREAK SPACE
    ("alice\u{0}", LookAlike::NoAccount),
    ("\u{430}lice", LookAlike::NoAccount), // Cyrillic а
];

#[rocket::async_test]
async fn look_alike_usernames_get_no_fresh_guess_budget_on_the_form() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    for _ in 0..5 {
        fail_to_sign_in(
            &Device::with(&client, crate::support::http::CHROME_LINUX, STRANGER_IP),
            "alice",
        )
        .await;
    }
    // Each look-alike from a fresh address, so only the account's budget is in play.
    for (n, (username, expected)) in LOOK_ALIKES.into_iter().enumerate() {
        let device = Device::with(
            &client,
            crate::support::http::CHROME_LINUX,
            &format!("198.51.100.{}", n + 1),
        );
        let reply = device.sign_in(username, PASSWORD).await;
        match expected {
            LookAlike::SameAccount => {
                assert_eq!(
                    reply.status,
                    Status::TooManyRequests,
                    "{username:?}: {}",
                    reply.body
                );
                assert_throttled(&reply, 60);
            }
            LookAlike::NoAccount => {
                assert_eq!(reply.status, Status::Ok, "{username:?}: {}", reply.body);
                assert_eq!(
                    reply.testid_text("login-error").as_deref(),
                    Some(REJECTED),
                    "{username:?}"
                );
            }
        }
        assert!(
            device.session_cookie().is_none(),
            "{username:?} signed in as alice"
        );
    }
}

#[rocket::async_test]
async fn look_alike_usernames_get_no_fresh_guess_budget_on_the_api() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    for _ in 0..5 {
        request_tokens(
            &Device::with(&client, crate::support::http::CHROME_LINUX, STRANGER_IP),
            "alice",
            WRONG,
        )
        .await;
    }
    for (n, (username, expected)) in LOOK_ALIKES.into_iter().enumerate() {
        let device = Device::with(
            &client,
            crate::support::http::CHROME_LINUX,
            &format!("198.51.100.{}", n + 1),
        );
        let reply = request_tokens(&device, username, PASSWORD).await;
        match expected {
            LookAlike::SameAccount => {
                assert_eq!(
                    reply.status,
                    Status::TooManyRequests,
                    "{username:?}: {}",
                    reply.body
                );
                assert_throttled(&reply, 60);
            }
            LookAlike::NoAccount => {
                assert_eq!(
                    reply.status,
                    Status::Unauthorized,
                    "{username:?}: {}",
                    reply.body
                );
                assert_eq!(reply.error_code(), "invalid_credentials", "{username:?}");
            }
        }
    }
}

#[rocket::async_test]
async fn surrounding_spaces_and_case_reach_the_account_they_name() {
    let app = TestApp::new().await;
    app.create_user("Alice", Role::User).await;
    let client = app.client().await;
    assert_eq!(
        Device::new(&client)
            .sign_in(" aLICE ", PASSWORD)
            .await
            .location(),
        "/account"
    );
    assert_eq!(
        request_tokens(&Device::new(&client), "alice\t", PASSWORD)
            .await
            .status,
        Status::Ok
    );
}

/// Registers `username` through the form from `device`; returns the POST's reply.
async fn register(device: &Device<'_>, username: &str) -> Reply {
    let password = "violet tractor mango seventeen";
    let csrf = device.get("/register").await.csrf_token();
    let fields = [
        ("username", username),
        ("password", password),
        ("password_confirm", password),
        ("csrf_token", &csrf),
    ];
    device.post_form("/register", &fields).await
}

async fn user_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .expect("count users")
}

const FLOODER_IP: &str = "198.51.100.200";

#[rocket::async_test]
async fn the_eleventh_sign_up_from_one_address_within_fifteen_minutes_waits() {
    let app = TestApp::new().await;
    let client = app.client().await;
    let flooder = || Device::with(&client, crate::support::http::CHROME_LINUX, FLOODER_IP);
    for n in 0..10 {
        assert_eq!(
            register(&flooder(), &format!("user{n}")).await.location(),
            "/account",
            "sign-up {n}"
        );
        app.advance_secs(1);
    }
    let device = flooder();
    let refused = register(&device, "user10").await;
    // The oldest sign-up leaves the window 900 s after it happened, 10 s ago.
    assert_throttled(&refused, 890);
    assert_eq!(refused.count_testid("register-error"), 1);
    let errors = refused.html().texts(r#"[data-testid="register-error"] li"#);
    assert!(
        errors.iter().any(|error| error
            == "Too many sign-ups from your network. Please wait 15 minutes and try again."),
        "{errors:?}"
    );
    assert_eq!(
        refused.count_testid("register-form"),
        1,
        "the form stays, to try again later"
    );
    assert!(device.session_cookie().is_none());
    assert_eq!(user_count(&app).await, 10);

    // Another address is not affected.
    let elsewhere = Device::with(&client, crate::support::http::CHROME_LINUX, "203.0.113.1");
    assert_eq!(
        register(&elsewhere, "neighbour").await.location(),
        "/account"
    );

    // Sign-ups leave the count as the window slides: one more once the oldest has left it.
    app.advance_secs(889);
    assert_throttled(&register(&flooder(), "user10").await, 1);
    app.advance_secs(1);
    assert_eq!(register(&flooder(), "user10").await.location(), "/account");
    assert_throttled(&register(&flooder(), "user11").await, 1);
}

#[rocket::async_test]
async fn the_sign_up_limit_is_a_setting() {
    let app = TestApp::with(|f| f.merge(("sessions.throttle_ip_sign_ups", 2))).await;
    let client = app.client().await;
    let flooder = || Device::with(&client, crate::support::http::CHROME_LINUX, FLOODER_IP);
    register(&flooder(), "user0").await;
    register(&flooder(), "user1").await;
    assert_throttled(&register(&flooder(), "user2").await, 900);
}

#[rocket::async_test]
async fn parallel_sign_ups_from_one_address_cannot_slip_past_the_limit() {
    let app = TestApp::new().await;
    let client = app.client().await;
    let devices: Vec<Device<'_>> = (0..30)
        .map(|_| Device::with(&client, crate::support::http::CHROME_LINUX, FLOODER_IP))
        .collect();
    // The form pages first, so the thirty posts race each other and nothing else.
    let tokens: Vec<String> = join_all(
        devices
            .iter()
            .map(|device| async { device.get("/register").await.csrf_token() }),
    )
    .await;
    let password = "violet tractor mango seventeen";
    let posts = devices
        .iter()
        .zip(&tokens)
        .enumerate()
        .map(|(n, (device, csrf))| {
            let username = format!("user{n}");
            async move {
                let fields = [
                    ("username", username.as_str()),
                    ("password", password),
                    ("password_confirm", password),
                    ("csrf_token", csrf),
                ];
                device.post_form("/register", &fields).await
            }
        });
    let statuses: Vec<Status> = join_all(posts)
        .await
        .iter()
        .map(|reply| reply.status)
        .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|status| **status == Status::SeeOther)
            .count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|status| **status == Status::TooManyRequests)
            .count(),
        20,
        "{statuses:?}"
    );
    assert_eq!(user_count(&app).await, 10);
}

/// A password the server could not check (here a damaged stored hash, answered 500; at a
/// restart, a sign-in cut off unhashed, answered 503: the faults suite) taught nothing, so it
/// counts against no budget: once the hash is repaired, the owner's re-check and sign-in go
/// through, though each budget allows a single failure.
#[rocket::async_test]
async fn a_password_the_server_could_not_check_counts_against_no_budget() {
    let app = TestApp::with(|f| {
        f.merge(("sessions.throttle_session_failures", 1))
            .merge(("sessions.throttle_account_failures", 1))
    })
    .await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    assert_eq!(
        laptop.sign_in("alice", PASSWORD).await.location(),
        "/account"
    );
    let set_hash = |hash: String| {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(alice_id)
            .execute(&app.pool)
    };
    let good: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(alice_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    set_hash("not a phc string".to_owned()).await.unwrap();
    let phone = Device::with(
        &client,
        crate::support::http::FIREFOX_WINDOWS,
        "198.51.100.1",
    );
    assert_eq!(
        laptop.confirm(PASSWORD).await.status,
        Status::InternalServerError
    );
    assert_eq!(
        phone.sign_in("alice", PASSWORD).await.status,
        Status::InternalServerError
    );

    set_hash(good).await.unwrap();
    let confirmed = laptop.confirm(PASSWORD).await;
    assert_eq!(confirmed.status, Status::SeeOther, "{}", confirmed.body);
    assert_eq!(
        phone.sign_in("alice", PASSWORD).await.location(),
        "/account"
    );
}
