//! The one place that assembles the app: configuration, database, stages, routes, catchers.

use rocket::fairing::AdHoc;
use rocket::config::LogLevel;
use rocket::figment::Figment;
use rocket::shield::Shield;
use rocket::{Build, Rocket};
use rocket_db_pools::Database;

use crate::clock::AppClock;
use crate::config::SessionConfig;
use crate::db::{self, Db};
use crate::headers::SecurityHeaders;
use crate::users::PasswordHasher;
use crate::{demo, routes, session, test_hooks};

/// Rocket's configuration (Rocket.toml, then `ROCKET_*` variables), with `DATABASE_URL`, when
/// set, as the database to use.
pub fn figment() -> Figment {
    let figment = rocket::Config::figment();
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => figment.merge(("databases.main.url", url)),
        _ => figment,
    }
}

/// The app on the system clock (in test mode, on one the suite can move): what `main` launches.
pub fn rocket() -> Rocket<Build> {
    let figment = figment();
    let clock = test_hooks::clock_for(&figment);
    build(figment, clock)
}

/// The app on any configuration and clock: tests pass their own of both.
pub fn build(figment: Figment, clock: AppClock) -> Rocket<Build> {
    rocket::custom(without_header_dumps(figment))
        .manage(clock)
        .attach(settings_stage())
        .attach(test_hooks::stage())
        .attach(Db::init())
        .attach(db::migrations_stage())
        .attach(demo::stage())
        .attach(session::reaper::stage())
        // Rocket's default Shield would add a second, weaker frame policy; ours owns every header.
        .attach(Shield::new())
        .attach(SecurityHeaders)
        .mount("/", routes::routes())
        .register("/", routes::catchers())
}

/// Rocket's `debug` log level prints every request's and response's headers, session cookies
/// and `Authorization` included: tokens would reach the log. It is lowered to `normal`.
fn without_header_dumps(figment: Figment) -> Figment {
    match figment.extract_inner::<LogLevel>("log_level") {
        Ok(LogLevel::Debug) => {
            eprintln!("log_level \"debug\" would log request headers (session cookies, bearer tokens): using \"normal\"");
            figment.merge(("log_level", LogLevel::Normal))
        }
        _ => figment,
    }
}

/// Reads and checks the `sessions` table once; a wrong setting stops the launch with a message.
fn settings_stage() -> AdHoc {
    AdHoc::try_on_ignite("Session settings", |rocket| async move {
        let config = rocket.figment().extract_inner::<SessionConfig>("sessions");
        match config.map_err(|e| e.to_string()).and_then(|c| c.validate().map(|()| c)) {
            Ok(config) => {
                let hasher = PasswordHasher::new(config.max_concurrent_hashes as usize);
                Ok(rocket.manage(config).manage(hasher))
            }
            Err(error) => {
                rocket::error!("invalid [sessions] settings: {error}");
                Err(rocket)
            }
        }
    })
}
