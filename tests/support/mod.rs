//! Test support shared by the integration, browser and fault suites: a fresh PostgreSQL database
//! per test (copied from a migrated template, dropped when the test ends), the app built on it,
//! clusters a test can break.
//!
//! One way to do each thing; reach for these rather than writing another:
//!
//! - the app: `TestApp::new()` / `TestApp::with(|figment| ...)` (test profile, test clock, fresh
//!   database; `figment.select("release")` for the release profile); `app.client()` for
//!   Rocket's local client, `app.serve()` for a real socket (`server::Server`),
//!   `binary::RunningApp::start` for the app binary as its own process.
//! - a browser-like client over the local client: `http::Device` (`get`, `post_form`,
//!   `post_from`, `sign_in`, `confirm`, `devices`, cookies kept as a browser keeps them); what
//!   comes back is an `http::Reply`.
//! - reading pages: `reply.html()` parses the body (`html::Document`, on the `scraper` crate):
//!   `testid_text`, `testid_texts`, `count_testid`, `testids` (elements), `select(css)`,
//!   `texts(css)`, `field(name)` (a form field's value), `csrf_token()`, `text()` and
//!   `shows(words)` (what the page says, entities decoded); for one element, `html::text_of`,
//!   `html::attributes_of` and `html::select_in`. `Reply` has shortcuts for the common
//!   ones (`reply.testid_text`, `reply.count_testid`, `reply.csrf_token`, `reply.shows`). Search
//!   `reply.body` as a string only to prove that something is absent from every byte sent (a
//!   password, a stack trace).
//! - form bodies: `http::form_body(&[(name, value), ...])` and one value `http::form_encode(v)`
//!   (`form_urlencoded`, as a browser encodes a form); `Device::post_form` and
//!   `RawRequest::form` use them.
//! - raw HTTP, for bytes no client library sends and for the app binary:
//!   `raw::RawRequest::get(path).header("Cookie: ...").send(port).await` (also `post`, `new`,
//!   `headers`, `form`, `json`, `body`) gives a `raw::RawResponse` (`status`, `head`, `body`,
//!   `header`, `location`, `cookie`, `set_cookie`, `set_cookie_line`, `html()`, `json()`).
//!   `port` is `Server::port` or `RunningApp::port`.
//! - a DBSC client key: `dbsc::DbscKey`; a PostgreSQL cluster of a test's own: `cluster`; a
//!   relay in front of PostgreSQL that makes the server stop answering one connection on cue:
//!   `relay::StallingRelay`.
#![allow(dead_code)] // each suite uses its own subset

pub mod binary;
pub mod cluster;
pub mod dbsc;
pub mod html;
pub mod http;
pub mod passkey;
pub mod raw;
pub mod relay;
pub mod server;

use std::sync::{Arc, LazyLock};

use rocket::figment::Figment;
use rocket::tokio::sync::Mutex;
use secure_sessions::clock::{AppClock, TestClock};
use secure_sessions::config::SessionConfig;
use secure_sessions::db::MIGRATOR;
use secure_sessions::users::{self, Role, Username};
use sha2::{Digest, Sha256};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use time::OffsetDateTime;

/// The password every test user has.
pub const PASSWORD: &str = "correct horse battery staple";

/// argon2 is slow on purpose: hash the shared test password once per test binary.
static PASSWORD_HASH: LazyLock<String> = LazyLock::new(|| {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    argon2::Argon2::default()
        .hash_password(PASSWORD.as_bytes(), &SaltString::generate(&mut OsRng))
        .expect("hashing the test password")
        .to_string()
});

/// The app's password hasher, outside an app, with `threads` hashing threads.
pub fn password_hasher(threads: usize) -> users::PasswordHasher {
    let settings = users::hashing::HashingSettings {
        threads,
        cgroup: None,
    };
    users::PasswordHasher::start(settings, SessionConfig::default().hashing_admission())
        .expect("the hashing threads start")
}

/// The PostgreSQL server to test against: `scripts/test` starts one and sets this.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must name a PostgreSQL server: run the tests with scripts/test")
}

fn database_url(name: &str) -> String {
    let server = server_url();
    let base = server
        .rsplit_once('/')
        .map_or(server.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

/// The template's name follows the migrations' checksums, so a changed schema gets a new one.
fn template_name() -> String {
    let mut hasher = Sha256::new();
    for migration in MIGRATOR.iter() {
        hasher.update(&migration.checksum);
    }
    let digest = hasher.finalize();
    format!(
        "ss_template_{}",
        digest[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

static TEMPLATE_READY: Mutex<bool> = Mutex::const_new(false);

/// Creates (once per server and schema) the migrated template database.
async fn ensure_template(admin: &mut PgConnection) -> String {
    let name = template_name();
    let mut ready = TEMPLATE_READY.lock().await;
    if *ready {
        return name;
    }
    // Test binaries may run side by side against one server: one of them builds the template.
    admin
        .execute("SELECT pg_advisory_lock(727274)")
        .await
        .expect("advisory lock");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut *admin)
            .await
            .expect("looking up the template");
    if !exists {
        let building = format!("{name}_building");
        admin
            .execute(format!("DROP DATABASE IF EXISTS {building}").as_str())
            .await
            .expect("drop");
        admin
            .execute(format!("CREATE DATABASE {building}").as_str())
            .await
            .expect("create template");
        let mut conn = PgConnection::connect(&database_url(&building))
            .await
            .expect("connect to template");
        MIGRATOR
            .run(&mut conn)
            .await
            .expect("migrating the template");
        conn.close().await.expect("closing the template connection");
        admin
            .execute(format!("ALTER DATABASE {building} RENAME TO {name}").as_str())
            .await
            .expect("rename");
    }
    admin
        .execute("SELECT pg_advisory_unlock(727274)")
        .await
        .expect("advisory unlock");
    *ready = true;
    name
}

/// A database of one test's own, dropped when the test ends (passed or failed): a suite
/// leaves no databases behind, so runs after runs on one server (scripts/mutants runs the suite
/// once per mutant) do not fill its disk.
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl TestDatabase {
    async fn create(template: Option<&str>) -> TestDatabase {
        let mut admin = PgConnection::connect(&server_url())
            .await
            .expect("connect to the test server");
        let name = format!("ss_test_{}", uuid::Uuid::new_v4().simple());
        let create = match template {
            Some(template) => format!("CREATE DATABASE {name} TEMPLATE {template}"),
            None => format!("CREATE DATABASE {name}"),
        };
        admin
            .execute(create.as_str())
            .await
            .expect("create the test's database");
        admin.close().await.ok();
        TestDatabase {
            url: database_url(&name),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's async runtime, which cannot block on a future of its own:
        // a thread with a runtime of its own drops the database, and the test waits for it.
        // FORCE ends the connections the app's pool still holds.
        let drop_database = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = rocket::tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test's database");
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&server_url()).await?;
                admin.execute(drop_database.as_str()).await?;
                admin.close().await
            })
        })
        .join();
        // A test that already failed keeps its own message; the drop's failure is only noise.
        if !std::thread::panicking() {
            dropped
                .expect("the thread dropping the test's database")
                .expect("drop the test's database");
        }
    }
}

/// A new, migrated, empty database for one test.
pub async fn fresh_database() -> TestDatabase {
    let mut admin = PgConnection::connect(&server_url())
        .await
        .expect("connect to the test server");
    let template = ensure_template(&mut admin).await;
    admin.close().await.ok();
    TestDatabase::create(Some(&template)).await
}

/// A new database with no schema at all, for a test that applies migrations itself.
pub async fn empty_database() -> TestDatabase {
    TestDatabase::create(None).await
}

/// A random value for Rocket's `secret_key` (the key that seals private cookies).
pub fn random_secret_key() -> String {
    use base64::Engine;
    let key: [u8; 64] = std::array::from_fn(|_| rand::random());
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// The app on a fresh database and a test clock, with settings from the `test` profile and
/// any overrides (`("sessions.idle_timeout_secs", 60)`).
pub struct TestApp {
    pub figment: Figment,
    /// The app's clock. Browser tests that watch real timers run on the system clock instead.
    pub clock: Arc<TestClock>,
    pub system_clock: bool,
    pub pool: PgPool,
    pub database_url: String,
    /// The database the app made for itself, dropped with it; none when it was given one.
    database: Option<TestDatabase>,
}

impl TestApp {
    pub async fn new() -> TestApp {
        TestApp::with(|figment| figment).await
    }

    pub async fn with(configure: impl FnOnce(Figment) -> Figment) -> TestApp {
        let database = fresh_database().await;
        let mut app = TestApp::on(database.url.clone(), configure).await;
        app.database = Some(database);
        app
    }

    /// The app on the database at `database_url` (migrated when the app starts).
    pub async fn on(database_url: String, configure: impl FnOnce(Figment) -> Figment) -> TestApp {
        // The app's own configuration stack: its safe defaults in code, Rocket.toml, ROCKET_*.
        let figment = secure_sessions::app::figment()
            .select("test")
            .merge(("databases.main.url", &database_url))
            .merge(("databases.main.max_connections", 8))
            .merge(("databases.main.connect_timeout", 2))
            // Many apps share a loaded machine, and race tests queue dozens of requests for 8
            // connections: let them wait rather than shed load (the outage test sets the default).
            .merge(("databases.main.acquire_timeout_ms", 10_000))
            // Likewise dozens of sign-ins at once, whose hashes a loaded machine finishes slowly:
            // admit them all (the hashing tests set the default back).
            .merge(("sessions.hashing_admission_ms", 60_000))
            // The test profile is not `debug`, so Rocket wants a real key for private cookies.
            .merge(("secret_key", random_secret_key()));
        let figment = configure(figment);
        let pool = PgPool::connect(&database_url)
            .await
            .expect("connect to the test database");
        // On a whole second: PostgreSQL keeps microseconds, so a clock with nanoseconds would
        // store every deadline a fraction early, and no test could stand on its very instant.
        let start = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .expect("0 is a valid nanosecond");
        let clock = TestClock::new(start);
        TestApp {
            figment,
            clock,
            system_clock: false,
            pool,
            database_url,
            database: None,
        }
    }

    pub fn config(&self) -> SessionConfig {
        self.figment
            .extract_inner("sessions")
            .expect("valid session settings")
    }

    pub fn rocket(&self) -> rocket::Rocket<rocket::Build> {
        let clock = if self.system_clock {
            AppClock::system()
        } else {
            AppClock::movable(self.clock.clone())
        };
        secure_sessions::app::build(self.figment.clone(), clock)
    }

    /// Creates an account directly in the database (sign-up has its own tests).
    pub async fn create_user(&self, name: &str, role: Role) -> i64 {
        let username = Username::parse(name).expect("valid test username");
        let mut conn = self.pool.acquire().await.expect("connection");
        users::store::create(&mut conn, &username, &PASSWORD_HASH, role, self.clock_now())
            .await
            .expect("insert user")
            .expect("username is free")
    }

    pub fn clock_now(&self) -> OffsetDateTime {
        AppClock::new(self.clock.clone()).now()
    }

    pub fn advance_secs(&self, seconds: i64) {
        self.clock.advance(time::Duration::seconds(seconds));
    }
}

impl TestApp {
    /// Serves the app on 127.0.0.1 at a random port until the returned server is dropped.
    pub async fn serve(&self) -> server::Server {
        server::Server::start(self.rocket()).await
    }

    /// Launches the app in-process (Rocket's local client: real routing, guards and fairings).
    pub async fn client(&self) -> rocket::local::asynchronous::Client {
        rocket::local::asynchronous::Client::untracked(self.rocket())
            .await
            .expect("the app launches")
    }

    /// The session row behind a cookie value, as (revoked reason, user id).
    pub async fn session_row(&self, cookie_value: &str) -> Option<(Option<String>, i64)> {
        let token =
            secure_sessions::session::token::SessionToken::parse(cookie_value).expect("a token");
        sqlx::query_as("SELECT revoke_reason, user_id FROM sessions WHERE key = $1")
            .bind(token.key().as_bytes())
            .fetch_optional(&self.pool)
            .await
            .expect("query sessions")
    }

    /// Security event kinds of a user, oldest first.
    pub async fn event_kinds(&self, user_id: i64) -> Vec<String> {
        sqlx::query_scalar("SELECT kind FROM security_events WHERE user_id = $1 ORDER BY id")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .expect("query events")
    }
}
