//! Test mode: the `/__test/` API that end-to-end suites drive (`routes`), and everything that
//! guards it. Off by default; refused in production unless asked for twice; loud; loopback
//! clients only. The contract outside suites rely on is docs/test-mode.md.

use rocket::fairing::AdHoc;
use rocket::figment::{Figment, Profile};
use rocket::request::{FromRequest, Outcome};
use rocket::{Config, Request};
use sqlx::PgConnection;
use std::net::IpAddr;

use crate::clock::{AppClock, ShiftedClock};
use crate::config::SessionConfig;

mod routes;

/// Where the API is mounted. Nothing else lives under it, so with test mode off it is a 404.
pub const BASE: &str = "/__test";

/// Printed to standard error at start, whatever the log level: test mode must never go unnoticed.
const WARNING: &str = "\
WARNING: TEST MODE IS ON (sessions.test_hooks = true).
WARNING: /__test/ lets any program on this machine move the app's clock, create users with any
WARNING: role, sign sessions out and ERASE EVERY ACCOUNT AND SESSION. Never run this in production.";

/// The clock the app should run on: in test mode, real time plus an offset the suite can grow;
/// otherwise the system clock, which nothing can move. A malformed setting counts as off here:
/// the settings stage refuses to launch with it anyway.
pub fn clock_for(figment: &Figment) -> AppClock {
    if figment
        .extract_inner::<bool>("sessions.test_hooks")
        .unwrap_or(false)
    {
        AppClock::movable(ShiftedClock::new())
    } else {
        AppClock::system()
    }
}

/// Mounts `/__test/` when `test_hooks` is on and allowed here; stops the launch when it is on
/// but not allowed. Runs after the settings stage, which manages `SessionConfig`.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Test hooks", |rocket| async move {
        // Without settings the settings stage has already failed the launch.
        let Some(config) = rocket.state::<SessionConfig>() else {
            return Ok(rocket);
        };
        if !config.test_hooks {
            return Ok(rocket);
        }
        if let Some(why) = refusal(
            rocket.figment().profile(),
            cfg!(debug_assertions),
            config.test_hooks_in_release,
        ) {
            rocket::error!("{why}");
            return Err(rocket);
        }
        if !rocket.state::<AppClock>().is_some_and(AppClock::is_movable) {
            // A suite that cannot move the clock would wait out real timeouts: say so at once.
            rocket::error!("test_hooks needs a clock that can move (app::run() builds one)");
            return Err(rocket);
        }
        eprintln!("{WARNING}");
        Ok(rocket.mount(BASE, routes::routes()))
    })
}

/// Why test mode must not start, if it must not. Production is the release profile (what an
/// operator selects) *or* a release build (what ships, whatever profile it is started in):
/// either needs the explicit second switch.
fn refusal(profile: &Profile, debug_build: bool, allowed_in_release: bool) -> Option<String> {
    let release_profile = *profile == Config::RELEASE_PROFILE;
    if allowed_in_release || (debug_build && !release_profile) {
        return None;
    }
    let what = if release_profile {
        "the release profile"
    } else {
        "a release build"
    };
    Some(format!(
        "test_hooks is on in {what}: refusing to start. /__test/ can erase every account; if this \
         really is a test deployment, also set test_hooks_in_release = true"
    ))
}

/// Proof that a request comes straight from this machine, so `/__test/` may serve it:
/// - its socket peer is a loopback address (never an address a header claims);
/// - it carries no header that names another client: the usual proxy headers, or the
///   `ip_header` Rocket is configured to trust. Behind a reverse proxy on this machine every
///   peer is loopback, and only such a header tells the real client apart;
/// - its `Host` names the loopback, so a web page whose name an attacker re-pointed at
///   127.0.0.1 (DNS rebinding) cannot reach the API from a developer's browser.
///
/// Cross-site forms are kept away by the JSON bodies every route requires. Any other request
/// gets the same 404 as with test mode off.
pub struct LoopbackClient(());

/// Headers a proxy adds to name the client it forwards for.
const PROXY_HEADERS: [&str; 3] = ["Forwarded", "X-Forwarded-For", "X-Real-IP"];

#[rocket::async_trait]
impl<'r> FromRequest<'r> for LoopbackClient {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let peer = request.remote().map(|address| address.ip());
        let loopback_peer = peer.is_some_and(is_loopback);
        let trusted_header = request
            .rocket()
            .config()
            .ip_header
            .as_deref()
            .map(rocket::http::uncased::UncasedStr::as_str);
        let forwarded = PROXY_HEADERS
            .into_iter()
            .chain(trusted_header)
            .any(|name| request.headers().contains(name));
        let loopback_host = request
            .host()
            .is_some_and(|host| is_loopback_name(host.domain().as_str()));
        if loopback_peer && !forwarded && loopback_host {
            return Outcome::Success(LoopbackClient(()));
        }
        let peer = peer.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
        rocket::warn!(
            "refused {} {} from {peer}: test hooks serve direct loopback clients only",
            request.method(),
            request.uri().path()
        );
        Outcome::Error((rocket::http::Status::NotFound, ()))
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// `localhost`, `127.0.0.1` (any of 127.0.0.0/8) or `[::1]`.
fn is_loopback_name(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(is_loopback)
}

/// Empties every table but the migrations' record, in one statement: accounts, sessions,
/// tombstones, refresh tokens, security activity and throttle counts. The list is read from the
/// catalog, so a table a later migration adds is emptied too.
pub async fn erase_all_data(conn: &mut PgConnection) -> sqlx::Result<()> {
    let tables = sqlx::query_scalar!(
        r#"SELECT format('%I.%I', schemaname, tablename) AS "table!" FROM pg_tables
           WHERE schemaname = current_schema() AND tablename <> '_sqlx_migrations'
           ORDER BY tablename"#,
    )
    .fetch_all(&mut *conn)
    .await?;
    if tables.is_empty() {
        return Ok(());
    }
    // Built at run time: the table list is only known then. The names come quoted from
    // PostgreSQL's own `format('%I')`, not from the request.
    sqlx::query(&format!(
        "TRUNCATE {} RESTART IDENTITY CASCADE",
        tables.join(", ")
    ))
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_mode_needs_the_second_switch_in_the_release_profile_or_a_release_build() {
        let release = Config::RELEASE_PROFILE;
        let debug = Config::DEBUG_PROFILE;
        let test = Profile::new("test");
        // (profile, debug build, test_hooks_in_release) -> allowed
        let cases = [
            (&debug, true, false, true),
            (&test, true, false, true),
            (&release, true, false, false),
            (&release, true, true, true),
            (&debug, false, false, false),
            (&test, false, false, false),
            (&release, false, false, false),
            (&test, false, true, true),
            (&release, false, true, true),
        ];
        for (profile, debug_build, allowed, expected) in cases {
            let refused = refusal(profile, debug_build, allowed);
            assert_eq!(
                refused.is_none(),
                expected,
                "{profile} debug_build={debug_build} allowed={allowed}: {refused:?}"
            );
        }
        let why = refusal(&release, true, false).expect("refused");
        assert!(
            why.contains("release profile") && why.contains("test_hooks_in_release"),
            "{why}"
        );
    }

    #[test]
    fn only_loopback_names_count_as_a_loopback_host() {
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
            "::1",
        ] {
            assert!(is_loopback_name(host), "{host}");
        }
        for host in [
            "",
            "example.com",
            "localhost.example.com",
            "10.0.0.1",
            "0.0.0.0",
            "[::]",
            "127.0.0.1.nip.io",
        ] {
            assert!(!is_loopback_name(host), "{host}");
        }
    }
}
