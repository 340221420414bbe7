//! Sign-in throttling: failed attempts counted per account and per client address in PostgreSQL,
//! a growing delay past a threshold, and never a permanent lockout.
//!
//! Use it around every password check (`/login`, `/api/token`, `/confirm`):
//!
//! 1. `begin` before any argon2 work. A throttled attempt costs one short query and writes nothing.
//! 2. An admitted attempt counts as a failure from that moment on, so a burst of parallel guesses
//!    cannot all pass the check before the first failure is recorded. A wrong password needs no
//!    further call.
//! 3. `succeeded`, in the transaction that acts on the right password: the account starts afresh,
//!    and the attempt no longer counts against the address.
//!
//! Every statement on `sign_in_failures` lives here.

use std::net::IpAddr;

use rocket::http::Header;
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};
use time::{Duration, OffsetDateTime};

use crate::config::SessionConfig;
use crate::users::Username;

/// The wait imposed at the threshold; it doubles with each further failure, up to the window.
const FIRST_DELAY: Duration = Duration::minutes(1);
/// Advisory lock classes, one per scope, so an account's lock and an address's never collide.
const ACCOUNT_LOCK_CLASS: i32 = 0x5349_4741; // "SIGA"
const ADDRESS_LOCK_CLASS: i32 = 0x5349_4749; // "SIGI"

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Account,
    Address,
}

impl Scope {
    /// The stored name (see migrations/0005).
    fn code(self) -> &'static str {
        match self {
            Scope::Account => "account",
            Scope::Address => "ip",
        }
    }

    fn lock_class(self) -> i32 {
        match self {
            Scope::Account => ACCOUNT_LOCK_CLASS,
            Scope::Address => ADDRESS_LOCK_CLASS,
        }
    }
}

/// Whom failures are counted against: the SHA-256 of a scope and a value, so the table never
/// holds what was typed (people sometimes type their password into the username field).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Subject {
    scope: Scope,
    digest: [u8; 32],
}

impl Subject {
    /// In the canonical form, like the account lookup and the accounts' unique index, so no
    /// spelling of one account gets a budget of its own. Names that do not exist are counted the
    /// same way, so probing for accounts is throttled too.
    fn account(username: &Username) -> Subject {
        Subject::of(Scope::Account, &username.canonical())
    }

    /// The client's address; for IPv6, its /64 network, which one subscriber usually holds whole
    /// (counting single addresses would let one client rotate through billions).
    fn address(ip: &str) -> Subject {
        let network = match ip.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            _ => ip.to_owned(),
        };
        Subject::of(Scope::Address, &network)
    }

    fn of(scope: Scope, value: &str) -> Subject {
        let mut hasher = Sha256::new();
        hasher.update(scope.code());
        hasher.update([0]);
        hasher.update(value);
        Subject { scope, digest: hasher.finalize().into() }
    }

    fn lock_key(&self) -> i32 {
        i32::from_be_bytes([self.digest[0], self.digest[1], self.digest[2], self.digest[3]])
    }
}

/// How long a throttled client must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    secs: i64,
}

impl RetryAfter {
    /// Whole seconds, rounded up: a client that waits this long is let through.
    fn of(wait: Duration) -> RetryAfter {
        RetryAfter { secs: wait.whole_seconds() + i64::from(wait.subsec_nanoseconds() > 0) }
    }

    pub fn secs(self) -> i64 {
        self.secs
    }

    /// The `Retry-After` header of the 429 response.
    pub fn header(self) -> Header<'static> {
        Header::new("Retry-After", self.secs.to_string())
    }

    /// What a person is told, in plain words; it never says whether the account exists.
    pub fn message(self) -> String {
        let wait = if self.secs < 60 {
            plural(self.secs, "second")
        } else {
            plural((self.secs + 59) / 60, "minute")
        };
        format!("Too many failed sign-in attempts. Please wait {wait} and try again.")
    }
}

fn plural(n: i64, unit: &str) -> String {
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// A subject's failures inside the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Failures {
    count: u32,
    last_at: Option<OffsetDateTime>,
}

/// How long a subject must still wait at `now`: nothing below `threshold` failures; at it,
/// `FIRST_DELAY` after the latest failure, doubling with each further one, never more than the
/// window. Failures leave the count as the window slides, so no lockout is permanent.
fn wait(failures: Failures, threshold: u32, window: Duration, now: OffsetDateTime) -> Option<Duration> {
    let last_at = failures.last_at?;
    if failures.count < threshold {
        return None;
    }
    // Twenty doublings of a minute are far past any sensible window; the cap keeps the power small.
    let doublings = (failures.count - threshold).min(20);
    let delay = (FIRST_DELAY * 2_i32.pow(doublings)).min(window);
    let until = last_at + delay;
    (until > now).then(|| until - now)
}

/// An attempt let through, counted as a failure until `succeeded` says otherwise. Dropping it
/// (a wrong password) leaves the failure counted.
#[must_use = "a right password must call throttle::succeeded"]
pub struct Attempt {
    /// `None` for a typed name that cannot be a username: it can never be proven right.
    account: Option<Subject>,
    address_failure_id: i64,
}

pub enum Admission {
    /// Check the password now.
    Admitted(Attempt),
    /// Too many recent failures for this account or this address: do not check the password.
    Throttled(RetryAfter),
}

/// Decides whether a sign-in attempt for `account` from `ip` may check its password, and if so
/// counts it as a failure until proven otherwise. `None` is a typed name that cannot be a
/// username: it names no account, and only its address is counted. One short transaction, no
/// hashing inside.
pub async fn begin(
    conn: &mut PgConnection,
    config: &SessionConfig,
    account: Option<&Username>,
    ip: &str,
    now: OffsetDateTime,
) -> sqlx::Result<Admission> {
    let account = account.map(Subject::account);
    let address = Subject::address(ip);
    let mut tx = conn.begin().await?;
    // Attempts on one account or from one address take turns here, so each one counts the ones
    // before it. Always the account first: no two attempts can wait for each other.
    if let Some(account) = &account {
        lock(&mut tx, account).await?;
    }
    lock(&mut tx, &address).await?;
    let since = now - config.throttle_window();
    let account_wait = match &account {
        Some(account) => wait(recent_failures(&mut tx, account, since).await?, config.throttle_account_failures, config.throttle_window(), now),
        None => None,
    };
    let waits = [
        account_wait,
        wait(recent_failures(&mut tx, &address, since).await?, config.throttle_ip_failures, config.throttle_window(), now),
    ];
    if let Some(longest) = waits.into_iter().flatten().max() {
        return Ok(Admission::Throttled(RetryAfter::of(longest)));
    }
    if let Some(account) = &account {
        insert_failure(&mut tx, account, now).await?;
    }
    let address_failure_id = insert_failure(&mut tx, &address, now).await?;
    tx.commit().await?;
    Ok(Admission::Admitted(Attempt { account, address_failure_id }))
}

/// The password was right: the account's failures are forgotten (a successful sign-in resets
/// its counter) and this attempt no longer counts against the address. The address's other
/// failures stay: one person's success must not reset an attacker sharing their network.
/// Call it in the transaction that acts on the sign-in.
pub async fn succeeded(conn: &mut PgConnection, attempt: Attempt) -> sqlx::Result<()> {
    let account = attempt.account.as_ref();
    sqlx::query("DELETE FROM sign_in_failures WHERE (scope = $1 AND subject = $2) OR id = $3")
        .bind(account.map(|account| account.scope.code()))
        .bind(account.map(|account| &account.digest[..]))
        .bind(attempt.address_failure_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes failures that have left the window, in batches that each commit on their own. Safe
/// with any number of instances: each skips the rows another is deleting.
pub async fn forget_old(pool: &sqlx::PgPool, config: &SessionConfig, now: OffsetDateTime) -> sqlx::Result<u64> {
    let cutoff = now - config.throttle_window();
    let batch = i64::from(config.reaper_batch_size);
    let mut total = 0;
    loop {
        let deleted = delete_older_than(&mut *pool.acquire().await?, cutoff, batch).await?;
        total += deleted;
        if deleted < batch as u64 {
            return Ok(total);
        }
    }
}

async fn lock(tx: &mut PgConnection, subject: &Subject) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(subject.scope.lock_class())
        .bind(subject.lock_key())
        .execute(tx)
        .await?;
    Ok(())
}

async fn recent_failures(conn: &mut PgConnection, subject: &Subject, since: OffsetDateTime) -> sqlx::Result<Failures> {
    let (count, last_at): (i64, Option<OffsetDateTime>) = sqlx::query_as(
        "SELECT count(*), max(failed_at) FROM sign_in_failures WHERE scope = $1 AND subject = $2 AND failed_at > $3",
    )
    .bind(subject.scope.code())
    .bind(&subject.digest[..])
    .bind(since)
    .fetch_one(conn)
    .await?;
    Ok(Failures { count: u32::try_from(count).unwrap_or(u32::MAX), last_at })
}

async fn insert_failure(conn: &mut PgConnection, subject: &Subject, now: OffsetDateTime) -> sqlx::Result<i64> {
    sqlx::query_scalar("INSERT INTO sign_in_failures (scope, subject, failed_at) VALUES ($1, $2, $3) RETURNING id")
        .bind(subject.scope.code())
        .bind(&subject.digest[..])
        .bind(now)
        .fetch_one(conn)
        .await
}

async fn delete_older_than(conn: &mut PgConnection, cutoff: OffsetDateTime, batch: i64) -> sqlx::Result<u64> {
    let result = sqlx::query(
        "DELETE FROM sign_in_failures WHERE id IN (
             SELECT id FROM sign_in_failures WHERE failed_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(cutoff)
    .bind(batch)
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const START: OffsetDateTime = datetime!(2026-01-01 08:00 UTC);
    const WINDOW: Duration = Duration::minutes(15);

    fn failures(count: u32, last_secs_after_start: i64) -> Failures {
        Failures { count, last_at: Some(START + Duration::seconds(last_secs_after_start)) }
    }

    #[test]
    fn the_wait_follows_the_table() {
        // (failures, latest failure, now) -> wait, in seconds after START; threshold 5.
        let table = [
            (0, None, 0, None),
            (4, Some(0), 0, None),
            (5, Some(0), 0, Some(60)),
            (5, Some(0), 59, Some(1)),
            (5, Some(0), 60, None),
            (6, Some(100), 100, Some(120)),
            (7, Some(100), 100, Some(240)),
            (8, Some(100), 100, Some(480)),
            (9, Some(100), 100, Some(900)),
            (40, Some(100), 100, Some(900)),
            (40, Some(100), 1000, None),
        ];
        for (count, last, now, expected) in table {
            let failures = match last {
                Some(last) => failures(count, last),
                None => Failures { count, last_at: None },
            };
            let now = START + Duration::seconds(now);
            assert_eq!(wait(failures, 5, WINDOW, now), expected.map(Duration::seconds), "{failures:?} at {now}");
        }
    }

    #[test]
    fn the_wait_never_exceeds_a_short_window() {
        let short = Duration::seconds(30);
        assert_eq!(wait(failures(5, 0), 5, short, START), Some(short));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(RetryAfter::of(Duration::milliseconds(1)).secs(), 1);
        assert_eq!(RetryAfter::of(Duration::milliseconds(59_001)).secs(), 60);
        assert_eq!(RetryAfter::of(Duration::seconds(120)).secs(), 120);
    }

    #[test]
    fn the_message_speaks_in_seconds_then_minutes() {
        let message = |secs| RetryAfter { secs }.message();
        assert!(message(1).contains("wait 1 second and"), "{}", message(1));
        assert!(message(45).contains("wait 45 seconds"));
        assert!(message(60).contains("wait 1 minute and"));
        assert!(message(61).contains("wait 2 minutes"));
        assert!(message(900).contains("wait 15 minutes"));
    }

    #[test]
    fn subjects_ignore_case_and_group_ipv6_by_network() {
        let account = |typed| Subject::account(&Username::parse(typed).expect("a valid username"));
        assert_eq!(account("Alice"), account("aLICE"));
        assert_eq!(account(" alice\t"), account("ALICE"));
        assert_ne!(account("alice"), account("alice2"));
        assert_eq!(Subject::address("2001:db8:1:2:aaaa::1"), Subject::address("2001:db8:1:2:bbbb::9"));
        assert_ne!(Subject::address("2001:db8:1:2::1"), Subject::address("2001:db8:1:3::1"));
        assert_ne!(Subject::address("203.0.113.7"), Subject::address("203.0.113.8"));
        // An account and an address with the same text are different subjects.
        assert_ne!(account("203.0.113.7").digest, Subject::address("203.0.113.7").digest);
    }
}
