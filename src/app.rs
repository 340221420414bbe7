//! The one place that assembles the app: configuration, database, stages, routes, catchers.

use rocket::config::LogLevel;
use rocket::data::ToByteUnit;
use rocket::fairing::AdHoc;
use rocket::figment::providers::{Env, Format, Serialized, Toml};
use rocket::figment::{Figment, Profile};
use rocket::shield::Shield;
use rocket::{Build, Rocket};
use rocket_db_pools::Database;
use std::process::ExitCode;
use std::time::Duration;

use crate::clock::AppClock;
use crate::config::SessionConfig;
use crate::db::{self, Db};
use crate::headers::SecurityHeaders;
use crate::passkeys::RelyingParty;
use crate::users::PasswordHasher;
use crate::{demo, routes, session, test_mode};

/// The configuration, each layer over the one before: Rocket's defaults, this app's safe
/// defaults and its sizes for this machine, Rocket.toml, `ROCKET_*` variables, and
/// `DATABASE_URL` when set. (Rocket's own `Config::figment()` with the app's defaults slotted in
/// above Rocket's.)
pub fn figment() -> Figment {
    let defaults =
        sized_for_this_machine(with_safe_defaults(Figment::from(rocket::Config::default())));
    let figment = defaults
        .merge(Toml::file(Env::var_or("ROCKET_CONFIG", "Rocket.toml")).nested())
        .merge(Env::prefixed("ROCKET_").ignore(&["PROFILE"]).global())
        .select(Profile::from_env_or(
            "ROCKET_PROFILE",
            rocket::Config::DEFAULT_PROFILE,
        ));
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => figment.merge(("databases.main.url", url)),
        _ => figment,
    }
}

/// Where Rocket's defaults are unsafe for this app, the safe value, in code: the binary is safe
/// with no Rocket.toml at all, which documents these and may override them. (The other
/// `[sessions]` defaults live in `SessionConfig::default()`, the pool's in `db.rs`.)
fn with_safe_defaults(rocket_defaults: Figment) -> Figment {
    rocket_defaults
        // Rocket trusts `X-Real-IP` by default: any client could pick the address that the
        // throttle counts and the security log records. Behind a proxy, name its header.
        .merge(("ip_header", false))
        // Rocket reads JSON bodies up to 1 MiB; the largest this app needs is a few hundred bytes.
        .merge(("limits.json", 16.kibibytes()))
        .merge(("limits.form", 64.kibibytes()))
        // No `Server: Rocket` banner telling a scanner what to look up.
        .merge(("ident", false))
        // The release profile is served behind TLS: browsers are told to keep to HTTPS.
        .merge(Serialized::default("sessions.hsts", true).profile("release"))
}

/// Threads and connections for a machine whose cores the app shares with PostgreSQL (Rocket's
/// defaults assume it has them to itself). Half the cores run async workers: Rocket 0.5 runs each
/// request in a task of its own beside its connection's, so more workers mostly add hand-offs
/// between threads. Twice the cores in connections: PostgreSQL cannot run more statements at
/// once, and more backends only add context switches. Measured in docs/benchmarks.md; give the
/// app `workers` = cores when the database has a machine of its own.
fn sized_for_this_machine(defaults: Figment) -> Figment {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    defaults
        .merge(("workers", (cores / 2).max(1)))
        .merge(("databases.main.max_connections", 2 * cores))
}

/// Runs the app on the system clock (in test mode, on one the suite can move) until it shuts
/// down: `main`. Rocket's `#[launch]` would size the async runtime from Rocket's own
/// configuration sources, which never see `sized_for_this_machine`; so the runtime is built here,
/// as Rocket builds it, from this app's figment; one worker gets tokio's single-threaded
/// scheduler, which has no hand-offs between threads to pay for (docs/benchmarks.md). A
/// configuration error is Rocket's to report, at launch.
pub fn run() -> ExitCode {
    let figment = figment();
    let setting = |key: &str, default| figment.extract_inner(key).unwrap_or(default);
    let workers = setting("workers", 1).max(1);
    let mut builder = if workers == 1 {
        // The worker is `main`'s own thread, inside `block_on`.
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    let runtime = builder
        .thread_name("rocket-worker-thread")
        .max_blocking_threads(setting("max_blocking", 512).max(1))
        .enable_all()
        .build()
        .expect("the operating system gives the async runtime its threads");
    let force_end = figment.extract_inner("shutdown.force").unwrap_or(true);
    let clock = test_mode::clock_for(&figment);
    // Rocket's launch banner shows the configured `workers`; this is the runtime's own count.
    let running_workers = runtime.metrics().num_workers();
    let app = build(figment, clock).attach(AdHoc::on_liftoff("Async runtime", move |_| {
        Box::pin(async move { rocket::info!("async worker threads: {running_workers}") })
    }));
    let launched = runtime.block_on(app.launch());
    if force_end {
        runtime.shutdown_timeout(Duration::from_millis(500));
    }
    match launched {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            rocket::error!("{}", error.pretty_print());
            ExitCode::FAILURE
        }
    }
}

/// The app on any configuration and clock: tests pass their own of both.
pub fn build(figment: Figment, clock: AppClock) -> Rocket<Build> {
    rocket::custom(without_header_dumps(figment))
        .manage(clock)
        .attach(settings_stage())
        .attach(hashing_shutdown())
        .attach(test_mode::stage())
        .attach(Db::init())
        .attach(db::RequestsInFlight)
        .attach(db::migrations_stage())
        .attach(demo::stage())
        .attach(session::reaper::stage())
        // Rocket's default Shield would add a second, weaker frame policy; ours owns every header.
        .attach(Shield::new())
        .attach(SecurityHeaders)
        .attach(routes::dbsc::offer_stage())
        .mount("/", routes::routes())
        .register("/", routes::catchers())
}

/// Rocket's `debug` log level prints every request's and response's headers, session cookies
/// and `Authorization` included: tokens would reach the log. It is lowered to `normal`.
fn without_header_dumps(figment: Figment) -> Figment {
    match figment.extract_inner::<LogLevel>("log_level") {
        Ok(LogLevel::Debug) => {
            eprintln!(
                "log_level \"debug\" would log request headers (session cookies, bearer tokens): using \"normal\""
            );
            figment.merge(("log_level", LogLevel::Normal))
        }
        _ => figment,
    }
}

/// Reads and checks the `sessions` table once; a wrong setting stops the launch with a message.
/// Without the table, every setting has its default.
fn settings_stage() -> AdHoc {
    AdHoc::try_on_ignite("Session settings", |rocket| async move {
        let figment = rocket.figment();
        let config = if figment.contains("sessions") {
            figment.extract_inner::<SessionConfig>("sessions")
        } else {
            Ok(SessionConfig::default())
        };
        match config
            .map_err(|e| e.to_string())
            .and_then(|c| c.validate().map(|()| c))
        {
            Ok(config) => match start_hasher(&config).await {
                Ok(hasher) => {
                    let rocket_config = rocket::Config::from(rocket.figment());
                    let (address, port) = (rocket_config.address, rocket_config.port);
                    match RelyingParty::new(&config, address, port) {
                        Ok(relying_party) => {
                            Ok(rocket.manage(config).manage(hasher).manage(relying_party))
                        }
                        Err(error) => {
                            rocket::error!("invalid [sessions] settings: {error}");
                            Err(rocket)
                        }
                    }
                }
                Err(error) => {
                    rocket::error!("password hashing could not start: {error}");
                    Err(rocket)
                }
            },
            Err(error) => {
                rocket::error!("invalid [sessions] settings: {error}");
                Err(rocket)
            }
        }
    })
}

/// At shutdown, requests still waiting for a password hash stop waiting a moment before Rocket's
/// grace period ends: they are answered 503 while their connections can still carry it (after
/// `grace`, Rocket closes them), and the process exits in time however slow hashing has become.
fn hashing_shutdown() -> AdHoc {
    AdHoc::on_shutdown("Password hashing", |rocket| {
        Box::pin(async move {
            if let Some(hasher) = rocket.state::<PasswordHasher>() {
                let grace = Duration::from_secs(u64::from(rocket.config().shutdown.grace));
                // A second to write the answers, or half the grace when it is shorter than two.
                hasher.stop_waiting_after(
                    grace.saturating_sub(Duration::from_secs(1)).max(grace / 2),
                );
            }
        })
    })
}

/// Starts the hashing threads, waiting for them to be ready off the async thread.
async fn start_hasher(config: &SessionConfig) -> std::io::Result<PasswordHasher> {
    let settings = config.hashing_settings();
    let admission = config.hashing_admission();
    tokio::task::spawn_blocking(move || PasswordHasher::start(settings, admission))
        .await
        .map_err(std::io::Error::other)?
}
