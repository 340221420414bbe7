//! The pages say what happened and what to do (issue 12): a sign-out that needed a password
//! confirmation is carried out once after it; errors sit at their fields; reason messages,
//! notices, the admin's "Disable", error pages while signed in.

use std::collections::BTreeMap;

use rocket::http::Status;
use secure_sessions::users::Role;

use crate::support::html::{attributes_of, select_in, text_of};
use crate::support::http::{Device, FIREFOX_WINDOWS};
use crate::support::{PASSWORD, TestApp};

async fn live_sessions(app: &TestApp, user_id: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(user_id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// An element's attributes, written out, to compare with the whole set a tag must have.
fn attributes(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

#[rocket::async_test]
async fn sign_out_all_others_resumes_once_after_the_confirmation_and_says_how_many() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    let phone = Device::with(&client, FIREFOX_WINDOWS, "203.0.113.9");
    let tablet = Device::with(&client, FIREFOX_WINDOWS, "203.0.113.10");
    for device in [&laptop, &phone, &tablet] {
        device.sign_in("alice", PASSWORD).await;
    }

    let reply = laptop
        .post_from("/account", "/account/sessions/revoke-others", &[])
        .await;
    assert_eq!(reply.location(), "/confirm?next=%2Faccount");
    assert_eq!(
        live_sessions(&app, user_id).await,
        3,
        "nothing happened yet"
    );

    // The confirmation page names the action it is for, and its form carries it.
    let page = laptop.get("/confirm?next=%2Faccount").await;
    assert_eq!(page.count_testid("confirm-action"), 1);
    assert_eq!(
        page.html()
            .texts(r#"[data-testid="confirm-action"] strong"#),
        ["sign out all your other devices"],
        "{}",
        page.body
    );
    assert_eq!(
        page.html().field("action").as_deref(),
        Some("sign_out_others")
    );
    let form = [
        ("password", PASSWORD),
        ("csrf_token", &page.csrf_token()),
        ("next", "/account"),
        ("action", "sign_out_others"),
    ];
    let reply = laptop.post_form("/confirm", &form).await;
    assert_eq!(reply.location(), "/account");
    assert_eq!(live_sessions(&app, user_id).await, 1, "carried out");
    assert!(
        app.event_kinds(user_id).await.ends_with(&[
            "confirmed".into(),
            "session_revoked".into(),
            "session_revoked".into()
        ]),
        "one confirmation, and the two sign-outs it carried out"
    );
    let account = laptop.get("/account").await;
    assert_eq!(
        account.testid_text("notice").as_deref(),
        Some("Signed out 2 devices.")
    );
    assert_eq!(
        laptop.get("/account").await.count_testid("notice"),
        0,
        "said once"
    );
    assert_eq!(
        phone.get("/account").await.location(),
        "/login?reason=revoked&next=%2Faccount"
    );

    // The same form again: its CSRF token died with the confirmation's rotation.
    assert_eq!(
        laptop.post_form("/confirm", &form).await.status,
        Status::Forbidden
    );
    // A new confirmation names nothing and carries nothing out: the action was taken once.
    tablet.sign_in("alice", PASSWORD).await;
    let page = laptop.get("/confirm?next=%2Faccount").await;
    assert_eq!(page.count_testid("confirm-action"), 0);
    let again = [
        ("password", PASSWORD),
        ("csrf_token", &page.csrf_token()),
        ("next", "/account"),
        ("action", "sign_out_others"),
    ];
    assert_eq!(
        laptop.post_form("/confirm", &again).await.location(),
        "/account"
    );
    assert_eq!(live_sessions(&app, user_id).await, 2, "the tablet stays");
}

#[rocket::async_test]
async fn a_waiting_sign_out_resumes_only_from_the_form_that_named_it_and_only_for_a_while() {
    let app = TestApp::with(|f| {
        f.merge(("sessions.idle_timeout_secs", 3600))
            .merge(("sessions.absolute_timeout_secs", 7200))
    })
    .await;
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

    // Asked for, then confirmed on the way to another page: not carried out, and forgotten.
    laptop.post_from("/account", &revoke, &[]).await;
    let page = laptop.get("/confirm?next=%2Faccount").await;
    let action = page
        .html()
        .texts(r#"[data-testid="confirm-action"] strong"#);
    assert!(
        action[0].starts_with("sign out Firefox on Windows"),
        "{action:?}"
    );
    let code = page.html().field("action").expect("the action");
    assert_eq!(code, format!("sign_out:{phone_id}"));
    let form = [
        ("password", PASSWORD),
        ("csrf_token", &page.csrf_token()),
        ("next", "/account/password"),
        ("action", &code),
    ];
    assert_eq!(
        laptop.post_form("/confirm", &form).await.location(),
        "/account/password"
    );
    assert_eq!(live_sessions(&app, user_id).await, 2);
    assert_eq!(
        laptop
            .get("/confirm?next=%2Faccount")
            .await
            .count_testid("confirm-action"),
        0,
        "taken by that confirmation"
    );

    // Asked for once the confirmation lapsed, then confirmed without naming it: not carried out.
    app.advance_secs(i64::from(app.config().confirm_window_secs));
    laptop.post_from("/account", &revoke, &[]).await;
    assert_eq!(
        laptop
            .confirm_at("/confirm?next=%2Fadmin", PASSWORD)
            .await
            .status,
        Status::SeeOther
    );
    assert_eq!(live_sessions(&app, user_id).await, 2);

    // Asked for, then left for longer than an action waits: not carried out.
    app.advance_secs(i64::from(app.config().confirm_window_secs));
    laptop.post_from("/account", &revoke, &[]).await;
    app.advance_secs(11 * 60);
    let page = laptop.get("/confirm?next=%2Faccount").await;
    assert_eq!(page.count_testid("confirm-action"), 0, "too old to name");
    let form = [
        ("password", PASSWORD),
        ("csrf_token", &page.csrf_token()),
        ("next", "/account"),
        ("action", &code),
    ];
    laptop.post_form("/confirm", &form).await;
    assert_eq!(live_sessions(&app, user_id).await, 2);
}

#[rocket::async_test]
async fn a_sign_out_with_a_foreign_csrf_token_is_refused_and_nothing_waits() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    let phone = Device::with(&client, FIREFOX_WINDOWS, "203.0.113.9");
    laptop.sign_in("alice", PASSWORD).await;
    phone.sign_in("alice", PASSWORD).await;

    let forged = laptop
        .post_form(
            "/account/sessions/revoke-others",
            &[("csrf_token", "forged")],
        )
        .await;
    assert_eq!(forged.status, Status::Forbidden);
    assert_eq!(
        laptop.confirm(PASSWORD).await.location(),
        "/account",
        "a confirmation with nothing waiting"
    );
    assert_eq!(live_sessions(&app, user_id).await, 2);
    let waiting: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sessions WHERE pending_action IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(waiting, 0);
}

#[rocket::async_test]
async fn this_wasnt_me_says_how_many_devices_it_signed_out() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    let phone = Device::with(&client, FIREFOX_WINDOWS, "203.0.113.9");
    laptop.sign_in("alice", PASSWORD).await;
    phone.sign_in("alice", PASSWORD).await;
    laptop.confirm(PASSWORD).await;
    let reply = laptop
        .post_from("/account/not-me", "/account/not-me", &[])
        .await;
    assert_eq!(reply.location(), "/account/password");
    assert_eq!(
        laptop
            .get("/account/password")
            .await
            .testid_text("notice")
            .as_deref(),
        Some("Signed out 1 other device of your account. Now choose a new password.")
    );
}

#[rocket::async_test]
async fn a_wrong_password_is_marked_at_its_field_and_the_username_stays() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let visitor = Device::new(&client);
    let csrf = visitor.get("/login").await.csrf_token();
    let reply = visitor
        .post_form(
            "/login",
            &[
                ("username", "alice"),
                ("password", "not the password"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    let page = reply.html();
    assert!(
        page.texts("title")[0].starts_with("Error: Sign in"),
        "{}",
        reply.body
    );
    let password = page.select("input#password")[0];
    assert_eq!(
        attributes_of(password),
        attributes(&[
            ("id", "password"),
            ("name", "password"),
            ("type", "password"),
            ("autocomplete", "current-password"),
            ("required", ""),
            ("aria-invalid", "true"),
            ("aria-describedby", "password-error"),
            ("autofocus", ""),
        ]),
        "{}",
        reply.body
    );
    let error = page.select("p#password-error")[0];
    assert_eq!(
        attributes_of(error),
        attributes(&[
            ("class", "field-error"),
            ("id", "password-error"),
            ("data-testid", "login-error"),
        ])
    );
    assert_eq!(text_of(error), "Incorrect username or password.");
    assert_eq!(
        page.field("username").as_deref(),
        Some("alice"),
        "the username stays"
    );
    assert!(
        !reply.body.contains("not the password"),
        "the password never comes back"
    );

    let page = visitor.get("/login").await;
    assert!(!page.body.contains("Error:"));
    assert!(!page.body.contains("aria-invalid"));
}

#[rocket::async_test]
async fn registration_says_what_is_wrong_with_a_name_at_its_field() {
    let app = TestApp::new().await;
    let client = app.client().await;
    let visitor = Device::new(&client);
    let strong = "violet tractor mango seventeen";
    let cases = [
        ("bob smith", "Spaces are not allowed in a username."),
        (
            "bø",
            "Only the letters a to z (without accents), digits, '.', '_' and '-' are allowed in a username.",
        ),
        (
            "bo",
            "That username is too short: use at least 3 characters.",
        ),
        ("_bob", "A username starts with a letter or a digit."),
    ];
    for (username, problem) in cases {
        let csrf = visitor.get("/register").await.csrf_token();
        let reply = visitor
            .post_form(
                "/register",
                &[
                    ("username", username),
                    ("password", strong),
                    ("password_confirm", strong),
                    ("csrf_token", &csrf),
                ],
            )
            .await;
        let page = reply.html();
        let error = page.select("p#username-error");
        assert_eq!(error.len(), 1, "{username:?}: {}", reply.body);
        assert_eq!(
            attributes_of(error[0]),
            attributes(&[("class", "field-error"), ("id", "username-error")])
        );
        assert_eq!(text_of(error[0]), problem, "{username:?}");
        let field = attributes_of(page.select("input#username")[0]);
        assert_eq!(field["aria-invalid"], "true");
        assert_eq!(field["aria-describedby"], "username-error username-rules");
        assert!(field.contains_key("autofocus"));
        assert!(page.texts("title")[0].starts_with("Error: Create an account"));
        assert!(!reply.body.contains(strong), "passwords never come back");
    }
}

#[rocket::async_test]
async fn each_reason_says_what_to_do_and_the_session_limit_says_the_limit() {
    let app = TestApp::with(|f| f.merge(("sessions.max_sessions_per_user", 3))).await;
    let client = app.client().await;
    let visitor = Device::new(&client);
    let message = |reason: &'static str| {
        let visitor = &visitor;
        async move {
            visitor
                .get(&format!("/login?reason={reason}"))
                .await
                .testid_text("login-reason")
                .expect(reason)
        }
    };
    assert!(message("session_limit").await.contains("(3 at once)"));
    assert!(message("revoked").await.contains("change your password"));
    let fingerprint = message("fingerprint_mismatch").await;
    assert!(!fingerprint.contains("fingerprint"), "{fingerprint}");
    assert!(fingerprint.contains("Please sign in again"));
}

/// The title is the first thing a screen reader says on arrival: it names why the person is
/// here, in words of its own for each reason.
#[rocket::async_test]
async fn the_sign_in_pages_title_says_why_the_person_was_signed_out() {
    let app = TestApp::new().await;
    let client = app.client().await;
    let visitor = Device::new(&client);
    let expected = [
        ("login_required", "Sign in"),
        ("signed_out", "Signed out – Sign in"),
        ("idle_timeout", "Signed out after inactivity – Sign in"),
        ("session_expired", "Session expired – Sign in"),
        (
            "fingerprint_mismatch",
            "Signed out: browser changed – Sign in",
        ),
        ("revoked", "Signed out from another device – Sign in"),
        ("password_changed", "Signed out: password changed – Sign in"),
        ("session_limit", "Signed out: too many devices – Sign in"),
        (
            "bound_cookie_expired",
            "Signed out: device sign-in expired – Sign in",
        ),
        (
            "network_alternation",
            "Signed out: used from two networks – Sign in",
        ),
    ];
    assert_eq!(
        expected.len(),
        secure_sessions::session::Reason::ALL.len(),
        "every reason has its title here"
    );
    for (reason, title) in expected {
        let page = visitor.get(&format!("/login?reason={reason}")).await;
        assert_eq!(page.status, Status::Ok, "{reason}");
        assert_eq!(
            page.html().texts("title"),
            [format!("{title} · secure-sessions")],
            "{reason}"
        );
    }
}

#[rocket::async_test]
async fn a_throttled_sign_in_says_when_the_form_can_be_used_again() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    for _ in 0..5 {
        alice.sign_in("alice", "not the password").await;
    }
    let throttled = alice.sign_in("alice", PASSWORD).await;
    assert_eq!(throttled.status, Status::TooManyRequests);
    let page = throttled.html();
    let at = page.select(r#"[data-testid="retry-at"] time"#);
    assert_eq!(at.len(), 1, "{}", throttled.body);
    let when = text_of(at[0]);
    assert!(when.ends_with(" UTC"), "{when}");
    assert!(at[0].value().attr("datetime").is_some());
    assert_eq!(
        page.testid_text("retry-at"),
        Some(format!("You can try again from {when}."))
    );
}

#[rocket::async_test]
async fn disable_asks_first_then_reports_what_it_did() {
    let app = TestApp::new().await;
    app.create_user("root", Role::Admin).await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let admin = Device::new(&client);
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    admin.sign_in("root", PASSWORD).await;
    admin.confirm(PASSWORD).await;

    let admin_page = admin.get("/admin").await;
    let href = format!("/admin/users/{alice_id}/disable");
    let html = admin_page.html();
    let disable = html.select(&format!(r#"a[href="{href}"]"#));
    assert_eq!(disable.len(), 1, "{}", admin_page.body);
    assert_eq!(
        attributes_of(disable[0]),
        attributes(&[
            ("class", "button danger"),
            ("href", &href),
            ("data-testid", "admin-disable"),
        ])
    );
    assert_eq!(text_of(disable[0]), "Disable alice");
    assert_eq!(
        html.texts(&format!(r#"a[href="{href}"] span.visually-hidden"#)),
        ["alice"]
    );
    assert!(
        html.texts(r#"th[scope="row"][data-label="Username"]"#)
            .contains(&"alice".to_owned())
    );
    let ask = admin.get(&format!("/admin/users/{alice_id}/disable")).await;
    assert_eq!(ask.status, Status::Ok);
    assert_eq!(ask.html().texts("h1"), ["Disable alice?"]);
    assert_eq!(
        live_sessions(&app, alice_id).await,
        1,
        "asking changes nothing"
    );

    let page = format!("/admin/users/{alice_id}/disable");
    let reply = admin.post_from(&page, &page, &[]).await;
    assert_eq!(reply.location(), "/admin");
    assert_eq!(
        admin.get("/admin").await.testid_text("notice").as_deref(),
        Some("Disabled alice: signed out of 1 device; signing in is refused until enabled.")
    );
    assert_eq!(live_sessions(&app, alice_id).await, 0);
}

#[rocket::async_test]
async fn a_page_that_is_not_there_keeps_the_signed_in_header() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    let visitor = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let missing = alice.get("/no/such/page").await;
    assert_eq!(missing.status, Status::NotFound);
    assert_eq!(missing.count_testid("logout"), 1);
    assert_eq!(missing.html().texts(".who strong"), ["alice"]);
    assert_eq!(missing.html().texts(".who"), ["Signed in as alice"]);
    let missing = visitor.get("/no/such/page").await;
    assert_eq!(missing.status, Status::NotFound);
    assert_eq!(missing.count_testid("logout"), 0);
}

#[rocket::async_test]
async fn this_wasnt_me_is_offered_on_what_others_did_not_on_this_devices_own_sign_in() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let laptop = Device::new(&client);
    let guesser = Device::with(&client, FIREFOX_WINDOWS, "192.0.2.66");
    guesser.sign_in("alice", "not the password").await;
    laptop.sign_in("alice", PASSWORD).await;
    // A sign-in from a new browser: one entry, which says "new device".
    Device::with(&client, FIREFOX_WINDOWS, "192.0.2.66")
        .sign_in("alice", PASSWORD)
        .await;
    let page = laptop.get("/account").await;
    assert_eq!(page.count_testid("security-event"), 3, "{}", page.body);
    let html = page.html();
    assert_eq!(
        html.texts(".what")
            .iter()
            .filter(|what| what.ends_with("Signed in from a new device"))
            .count(),
        1
    );
    // Offered on the failed attempt and on the other browser's sign-in, not on this one's.
    assert_eq!(page.count_testid("not-me"), 2, "{}", page.body);
    // Each link says, to a screen reader, which entry it disowns.
    let failed = html
        .testids("not-me")
        .into_iter()
        .find(|link| text_of(*link).contains("Failed sign-in attempt (wrong password)"))
        .expect("a link on the failed attempt");
    assert!(text_of(failed).starts_with("This wasn't me"));
    let hidden = select_in(failed, "span.visually-hidden")[0];
    assert!(
        text_of(hidden).starts_with(": Failed sign-in attempt (wrong password),"),
        "{}",
        text_of(hidden)
    );
    assert_eq!(select_in(hidden, "time[datetime]").len(), 1);
}

async fn is_disabled(app: &TestApp, user_id: i64) -> bool {
    sqlx::query_scalar("SELECT disabled FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// An app whose sessions outlive a confirmation (the test profile's idle timeout is shorter).
async fn app_where_confirmations_lapse_first() -> TestApp {
    TestApp::with(|f| {
        f.merge(("sessions.idle_timeout_secs", 3600))
            .merge(("sessions.absolute_timeout_secs", 7200))
    })
    .await
}

/// The admin's confirmation lapses while `/admin` is open: its forms still carry this
/// session's CSRF token, but the action needs the password again.
async fn let_the_confirmation_lapse(app: &TestApp) {
    app.advance_secs(i64::from(app.config().confirm_window_secs));
}

/// Posts `action` with the CSRF token read from `/admin` while it could still be read.
async fn post_from_stale_admin_page(admin: &Device<'_>, csrf: &str, action: &str) -> String {
    let reply = admin.post_form(action, &[("csrf_token", csrf)]).await;
    reply.location().to_owned()
}

#[rocket::async_test]
async fn an_admin_action_asked_after_the_confirmation_lapsed_resumes_once_and_says_what_it_did() {
    let app = app_where_confirmations_lapse_first().await;
    app.create_user("root", Role::Admin).await;
    let carol_id = app.create_user("carol", Role::User).await;
    let client = app.client().await;
    let admin = Device::new(&client);
    let carol = [
        Device::new(&client),
        Device::with(&client, FIREFOX_WINDOWS, "203.0.113.9"),
        Device::with(&client, FIREFOX_WINDOWS, "203.0.113.10"),
    ];
    for device in &carol {
        device.sign_in("carol", PASSWORD).await;
    }
    admin.sign_in("root", PASSWORD).await;
    admin.confirm(PASSWORD).await;
    let csrf = admin.get("/admin").await.csrf_token();
    let_the_confirmation_lapse(&app).await;

    // "Sign out everywhere": kept, then asked for the password, on the way back to /admin.
    let sign_out = format!("/admin/users/{carol_id}/revoke-sessions");
    assert_eq!(
        post_from_stale_admin_page(&admin, &csrf, &sign_out).await,
        "/confirm?next=%2Fadmin"
    );
    assert_eq!(live_sessions(&app, carol_id).await, 3, "nothing done yet");
    let page = admin.get("/confirm?next=%2Fadmin").await;
    assert!(
        page.body
            .contains("<strong>sign carol out everywhere</strong>"),
        "{}",
        page.body
    );
    let code = format!("admin_sign_out:{carol_id}");
    assert_eq!(page.html().field("action"), Some(code.clone()));
    let form = [
        ("password", PASSWORD),
        ("csrf_token", &page.csrf_token()),
        ("next", "/admin"),
        ("action", &code),
    ];
    assert_eq!(
        admin.post_form("/confirm", &form).await.location(),
        "/admin"
    );
    assert_eq!(live_sessions(&app, carol_id).await, 0, "carried out");
    assert_eq!(
        admin.get("/admin").await.testid_text("notice").as_deref(),
        Some("Signed carol out of 3 devices.")
    );
    let revoked_by_admin = |kinds: Vec<String>| {
        kinds
            .iter()
            .filter(|kind| *kind == "sessions_revoked_by_admin")
            .count()
    };
    assert_eq!(revoked_by_admin(app.event_kinds(carol_id).await), 1);

    // Replayed: the confirmation's form and the first post both carried the token the
    // confirmation rotated away, and the action was taken once.
    carol[0].sign_in("carol", PASSWORD).await;
    assert_eq!(
        admin.post_form("/confirm", &form).await.status,
        Status::Forbidden
    );
    assert_eq!(
        admin
            .post_form(&sign_out, &[("csrf_token", &csrf)])
            .await
            .status,
        Status::Forbidden
    );
    let page = admin.get("/confirm?next=%2Fadmin").await;
    assert_eq!(page.count_testid("confirm-action"), 0, "nothing waits");
    let again = [
        ("password", PASSWORD),
        ("csrf_token", &page.csrf_token()),
        ("next", "/admin"),
        ("action", &code),
    ];
    assert_eq!(
        admin.post_form("/confirm", &again).await.location(),
        "/admin"
    );
    assert_eq!(live_sessions(&app, carol_id).await, 1, "not run twice");
    assert_eq!(revoked_by_admin(app.event_kinds(carol_id).await), 1);

    // "Disable", from its own page, and "Enable" resume the same way.
    let disable = format!("/admin/users/{carol_id}/disable");
    let csrf = admin.get(&disable).await.csrf_token();
    let_the_confirmation_lapse(&app).await;
    assert_eq!(
        post_from_stale_admin_page(&admin, &csrf, &disable).await,
        "/confirm?next=%2Fadmin"
    );
    assert!(!is_disabled(&app, carol_id).await);
    let page = admin.get("/confirm?next=%2Fadmin").await;
    assert!(page.body.contains("<strong>disable carol</strong>"));
    assert_eq!(
        admin
            .confirm_at("/confirm?next=%2Fadmin", PASSWORD)
            .await
            .location(),
        "/admin"
    );
    assert!(is_disabled(&app, carol_id).await);
    assert_eq!(
        admin.get("/admin").await.testid_text("notice").as_deref(),
        Some("Disabled carol: signed out of 1 device; signing in is refused until enabled.")
    );

    let csrf = admin.get("/admin").await.csrf_token();
    let_the_confirmation_lapse(&app).await;
    let enable = format!("/admin/users/{carol_id}/enable");
    assert_eq!(
        post_from_stale_admin_page(&admin, &csrf, &enable).await,
        "/confirm?next=%2Fadmin"
    );
    assert!(is_disabled(&app, carol_id).await, "nothing done yet");
    let page = admin.get("/confirm?next=%2Fadmin").await;
    assert!(page.body.contains("<strong>enable carol</strong>"));
    admin.confirm_at("/confirm?next=%2Fadmin", PASSWORD).await;
    assert!(!is_disabled(&app, carol_id).await);
    assert_eq!(
        admin.get("/admin").await.testid_text("notice").as_deref(),
        Some("Enabled carol: they can sign in again.")
    );
    assert_eq!(
        carol[0].sign_in("carol", PASSWORD).await.location(),
        "/account"
    );
}

#[rocket::async_test]
async fn a_waiting_admin_action_cannot_be_pointed_at_another_account() {
    let app = app_where_confirmations_lapse_first().await;
    app.create_user("root", Role::Admin).await;
    let alice_id = app.create_user("alice", Role::User).await;
    let bob_id = app.create_user("bob", Role::User).await;
    let client = app.client().await;
    let admin = Device::new(&client);
    let (alice, bob) = (Device::new(&client), Device::new(&client));
    alice.sign_in("alice", PASSWORD).await;
    bob.sign_in("bob", PASSWORD).await;
    admin.sign_in("root", PASSWORD).await;
    admin.confirm(PASSWORD).await;
    let csrf = admin.get("/admin").await.csrf_token();
    let_the_confirmation_lapse(&app).await;

    let disable = format!("/admin/users/{alice_id}/disable");
    post_from_stale_admin_page(&admin, &csrf, &disable).await;
    let page = admin.get("/confirm?next=%2Fadmin").await;
    assert_eq!(
        page.html().field("action"),
        Some(format!("admin_disable:{alice_id}"))
    );
    // The confirmation form edited to name bob instead.
    let edited = format!("admin_disable:{bob_id}");
    let form = [
        ("password", PASSWORD),
        ("csrf_token", &page.csrf_token()),
        ("next", "/admin"),
        ("action", &edited),
    ];
    assert_eq!(
        admin.post_form("/confirm", &form).await.location(),
        "/admin"
    );
    assert!(!is_disabled(&app, bob_id).await, "bob untouched");
    assert!(!is_disabled(&app, alice_id).await, "alice's was not named");
    assert_eq!(live_sessions(&app, bob_id).await, 1);
    assert_eq!(live_sessions(&app, alice_id).await, 1);
    assert_eq!(
        admin.get("/admin").await.count_testid("notice"),
        0,
        "nothing to report"
    );
    // And the one that was waiting is gone: that confirmation took it.
    let_the_confirmation_lapse(&app).await;
    let page = admin.get("/confirm?next=%2Fadmin").await;
    assert_eq!(page.count_testid("confirm-action"), 0);
}

#[rocket::async_test]
async fn a_demoted_administrators_waiting_action_does_not_run() {
    let app = app_where_confirmations_lapse_first().await;
    let root_id = app.create_user("root", Role::Admin).await;
    let carol_id = app.create_user("carol", Role::User).await;
    let client = app.client().await;
    let admin = Device::new(&client);
    let carol = Device::new(&client);
    carol.sign_in("carol", PASSWORD).await;
    admin.sign_in("root", PASSWORD).await;
    admin.confirm(PASSWORD).await;
    let csrf = admin.get("/admin").await.csrf_token();
    let_the_confirmation_lapse(&app).await;

    let sign_out = format!("/admin/users/{carol_id}/revoke-sessions");
    post_from_stale_admin_page(&admin, &csrf, &sign_out).await;
    let page = admin.get("/confirm?next=%2Fadmin").await;
    let code = page.html().field("action").expect("the action is named");

    // Demoted while the confirmation page is open.
    sqlx::query("UPDATE users SET role = 'user' WHERE id = $1")
        .bind(root_id)
        .execute(&app.pool)
        .await
        .unwrap();
    let form = [
        ("password", PASSWORD),
        ("csrf_token", &page.csrf_token()),
        ("next", "/admin"),
        ("action", &code),
    ];
    assert_eq!(
        admin.post_form("/confirm", &form).await.location(),
        "/admin"
    );
    assert_eq!(live_sessions(&app, carol_id).await, 1, "not run");
    assert!(
        !app.event_kinds(carol_id)
            .await
            .contains(&"sessions_revoked_by_admin".to_owned())
    );
    let admin_page = admin.get("/admin").await;
    assert_eq!(admin_page.status, Status::Forbidden);
    assert_eq!(admin_page.count_testid("notice"), 0);
}

/// The password change's three fields, as its form posts them.
fn password_fields<'a>(
    current: &'a str,
    new: &'a str,
    confirm: &'a str,
) -> [(&'a str, &'a str); 3] {
    [
        ("current_password", current),
        ("new_password", new),
        ("new_password_confirm", confirm),
    ]
}

#[rocket::async_test]
async fn the_password_form_states_its_rules_first_and_reports_every_problem_at_once() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;

    // The rules are there before anything is typed, and the new password's field names them.
    let form = alice.get("/account/password").await.html();
    let rules = form.texts("#new_password-rules");
    assert!(rules[0].starts_with("At least 8 characters"), "{rules:?}");
    let described = attributes_of(form.select("#new_password")[0]);
    assert_eq!(described["aria-describedby"], "new_password-rules");

    // An empty form: every missing field at once, each at its field.
    let empty = alice
        .post_from(
            "/account/password",
            "/account/password",
            &password_fields("", "", ""),
        )
        .await;
    let page = empty.html();
    assert_eq!(
        page.texts(r#"[data-testid="password-error"] li"#),
        [
            "Enter your current password.",
            "Enter a new password.",
            "Enter the new password again."
        ]
    );
    for field in ["current_password", "new_password", "new_password_confirm"] {
        let attributes = attributes_of(page.select(&format!("#{field}"))[0]);
        assert_eq!(attributes["aria-invalid"], "true", "{field}");
        assert!(
            !attributes.contains_key("value"),
            "{field}: never filled in again"
        );
    }
    assert!(
        empty
            .testid_text("password-reenter")
            .is_some_and(|text| text
                .contains("your current password, the new password and its confirmation")),
        "the page says which fields to type again"
    );

    // A weak new password and a confirmation that differs: both said in the same round.
    let both = alice
        .post_from(
            "/account/password",
            "/account/password",
            &password_fields(PASSWORD, "password1", "password2"),
        )
        .await
        .html();
    let said = both.texts(r#"[data-testid="password-error"] li"#);
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(
        said[0].starts_with("This password is too easy to guess"),
        "{said:?}"
    );
    assert_eq!(said[1], "The two new passwords do not match.");
}

#[rocket::async_test]
async fn a_confirmation_moments_ago_stands_in_for_the_current_password_but_not_for_long() {
    let app = app_where_confirmations_lapse_first().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    let phone = Device::with(&client, FIREFOX_WINDOWS, "203.0.113.9");
    alice.sign_in("alice", PASSWORD).await;
    phone.sign_in("alice", PASSWORD).await;
    const NEW: &str = "violet tractor mango seventeen";
    let without_current = [("new_password", NEW), ("new_password_confirm", NEW)];

    // Not confirmed: the current password is asked for, and the form without it changes nothing.
    let form = alice.get("/account/password").await.html();
    assert_eq!(form.select("#current_password").len(), 1);
    let refused = alice
        .post_from("/account/password", "/account/password", &without_current)
        .await;
    assert_eq!(
        refused.html().texts(r#"[data-testid="password-error"] li"#),
        ["Enter your current password."]
    );
    assert_eq!(live_sessions(&app, user_id).await, 2);

    // Confirmed: the page does not ask for it again...
    alice.confirm(PASSWORD).await;
    let form = alice.get("/account/password").await;
    assert_eq!(form.html().select("#current_password").len(), 0);
    assert!(form.testid_text("password-confirmed").is_some());
    // ...and still refuses the password that someone else may know.
    let same = alice
        .post_from(
            "/account/password",
            "/account/password",
            &[
                ("new_password", PASSWORD),
                ("new_password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        same.html().texts(r#"[data-testid="password-error"] li"#),
        ["The new password must differ from the current one."]
    );

    // Once the confirmation has lapsed, the current password is asked for again.
    let_the_confirmation_lapse(&app).await;
    let lapsed = alice
        .post_from("/account/password", "/account/password", &without_current)
        .await;
    assert_eq!(
        lapsed.html().texts(r#"[data-testid="password-error"] li"#),
        ["Enter your current password."]
    );
    assert_eq!(live_sessions(&app, user_id).await, 2, "nothing changed");

    alice.confirm(PASSWORD).await;
    let done = alice
        .post_from("/account/password", "/account/password", &without_current)
        .await;
    assert_eq!(
        done.testid_text("password-changed")
            .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" ")),
        Some("Your password was changed. 1 other device was signed out. This device stays signed in.".into())
    );
    assert_eq!(live_sessions(&app, user_id).await, 1);
    let fresh = Device::new(&client);
    assert_eq!(fresh.sign_in("alice", NEW).await.location(), "/account");
}

#[rocket::async_test]
async fn the_confirmation_page_names_what_it_opens_and_counts_read_as_sentences() {
    let app = TestApp::new().await;
    let root_id = app.create_user("root", Role::Admin).await;
    let alice_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let admin = Device::with(&client, FIREFOX_WINDOWS, "192.168.1.20");
    admin.sign_in("root", PASSWORD).await;

    let named = |path: &'static str| {
        let admin = &admin;
        async move {
            admin
                .get(&format!("/confirm?next={}", path.replace('/', "%2F")))
                .await
                .html()
                .texts(r#"[data-testid="confirm-purpose"] strong"#)
        }
    };
    assert_eq!(
        named("/account/not-me").await,
        ["secure your account: sign out every other device, then choose a new password"]
    );
    assert_eq!(named("/admin").await, ["open the administration page"]);
    let disable = format!("/admin/users/{alice_id}/disable");
    assert_eq!(
        admin
            .get(&format!("/confirm?next={}", disable.replace('/', "%2F")))
            .await
            .html()
            .texts(r#"[data-testid="confirm-purpose"] strong"#),
        ["choose whether to disable alice"]
    );

    // Only an administrator's role is said; a private address says it is one.
    let account = admin.get("/account").await;
    assert_eq!(
        account.testid_text("account-role").as_deref(),
        Some("admin")
    );
    assert!(
        account.shows("192.168.1.20 (a private network)"),
        "{}",
        account.body
    );
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let account = alice.get("/account").await;
    assert_eq!(account.count_testid("account-role"), 0, "{}", account.body);
    assert!(account.shows("127.0.0.1 (the server's own machine)"));

    // The admin page's title and heading agree; "Sign out everywhere" on the admin's own row
    // says that this device stays signed in, before and after.
    admin.confirm(PASSWORD).await;
    let page = admin.get("/admin").await.html();
    assert_eq!(page.texts("h1"), ["Administration: accounts"]);
    assert_eq!(
        page.texts("title"),
        ["Administration: accounts · secure-sessions"]
    );
    let own = admin
        .post_from(
            "/admin",
            &format!("/admin/users/{root_id}/revoke-sessions"),
            &[],
        )
        .await;
    assert_eq!(own.location(), "/admin");
    assert_eq!(
        admin.get("/admin").await.testid_text("notice").as_deref(),
        Some(
            "Nothing to sign out: you were not signed in on any other device. This device stays signed in."
        )
    );

    // "This wasn't me" with no other device signed in says so, with no count of none.
    alice.confirm(PASSWORD).await;
    alice
        .post_from("/account/not-me", "/account/not-me", &[])
        .await;
    assert_eq!(
        alice
            .get("/account/password")
            .await
            .testid_text("notice")
            .as_deref(),
        Some(
            "No other device was signed in to your account, so none had to be signed out. Now choose a new password."
        )
    );
}

#[rocket::async_test]
async fn a_throttled_password_field_is_described_by_how_long_to_wait() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    for _ in 0..app.config().throttle_session_failures {
        alice.confirm("not my password").await;
    }

    // The field a person types into next names the message as its description.
    let described_by = |page: &crate::support::html::Document, field: &str| {
        let ids = attributes_of(page.select(field)[0])
            .get("aria-describedby")
            .cloned()
            .unwrap_or_default();
        ids.split_whitespace()
            .flat_map(|id| page.texts(&format!("#{id}")))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let confirm = alice.confirm(PASSWORD).await;
    assert_eq!(confirm.status, Status::TooManyRequests);
    let said = described_by(&confirm.html(), "#password");
    assert!(said.starts_with("Too many"), "{said}");

    let change = alice
        .post_from(
            "/account/password",
            "/account/password",
            &password_fields(
                PASSWORD,
                "violet tractor mango seventeen",
                "violet tractor mango seventeen",
            ),
        )
        .await;
    assert_eq!(change.status, Status::TooManyRequests);
    let said = described_by(&change.html(), "#current_password");
    assert!(said.starts_with("Too many"), "{said}");
}
