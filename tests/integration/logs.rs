//! Secrets never reach the log: the real binary, asked for Rocket's most talkative log level,
//! through a sign-in, the account page, the token API (with a reused refresh token) and a sign-out.

use secure_sessions::session::token::SessionToken;
use secure_sessions::users::Role;

use crate::support::binary::RunningApp;
use crate::support::http::encode;
use crate::support::{PASSWORD, TestApp};

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
    let form = app_process.request("GET", "/login", &[], "").await;
    let csrf_cookie = form.cookie("__Host-csrf");
    let csrf_field = form.hidden("csrf_token");
    let body = format!(
        "username=alice&password={}&csrf_token={}",
        encode(PASSWORD),
        encode(&csrf_field)
    );
    let headers = [
        format!("Cookie: __Host-csrf={csrf_cookie}"),
        "Content-Type: application/x-www-form-urlencoded".into(),
    ];
    let signed_in = app_process.request("POST", "/login", &headers, &body).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.head);
    let session = signed_in.cookie("__Host-sid");
    let account = app_process
        .request(
            "GET",
            "/account",
            &[format!("Cookie: __Host-sid={session}")],
            "",
        )
        .await;
    assert_eq!(account.status, 200);
    let session_csrf = account.hidden("csrf_token");

    // An API client: tokens, a refresh, and a reuse of the spent refresh token.
    let json = ["Content-Type: application/json".to_owned()];
    let credentials = format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#);
    let first = app_process
        .request("POST", "/api/token", &json, &credentials)
        .await
        .json();
    let (access, refresh) = (
        first["access_token"].as_str().unwrap().to_owned(),
        first["refresh_token"].as_str().unwrap().to_owned(),
    );
    let me = app_process
        .request(
            "GET",
            "/api/me",
            &[format!("Authorization: Bearer {access}")],
            "",
        )
        .await;
    assert_eq!(me.status, 200);
    let second = app_process
        .request(
            "POST",
            "/api/token/refresh",
            &json,
            &format!(r#"{{"refresh_token":"{refresh}"}}"#),
        )
        .await
        .json();
    let reuse = app_process
        .request(
            "POST",
            "/api/token/refresh",
            &json,
            &format!(r#"{{"refresh_token":"{refresh}"}}"#),
        )
        .await;
    assert_eq!(reuse.status, 401);

    let logout_body = format!("csrf_token={}", encode(&session_csrf));
    let logout_headers = [
        format!("Cookie: __Host-sid={session}"),
        "Content-Type: application/x-www-form-urlencoded".into(),
    ];
    assert_eq!(
        app_process
            .request("POST", "/logout", &logout_headers, &logout_body)
            .await
            .status,
        303
    );

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

    let secrets = [
        ("the session token", session.clone()),
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
            !logged.contains(&encode(secret)),
            "{what} appears (percent-encoded) in the log"
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
