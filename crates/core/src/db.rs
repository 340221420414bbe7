//! The PostgreSQL connection pool (deadpool's queue and limits, our rules for reuse) and the
//! migrations. The web layer plugs the pool into Rocket (its `db` module).

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, Object, QueueMode, RecycleError, RecycleResult};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::time::{sleep, timeout};

/// How long a request waits for a pooled connection (`databases.main.acquire_timeout_ms`)
/// before it is answered 503. Short, because while the database is down every request waits
/// this long; long enough for a burst of requests to queue for a connection.
pub const DEFAULT_ACQUIRE_TIMEOUT_MS: u64 = 1000;

/// How long a connection serves before it is closed and replaced
/// (`databases.main.max_lifetime_secs`): the server's memory per backend stays bounded, and
/// after a change of DNS or of settings every connection is new within this time.
pub const DEFAULT_MAX_LIFETIME_SECS: u64 = 1800;

/// How long closing the pool waits for requests in flight before Rocket has lifted off and
/// said its own `shutdown.grace` (2 s by default).
const DEFAULT_DRAIN_LIMIT_SECS: u64 = 2;

/// A connection that waited in the pool longer than this is pinged before it is handed out: the
/// server (or a firewall on the way) may have closed it meanwhile. Under load no connection waits
/// that long, so no request pays for the round trip.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);
/// How long a returned connection may take to finish what its last user left unfinished.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);
/// How often idle connections are looked over, to close those past their lifetime (`sweep`).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Why no connection could be had. The web layer answers each with 503.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("no database connection within the acquire timeout")]
    TimedOut,
    #[error("the database pool is closed")]
    Closed,
    #[error("could not connect to the database")]
    Connect(#[source] sqlx::Error),
    #[error("invalid database settings: {0}")]
    Configuration(String),
}

impl From<managed::PoolError<sqlx::Error>> for PoolError {
    fn from(error: managed::PoolError<sqlx::Error>) -> Self {
        match error {
            managed::PoolError::Backend(error) => PoolError::Connect(error),
            // No deadpool timeout or hook is set: being closed is the only other way it fails.
            _ => PoolError::Closed,
        }
    }
}

/// The pool: deadpool keeps the connections (at most `max_connections`, the most recently used
/// handed out first, so a quiet pool keeps few of them warm, at least `min_connections`) and queues the requests that wait for
/// one; `Manager` opens them and decides which may be reused.
///
/// sqlx's own pool tests every connection with a round trip when it hands it out and again when it
/// takes it back, so one SQL statement cost three exchanges with the server, the last on another
/// thread. This pool does no exchange of its own on the way: a connection that comes back with
/// nothing pending is reused as it is; one whose statement failed, or whose transaction was
/// dropped, finishes that work first (the rollback reaches the server at once, so no lock outlives
/// its request), and is dropped if it cannot.
#[derive(Clone)]
pub struct PgPool {
    pool: managed::Pool<Manager>,
    acquire_timeout: Duration,
    drain: Arc<Drain>,
}

/// What the pool is given: where the database is, and its limits.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// The same database on one or more servers, in order of preference: the primary first,
    /// its standbys after it.
    pub urls: Vec<String>,
    /// At least this many connections are kept open, opened at start and replaced when retired,
    /// so the first requests after a quiet spell do not each wait for a new connection.
    pub min_connections: usize,
    /// At most this many connections are open at once.
    pub max_connections: usize,
    /// How long the pool waits for the database to answer at start, before it gives up.
    pub connect_timeout: Duration,
    /// How long a request waits for a connection before it gets [`PoolError::TimedOut`].
    pub acquire_timeout: Duration,
    /// A connection idle this long is closed; `None` keeps idle connections.
    pub idle_timeout: Option<Duration>,
    /// A connection this old is closed when it is next idle.
    pub max_lifetime: Duration,
}

/// Opens connections and judges the idle ones as the pool hands them out.
struct Manager {
    /// The servers to connect to (`databases.main.urls`, else just `url`), in order of preference.
    hosts: Vec<PgConnectOptions>,
    /// The host that last gave a primary connection: tried first, so that after a failover the
    /// dead host costs one refused connection attempt per new connection at most.
    preferred: AtomicUsize,
    max_lifetime: Duration,
    idle_timeout: Option<Duration>,
    /// How many connections were found broken so far. One found broken (the server restarted,
    /// say) makes every connection that was checked out before then suspect: each is pinged
    /// before its next use, instead of failing one request each.
    breakages: AtomicU64,
    /// Returned connections still finishing what their last user left pending. One of them may
    /// be waiting on a server that has gone (its failure, and so `breakages`, comes later): until
    /// they settle, idle connections are pinged before use.
    settling: AtomicUsize,
}

/// A connection as the pool keeps it.
struct Pooled {
    conn: PgConnection,
    idle_since: Instant,
    /// `breakages` when the connection was last known to work.
    breakages: u64,
}

/// Closing waits for the requests in flight (counted by the web layer: `PgPool::request_started`).
struct Drain {
    in_flight: AtomicUsize,
    drained: Notify,
    /// How long closing waits: Rocket's `shutdown.grace`.
    limit_secs: AtomicU64,
}

/// One connection from the pool, returned to it when dropped. Derefs to `PgConnection`, so
/// `&mut *conn` goes wherever a store function wants a connection.
pub struct PooledConnection(Option<Object<Manager>>);

impl PgPool {
    /// A pool on `settings.urls`. Waits up to `connect_timeout` for the database to answer, so
    /// that one that cannot be reached stops the launch.
    pub async fn connect(settings: PoolSettings) -> Result<PgPool, PoolError> {
        let PoolSettings {
            urls,
            min_connections,
            max_connections,
            connect_timeout,
            acquire_timeout,
            idle_timeout,
            max_lifetime,
        } = settings;
        if urls.is_empty() {
            return Err(PoolError::Configuration(
                "no database URL: set databases.main.url (or DATABASE_URL) or databases.main.urls"
                    .into(),
            ));
        }
        if min_connections > max_connections {
            return Err(PoolError::Configuration(format!(
                "min_connections ({min_connections}) is more than max_connections ({max_connections})"
            )));
        }
        let mut hosts = Vec::with_capacity(urls.len());
        for url in &urls {
            let mut options: PgConnectOptions = url
                .parse()
                .map_err(|error: sqlx::Error| PoolError::Configuration(error.to_string()))?;
            if options.get_application_name().is_none() {
                // Named in pg_stat_activity, so an operator (or a test) can tell its connections apart.
                options = options.application_name("secure-sessions");
            }
            hosts.push(options);
        }
        let manager = Manager {
            hosts,
            preferred: AtomicUsize::new(0),
            max_lifetime,
            idle_timeout,
            breakages: AtomicU64::new(0),
            settling: AtomicUsize::new(0),
        };
        let pool = managed::Pool::builder(manager)
            .max_size(max_connections.max(1))
            .queue_mode(QueueMode::Lifo)
            .build()
            .map_err(|error| PoolError::Configuration(error.to_string()))?;
        let pool = PgPool {
            pool,
            acquire_timeout,
            drain: Arc::new(Drain {
                in_flight: AtomicUsize::new(0),
                drained: Notify::new(),
                limit_secs: AtomicU64::new(DEFAULT_DRAIN_LIMIT_SECS),
            }),
        };
        pool.wait_for_database(connect_timeout).await?;
        top_up(&pool.pool, min_connections).await;
        tokio::spawn(sweep(pool.pool.weak(), min_connections));
        Ok(pool)
    }

    /// At start the database may still be coming up (a restart, a failover): keep trying for
    /// `connect_timeout`, however short the per-request acquire timeout is.
    async fn wait_for_database(&self, connect_timeout: Duration) -> Result<(), PoolError> {
        let deadline = Instant::now() + connect_timeout;
        loop {
            match self.acquire().await {
                Ok(_) => return Ok(()),
                // Refused or unanswered: it may still be starting.
                Err(PoolError::TimedOut | PoolError::Connect(sqlx::Error::Io(_)))
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
    pub async fn acquire(&self) -> Result<PooledConnection, PoolError> {
        match timeout(self.acquire_timeout, self.pool.get()).await {
            Ok(Ok(object)) => Ok(PooledConnection(Some(object))),
            Ok(Err(error)) => Err(error.into()),
            Err(_) => Err(PoolError::TimedOut),
        }
    }

    /// A request began: closing the pool waits for it ([`PgPool::close_when_drained`]).
    pub fn request_started(&self) {
        self.drain.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// A request was answered.
    pub fn request_finished(&self) {
        if self.drain.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.drain.drained.notify_waiters();
        }
    }

    /// How long closing the pool waits for the requests in flight: the server's own grace
    /// period for them.
    pub fn set_drain_limit(&self, limit: Duration) {
        self.drain
            .limit_secs
            .store(limit.as_secs(), Ordering::Release);
    }

    /// Closes the pool once no request is in flight (waiting at most the drain limit, the web
    /// server's shutdown grace period): a request that began before the shutdown, a sign-in hashing its password say,
    /// still gets the connections it needs to finish.
    pub async fn close_when_drained(&self) {
        let drain = &self.drain;
        let limit = Duration::from_secs(drain.limit_secs.load(Ordering::Acquire));
        let drained = async {
            loop {
                let notified = drain.drained.notified();
                if drain.in_flight.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let requests_left = match timeout(limit, drained).await {
            Ok(()) => 0,
            Err(_) => drain.in_flight.load(Ordering::Acquire),
        };
        self.close().await;
        log::info!("database pool closed ({requests_left} requests still in flight)");
    }

    /// Closes every idle connection; connections in use close when they come back.
    pub async fn close(&self) {
        // Taken out before closing the pool, which would drop them without a word.
        let idle = self.pool.retain(|_, _| false).removed;
        self.pool.close();
        for pooled in idle {
            // Closing politely lets the server log a normal disconnection; a failure changes nothing.
            let _ = pooled.conn.close().await;
        }
    }
}

impl Manager {
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

    /// Past `max_lifetime`, or idle past `idle_timeout`: to be closed.
    fn expired(&self, pooled: &Pooled, metrics: &Metrics) -> bool {
        metrics.age() > self.max_lifetime
            || self
                .idle_timeout
                .is_some_and(|limit| pooled.idle_since.elapsed() > limit)
    }

    fn found_broken(&self) {
        self.breakages.fetch_add(1, Ordering::AcqRel);
    }
}

impl managed::Manager for Manager {
    type Type = Pooled;
    type Error = sqlx::Error;

    async fn create(&self) -> sqlx::Result<Pooled> {
        let breakages = self.breakages.load(Ordering::Acquire);
        Ok(Pooled {
            conn: self.open().await?,
            idle_since: Instant::now(),
            breakages,
        })
    }

    /// Runs as the pool hands out an idle connection; an error drops it, and the pool takes the
    /// next one or opens a new one. A connection comes back clean (`PooledConnection`'s drop sees
    /// to that), so only one that is suspect costs a round trip.
    async fn recycle(&self, pooled: &mut Pooled, _: &Metrics) -> RecycleResult<sqlx::Error> {
        let idle = pooled.idle_since.elapsed();
        let breakages = self.breakages.load(Ordering::Acquire);
        let suspect = idle > PING_AFTER_IDLE
            || pooled.breakages != breakages
            || self.settling.load(Ordering::Acquire) > 0;
        if suspect && let Err(error) = pooled.conn.ping().await {
            self.found_broken();
            return Err(RecycleError::Backend(error));
        }
        pooled.breakages = breakages;
        Ok(())
    }
}

/// Every `SWEEP_EVERY`, closes the idle connections that have expired (a connection in use is
/// retired at the first sweep that finds it back in the pool), then opens new ones up to
/// `min_connections`. Ends with the pool.
async fn sweep(pool: managed::WeakPool<Manager>, min_connections: usize) {
    loop {
        sleep(SWEEP_EVERY).await;
        let Some(pool) = pool.upgrade().filter(|pool| !pool.is_closed()) else {
            return;
        };
        let manager = pool.manager();
        let expired = pool.retain(|pooled, metrics| !manager.expired(pooled, &metrics));
        top_up(&pool, min_connections).await;
        drop(pool);
        for pooled in expired.removed {
            let _ = pooled.conn.close().await;
        }
    }
}

/// Opens connections until the pool holds `min_connections`. They are taken out all together, so
/// that an idle connection cannot stand in for a new one, and go back at once. A database that
/// cannot be reached leaves the pool short until a later sweep.
async fn top_up(pool: &managed::Pool<Manager>, min_connections: usize) {
    if pool.status().size >= min_connections {
        return;
    }
    let mut held = Vec::with_capacity(min_connections);
    while held.len() < min_connections {
        match timeout(SWEEP_EVERY, pool.get()).await {
            Ok(Ok(object)) => held.push(object),
            _ => break,
        }
    }
}

/// Takes a connection out of the pool for good, freeing its place, and counts it as broken.
fn discard(object: Object<Manager>) {
    if let Some(pool) = Object::pool(&object) {
        pool.manager().found_broken();
    }
    drop(Object::take(object));
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        let Some(mut object) = self.0.take() else {
            return;
        };
        // `Connection::flush` (public in sqlx 0.8, though left out of its documentation) completes
        // whatever the last user left pending: the rest of a failed or cancelled statement, the
        // ROLLBACK queued by a dropped transaction. With nothing pending it returns at once,
        // without I/O: one poll tells a clean connection from the others.
        let finished = pin!(object.conn.flush()).poll(&mut Context::from_waker(Waker::noop()));
        match finished {
            // Back to the pool as `object` goes out of scope.
            Poll::Ready(Ok(())) => object.idle_since = Instant::now(),
            // Its socket failed (I/O error): dropped, never reused.
            Poll::Ready(Err(_)) => discard(object),
            // The server must answer first: wait for it off the request's path. The connection
            // keeps its place meanwhile, so the pool never holds more than `max_connections`.
            Poll::Pending => {
                let (Ok(runtime), Some(pool)) = (Handle::try_current(), Object::pool(&object))
                else {
                    // Nowhere to wait: it cannot be reused.
                    discard(object);
                    return;
                };
                pool.manager().settling.fetch_add(1, Ordering::AcqRel);
                runtime.spawn(async move {
                    match timeout(FINISH_TIMEOUT, object.conn.flush()).await {
                        Ok(Ok(())) => {
                            object.idle_since = Instant::now();
                            drop(object);
                        }
                        _ => discard(object),
                    }
                    pool.manager().settling.fetch_sub(1, Ordering::AcqRel);
                });
            }
        }
    }
}

impl Deref for PooledConnection {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self
            .0
            .as_ref()
            .expect("a pooled connection is present until it is dropped")
            .conn
    }
}

impl DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self
            .0
            .as_mut()
            .expect("a pooled connection is present until it is dropped")
            .conn
    }
}

/// The schema, embedded at compile time (build.rs reruns the build when migrations/ changes).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Brings the schema up to date: the migrations not yet applied, each in its own transaction.
pub async fn migrate(pool: &PgPool) -> Result<(), String> {
    let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
    // `run_direct` is `run` on a connection: `run` needs an `Acquire` for every lifetime, which
    // a borrowed connection cannot offer inside a `Send` future (sqlx's own workaround).
    MIGRATOR
        .run_direct(&mut *conn)
        .await
        .map_err(|e| e.to_string())
}
