//! Secrets never reach the log: the real binary, asked for Rocket's most talkative log level,
//! through a sign-in, the account page, the token API (with a reused refresh token) and a sign-out.

use std::process::{Command, Stdio};
use std::time::Duration;

use secure_sessions::session::token::SessionToken;
use secure_sessions::users::Role;
use serde_json::Value;

use crate::support::http::{encode, CHROME_LINUX};
use crate::support::server::raw_http;
use crate::support::{TestApp, PASSWORD};

/// A response as (status, headers, body).
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn parse(raw: String) -> Answer {
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
        Answer { status, head: head.to_owned(), body: body.to_owned() }
    }

    /// The raw value of a cookie the response sets.
    fn cookie(&self, name: &str) -> String {
        let prefix = format!("set-cookie: {name}=");
        let line = self.head.lines().find(|line| line.to_lowercase().starts_with(&prefix.to_lowercase())).expect(name);
        line[prefix.len()..].split(';').next().unwrap().to_owned()
    }

    fn hidden(&self, field: &str) -> String {
        let marker = format!("name=\"{field}\" value=\"");
        let start = self.body.find(&marker).expect(field) + marker.len();
        self.body[start..start + self.body[start..].find('"').unwrap()].to_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("JSON expected: {}", self.body))
    }
}

/// The app's process, stopped however the test ends.
struct RunningApp(std::process::Child);

impl Drop for RunningApp {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

async fn request(port: u16, method: &str, path: &str, headers: &[String], body: &str) -> Answer {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    raw.push_str(&format!("User-Agent: {CHROME_LINUX}\r\nContent-Length: {}\r\n", body.len()));
    for header in headers {
        raw.push_str(header);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    Answer::parse(raw_http(port, raw.as_bytes()).await)
}

#[rocket::async_test]
async fn no_token_password_or_csrf_value_ever_reaches_the_log() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log_path = std::env::temp_dir().join(format!("ss-log-{}.txt", uuid::Uuid::new_v4().simple()));
    let log = std::fs::File::create(&log_path).unwrap();
    let app_process = RunningApp(Command::new(env!("CARGO_BIN_EXE_secure-sessions"))
        .env("DATABASE_URL", &app.database_url)
        .env("ROCKET_PORT", port.to_string())
        .env("ROCKET_PROFILE", "debug")
        .env("ROCKET_LOG_LEVEL", "debug")
        .env("ROCKET_SESSIONS", "{seed_demo_users=false}")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start the app binary"));
    let mut up = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        rocket::tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the app did not start: {}", std::fs::read_to_string(&log_path).unwrap_or_default());

    // A browser: the sign-in form, signing in, the account page, signing out.
    let form = request(port, "GET", "/login", &[], "").await;
    let csrf_cookie = form.cookie("__Host-csrf");
    let csrf_field = form.hidden("csrf_token");
    let body = format!("username=alice&password={}&csrf_token={}", encode(PASSWORD), encode(&csrf_field));
    let headers = [format!("Cookie: __Host-csrf={csrf_cookie}"), "Content-Type: application/x-www-form-urlencoded".into()];
    let signed_in = request(port, "POST", "/login", &headers, &body).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.head);
    let session = signed_in.cookie("__Host-sid");
    let account = request(port, "GET", "/account", &[format!("Cookie: __Host-sid={session}")], "").await;
    assert_eq!(account.status, 200);
    let session_csrf = account.hidden("csrf_token");

    // An API client: tokens, a refresh, and a reuse of the spent refresh token.
    let json = ["Content-Type: application/json".to_owned()];
    let credentials = format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#);
    let first = request(port, "POST", "/api/token", &json, &credentials).await.json();
    let (access, refresh) = (first["access_token"].as_str().unwrap().to_owned(), first["refresh_token"].as_str().unwrap().to_owned());
    let me = request(port, "GET", "/api/me", &[format!("Authorization: Bearer {access}")], "").await;
    assert_eq!(me.status, 200);
    let second = request(port, "POST", "/api/token/refresh", &json, &format!(r#"{{"refresh_token":"{refresh}"}}"#)).await.json();
    let reuse = request(port, "POST", "/api/token/refresh", &json, &format!(r#"{{"refresh_token":"{refresh}"}}"#)).await;
    assert_eq!(reuse.status, 401);

    let logout_body = format!("csrf_token={}", encode(&session_csrf));
    let logout_headers = [format!("Cookie: __Host-sid={session}"), "Content-Type: application/x-www-form-urlencoded".into()];
    assert_eq!(request(port, "POST", "/logout", &logout_headers, &logout_body).await.status, 303);

    drop(app_process);
    let logged = std::fs::read_to_string(&log_path).unwrap();
    std::fs::remove_file(&log_path).ok();
    assert!(logged.contains("POST /api/token/refresh"), "the log is the app's request log: {logged:.500}");
    assert!(logged.contains("would log request headers"), "asking for the debug level is refused: {logged:.500}");
    // ROCKET_SESSIONS overrode one setting of the debug profile, the Rocket way.
    assert!(!logged.contains("Demo accounts"), "seed_demo_users=false from the environment");

    let secrets = [
        ("the session token", session.clone()),
        ("the sign-in form's CSRF cookie", csrf_cookie),
        ("the sign-in form's CSRF token", csrf_field),
        ("the session's CSRF token", session_csrf),
        ("the password", PASSWORD.to_owned()),
        ("an access token", access),
        ("a refresh token", refresh.clone()),
        ("the second access token", second["access_token"].as_str().unwrap().to_owned()),
        ("the second refresh token", second["refresh_token"].as_str().unwrap().to_owned()),
    ];
    for (what, secret) in &secrets {
        assert!(!logged.contains(secret.as_str()), "{what} appears in the log");
        assert!(!logged.contains(&encode(secret)), "{what} appears (percent-encoded) in the log");
    }
    // The reuse warning names the token by the first 8 hex digits of its hash, and no more.
    let refresh_key = SessionToken::parse(&refresh).unwrap().key();
    assert!(logged.contains(&format!("refresh token {} was used twice", refresh_key.log_id())), "{logged}");
    let full_hash: String = refresh_key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert!(!logged.contains(&full_hash));
}
