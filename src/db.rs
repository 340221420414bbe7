//! The core's connection pool plugged into Rocket through `rocket_db_pools`, the count of
//! requests in flight that lets a shutdown drain them, and the migrations stage.

use std::ops::Deref;
use std::time::Duration;

use rocket::fairing::{self, AdHoc, Fairing, Info, Kind};
use rocket::figment::Figment;
use rocket::{Build, Data, Orbit, Request, Response, Rocket};
use rocket_db_pools::Database;

pub use secure_sessions_core::db::{
    DEFAULT_ACQUIRE_TIMEOUT_MS, DEFAULT_MAX_LIFETIME_SECS, MIGRATOR, PgPool, PoolError,
    PoolSettings, PooledConnection,
};

/// The app's database. Handlers take a connection from it through `RequestContext::connection`
/// when they need one, not as a `Connection<Db>` guard: Rocket resolves request guards before it
/// reads the body, so a slow client would hold a connection while it sends, and a guard's
/// connection would stay out while argon2 runs.
#[derive(Database)]
#[database("main")]
pub struct Db(RocketPool);

/// The core's pool as `rocket_db_pools` wants it: a type of this crate, so that it may carry
/// that crate's trait.
pub struct RocketPool(PgPool);

impl Deref for RocketPool {
    type Target = PgPool;

    fn deref(&self) -> &PgPool {
        &self.0
    }
}

/// A setting of `databases.main` that `rocket_db_pools` does not know, or `default`.
fn extra_setting<T: serde::de::DeserializeOwned>(
    figment: &Figment,
    key: &str,
    default: T,
) -> Result<T, PoolError> {
    if !figment.contains(key) {
        return Ok(default);
    }
    figment
        .extract_inner(key)
        .map_err(|error| PoolError::Configuration(error.to_string()))
}

#[rocket::async_trait]
impl rocket_db_pools::Pool for RocketPool {
    type Connection = PooledConnection;
    type Error = PoolError;

    /// `figment` is the `databases.main` table: `rocket_db_pools`' keys, and `urls`,
    /// `acquire_timeout_ms` and `max_lifetime_secs`.
    async fn init(figment: &Figment) -> Result<Self, Self::Error> {
        // `rocket_db_pools` requires `url`, which a configuration with `urls` may leave out.
        let config: rocket_db_pools::Config = figment
            .clone()
            .join(("url", ""))
            .extract()
            .map_err(|error| PoolError::Configuration(error.to_string()))?;
        let acquire_timeout_ms =
            extra_setting(figment, "acquire_timeout_ms", DEFAULT_ACQUIRE_TIMEOUT_MS)?;
        let max_lifetime_secs =
            extra_setting(figment, "max_lifetime_secs", DEFAULT_MAX_LIFETIME_SECS)?;
        if acquire_timeout_ms == 0 || max_lifetime_secs == 0 {
            return Err(PoolError::Configuration(
                "acquire_timeout_ms and max_lifetime_secs must be positive".into(),
            ));
        }
        // `urls`, when given, replaces `url`: the same database on several servers, the
        // primary first, its standbys after it.
        let single = (!config.url.is_empty()).then(|| config.url.clone());
        let urls: Vec<String> = extra_setting(figment, "urls", single.into_iter().collect())?;
        let settings = PoolSettings {
            urls,
            min_connections: usize::try_from(config.min_connections.unwrap_or(0))
                .unwrap_or(usize::MAX),
            max_connections: config.max_connections,
            connect_timeout: Duration::from_secs(config.connect_timeout),
            acquire_timeout: Duration::from_millis(acquire_timeout_ms),
            idle_timeout: config.idle_timeout.map(Duration::from_secs),
            max_lifetime: Duration::from_secs(max_lifetime_secs),
        };
        PgPool::connect(settings).await.map(RocketPool)
    }

    async fn get(&self) -> Result<Self::Connection, Self::Error> {
        self.acquire().await
    }

    /// `rocket_db_pools` calls this as soon as a shutdown is requested, while Rocket still
    /// finishes the requests in flight: they are let through first.
    async fn close(&self) {
        self.close_when_drained().await;
    }
}

impl Db {
    pub fn pool(&self) -> &PgPool {
        &self.0
    }

    /// One pooled connection, or why there is none (the web layer answers 503).
    pub async fn connection(&self) -> Result<PooledConnection, PoolError> {
        self.pool().acquire().await
    }
}

/// Counts the requests in flight, so that a shutdown closes the pool only once they are answered
/// (`PgPool::close_when_drained`), and tells the pool how long Rocket lets them run.
pub struct RequestsInFlight;

#[rocket::async_trait]
impl Fairing for RequestsInFlight {
    fn info(&self) -> Info {
        Info {
            name: "Requests in flight",
            kind: Kind::Liftoff | Kind::Request | Kind::Response,
        }
    }

    async fn on_liftoff(&self, rocket: &Rocket<Orbit>) {
        if let Some(db) = Db::fetch(rocket) {
            let grace = u64::from(rocket.config().shutdown.grace);
            db.pool().set_drain_limit(Duration::from_secs(grace));
        }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        if let Some(db) = Db::fetch(request.rocket()) {
            db.pool().request_started();
        }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, _: &mut Response<'r>) {
        if let Some(db) = Db::fetch(request.rocket()) {
            db.pool().request_finished();
        }
    }
}

/// Brings the schema up to date before the first request.
pub fn migrations_stage() -> AdHoc {
    AdHoc::try_on_ignite("Database migrations", |rocket: Rocket<Build>| async move {
        let Some(db) = Db::fetch(&rocket) else {
            return fairing::Result::Err(rocket);
        };
        match secure_sessions_core::db::migrate(db.pool()).await {
            Ok(()) => fairing::Result::Ok(rocket),
            Err(error) => {
                rocket::error!("database migrations failed: {error}");
                fairing::Result::Err(rocket)
            }
        }
    })
}
