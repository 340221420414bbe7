//! The background reaper: deletes session rows one grace period after their absolute expiry,
//! throttle counts (sign-in failures, re-checks, sign-ups) once they have left the throttle window,
//! and security events past their retention (cutting their addresses to a network prefix first).
//! DBSC refresh challenges are not stored (`dbsc::RefreshChallenge`): nothing to reap.

use rocket::fairing::AdHoc;
use sqlx::PgConnection;
use tokio::time::{Duration, MissedTickBehavior, interval};

use super::store;
use crate::clock::AppClock;
use crate::config::SessionConfig;
use crate::db::{Db, PgPool};
use crate::events;
use crate::passkeys;
use crate::throttle;
use rocket_db_pools::Database;

/// Deletes every row past `expires_at + tombstone_grace`, in batches that each commit on their
/// own, so requests never wait behind one long delete. Returns how many rows went.
pub async fn reap_once(
    conn: &mut PgConnection,
    config: &SessionConfig,
    clock: &AppClock,
) -> sqlx::Result<u64> {
    let cutoff = clock.now() - config.tombstone_grace();
    let batch = i64::from(config.reaper_batch_size);
    let mut total = 0;
    loop {
        let deleted = store::reap(conn, cutoff, batch).await?;
        total += deleted;
        if deleted < batch.unsigned_abs() {
            return Ok(total);
        }
    }
}

/// What one retention pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Events older than `event_retention_days`, deleted.
    pub deleted: u64,
    /// Events older than `address_retention_days` whose address was cut to its network.
    pub cut: u64,
}

/// Deletes security events older than `event_retention_days` and cuts the addresses of those
/// older than `address_retention_days` to their network prefix, in batches of
/// `reaper_batch_size` that each commit on their own, so requests never wait behind one long
/// statement and any number of instances can run it side by side.
pub async fn expire_events(
    conn: &mut PgConnection,
    config: &SessionConfig,
    clock: &AppClock,
) -> sqlx::Result<Retention> {
    let now = clock.now();
    let batch = i64::from(config.reaper_batch_size);
    let mut done = Retention::default();
    // Deleted first: no work is spent cutting what is about to go.
    loop {
        let deleted =
            events::delete_older_than(conn, now - config.event_retention(), batch).await?;
        done.deleted += deleted;
        if deleted < batch.unsigned_abs() {
            break;
        }
    }
    loop {
        let cut =
            events::cut_addresses_older_than(conn, now - config.address_retention(), batch).await?;
        done.cut += cut;
        if cut < batch.unsigned_abs() {
            return Ok(done);
        }
    }
}

/// One round of every clean-up the reaper owns. Each part logs its own failure and the others
/// still run; the next round tries again.
pub async fn round(pool: &PgPool, config: &SessionConfig, clock: &AppClock) {
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(error) => {
            rocket::warn!("reaper could not reach the database (will retry): {error}");
            return;
        }
    };
    match reap_once(&mut conn, config, clock).await {
        Ok(0) => {}
        Ok(deleted) => rocket::info!("reaper deleted {deleted} expired sessions"),
        Err(error) => rocket::warn!("reaper failed (will retry): {error}"),
    }
    if let Err(error) = expire_events(&mut conn, config, clock).await {
        rocket::warn!("reaper could not expire old security events (will retry): {error}");
    }
    if let Err(error) = throttle::forget_old(&mut conn, config, clock.now()).await {
        rocket::warn!("reaper could not delete old sign-in failures (will retry): {error}");
    }
    if let Err(error) = expire_passkey_ceremonies(&mut conn, config, clock).await {
        rocket::warn!("reaper could not delete expired passkey ceremonies (will retry): {error}");
    }
}

/// Deletes passkey ceremonies past their expiry (no one can finish them any more), in batches
/// that each commit on their own. Returns how many went.
pub async fn expire_passkey_ceremonies(
    conn: &mut PgConnection,
    config: &SessionConfig,
    clock: &AppClock,
) -> sqlx::Result<u64> {
    let batch = i64::from(config.reaper_batch_size);
    let mut total = 0;
    loop {
        let deleted = passkeys::store::reap_ceremonies(conn, clock.now(), batch).await?;
        total += deleted;
        if deleted < batch.unsigned_abs() {
            return Ok(total);
        }
    }
}

/// Runs a `round` every `reaper_interval_secs` until the app shuts down. Safe with any number of
/// instances: each skips the rows another is deleting. Each round is a task of its own, so even
/// a panic inside one is logged and the next round still comes.
pub fn stage() -> AdHoc {
    AdHoc::on_liftoff("Session reaper", |rocket| {
        Box::pin(async move {
            let (Some(db), Some(config), Some(clock)) = (
                Db::fetch(rocket),
                rocket.state::<SessionConfig>(),
                rocket.state::<AppClock>(),
            ) else {
                return;
            };
            let (pool, config, clock) = (db.pool().clone(), config.clone(), clock.clone());
            let shutdown = rocket.shutdown();
            tokio::spawn(async move {
                let mut ticks = interval(Duration::from_secs(config.reaper_interval_secs.into()));
                ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
                tokio::pin!(shutdown);
                loop {
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = ticks.tick() => {
                            let (pool, config, clock) = (pool.clone(), config.clone(), clock.clone());
                            let this_round = tokio::spawn(async move { round(&pool, &config, &clock).await });
                            if let Err(error) = this_round.await {
                                rocket::error!("a reaper round failed (the next one will run): {error}");
                            }
                        }
                    }
                }
            });
        })
    })
}
