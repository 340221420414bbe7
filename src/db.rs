//! The PostgreSQL pool (rocket_db_pools over sqlx 0.8) and the migrations stage.

use rocket::fairing::{self, AdHoc};
use rocket::figment::Figment;
use rocket::tokio::time::Instant;
use rocket::{Build, Rocket};
use rocket_db_pools::Database;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPoolOptions;
use sqlx::Postgres;
use std::time::Duration;

use crate::error::AppError;

/// The app's database: `Connection<Db>` in a handler is one pooled connection.
#[derive(Database)]
#[database("main")]
pub struct Db(PgPool);

/// How long a request waits for a pooled connection (`databases.main.acquire_timeout_ms`)
/// before it is answered 503. Short, because while the database is down every request waits
/// this long; long enough for a burst of requests to queue for a connection.
pub const DEFAULT_ACQUIRE_TIMEOUT_MS: u64 = 1000;

/// rocket_db_pools' own sqlx feature pins sqlx 0.7 (RUSTSEC-2024-0363); this newtype plugs
/// current sqlx into its `Pool` extension point instead.
#[derive(Clone)]
pub struct PgPool(pub sqlx::PgPool);

#[rocket::async_trait]
impl rocket_db_pools::Pool for PgPool {
    type Connection = PoolConnection<Postgres>;
    type Error = sqlx::Error;

    /// `figment` is the `databases.main` table: rocket_db_pools' keys, and `acquire_timeout_ms`.
    async fn init(figment: &Figment) -> Result<Self, Self::Error> {
        let configuration = |error: rocket::figment::Error| sqlx::Error::Configuration(error.into());
        let config: rocket_db_pools::Config = figment.extract().map_err(configuration)?;
        let acquire_timeout_ms: u64 = if figment.contains("acquire_timeout_ms") {
            figment.extract_inner("acquire_timeout_ms").map_err(configuration)?
        } else {
            DEFAULT_ACQUIRE_TIMEOUT_MS
        };
        if acquire_timeout_ms == 0 {
            return Err(sqlx::Error::Configuration("acquire_timeout_ms must be positive".into()));
        }
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections as u32)
            .min_connections(config.min_connections.unwrap_or(0))
            .acquire_timeout(Duration::from_millis(acquire_timeout_ms))
            .idle_timeout(config.idle_timeout.map(Duration::from_secs))
            .connect_lazy(&config.url)?;
        wait_for_database(&pool, Duration::from_secs(config.connect_timeout)).await?;
        Ok(PgPool(pool))
    }

    async fn get(&self) -> Result<Self::Connection, Self::Error> {
        self.0.acquire().await
    }

    async fn close(&self) {
        self.0.close().await;
    }
}

/// At start the database may still be coming up (a restart, a failover): keep trying for
/// `connect_timeout` before giving up, however short the per-request acquire timeout is.
async fn wait_for_database(pool: &sqlx::PgPool, connect_timeout: Duration) -> Result<(), sqlx::Error> {
    let deadline = Instant::now() + connect_timeout;
    loop {
        match pool.acquire().await {
            Ok(_) => return Ok(()),
            // Refused or unanswered for a whole acquire timeout: it may still be starting.
            Err(sqlx::Error::PoolTimedOut) if Instant::now() < deadline => {}
            // Anything else (a wrong password, no such database) will not pass by waiting.
            Err(error) => return Err(error),
        }
    }
}

impl Db {
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.0.0
    }

    /// One pooled connection. Not getting one means the database is unreachable: a 503, not a bug.
    pub async fn connection(&self) -> Result<PoolConnection<Postgres>, AppError> {
        self.pool().acquire().await.map_err(AppError::DatabaseUnavailable)
    }
}

/// The schema, embedded at compile time (build.rs reruns the build when migrations/ changes).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Brings the schema up to date before the first request.
pub fn migrations_stage() -> AdHoc {
    AdHoc::try_on_ignite("Database migrations", |rocket: Rocket<Build>| async move {
        let Some(db) = Db::fetch(&rocket) else {
            return fairing::Result::Err(rocket);
        };
        match MIGRATOR.run(db.pool()).await {
            Ok(()) => fairing::Result::Ok(rocket),
            Err(error) => {
                rocket::error!("database migrations failed: {error}");
                fairing::Result::Err(rocket)
            }
        }
    })
}
