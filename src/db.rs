//! The PostgreSQL connection pool (plugged into `rocket_db_pools`) and the migrations stage.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rocket::fairing::{self, AdHoc, Fairing, Info, Kind};
use rocket::figment::Figment;
use rocket::{Build, Data, Orbit, Request, Response, Rocket};
use rocket_db_pools::Database;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::runtime::Handle;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep, timeout};

use crate::error::AppError;

/// The app's database. Handlers take a connection from it through `RequestContext::connection`
/// when they need one, not as a `Connection<Db>` guard: Rocket resolves request guards before it
/// reads the body, so a slow client would hold a connection while it sends, and a guard's
/// connection would stay out while argon2 runs.
#[derive(Database)]
#[database("main")]
pub struct Db(PgPool);

/// How long a request waits for a pooled connection (`databases.main.acquire_timeout_ms`)
/// before it is answered 503. Short, because while the database is down every request waits
/// this long; long enough for a burst of requests to queue for a connection.
pub const DEFAULT_ACQUIRE_TIMEOUT_MS: u64 = 1000;

/// How long closing the pool waits for requests in flight before Rocket has lifted off and
/// said its own `shutdown.grace` (2 s by default).
const DEFAULT_DRAIN_LIMIT_SECS: u64 = 2;

/// A connection that waited in the pool longer than this is pinged before it is handed out: the
/// server (or a firewall on the way) may have closed it meanwhile. Under load no connection waits
/// that long, so no request pays for the round trip.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);
/// How long a returned connection may take to finish what its last user left unfinished.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// A small pool of PostgreSQL connections.
///
/// sqlx's own pool tests every connection with a round trip when it hands it out and again when it
/// takes it back, so one SQL statement cost three exchanges with the server, the last on another
/// thread. This pool does no exchange of its own on the way: a connection that comes back with
/// nothing pending is reused as it is; one whose statement failed, or whose transaction was
/// dropped, finishes that work first (the rollback reaches the server at once, so no lock outlives
/// its request), and is dropped if it cannot. Connections are reused most recent first, so a quiet
/// pool keeps few of them warm.
#[derive(Clone)]
pub struct PgPool(Arc<Shared>);

struct Shared {
    /// The servers to connect to (`databases.main.urls`, else just `url`), in order of preference.
    hosts: Vec<PgConnectOptions>,
    /// The host that last gave a primary connection: tried first, so that after a failover the
    /// dead host costs one refused connection attempt per new connection at most.
    preferred: AtomicUsize,
    /// One permit per connection in use: at most `max_connections` exist.
    permits: Arc<Semaphore>,
    /// Connections waiting for a request, the most recently used last.
    idle: Mutex<Vec<Idle>>,
    acquire_timeout: Duration,
    idle_timeout: Option<Duration>,
    /// Idle connections kept even past `idle_timeout`.
    min_idle: usize,
    /// How many connections were found broken so far. One found broken (the server restarted,
    /// say) makes every connection that was checked out before then suspect: each is pinged
    /// before its next use, instead of failing one request each.
    breakages: AtomicU64,
    /// Returned connections still finishing what their last user left pending. One of them may
    /// be waiting on a server that has gone (its failure, and so `breakages`, comes later): until
    /// they settle, idle connections are pinged before use.
    settling: AtomicUsize,
    /// Requests being answered (counted by `RequestsInFlight`): closing waits for them.
    in_flight: AtomicUsize,
    drained: Notify,
    /// How long closing waits for requests in flight: Rocket's `shutdown.grace`.
    drain_limit_secs: AtomicU64,
}

struct Idle {
    conn: PgConnection,
    since: Instant,
    /// `breakages` when the connection was last known to work.
    breakages: u64,
}

/// One connection from the pool, returned to it when dropped. Derefs to `PgConnection`, so
/// `&mut *conn` goes wherever a store function wants a connection.
pub struct PooledConnection {
    conn: Option<PgConnection>,
    breakages: u64,
    pool: Arc<Shared>,
    permit: Option<OwnedSemaphorePermit>,
}

impl PgPool {
    /// A pool with `rocket_db_pools`' settings (`url`, `max_connections`, `idle_timeout`,
    /// `min_connections`: idle connections kept past `idle_timeout`, none opened ahead of need)
    /// on the servers at `urls` (in order of preference), handing out connections within
    /// `acquire_timeout`. Waits up to `connect_timeout` for the database to answer, so that one
    /// that cannot be reached stops the launch.
    pub async fn connect(
        config: &rocket_db_pools::Config,
        urls: &[String],
        acquire_timeout: Duration,
    ) -> sqlx::Result<PgPool> {
        if urls.is_empty() {
            return Err(sqlx::Error::Configuration(
                "no database URL: set databases.main.url (or DATABASE_URL) or databases.main.urls"
                    .into(),
            ));
        }
        let mut hosts = Vec::with_capacity(urls.len());
        for url in urls {
            let mut options: PgConnectOptions = url.parse()?;
            if options.get_application_name().is_none() {
                // Named in pg_stat_activity, so an operator (or a test) can tell its connections apart.
                options = options.application_name("secure-sessions");
            }
            hosts.push(options);
        }
        let pool = PgPool(Arc::new(Shared {
            hosts,
            preferred: AtomicUsize::new(0),
            permits: Arc::new(Semaphore::new(config.max_connections.max(1))),
            idle: Mutex::new(Vec::new()),
            acquire_timeout,
            idle_timeout: config.idle_timeout.map(Duration::from_secs),
            min_idle: config.min_connections.unwrap_or(0) as usize,
            breakages: AtomicU64::new(0),
            settling: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            drained: Notify::new(),
            drain_limit_secs: AtomicU64::new(DEFAULT_DRAIN_LIMIT_SECS),
        }));
        pool.wait_for_database(Duration::from_secs(config.connect_timeout))
            .await?;
        Ok(pool)
    }

    /// At start the database may still be coming up (a restart, a failover): keep trying for
    /// `connect_timeout`, however short the per-request acquire timeout is.
    async fn wait_for_database(&self, connect_timeout: Duration) -> sqlx::Result<()> {
        let deadline = Instant::now() + connect_timeout;
        loop {
            match self.acquire().await {
                Ok(_) => return Ok(()),
                // Refused or unanswered: it may still be starting.
                Err(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_))
                    if Instant::now() < deadline =>
                {
                    sleep(Duration::from_millis(100)).await;
                }
                // Anything else (a wrong password, no such database) will not pass by waiting.
                Err(error) => return Err(error),
            }
        }
    }

    /// A connection: an idle one if there is one, else a new one. Waits at most `acquire_timeout`.
    pub async fn acquire(&self) -> sqlx::Result<PooledConnection> {
        timeout(self.0.acquire_timeout, self.checkout())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
    }

    async fn checkout(&self) -> sqlx::Result<PooledConnection> {
        let permit = Arc::clone(&self.0.permits)
            .acquire_owned()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        while let Some(mut idle) = self.0.take_idle() {
            let breakages = self.0.breakages.load(Ordering::Acquire);
            let suspect = idle.since.elapsed() > PING_AFTER_IDLE
                || idle.breakages != breakages
                || self.0.settling.load(Ordering::Acquire) > 0;
            if !suspect || idle.conn.ping().await.is_ok() {
                return Ok(self.0.hand_out(idle.conn, breakages, permit));
            }
            self.0.found_broken();
        }
        let breakages = self.0.breakages.load(Ordering::Acquire);
        let conn = self.0.open().await?;
        Ok(self.0.hand_out(conn, breakages, permit))
    }

    /// Closes the pool once no request is in flight (waiting at most Rocket's shutdown grace
    /// period): a request that began before the shutdown, a sign-in hashing its password say,
    /// still gets the connections it needs to finish.
    pub async fn close_when_drained(&self) {
        let limit = Duration::from_secs(self.0.drain_limit_secs.load(Ordering::Acquire));
        let drained = async {
            loop {
                let notified = self.0.drained.notified();
                if self.0.in_flight.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let requests_left = match timeout(limit, drained).await {
            Ok(()) => 0,
            Err(_) => self.0.in_flight.load(Ordering::Acquire),
        };
        self.close().await;
        rocket::info!("database pool closed ({requests_left} requests still in flight)");
    }

    /// Closes every idle connection; connections in use close when they come back.
    pub async fn close(&self) {
        self.0.permits.close();
        let idle = std::mem::take(&mut *self.0.lock_idle());
        for idle in idle {
            // Closing politely lets the server log a normal disconnection; a failure changes nothing.
            let _ = idle.conn.close().await;
        }
    }
}

impl Shared {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // A panic while holding the lock leaves the list itself intact.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new connection to the first host, starting from the preferred one, that accepts it
    /// and is a primary. With several hosts, one in recovery (a standby) is passed over: its
    /// reads may lag behind the primary (a revoked session would still look live) and it
    /// refuses every write. A single host is trusted to be the primary as configured.
    async fn open(&self) -> sqlx::Result<PgConnection> {
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last_error = None;
        for offset in 0..self.hosts.len() {
            let index = (first + offset) % self.hosts.len();
            match self.open_primary(&self.hosts[index]).await {
                Ok(conn) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(conn);
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.expect("a pool has at least one host"))
    }

    async fn open_primary(&self, options: &PgConnectOptions) -> sqlx::Result<PgConnection> {
        let mut conn = options.connect().await?;
        if self.hosts.len() == 1 {
            return Ok(conn);
        }
        let in_recovery = sqlx::query_scalar!(r#"SELECT pg_is_in_recovery() AS "in_recovery!""#)
            .fetch_one(&mut conn)
            .await?;
        if !in_recovery {
            return Ok(conn);
        }
        // A failure to say goodbye changes nothing: the connection is not used either way.
        let _ = conn.close().await;
        // An I/O error, like a host that refuses connections: the request gets 503, and the
        // start waits for a primary within `connect_timeout`.
        Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            format!(
                "{}:{} is a standby (in recovery), not the primary",
                options.get_host(),
                options.get_port()
            ),
        )))
    }

    /// The most recently used idle connection, after dropping those idle past `idle_timeout`.
    fn take_idle(&self) -> Option<Idle> {
        let mut idle = self.lock_idle();
        if let Some(limit) = self.idle_timeout {
            let expired = idle
                .iter()
                .take_while(|c| c.since.elapsed() > limit)
                .count();
            let expired = expired.min(idle.len().saturating_sub(self.min_idle));
            idle.drain(..expired);
        }
        idle.pop()
    }

    fn hand_out(
        self: &Arc<Self>,
        conn: PgConnection,
        breakages: u64,
        permit: OwnedSemaphorePermit,
    ) -> PooledConnection {
        PooledConnection {
            conn: Some(conn),
            breakages,
            pool: Arc::clone(self),
            permit: Some(permit),
        }
    }

    fn put_back(&self, conn: PgConnection, breakages: u64) {
        if self.permits.is_closed() {
            return;
        }
        self.lock_idle().push(Idle {
            conn,
            since: Instant::now(),
            breakages,
        });
    }

    fn found_broken(&self) {
        self.breakages.fetch_add(1, Ordering::AcqRel);
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        let (Some(mut conn), permit) = (self.conn.take(), self.permit.take()) else {
            return;
        };
        // `Connection::flush` (public in sqlx 0.8, though left out of its documentation) completes
        // whatever the last user left pending: the rest of a failed or cancelled statement, the
        // ROLLBACK queued by a dropped transaction. With nothing pending it returns at once,
        // without I/O: one poll tells a clean connection from the others.
        let finished = pin!(conn.flush()).poll(&mut Context::from_waker(Waker::noop()));
        match finished {
            Poll::Ready(Ok(())) => self.pool.put_back(conn, self.breakages),
            // Its socket failed (I/O error): dropped, never reused.
            Poll::Ready(Err(_)) => self.pool.found_broken(),
            // The server must answer first: wait for it off the request's path. The permit
            // goes along, so the pool never holds more than `max_connections`.
            Poll::Pending => {
                let Ok(runtime) = Handle::try_current() else {
                    return;
                };
                let (pool, breakages) = (Arc::clone(&self.pool), self.breakages);
                pool.settling.fetch_add(1, Ordering::AcqRel);
                runtime.spawn(async move {
                    match timeout(FINISH_TIMEOUT, conn.flush()).await {
                        Ok(Ok(())) => pool.put_back(conn, breakages),
                        _ => pool.found_broken(),
                    }
                    pool.settling.fetch_sub(1, Ordering::AcqRel);
                    drop(permit);
                });
            }
        }
    }
}

impl Deref for PooledConnection {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.conn
            .as_ref()
            .expect("a pooled connection is present until it is dropped")
    }
}

impl DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("a pooled connection is present until it is dropped")
    }
}

#[rocket::async_trait]
impl rocket_db_pools::Pool for PgPool {
    type Connection = PooledConnection;
    type Error = sqlx::Error;

    /// `figment` is the `databases.main` table: `rocket_db_pools`' keys, and `acquire_timeout_ms`.
    async fn init(figment: &Figment) -> Result<Self, Self::Error> {
        let configuration =
            |error: rocket::figment::Error| sqlx::Error::Configuration(error.into());
        // rocket_db_pools requires `url`, which a configuration with `urls` may leave out.
        let config: rocket_db_pools::Config = figment
            .clone()
            .join(("url", ""))
            .extract()
            .map_err(configuration)?;
        let acquire_timeout_ms: u64 = if figment.contains("acquire_timeout_ms") {
            figment
                .extract_inner("acquire_timeout_ms")
                .map_err(configuration)?
        } else {
            DEFAULT_ACQUIRE_TIMEOUT_MS
        };
        if acquire_timeout_ms == 0 {
            return Err(sqlx::Error::Configuration(
                "acquire_timeout_ms must be positive".into(),
            ));
        }
        // `urls`, when given, replaces `url`: the same database on several servers, the
        // primary first, its standbys after it.
        let urls: Vec<String> = if figment.contains("urls") {
            figment.extract_inner("urls").map_err(configuration)?
        } else if config.url.is_empty() {
            Vec::new()
        } else {
            vec![config.url.clone()]
        };
        PgPool::connect(&config, &urls, Duration::from_millis(acquire_timeout_ms)).await
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

    /// One pooled connection. Not getting one means the database is unreachable: a 503, not a bug.
    pub async fn connection(&self) -> Result<PooledConnection, AppError> {
        self.pool()
            .acquire()
            .await
            .map_err(AppError::DatabaseUnavailable)
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
            db.pool().0.drain_limit_secs.store(grace, Ordering::Release);
        }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        if let Some(db) = Db::fetch(request.rocket()) {
            db.pool().0.in_flight.fetch_add(1, Ordering::AcqRel);
        }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, _: &mut Response<'r>) {
        if let Some(db) = Db::fetch(request.rocket()) {
            let shared = &db.pool().0;
            if shared.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
                shared.drained.notify_waiters();
            }
        }
    }
}

/// The schema, embedded at compile time (build.rs reruns the build when migrations/ changes).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

async fn migrate(pool: &PgPool) -> Result<(), String> {
    let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
    // `run_direct` is `run` on a connection: `run` needs an `Acquire` for every lifetime, which
    // a borrowed connection cannot offer inside a `Send` future (sqlx's own workaround).
    MIGRATOR
        .run_direct(&mut *conn)
        .await
        .map_err(|e| e.to_string())
}

/// Brings the schema up to date before the first request.
pub fn migrations_stage() -> AdHoc {
    AdHoc::try_on_ignite("Database migrations", |rocket: Rocket<Build>| async move {
        let Some(db) = Db::fetch(&rocket) else {
            return fairing::Result::Err(rocket);
        };
        match migrate(db.pool()).await {
            Ok(()) => fairing::Result::Ok(rocket),
            Err(error) => {
                rocket::error!("database migrations failed: {error}");
                fairing::Result::Err(rocket)
            }
        }
    })
}
