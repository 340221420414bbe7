//! Safe without Rocket.toml: every security-relevant default lives in code. The real binary,
//! started from an empty folder with nothing but a database URL and a secret key, trusts no
//! forwarded-address header, keeps small body limits, uses the `[sessions]` defaults (HSTS in
//! the release profile included) and does not name its server software.

use secure_sessions::config::SessionConfig;
use secure_sessions::users::Role;

use crate::support::binary::{RunningApp, with_sessions};
use crate::support::http::CHROME_LINUX;
use crate::support::raw::RawRequest;
use crate::support::{PASSWORD, TestApp, random_secret_key};

#[rocket::async_test]
async fn the_binary_without_a_configuration_file_starts_with_safe_defaults() {
    let app = TestApp::new().await;
    let alice_id = app.create_user("alice", Role::User).await;
    // No Rocket.toml here or in any folder above (Rocket looks upwards from the working directory).
    let empty =
        std::env::temp_dir().join(format!("ss-no-config-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&empty).unwrap();
    let binary = RunningApp::start(|command| {
        command
            .env_clear()
            .current_dir(&empty)
            .env("DATABASE_URL", &app.database_url)
            .env("ROCKET_SECRET_KEY", random_secret_key())
            // As the release binary runs (Rocket's release profile wants a secret key).
            .env("ROCKET_PROFILE", "release");
    })
    .await;
    std::fs::remove_dir(&empty).ok();

    // Sign in claiming another address through the headers a proxy would set.
    let spoofed = [
        "X-Real-IP: 203.0.113.7",
        "X-Forwarded-For: 203.0.113.8",
        "Forwarded: for=203.0.113.9",
    ];
    let chrome = format!("User-Agent: {CHROME_LINUX}");
    let form = RawRequest::get("/login")
        .header(chrome.as_str())
        .headers(spoofed)
        .send(binary.port)
        .await;
    assert_eq!(form.status, 200, "{}", form.head);
    assert_eq!(
        form.header("Server"),
        None,
        "no Server banner: {}",
        form.head
    );
    assert_eq!(
        form.header("Strict-Transport-Security"),
        Some("max-age=63072000; includeSubDomains"),
        "HSTS in the release profile: {}",
        form.head
    );
    let csrf_cookie = form.cookie("__Host-csrf");
    let signed_in = RawRequest::post("/login")
        .header(chrome.as_str())
        .headers(spoofed)
        .header(format!("Cookie: __Host-csrf={csrf_cookie}"))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", &form.html().csrf_token()),
        ])
        .send(binary.port)
        .await;
    assert_eq!(
        signed_in.status,
        303,
        "{}\n{}",
        signed_in.head,
        binary.log()
    );

    // The address recorded (and the one the throttle counts: both are the client's address) is
    // the socket's, not the header's.
    let (session_ip,): (String,) = sqlx::query_as("SELECT ip FROM sessions WHERE user_id = $1")
        .bind(alice_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(session_ip, "127.0.0.1");
    let event_ips: Vec<String> =
        sqlx::query_scalar("SELECT ip FROM security_events WHERE user_id = $1")
            .bind(alice_id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert!(
        !event_ips.is_empty() && event_ips.iter().all(|ip| ip == "127.0.0.1"),
        "{event_ips:?}"
    );

    // The [sessions] defaults apply: the cookie lives the absolute lifetime plus the tombstone grace.
    let defaults = SessionConfig::default();
    let max_age = defaults.absolute_timeout_secs + defaults.tombstone_grace_secs;
    let cookie = signed_in.set_cookie_line("__Host-sid");
    assert!(cookie.contains(&format!("Max-Age={max_age}")), "{cookie}");

    // A JSON body over the 16 KiB default is refused, not read up to Rocket's own 1 MiB.
    let padding = "x".repeat(20 * 1024);
    let oversized =
        format!(r#"{{"username":"alice","password":"{PASSWORD}","padding":"{padding}"}}"#);
    let refused = RawRequest::post("/api/token")
        .header(chrome)
        .header("Content-Type: application/json")
        .body(oversized)
        .send(binary.port)
        .await;
    assert_eq!(refused.status, 413, "{}", refused.head);
    assert_eq!(refused.json()["error"], "too_large");
    assert_eq!(refused.header("Server"), None);
}

/// The app shares its cores with PostgreSQL: half of them run async workers and the pool holds
/// twice as many connections (docs/benchmarks.md), unless Rocket.toml or the environment says
/// otherwise. On this project's 2-core machine, Rocket's own sizes (a worker per core, four
/// connections per worker) served about a fifth fewer session-path requests.
#[test]
fn threads_and_connections_are_sized_for_the_cores_the_app_shares_with_postgresql() {
    let cores = std::thread::available_parallelism().unwrap().get();
    let figment = secure_sessions::app::figment();
    assert_eq!(
        figment.extract_inner::<usize>("workers").unwrap(),
        (cores / 2).max(1)
    );
    assert_eq!(
        figment
            .extract_inner::<usize>("databases.main.max_connections")
            .unwrap(),
        2 * cores
    );
}

/// The sizes reach the running binary: Rocket's `#[launch]` would build the async runtime from
/// its own configuration sources, which never see them.
#[rocket::async_test]
async fn the_binary_runs_half_the_cores_in_async_workers() {
    let app = TestApp::new().await;
    let binary = RunningApp::start(|command| {
        command
            .env("DATABASE_URL", &app.database_url)
            .env("ROCKET_SECRET_KEY", random_secret_key());
    })
    .await;
    let cores = std::thread::available_parallelism().unwrap().get();
    let expected = format!("async worker threads: {}", (cores / 2).max(1));
    // Logged at liftoff, a moment after the port opens.
    for _ in 0..50 {
        if binary.log().contains("async worker threads:") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(binary.log().contains(&expected), "{}", binary.log());
}

/// A setting changed alone starts, as a person tries one with the checkout's Rocket.toml
/// (`ROCKET_SESSIONS='{absolute_timeout_secs=4}' scripts/run`): the defaults that must fit inside it (the bound cookie's
/// lifetime, the touch interval, the idle warning, the access token's lifetime) follow it.
#[rocket::async_test]
async fn a_timeout_shortened_alone_starts_and_serves() {
    let app = TestApp::new().await;
    for sessions in [
        "{absolute_timeout_secs=4}",
        "{idle_timeout_secs=30}",
        "{admin_idle_timeout_secs=5}",
        "{refresh_token_secs=600}",
    ] {
        let binary = RunningApp::start(with_sessions(&app, sessions)).await;
        let page = RawRequest::get("/login").send(binary.port).await;
        assert_eq!(
            page.status,
            200,
            "{sessions}: {}\n{}",
            page.head,
            binary.log()
        );
    }
}

/// A number outside its range stops the launch with the setting's name and range, instead of
/// breaking something later (the reaper's date arithmetic, a zero-length interval).
#[rocket::async_test]
async fn a_setting_out_of_its_range_stops_the_launch_by_name() {
    let app = TestApp::new().await;
    let log = RunningApp::refused(with_sessions(&app, "{event_retention_days=4294967295}")).await;
    assert!(
        log.contains(
            "event_retention_days = 4294967295 is out of range: it must be between 1 and 3650"
        ),
        "{log}"
    );
    let log = RunningApp::refused(with_sessions(&app, "{reaper_interval_secs=0}")).await;
    assert!(
        log.contains("reaper_interval_secs = 0 is out of range: it must be between 1 and 86400"),
        "{log}"
    );
    let log = RunningApp::refused(with_sessions(
        &app,
        "{absolute_timeout_secs=4,bound_cookie_secs=600}",
    ))
    .await;
    assert!(
        log.contains("bound_cookie_secs = 600 must be at most absolute_timeout_secs (4)"),
        "{log}"
    );
}
