//! The request path: one SQL statement per signed-in request (one more when a write is due),
//! last-seen written once per touch interval even when requests race, and a connection pool that
//! neither keeps a dead connection nor one past its lifetime, nor lets a lock outlive its request,
//! nor hands on a connection the server stopped answering.

use std::time::Duration;

use rocket::http::Status;
use rocket::tokio::time::{sleep, timeout};
use rocket_db_pools::Database;
use secure_sessions::db::Db;
use secure_sessions::users::Role;
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

use crate::support::http::Device;
use crate::support::relay::StallingRelay;
use crate::support::{PASSWORD, TestApp, fresh_database, server_url};

/// Counts the SQL statements the app sends to this test's database, with `pg_stat_statements`
/// (which `scripts/test` preloads). Each test has a database of its own, so the count is exact.
struct Statements<'a> {
    app: &'a TestApp,
}

impl<'a> Statements<'a> {
    /// Starts counting from zero, once the reaper's pass at launch (which runs beside the first
    /// requests) has finished.
    async fn start(app: &'a TestApp) -> Statements<'a> {
        app.pool
            .execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .await
            .expect("pg_stat_statements must be preloaded: run the tests with scripts/test");
        for _ in 0..100 {
            let reaped: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_statements
                 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                   AND query LIKE 'DELETE FROM sign_in_failures%'",
            )
            .fetch_one(&app.pool)
            .await
            .unwrap();
            if reaped > 0 {
                break;
            }
            sleep(Duration::from_millis(50)).await;
        }
        let statements = Statements { app };
        statements.reset().await;
        statements
    }

    /// Starts counting from zero again.
    async fn reset(&self) {
        self.app
            .pool
            .execute("/* test */ SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)")
            .await
            .unwrap();
    }

    /// Statements executed since `start`, the test's own (marked `/* test */`) left out.
    async fn count(&self) -> i64 {
        sqlx::query_scalar(
            "/* test */ SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND query NOT LIKE '/* test */%'",
        )
        .fetch_one(&self.app.pool)
        .await
        .unwrap()
    }

    /// Each statement executed since `start` (the test's own left out), in the order of its
    /// text: the text, how often it ran, and for a statement that writes, how many rows it wrote.
    async fn each(&self) -> Vec<(String, i64, Option<i64>)> {
        sqlx::query_as(
            r#"/* test */ SELECT query, calls,
                      CASE WHEN query ~* '^\s*(INSERT|UPDATE|DELETE)' THEN rows END
               FROM pg_stat_statements
               WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                 AND query NOT LIKE '/* test */%'
               ORDER BY query"#,
        )
        .fetch_all(&self.app.pool)
        .await
        .unwrap()
    }
}

/// Records every write of `last_seen_at` in a table of its own, for the test to count.
async fn log_last_seen_writes(app: &TestApp) {
    for statement in [
        "CREATE TABLE last_seen_writes (at timestamptz NOT NULL)",
        "CREATE FUNCTION log_last_seen_write() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN INSERT INTO last_seen_writes VALUES (NEW.last_seen_at); RETURN NEW; END $$",
        "CREATE TRIGGER log_last_seen_write AFTER UPDATE OF last_seen_at ON sessions
         FOR EACH ROW EXECUTE FUNCTION log_last_seen_write()",
    ] {
        app.pool.execute(statement).await.unwrap();
    }
}

async fn last_seen_writes(app: &TestApp) -> i64 {
    sqlx::query_scalar("/* test */ SELECT count(*) FROM last_seen_writes")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[rocket::async_test]
async fn a_signed_in_request_is_one_sql_statement_and_a_due_write_is_one_more() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let token = alice.session_cookie().unwrap();
    log_last_seen_writes(&app).await;
    let statements = Statements::start(&app).await;

    // The first page of an unbound session also puts a device-binding (DBSC) challenge on offer,
    // reused for half its lifetime: one more statement, on that page only.
    let first = alice.get("/account/password").await;
    assert_eq!(first.status, Status::Ok);
    assert!(first.header("Secure-Session-Registration").is_some());
    assert_eq!(statements.count().await, 2, "the lookup, then the offer");
    assert_eq!(alice.get("/account/password").await.status, Status::Ok);
    assert_eq!(alice.get("/account/password").await.status, Status::Ok);
    assert_eq!(statements.count().await, 4, "the lookup alone");
    assert_eq!(
        last_seen_writes(&app).await,
        0,
        "nothing written within the touch interval"
    );

    app.advance_secs(i64::from(app.config().touch_interval_secs()));
    assert_eq!(alice.get("/account/password").await.status, Status::Ok);
    assert_eq!(
        statements.count().await,
        6,
        "the lookup, then the write of last-seen"
    );
    assert_eq!(last_seen_writes(&app).await, 1);
    assert_eq!(alice.get("/account/password").await.status, Status::Ok);
    assert_eq!(statements.count().await, 7, "the lookup alone again");
    let last_seen: time::OffsetDateTime =
        sqlx::query_scalar("/* test */ SELECT last_seen_at FROM sessions WHERE key = $1")
            .bind(
                secure_sessions::session::token::SessionToken::parse(&token)
                    .unwrap()
                    .key()
                    .as_bytes(),
            )
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(last_seen, app.clock_now());
}

/// The pool adds no round trip of its own: no ping when it hands a connection out nor when it
/// takes it back. Counted on the wire, where a ping (a bare `Sync`) shows though it is no
/// statement. Requests follow each other closely, so no connection idles long enough to be
/// pinged.
#[rocket::async_test]
async fn a_signed_in_request_is_one_round_trip_to_the_database_and_the_pool_adds_none() {
    let database = fresh_database().await;
    let relay = StallingRelay::start(&database.url).await;
    let app = TestApp::on(database.url.clone(), |figment| {
        figment.merge(("databases.main.url", relay.url()))
    })
    .await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    // The reaper's pass at launch is over, and the statement is prepared on the connection.
    Statements::start(&app).await;
    assert_eq!(alice.get("/account/password").await.status, Status::Ok);

    const REQUESTS: u64 = 20;
    let before = relay.round_trips();
    for _ in 0..REQUESTS {
        assert_eq!(alice.get("/account/password").await.status, Status::Ok);
    }
    assert_eq!(relay.round_trips() - before, REQUESTS);
}

#[rocket::async_test]
async fn a_bearer_request_is_one_sql_statement_and_a_due_write_is_one_more() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let reply = client
        .post("/api/token")
        .header(rocket::http::ContentType::JSON)
        .body(serde_json::json!({ "username": "alice", "password": PASSWORD }).to_string())
        .dispatch()
        .await;
    assert_eq!(reply.status(), Status::Ok);
    let body: serde_json::Value =
        serde_json::from_str(&reply.into_string().await.unwrap()).unwrap();
    let bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());
    let me = || {
        client
            .get("/api/me")
            .header(rocket::http::Header::new("Authorization", bearer.clone()))
            .dispatch()
    };
    log_last_seen_writes(&app).await;
    let statements = Statements::start(&app).await;

    assert_eq!(me().await.status(), Status::Ok);
    assert_eq!(statements.count().await, 1);
    app.advance_secs(i64::from(app.config().touch_interval_secs()));
    assert_eq!(me().await.status(), Status::Ok);
    assert_eq!(statements.count().await, 3, "the lookup, then the write");
    assert_eq!(last_seen_writes(&app).await, 1);
}

/// The race: two requests of one session arrive together just as last-seen is due. The write
/// happens once; the request whose write found the row already written must still be served
/// (a session is never ended by its own second tab).
#[rocket::async_test]
async fn two_requests_at_the_moment_last_seen_is_due_are_both_served_and_write_it_once() {
    const ROUNDS: i64 = 60;
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    log_last_seen_writes(&app).await;
    let touch_interval = i64::from(app.config().touch_interval_secs());
    assert!(touch_interval * ROUNDS < i64::from(app.config().absolute_timeout_secs));

    for round in 0..ROUNDS {
        app.advance_secs(touch_interval);
        let (first, second) = rocket::tokio::join!(
            alice.get("/account/password"),
            alice.get("/account/password")
        );
        assert_eq!(
            (first.status, second.status),
            (Status::Ok, Status::Ok),
            "round {round}"
        );
    }
    assert_eq!(
        last_seen_writes(&app).await,
        ROUNDS,
        "one write per touch interval"
    );
}

/// The app's own connections to its test database (they name themselves), by server process id.
async fn app_backends(app: &TestApp, admin: &mut PgConnection) -> Vec<i32> {
    let name = app.database_url.rsplit('/').next().unwrap();
    sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'secure-sessions'")
        .bind(name)
        .fetch_all(admin)
        .await
        .unwrap()
}

#[rocket::async_test]
async fn when_the_database_drops_every_connection_at_most_one_request_fails_and_none_after_it() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    // Several requests at once: several pooled connections.
    let replies = rocket::tokio::join!(
        alice.get("/account/password"),
        alice.get("/account/password"),
        alice.get("/account/password"),
        alice.get("/account/password"),
    );
    assert!(
        [replies.0, replies.1, replies.2, replies.3]
            .iter()
            .all(|reply| reply.status == Status::Ok)
    );

    // What a server restart does to a pool: every connection closed under it.
    let mut admin = PgConnection::connect(&server_url()).await.unwrap();
    let backends = app_backends(&app, &mut admin).await;
    assert!(
        backends.len() >= 2,
        "several pooled connections: {backends:?}"
    );
    for pid in &backends {
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&mut admin)
            .await
            .unwrap();
    }
    for _ in 0..100 {
        let alive = app_backends(&app, &mut admin).await;
        if !alive.iter().any(|pid| backends.contains(pid)) {
            break;
        }
        sleep(Duration::from_millis(20)).await;
    }

    let mut statuses = Vec::new();
    for _ in 0..backends.len() + 2 {
        statuses.push(alice.get("/account/password").await.status);
    }
    assert!(
        matches!(statuses[0], Status::Ok | Status::ServiceUnavailable),
        "{statuses:?}"
    );
    assert!(
        statuses[1..].iter().all(|status| *status == Status::Ok),
        "one dead connection each: {statuses:?}"
    );
}

/// A connection older than `databases.main.max_lifetime_secs` is closed, even in a pool nobody
/// asks anything of, and the next request is served on a new one. The lifetime runs on the
/// system's clock, not the app's: the test waits it out.
#[rocket::async_test]
async fn connections_past_their_lifetime_are_closed_and_the_next_request_gets_a_new_one() {
    let app = TestApp::with(|figment| figment.merge(("databases.main.max_lifetime_secs", 1))).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let alice = Device::new(&client);
    alice.sign_in("alice", PASSWORD).await;
    let mut admin = PgConnection::connect(&server_url()).await.unwrap();
    let old = app_backends(&app, &mut admin).await;
    assert!(!old.is_empty(), "the sign-in used pooled connections");

    let mut alive = old.clone();
    for _ in 0..250 {
        if !alive.iter().any(|pid| old.contains(pid)) {
            break;
        }
        sleep(Duration::from_millis(20)).await;
        alive = app_backends(&app, &mut admin).await;
    }
    assert!(
        !alive.iter().any(|pid| old.contains(pid)),
        "connections past their lifetime are still open: {old:?} then {alive:?}"
    );
    assert_eq!(alice.get("/account/password").await.status, Status::Ok);
    assert!(
        !app_backends(&app, &mut admin).await.is_empty(),
        "the request was served on a new connection"
    );
}

/// `databases.main.min_connections` connections are open as soon as the app has started, before
/// any request; when their lifetime retires them, new ones take their place without a request
/// asking for them.
#[rocket::async_test]
async fn the_pool_keeps_min_connections_open_from_the_start_and_replaces_those_it_retires() {
    let app = TestApp::with(|figment| {
        figment
            .merge(("databases.main.min_connections", 3))
            .merge(("databases.main.max_lifetime_secs", 1))
    })
    .await;
    let _client = app.client().await;
    let mut admin = PgConnection::connect(&server_url()).await.unwrap();
    let first = app_backends(&app, &mut admin).await;
    assert!(
        first.len() >= 3,
        "three connections open before any request: {first:?}"
    );

    let mut now = first.clone();
    for _ in 0..250 {
        if now.len() >= 3 && !now.iter().any(|pid| first.contains(pid)) {
            break;
        }
        sleep(Duration::from_millis(20)).await;
        now = app_backends(&app, &mut admin).await;
    }
    assert!(
        now.len() >= 3 && !now.iter().any(|pid| first.contains(pid)),
        "the retired connections replaced by three new ones: {first:?} then {now:?}"
    );
}

/// More connections kept than allowed is a mistake in the settings: the app does not start.
#[rocket::async_test]
async fn min_connections_above_max_connections_stops_the_launch() {
    let app = TestApp::with(|figment| {
        figment
            .merge(("databases.main.min_connections", 9))
            .merge(("databases.main.max_connections", 4))
    })
    .await;
    let Err(error) = rocket::local::asynchronous::Client::untracked(app.rocket()).await else {
        panic!("the launch must be refused");
    };
    assert!(
        matches!(error.kind(), rocket::error::ErrorKind::FailedFairings(_)),
        "the database stage refuses the settings: {error:?}"
    );
}

/// The row lock a sign-in or a password change takes on the account.
async fn lock_user(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<()> {
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
        .bind(user_id)
        .execute(conn)
        .await
        .map(drop)
}

#[rocket::async_test]
async fn a_transaction_dropped_half_way_releases_its_locks_when_its_connection_returns() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let db = Db::fetch(client.rocket()).expect("the app's database");
    {
        let mut conn = db.connection().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        lock_user(&mut tx, user_id).await.unwrap();
        // Dropped without commit or rollback, as an early return or an error leaves it.
    }

    let mut other = app.pool.acquire().await.unwrap();
    other.execute("SET lock_timeout = '5s'").await.unwrap();
    let mut tx = other.begin().await.unwrap();
    lock_user(&mut tx, user_id)
        .await
        .expect("the dropped transaction's lock is released");
    tx.rollback().await.unwrap();
    drop(other);

    let alice = Device::new(&client);
    assert_eq!(
        alice.sign_in("alice", PASSWORD).await.status,
        Status::SeeOther,
        "the pool goes on serving"
    );
}

/// Far longer than a pool may wait on a silent server before it gives up on a connection.
const ANSWERED: Duration = Duration::from_secs(60);

async fn answered<T>(what: &str, reply: impl Future<Output = T>) -> T {
    timeout(ANSWERED, reply).await.unwrap_or_else(|_| {
        panic!("{what} got no answer: it was handed the connection the server stopped answering")
    })
}

/// A dropped transaction's ROLLBACK that the server never answers: the pool gives up on that
/// connection and throws it away. Meanwhile and afterwards, requests are served on good
/// connections, never handed the one still waiting for its answer. Judged by requests and by
/// the connection's end alone, so it holds for any pool.
#[rocket::async_test]
async fn a_connection_whose_rollback_the_server_never_answers_is_thrown_away_not_handed_on() {
    let database = fresh_database().await;
    let relay = StallingRelay::start(&database.url).await;
    let app = TestApp::on(database.url.clone(), |figment| {
        figment.merge(("databases.main.url", relay.url()))
    })
    .await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let api = Device::new(&client);
    let refresh = async |token: &str| {
        let reply = api
            .post_json("/api/token/refresh", &json!({"refresh_token": token}))
            .await;
        assert_eq!(reply.status, Status::Ok, "{}", reply.body);
        reply.json()["refresh_token"].as_str().unwrap().to_owned()
    };
    let tokens = api
        .post_json(
            "/api/token",
            &json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_eq!(tokens.status, Status::Ok, "{}", tokens.body);
    let token = tokens.json()["refresh_token"].as_str().unwrap().to_owned();

    // A well-formed refresh token nobody issued: the refresh looks it up in a transaction,
    // finds nothing, and drops the transaction, whose ROLLBACK goes out as the connection goes
    // back to the pool. The server stops answering right then.
    relay.stall_next_rollback();
    let unknown = json!({"refresh_token": "A".repeat(43)});
    let refused = answered(
        "the refused refresh",
        api.post_json("/api/token/refresh", &unknown),
    )
    .await;
    assert_eq!(refused.error_code(), "invalid_grant", "{}", refused.body);
    assert!(
        relay.stalled(ANSWERED).await,
        "the refused refresh sent no ROLLBACK: nothing was left for the pool to finish"
    );

    // While the pool waits for that answer, the next request is served on another connection.
    let token = answered("the next request", refresh(&token)).await;
    // The pool gives up on the silent connection and closes it, and goes on serving.
    assert!(
        relay.stalled_closed(ANSWERED).await,
        "the pool kept the connection the server stopped answering"
    );
    answered("a request after it", refresh(&token)).await;
}

#[rocket::async_test]
async fn noticing_a_cookie_used_from_two_networks_costs_no_statement_beyond_recording_the_change() {
    let app = TestApp::with(|figment| figment.merge(("sessions.idle_timeout_secs", 1800))).await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let mut alice = Device::with(&client, crate::support::http::CHROME_LINUX, "198.51.100.7");
    alice.sign_in("alice", PASSWORD).await;
    assert_eq!(alice.get("/account/password").await.status, Status::Ok);
    let statements = Statements::start(&app).await;

    // A change of network was, before the detection, the lookup and a transaction around the
    // change and its event: BEGIN, UPDATE, INSERT, COMMIT. Every change still is, whether it is
    // a new network, a quick return counted, or the return that ends the session.
    let max_returns = i64::from(app.config().network_alternations_max);
    let mut before = statements.count().await;
    for change in 0..=max_returns {
        app.advance_secs(5);
        alice.ip = if change % 2 == 0 {
            "203.0.113.66"
        } else {
            "198.51.100.7"
        }
        .parse()
        .unwrap();
        let reply = alice.get("/account/password").await;
        let after = statements.count().await;
        assert_eq!(after - before, 5, "change {change}: {}", reply.status);
        before = after;
        if change < max_returns {
            assert_eq!(reply.status, Status::Ok, "change {change}");
        } else {
            assert_eq!(
                reply.location(),
                "/login?reason=network_alternation&next=%2Faccount%2Fpassword"
            );
        }
    }
}

#[rocket::async_test]
async fn counting_recent_refreshes_costs_a_refresh_no_statement() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let script = Device::with(&client, "curl/8.5.0", "192.0.2.44");
    let reply = script
        .post_json(
            "/api/token",
            &serde_json::json!({ "username": "alice", "password": PASSWORD }),
        )
        .await;
    let mut refresh = reply.json()["refresh_token"].as_str().unwrap().to_owned();
    let statements = Statements::start(&app).await;
    for _ in 0..3 {
        let before = statements.count().await;
        let reply = script
            .post_json(
                "/api/token/refresh",
                &serde_json::json!({ "refresh_token": refresh }),
            )
            .await;
        assert_eq!(reply.status, Status::Ok);
        refresh = reply.json()["refresh_token"].as_str().unwrap().to_owned();
        // BEGIN, the token (with the family's recent refreshes), the compare-and-swap, the old
        // token marked used, the new one, COMMIT: as before the count was added.
        assert_eq!(statements.count().await - before, 6);
    }
}

/// A wrong password for a real account and one for a name no account has cost the database the
/// same: the same statements, as often, writing as many rows, through the form and the token
/// API. How long each answer takes is measured by `scripts/bench-sign-in-timing`, not asserted
/// here.
#[rocket::async_test]
async fn a_wrong_password_costs_the_same_statements_for_a_real_account_and_an_unknown_name() {
    const WRONG: &str = "not the password at all";
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let device = Device::new(&client);
    let csrf = device.get("/login").await.csrf_token();
    let statements = Statements::start(&app).await;
    let mut each = Vec::new();
    for username in ["alice", "nobod"] {
        statements.reset().await;
        let form = device
            .post_form(
                "/login",
                &[
                    ("username", username),
                    ("password", WRONG),
                    ("csrf_token", &csrf),
                ],
            )
            .await;
        assert_eq!(
            form.testid_text("login-error").as_deref(),
            Some("Incorrect username or password.")
        );
        let api = device
            .post_json(
                "/api/token",
                &serde_json::json!({ "username": username, "password": WRONG }),
            )
            .await;
        assert_eq!(api.error_code(), "invalid_credentials");
        each.push(statements.each().await);
    }
    let (real, unknown) = (&each[0], &each[1]);
    assert_eq!(real, unknown);
    assert!(
        real.iter().any(
            |(query, calls, rows)| query.starts_with("INSERT INTO security_events")
                && (*calls, *rows) == (2, Some(2))
        ),
        "each failure is recorded: {real:#?}"
    );
}
