//! The PostgreSQL pool (rocket_db_pools over sqlx 0.8) and the migrations stage.

use rocket::fairing::{self, AdHoc};
use rocket::figment::Figment;
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

/// rocket_db_pools' own sqlx feature pins sqlx 0.7 (RUSTSEC-2024-0363); this newtype plugs
/// current sqlx into its `Pool` extension point instead.
#[derive(Clone)]
pub struct PgPool(pub sqlx::PgPool);

#[rocket::async_trait]
impl rocket_db_pools::Pool for PgPool {
    type Connection = PoolConnection<Postgres>;
    type Error = sqlx::Error;

    async fn init(figment: &Figment) -> Result<Self, Self::Error> {
        let config: rocket_db_pools::Config =
            figment.extract().map_err(|e| sqlx::Error::Configuration(e.into()))?;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections as u32)
            .min_connections(config.min_connections.unwrap_or(0))
            .acquire_timeout(Duration::from_secs(config.connect_timeout))
            .idle_timeout(config.idle_timeout.map(Duration::from_secs))
            .connect(&config.url)
            .await?;
        Ok(PgPool(pool))
    }

    async fn get(&self) -> Result<Self::Connection, Self::Error> {
        self.0.acquire().await
    }

    async fn close(&self) {
        self.0.close().await;
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
