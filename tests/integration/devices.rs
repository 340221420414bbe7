//! Your devices: signing other devices out, confirmation, password change, the session cap,
//! "This wasn't me" and the admin page (DESIGN sections 3 and 5).

use rocket::futures::future::join_all;
use rocket::http::Status;
use secure_sessions::users::Role;

use crate::support::http::{Device, FIREFOX_WINDOWS};
use crate::support::{PASSWORD, TestApp};

const NEW_PASSWORD: &str = "violet tractor mango seventeen";

async fn live_sessions(app: &TestApp, user_id: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(user_id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[rocket::async_test]
async fn signing_another_device_out_needs_a_recent_password_confirmation() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    let phone = Device::with(&client, FIREFOX_WINDOWS, "203.0.113.9");
    laptop.sign_in("alice", PASSWORD).await;
    phone.sign_in("alice", PASSWORD).await;
    let (phone_id, _) = laptop
        .devices()
        .await
        .into_iter()
        .find(|(_, current)| !current)
        .expect("the phone");
    let revoke = format!("/account/sessions/{phone_id}/revoke");

    // A cookie alone (no recent password) is sent to confirm first.
    let reply = laptop.post_from("/account", &revoke, &[]).await;
    assert_eq!(reply.location(), "/confirm?next=%2Faccount");
    assert_eq!(
        phone.get("/account").await.status,
        Status::Ok,
        "nothing happened yet"
    );

    let before = laptop.session_cookie().unwrap();
    assert_eq!(laptop.confirm(PASSWORD).await.location(), "/account");
    let after = laptop.session_cookie().unwrap();
    assert_ne!(before, after, "confirmation rotates the token");
    let stale = Device::new(&client);
    stale.set_cookie("__Host-sid", &before);
    // The old token gets no page: within the rotation's grace it is only sent to ask again (with
    // the cookie the browser now holds), then it is nobody's.
    let again = stale.get("/account").await;
    assert_eq!(
        (again.status, again.location()),
        (Status::SeeOther, "/account")
    );
    app.advance_secs(6);
    assert!(
        stale.get("/account").await.location().starts_with("/login"),
        "the old token is dead once the grace is over"
    );

    let reply = laptop.post_from("/account", &revoke, &[]).await;
    assert_eq!(reply.location(), "/account");
    assert_eq!(
        phone.get("/account").await.location(),
        "/login?reason=revoked&next=%2Faccount"
    );
    let login = phone.get("/login?reason=revoked").await;
    assert_eq!(
        login.testid_text("login-reason").as_deref(),
        Some(
            "This device was signed out from another device or by an administrator. \
             If this wasn’t you, change your password after signing in."
        )
    );
    assert_eq!(live_sessions(&app, user_id).await, 1);
    let kinds = app.event_kinds(user_id).await;
    assert!(
        kinds.ends_with(&["confirmed".into(), "session_revoked".into()]),
        "{kinds:?}"
    );
    let entry = laptop
        .get("/account")
        .await
        .html()
        .testid_texts("security-event")
        .into_iter()
        .find(|entry| entry.contains("A device was signed out from another device"))
        .expect("the revocation is in the activity log");
    assert!(
        entry.contains("(this device)"),
        "it says which device did it: {entry}"
    );
}

#[rocket::async_test]
async fn confirmation_lasts_only_the_confirm_window() {
    // An idle timeout longer than the window, so only the confirmation runs out.
    let app = TestApp::with(|f| f.merge(("sessions.idle_timeout_secs", 3600))).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    alice.confirm(PASSWORD).await;
    let window = i64::from(app.config().confirm_window_secs);
    app.advance_secs(window - 1);
    let reply = alice
        .post_from("/account", "/account/sessions/revoke-others", &[])
        .await;
    assert_eq!(reply.location(), "/account", "still confirmed");
    app.advance_secs(1);
    let reply = alice
        .post_from("/account", "/account/sessions/revoke-others", &[])
        .await;
    assert_eq!(
        reply.location(),
        "/confirm?next=%2Faccount",
        "the window has closed"
    );
}

#[rocket::async_test]
async fn a_wrong_password_at_confirmation_confirms_nothing_and_is_logged() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let token = alice.session_cookie().unwrap();
    let reply = alice.confirm("not my password").await;
    assert_eq!(reply.status, Status::Ok);
    assert_eq!(
        reply.testid_text("confirm-error").as_deref(),
        Some("That password is not correct.")
    );
    assert_eq!(alice.session_cookie().unwrap(), token, "no rotation");
    assert_eq!(
        alice
            .post_from("/account", "/account/sessions/revoke-others", &[])
            .await
            .location(),
        "/confirm?next=%2Faccount"
    );
    assert!(
        app.event_kinds(user_id)
            .await
            .contains(&"confirm_failed".to_owned())
    );
}

#[rocket::async_test]
async fn sign_out_all_others_ends_every_other_session_and_keeps_this_one() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let bob_id = app.create_user("bob", Role::User).await;
    let client = app.client().await;
    let devices: Vec<Device<'_>> = (0..3).map(|_| Device::new(&client)).collect();
    for device in &devices {
        device.sign_in("alice", PASSWORD).await;
    }
    let bob = Device::new(&client);
    bob.sign_in("bob", PASSWORD).await;

    devices[0].confirm(PASSWORD).await;
    devices[0]
        .post_from("/account", "/account/sessions/revoke-others", &[])
        .await;
    assert_eq!(devices[0].get("/account").await.status, Status::Ok);
    for other in &devices[1..] {
        assert_eq!(
            other.get("/account").await.location(),
            "/login?reason=revoked&next=%2Faccount"
        );
    }
    assert_eq!(live_sessions(&app, user_id).await, 1);
    assert_eq!(
        live_sessions(&app, bob_id).await,
        1,
        "other accounts are untouched"
    );
    assert_eq!(devices[0].devices().await.len(), 1);
}

#[rocket::async_test]
async fn a_session_of_another_account_cannot_be_signed_out_by_its_id() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    app.create_user("bob", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    let bob = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    bob.sign_in("bob", PASSWORD).await;
    let (bob_id, _) = bob.devices().await.remove(0);
    alice.confirm(PASSWORD).await;
    alice
        .post_from(
            "/account",
            &format!("/account/sessions/{bob_id}/revoke"),
            &[],
        )
        .await;
    assert_eq!(bob.get("/account").await.status, Status::Ok);
    let garbage = alice
        .post_from("/account", "/account/sessions/not-a-uuid/revoke", &[])
        .await;
    assert!(
        garbage.status.code >= 400 && garbage.status.code < 500,
        "{}",
        garbage.status
    );
}

#[rocket::async_test]
async fn changing_the_password_signs_out_every_other_device_and_rotates_this_one() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    let phone = Device::with(&client, FIREFOX_WINDOWS, "203.0.113.9");
    let tablet = Device::new(&client);
    for device in [&laptop, &phone, &tablet] {
        device.sign_in("alice", PASSWORD).await;
    }
    laptop.confirm(PASSWORD).await;
    let before = laptop.session_cookie().unwrap();

    let fields = |current: &'static str, new: &'static str, confirm: &'static str| {
        [
            ("current_password", current),
            ("new_password", new),
            ("new_password_confirm", confirm),
        ]
    };
    let wrong = laptop
        .post_from(
            "/account/password",
            "/account/password",
            &fields("nope nope", NEW_PASSWORD, NEW_PASSWORD),
        )
        .await;
    assert!(wrong.shows("Your current password is not correct."));
    let weak = laptop
        .post_from(
            "/account/password",
            "/account/password",
            &fields(PASSWORD, "password1", "password1"),
        )
        .await;
    assert!(weak.shows("too easy to guess"));
    let mismatch = laptop
        .post_from(
            "/account/password",
            "/account/password",
            &fields(PASSWORD, NEW_PASSWORD, "something else entirely"),
        )
        .await;
    assert!(mismatch.shows("do not match"));
    assert_eq!(
        phone.get("/account").await.status,
        Status::Ok,
        "failed attempts change nothing"
    );

    let done = laptop
        .post_from(
            "/account/password",
            "/account/password",
            &fields(PASSWORD, NEW_PASSWORD, NEW_PASSWORD),
        )
        .await;
    assert_eq!(done.status, Status::Ok);
    assert_eq!(
        done.testid_text("password-changed").map(|text| text.split_whitespace().collect::<Vec<_>>().join(" ")),
        Some("Your password was changed. 2 other devices were signed out. This device stays signed in.".into())
    );
    let after = laptop.session_cookie().unwrap();
    assert_ne!(before, after, "a new token for this device");
    assert_eq!(
        laptop.get("/account").await.status,
        Status::Ok,
        "this device stays signed in"
    );
    for other in [&phone, &tablet] {
        assert_eq!(
            other.get("/account").await.location(),
            "/login?reason=password_changed&next=%2Faccount"
        );
    }
    let stale = Device::new(&client);
    stale.set_cookie("__Host-sid", &before);
    let again = stale.get("/account").await;
    assert_eq!(
        (again.status, again.location()),
        (Status::SeeOther, "/account"),
        "within the rotation's grace the old cookie value gets no page"
    );
    app.advance_secs(6);
    assert!(
        stale.get("/account").await.location().starts_with("/login"),
        "the old cookie value stopped working"
    );
    // Confirmation ends with the old password.
    assert_eq!(
        laptop
            .post_from("/account", "/account/sessions/revoke-others", &[])
            .await
            .location(),
        "/confirm?next=%2Faccount"
    );

    let fresh = Device::new(&client);
    assert_eq!(
        fresh
            .sign_in("alice", PASSWORD)
            .await
            .testid_text("login-error")
            .as_deref(),
        Some("Incorrect username or password.")
    );
    assert_eq!(
        fresh.sign_in("alice", NEW_PASSWORD).await.location(),
        "/account"
    );
    assert!(
        app.event_kinds(user_id)
            .await
            .contains(&"password_changed".to_owned())
    );
}

#[rocket::async_test]
async fn a_password_change_racing_requests_from_another_device_leaves_it_signed_out() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    let phone = Device::new(&client);
    laptop.sign_in("alice", PASSWORD).await;
    phone.sign_in("alice", PASSWORD).await;
    let csrf = laptop.get("/account/password").await.csrf_token();
    app.advance_secs(5); // every request of the phone now writes last-seen

    let change = laptop.post_form(
        "/account/password",
        &[
            ("current_password", PASSWORD),
            ("new_password", NEW_PASSWORD),
            ("new_password_confirm", NEW_PASSWORD),
            ("csrf_token", &csrf),
        ],
    );
    let phone_requests = join_all((0..20).map(|_| phone.get("/account")));
    let (changed, replies) = rocket::tokio::join!(change, phone_requests);
    assert_eq!(changed.status, Status::Ok);
    assert!(
        replies
            .iter()
            .all(|reply| matches!(reply.status.code, 200 | 303))
    );

    assert_eq!(
        live_sessions(&app, user_id).await,
        1,
        "no late write revived the phone's session"
    );
    let reasons: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT revoke_reason FROM sessions WHERE user_id = $1 ORDER BY created_at",
    )
    .bind(user_id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(
        reasons.contains(&Some("password_changed".into())),
        "{reasons:?}"
    );
    assert_eq!(
        phone.get("/account").await.location(),
        "/login?reason=password_changed&next=%2Faccount"
    );
}

#[rocket::async_test]
async fn a_sixth_sign_in_signs_out_the_least_recently_used_device() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let devices: Vec<Device<'_>> = (0..6).map(|_| Device::new(&client)).collect();
    for device in &devices[..5] {
        device.sign_in("alice", PASSWORD).await;
        app.advance_secs(2);
    }
    // The first device is the oldest but active: the second becomes the least recently used.
    devices[0].get("/account").await;
    app.advance_secs(2);
    devices[5].sign_in("alice", PASSWORD).await;

    assert_eq!(live_sessions(&app, user_id).await, 5);
    assert_eq!(
        devices[1].get("/account").await.location(),
        "/login?reason=session_limit&next=%2Faccount"
    );
    for device in [&devices[0], &devices[2], &devices[5]] {
        assert_eq!(device.get("/account").await.status, Status::Ok);
    }
    let login = devices[1].get("/login?reason=session_limit").await;
    assert!(
        login
            .testid_text("login-reason")
            .unwrap()
            .contains("more devices than allowed")
    );
    // Every device sees it in the security activity.
    assert!(
        devices[2]
            .get("/account")
            .await
            .shows("too many devices signed in")
    );
}

#[rocket::async_test]
async fn a_hundred_parallel_sign_ins_never_leave_more_than_the_cap_alive() {
    // The sign-in throttle counts an attempt as a failure until its password is proven right, so
    // it would refuse most of a hundred simultaneous sign-ins: lift it, this test is about the cap.
    let app = TestApp::with(|figment| {
        figment
            .merge(("sessions.throttle_account_failures", 1000))
            .merge(("sessions.throttle_ip_failures", 1000))
    })
    .await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let devices: Vec<Device<'_>> = (0..100).map(|_| Device::new(&client)).collect();
    let mut forms = Vec::new();
    for device in &devices {
        forms.push(device.get("/login").await.csrf_token());
    }
    let replies = join_all(devices.iter().zip(&forms).map(|(device, csrf)| {
        device.post_form(
            "/login",
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("csrf_token", csrf),
            ],
        )
    }))
    .await;
    assert!(
        replies.iter().all(|reply| reply.status == Status::SeeOther),
        "every sign-in succeeds"
    );
    let cap = i64::from(app.config().max_sessions_per_user);
    assert_eq!(live_sessions(&app, user_id).await, cap);
    let mut still_in = 0;
    for device in &devices {
        if device.get("/account").await.status == Status::Ok {
            still_in += 1;
        }
    }
    assert_eq!(still_in, cap);
}

#[rocket::async_test]
async fn this_was_not_me_signs_out_everywhere_else_after_the_password_and_leads_to_the_password_change()
 {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    let intruder = Device::with(&client, FIREFOX_WINDOWS, "192.0.2.66");
    alice.sign_in("alice", PASSWORD).await;
    intruder.sign_in("alice", PASSWORD).await;

    let page = alice.get("/account").await;
    // Offered on the intruder's sign-in, not on this device's own (issue 12).
    assert_eq!(page.count_testid("not-me"), 1);
    assert_eq!(
        alice.get("/account/not-me").await.location(),
        "/confirm?next=%2Faccount%2Fnot-me"
    );
    assert_eq!(
        alice
            .confirm_at("/confirm?next=%2Faccount%2Fnot-me", PASSWORD)
            .await
            .location(),
        "/account/not-me"
    );
    let reply = alice
        .post_from("/account/not-me", "/account/not-me", &[])
        .await;
    assert_eq!(reply.location(), "/account/password");
    assert_eq!(
        intruder.get("/account").await.location(),
        "/login?reason=revoked&next=%2Faccount"
    );
    assert_eq!(alice.get("/account/password").await.status, Status::Ok);
    assert!(
        app.event_kinds(user_id)
            .await
            .contains(&"account_secured".to_owned())
    );
}

#[rocket::async_test]
async fn a_sign_in_from_a_new_browser_is_flagged_as_a_new_device() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    Device::new(&client).sign_in("alice", PASSWORD).await;
    Device::new(&client).sign_in("alice", PASSWORD).await;
    assert_eq!(app.event_kinds(user_id).await, vec!["sign_in", "sign_in"]);
    Device::with(&client, FIREFOX_WINDOWS, "192.0.2.66")
        .sign_in("alice", PASSWORD)
        .await;
    assert_eq!(
        app.event_kinds(user_id).await,
        vec!["sign_in", "sign_in", "sign_in", "new_device"]
    );
}

#[rocket::async_test]
async fn the_admin_page_needs_the_admin_role_now_and_a_recent_confirmation() {
    let app = TestApp::new().await;
    let admin_id = app.create_user("root", Role::Admin).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let refused = alice.get("/admin").await;
    assert_eq!(refused.status, Status::Forbidden);
    assert!(refused.shows("Administrators only"));

    let admin = Device::new(&client);
    admin.sign_in("root", PASSWORD).await;
    assert_eq!(
        admin.get("/admin").await.location(),
        "/confirm?next=%2Fadmin"
    );
    assert_eq!(
        admin
            .confirm_at("/confirm?next=%2Fadmin", PASSWORD)
            .await
            .location(),
        "/admin"
    );
    let page = admin.get("/admin").await;
    assert_eq!(page.status, Status::Ok);
    assert_eq!(page.count_testid("admin-user-row"), 2);

    // A demotion takes effect on the next click.
    sqlx::query("UPDATE users SET role = 'user' WHERE id = $1")
        .bind(admin_id)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(admin.get("/admin").await.status, Status::Forbidden);
}

#[rocket::async_test]
async fn an_admin_can_disable_an_account_sign_it_out_everywhere_and_enable_it_again() {
    let app = TestApp::new().await;
    app.create_user("root", Role::Admin).await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    let phone = Device::new(&client);
    laptop.sign_in("alice", PASSWORD).await;
    phone.sign_in("alice", PASSWORD).await;
    let admin = Device::new(&client);
    admin.sign_in("root", PASSWORD).await;
    admin.confirm(PASSWORD).await;

    admin
        .post_from(
            "/admin",
            &format!("/admin/users/{alice_id}/revoke-sessions"),
            &[],
        )
        .await;
    assert_eq!(
        laptop.get("/account").await.location(),
        "/login?reason=revoked&next=%2Faccount"
    );
    assert_eq!(live_sessions(&app, alice_id).await, 0);

    laptop.sign_in("alice", PASSWORD).await;
    assert_eq!(
        admin
            .post_from("/admin", &format!("/admin/users/{alice_id}/disable"), &[])
            .await
            .location(),
        "/admin"
    );
    assert_eq!(
        laptop.get("/account").await.location(),
        "/login?reason=revoked&next=%2Faccount"
    );
    assert_eq!(
        laptop
            .sign_in("alice", PASSWORD)
            .await
            .testid_text("login-error")
            .as_deref(),
        Some(
            "This account has been disabled. \
             Please contact an administrator to have it enabled again."
        )
    );
    assert!(admin.get("/admin").await.shows("Disabled"));

    admin
        .post_from("/admin", &format!("/admin/users/{alice_id}/enable"), &[])
        .await;
    assert_eq!(
        laptop.sign_in("alice", PASSWORD).await.location(),
        "/account"
    );
    let kinds = app.event_kinds(alice_id).await;
    for kind in [
        "sessions_revoked_by_admin",
        "account_disabled",
        "account_enabled",
    ] {
        assert!(kinds.contains(&kind.to_owned()), "{kind} in {kinds:?}");
    }
    assert_eq!(
        admin
            .post_from("/admin", "/admin/users/999999/disable", &[])
            .await
            .status,
        Status::NotFound
    );
}

#[rocket::async_test]
async fn a_device_idle_past_its_timeout_is_neither_listed_nor_counted() {
    let app = TestApp::new().await;
    let idle = i64::from(app.config().idle_timeout_secs);
    assert!(i64::from(app.config().access_token_secs()) > idle + 1);
    app.create_user("root", Role::Admin).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    let phone = Device::with(&client, FIREFOX_WINDOWS, "203.0.113.9");
    let script = Device::with(&client, "curl/8.5.0", "203.0.113.10");
    laptop.sign_in("alice", PASSWORD).await;
    phone.sign_in("alice", PASSWORD).await;
    let tokens = script
        .post_json(
            "/api/token",
            &serde_json::json!({ "username": "alice", "password": PASSWORD }),
        )
        .await
        .json();
    let access_token = tokens["access_token"].as_str().expect("an access token");
    let phone_id = phone
        .devices()
        .await
        .into_iter()
        .find(|(_, current)| *current)
        .expect("the phone's own row")
        .0;
    assert_eq!(laptop.devices().await.len(), 3);

    // The laptop stays in use; the phone is left alone until it is one second past the idle
    // timeout. Nothing has visited its row since: the reaper deletes only rows past their
    // absolute expiry, so the row is still there, not revoked.
    app.advance_secs(idle / 2);
    assert_eq!(laptop.get("/account").await.status, Status::Ok);
    app.advance_secs(idle - idle / 2 + 1);
    let listed: Vec<String> = laptop
        .devices()
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(listed.len(), 2, "the laptop and the script: {listed:?}");
    assert!(!listed.contains(&phone_id));
    let api_list = script
        .with_bearer(rocket::http::Method::Get, "/api/sessions", access_token)
        .await
        .json();
    let api_ids: Vec<&str> = api_list["sessions"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|device| device["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(api_ids.len(), 2, "{api_list}");
    assert!(!api_ids.contains(&phone_id.as_str()));

    let admin = Device::new(&client);
    admin.sign_in("root", PASSWORD).await;
    admin.confirm(PASSWORD).await;
    let page = admin.get("/admin").await.html();
    assert_eq!(
        page.texts("tr[data-username=alice] [data-testid=admin-session-count]"),
        ["2"]
    );

    // The phone, back after all, is told why it was signed out.
    assert_eq!(
        phone.get("/account").await.location(),
        "/login?reason=idle_timeout&next=%2Faccount"
    );
}
