//! Secrets never reach the log: the real binary, asked for Rocket's most talkative log level,
//! through a sign-in, the account page, the token API (with a reused refresh token) and a sign-out.

use secure_sessions::session::token::SessionToken;
use secure_sessions::users::Role;

use serde_json::json;

use crate::support::binary::RunningApp;
use crate::support::http::{CHROME_LINUX, form_encode};
use crate::support::raw::{RawRequest, RawResponse};
use crate::support::{PASSWORD, TestApp};

/// A request as Chrome on Linux sends it (the fingerprint binds the User-Agent).
fn chrome(request: RawRequest) -> RawRequest {
    request.header(format!("User-Agent: {CHROME_LINUX}"))
}

/// Alice signs in through the form, as Chrome: the form's CSRF cookie and field, and the answer.
async fn sign_in(port: u16) -> (String, String, RawResponse) {
    let form = chrome(RawRequest::get("/login")).send(port).await;
    let csrf_cookie = form.cookie("__Host-csrf");
    let csrf_field = form.html().csrf_token();
    let signed_in = chrome(RawRequest::post("/login"))
        .header(format!("Cookie: __Host-csrf={csrf_cookie}"))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", &csrf_field),
        ])
        .send(port)
        .await;
    (csrf_cookie, csrf_field, signed_in)
}

#[rocket::async_test]
async fn no_token_password_or_csrf_value_ever_reaches_the_log() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let mut app_process = RunningApp::start(|command| {
        command
            .env("DATABASE_URL", &app.database_url)
            .env("ROCKET_PROFILE", "debug")
            .env("ROCKET_LOG_LEVEL", "debug")
            .env("ROCKET_SESSIONS", "{seed_demo_users=false}");
    })
    .await;

    // A browser: the sign-in form, signing in, the account page, signing out.
    let port = app_process.port;
    let (csrf_cookie, csrf_field, signed_in) = sign_in(port).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.head);
    let session = signed_in.cookie("__Host-sid");
    let account = chrome(RawRequest::get("/account"))
        .header(format!("Cookie: __Host-sid={session}"))
        .send(port)
        .await;
    assert_eq!(account.status, 200);
    let session_csrf = account.html().csrf_token();

    // An API client: tokens, a refresh, and a reuse of the spent refresh token.
    let first = chrome(RawRequest::post("/api/token"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send(port)
        .await
        .json();
    let (access, refresh) = (
        first["access_token"].as_str().unwrap().to_owned(),
        first["refresh_token"].as_str().unwrap().to_owned(),
    );
    let me = chrome(RawRequest::get("/api/me"))
        .header(format!("Authorization: Bearer {access}"))
        .send(port)
        .await;
    assert_eq!(me.status, 200);
    let refresh_with = |token: &str| {
        chrome(RawRequest::post("/api/token/refresh")).json(&json!({"refresh_token": token}))
    };
    let second = refresh_with(&refresh).send(port).await.json();
    let reuse = refresh_with(&refresh).send(port).await;
    assert_eq!(reuse.status, 401);

    let signed_out = chrome(RawRequest::post("/logout"))
        .header(format!("Cookie: __Host-sid={session}"))
        .form(&[("csrf_token", &session_csrf)])
        .send(port)
        .await;
    assert_eq!(signed_out.status, 303);

    // Another session, its cookie then sent by a browser with another User-Agent: ended as
    // taken, and the log says so by the token's log id.
    let (_, _, signed_in_again) = sign_in(port).await;
    let taken = signed_in_again.cookie("__Host-sid");
    let elsewhere = RawRequest::get("/account")
        .header("User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/133.0")
        .header(format!("Cookie: __Host-sid={taken}"))
        .send(port)
        .await;
    assert_eq!(elsewhere.status, 303, "{}", elsewhere.head);

    app_process.stop();
    let logged = app_process.log();
    assert!(
        logged.contains("POST /api/token/refresh"),
        "the log is the app's request log: {logged:.500}"
    );
    assert!(
        logged.contains("would log request headers"),
        "asking for the debug level is refused: {logged:.500}"
    );
    // ROCKET_SESSIONS overrode one setting of the debug profile, the Rocket way.
    assert!(
        !logged.contains("Demo accounts"),
        "seed_demo_users=false from the environment"
    );

    let taken_id = SessionToken::parse(&taken).unwrap().key().log_id();
    assert!(
        logged.contains(&format!(
            "session {taken_id} ended: binding fingerprint changed"
        )),
        "{logged}"
    );
    assert_eq!(
        logged.matches("binding fingerprint changed").count(),
        1,
        "only the taken session's end is logged so: {logged}"
    );

    let secrets = [
        ("the session token", session.clone()),
        ("the taken session's token", taken.clone()),
        ("the sign-in form's CSRF cookie", csrf_cookie),
        ("the sign-in form's CSRF token", csrf_field),
        ("the session's CSRF token", session_csrf),
        ("the password", PASSWORD.to_owned()),
        ("an access token", access),
        ("a refresh token", refresh.clone()),
        (
            "the second access token",
            second["access_token"].as_str().unwrap().to_owned(),
        ),
        (
            "the second refresh token",
            second["refresh_token"].as_str().unwrap().to_owned(),
        ),
    ];
    for (what, secret) in &secrets {
        assert!(
            !logged.contains(secret.as_str()),
            "{what} appears in the log"
        );
        assert!(
            !logged.contains(&form_encode(secret)),
            "{what} appears (form-encoded) in the log"
        );
    }
    // The reuse warning names the token by the first 8 hex digits of its hash, and no more.
    let refresh_key = SessionToken::parse(&refresh).unwrap().key();
    assert!(
        logged.contains(&format!(
            "refresh token {} was used twice",
            refresh_key.log_id()
        )),
        "{logged}"
    );
    let full_hash: String = refresh_key
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!logged.contains(&full_hash));
}
