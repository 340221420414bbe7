//! Throttling, kept in PostgreSQL: three budgets, none draining another (docs/security.md, "Sign-in throttling"),
//! each counted per subject under an advisory lock, and never a permanent lockout.
//!
//! - **Sign-in failures** (`/login`, `/api/token`), per account and per client address. The
//!   account is keyed on `Username::canonical`, the form the account lookup uses, so no spelling
//!   of one account gets a budget of its own.
//! - **Password re-checks** by a signed-in session (`/confirm`, which guards "This wasn't me" and
//!   signing devices out, and the password change), per session. Strangers failing to sign in
//!   cannot drain it, and a thief guessing on a stolen cookie drains only the stolen session's:
//!   neither can keep the owner from signing the thief out.
//! - **Sign-ups** (`/register`) per client address: at most so many in any window.
//!
//! Around every password check:
//!
//! 1. `begin_sign_in` or `begin_recheck` before any argon2 work. A throttled attempt costs one
//!    short transaction and writes nothing.
//! 2. An admitted attempt counts as a failure from that moment on, so a burst of parallel guesses
//!    cannot all pass the check before the first failure is recorded. A wrong password needs no
//!    further call.
//! 3. `succeeded`, in the transaction that acts on the right password: the account's (or the
//!    session's) failures are forgotten, and the attempt no longer counts against the address.
//!
//! Every statement on `sign_in_failures` lives here.

use std::net::IpAddr;

use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::config::SessionConfig;
use crate::users::Username;

/// The wait imposed at the threshold; it doubles with each further failure, up to the window.
const FIRST_DELAY: Duration = Duration::minutes(1);
/// Advisory lock classes, one per scope, so no two scopes' locks ever collide.
const ACCOUNT_LOCK_CLASS: i32 = 0x5349_4741; // "SIGA"
const ADDRESS_LOCK_CLASS: i32 = 0x5349_4749; // "SIGI"
const SESSION_LOCK_CLASS: i32 = 0x5349_4753; // "SIGS"
const SIGN_UP_LOCK_CLASS: i32 = 0x5349_4755; // "SIGU"

crate::codes::text_codes! {
    /// Whose budget a row counts against (`sign_in_failures.scope`, see migrations/0005 and 0007).
    pub enum Scope {
        /// Sign-in failures per account.
        Account = "account",
        /// Sign-in failures per client address.
        Address = "ip",
        /// Wrong passwords at re-checks, per signed-in session.
        Session = "session",
        /// Sign-ups per client address.
        SignUp = "sign_up",
    }
}

impl Scope {
    fn lock_class(self) -> i32 {
        match self {
            Scope::Account => ACCOUNT_LOCK_CLASS,
            Scope::Address => ADDRESS_LOCK_CLASS,
            Scope::Session => SESSION_LOCK_CLASS,
            Scope::SignUp => SIGN_UP_LOCK_CLASS,
        }
    }
}

/// Whom a budget belongs to: the SHA-256 of a scope and a value, so the table never holds what
/// was typed (people sometimes type their password into the username field).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Subject {
    scope: Scope,
    digest: [u8; 32],
}

impl Subject {
    /// In the canonical form, like the account lookup and the accounts' unique index. Names that
    /// do not exist are counted the same way, so probing for accounts is throttled too.
    fn account(username: &Username) -> Subject {
        Subject::of(Scope::Account, username.canonical().as_bytes())
    }

    /// The client's address; for IPv6, its /64 network, which one subscriber usually holds whole
    /// (counting single addresses would let one client rotate through billions).
    fn address(scope: Scope, ip: &str) -> Subject {
        let network = match ip.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            _ => ip.to_owned(),
        };
        Subject::of(scope, network.as_bytes())
    }

    /// A signed-in session, by its public id, which rotation keeps.
    fn session(public_id: Uuid) -> Subject {
        Subject::of(Scope::Session, public_id.as_bytes())
    }

    fn of(scope: Scope, value: &[u8]) -> Subject {
        let mut hasher = Sha256::new();
        hasher.update(scope.code());
        hasher.update([0]);
        hasher.update(value);
        Subject {
            scope,
            digest: hasher.finalize().into(),
        }
    }

    fn lock_key(&self) -> i32 {
        i32::from_be_bytes([
            self.digest[0],
            self.digest[1],
            self.digest[2],
            self.digest[3],
        ])
    }
}

/// What a spent budget was for: it picks the words a person is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Budget {
    SignIn,
    Recheck,
    SignUp,
}

/// How a subject's budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    /// Password guessing: from `threshold` failures in the window on, a delay after the latest
    /// that doubles with each further one.
    Growing { threshold: u32 },
    /// At most `max` in any window: the next waits until the oldest of those leaves it.
    Flat { max: u32 },
}

/// How long a throttled client must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    secs: i64,
    budget: Budget,
}

impl RetryAfter {
    /// Whole seconds, rounded up: a client that waits this long is let through.
    fn of(wait: Duration, budget: Budget) -> RetryAfter {
        RetryAfter {
            secs: wait.whole_seconds() + i64::from(wait.subsec_nanoseconds() > 0),
            budget,
        }
    }

    pub fn secs(self) -> i64 {
        self.secs
    }

    /// When the wait is over, rounded up to the minute: the time a page can show.
    pub fn until(self, now: OffsetDateTime) -> OffsetDateTime {
        let at = now + Duration::seconds(self.secs);
        let into_minute = Duration::seconds(i64::from(at.second()))
            + Duration::nanoseconds(i64::from(at.nanosecond()));
        if into_minute.is_zero() {
            at
        } else {
            at - into_minute + Duration::minutes(1)
        }
    }

    /// What a person is told, in plain words; it never says whether the account exists.
    pub fn message(self) -> String {
        let wait = if self.secs < 60 {
            plural(self.secs, "second")
        } else {
            plural((self.secs + 59) / 60, "minute")
        };
        let what = match self.budget {
            Budget::SignIn => "Too many failed sign-in attempts.",
            Budget::Recheck => "Too many wrong passwords.",
            Budget::SignUp => "Too many sign-ups from your network.",
        };
        format!("{what} Please wait {wait} and try again.")
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
fn wait(
    failures: Failures,
    threshold: u32,
    window: Duration,
    now: OffsetDateTime,
) -> Option<Duration> {
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

/// How long a flat limit of `n` must still wait at `now`, given when the `n`-th most recent
/// counted event in the window happened (`None`: fewer than `n` in it). Once that one leaves
/// the window, fewer than `n` remain.
fn flat_wait(
    nth_latest: Option<OffsetDateTime>,
    window: Duration,
    now: OffsetDateTime,
) -> Option<Duration> {
    let until = nth_latest? + window;
    (until > now).then(|| until - now)
}

/// An attempt let through, counted as a failure until `succeeded` (a right password) or
/// `not_checked` (no password was checked) says otherwise. Dropping it (a wrong password) leaves
/// the failure counted.
#[must_use = "a right password must call throttle::succeeded"]
pub struct Attempt {
    /// The budget a right password resets: the account's at sign-in (none for a name that cannot
    /// be an account), the session's at a re-check.
    resets: Option<Subject>,
    /// This attempt's rows, one in each budget it was counted against.
    rows: Vec<i64>,
}

pub enum Admission<T = Attempt> {
    /// Go ahead (for a password: check it now).
    Admitted(T),
    /// The budget is spent: do not go ahead (no password is checked).
    Throttled(RetryAfter),
}

/// Decides whether a sign-in attempt for `account` from `ip` may check its password, and if so
/// counts it as a failure until proven otherwise. `None` is a typed name that cannot be a
/// username: it names no account, and only its address is counted. One short transaction, no
/// hashing inside.
pub async fn begin_sign_in(
    conn: &mut PgConnection,
    config: &SessionConfig,
    account: Option<&Username>,
    ip: &str,
    now: OffsetDateTime,
) -> sqlx::Result<Admission> {
    let account = account.map(Subject::account);
    let address = Subject::address(Scope::Address, ip);
    // Always the account first: no two attempts can wait for each other's locks.
    let mut limits = Vec::with_capacity(2);
    if let Some(account) = &account {
        limits.push((
            account,
            Limit::Growing {
                threshold: config.throttle_account_failures,
            },
        ));
    }
    limits.push((
        &address,
        Limit::Growing {
            threshold: config.throttle_ip_failures,
        },
    ));
    let admission = admit(conn, &limits, Budget::SignIn, config.throttle_window(), now).await?;
    Ok(match admission {
        Admission::Admitted(rows) => Admission::Admitted(Attempt {
            resets: account,
            rows,
        }),
        Admission::Throttled(retry_after) => Admission::Throttled(retry_after),
    })
}

/// Decides whether a signed-in session may have its password checked again (confirmation,
/// password change), counted against that session alone: sign-in failures, whoever made them,
/// do not drain it, and it does not drain theirs.
pub async fn begin_recheck(
    conn: &mut PgConnection,
    config: &SessionConfig,
    session: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<Admission> {
    let session = Subject::session(session);
    let limits = [(
        &session,
        Limit::Growing {
            threshold: config.throttle_session_failures,
        },
    )];
    Ok(
        match admit(
            conn,
            &limits,
            Budget::Recheck,
            config.throttle_window(),
            now,
        )
        .await?
        {
            Admission::Admitted(rows) => Admission::Admitted(Attempt {
                resets: Some(session),
                rows,
            }),
            Admission::Throttled(retry_after) => Admission::Throttled(retry_after),
        },
    )
}

/// Decides whether a sign-up from `ip` may go ahead, and if so counts it: every sign-up let
/// through costs an argon2 hash, whether or not its username turns out to be free.
pub async fn begin_sign_up(
    conn: &mut PgConnection,
    config: &SessionConfig,
    ip: &str,
    now: OffsetDateTime,
) -> sqlx::Result<Admission<()>> {
    let address = Subject::address(Scope::SignUp, ip);
    let limits = [(
        &address,
        Limit::Flat {
            max: config.throttle_ip_sign_ups,
        },
    )];
    Ok(
        match admit(conn, &limits, Budget::SignUp, config.throttle_window(), now).await? {
            Admission::Admitted(_) => Admission::Admitted(()),
            Admission::Throttled(retry_after) => Admission::Throttled(retry_after),
        },
    )
}

/// In one transaction: locks each subject's budget (in the order given), and either answers
/// with the longest wait among them, writing nothing, or counts one row against each and
/// returns the rows' ids in the same order. Requests on one subject take turns here, so each
/// one counts the ones before it: no burst can slip past a limit.
async fn admit(
    conn: &mut PgConnection,
    limits: &[(&Subject, Limit)],
    budget: Budget,
    window: Duration,
    now: OffsetDateTime,
) -> sqlx::Result<Admission<Vec<i64>>> {
    let mut tx = conn.begin().await?;
    for (subject, _) in limits {
        lock(&mut tx, subject).await?;
    }
    let since = now - window;
    let mut longest: Option<Duration> = None;
    for (subject, limit) in limits {
        let wait = match *limit {
            Limit::Growing { threshold } => wait(
                recent_failures(&mut tx, subject, since).await?,
                threshold,
                window,
                now,
            ),
            Limit::Flat { max } => {
                flat_wait(nth_latest(&mut tx, subject, since, max).await?, window, now)
            }
        };
        longest = longest.max(wait);
    }
    if let Some(longest) = longest {
        return Ok(Admission::Throttled(RetryAfter::of(longest, budget)));
    }
    let mut rows = Vec::with_capacity(limits.len());
    for (subject, _) in limits {
        rows.push(insert_row(&mut tx, subject, now).await?);
    }
    tx.commit().await?;
    Ok(Admission::Admitted(rows))
}

/// The password was right: the budget it was checked against starts afresh (a successful
/// sign-in resets the account's count, a successful re-check the session's), and this attempt
/// no longer counts against the address. The address's other failures stay: one person's
/// success must not reset an attacker sharing their network. Call it in the transaction that
/// acts on the right password.
pub async fn succeeded(conn: &mut PgConnection, attempt: Attempt) -> sqlx::Result<()> {
    let resets = attempt.resets.as_ref();
    sqlx::query!(
        "DELETE FROM sign_in_failures WHERE (scope = $1 AND subject = $2) OR id = ANY($3)",
        resets.map(|subject| subject.scope) as _,
        resets.map(|subject| &subject.digest[..]),
        &attempt.rows,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// No password was checked: the server could not hash it (it is shutting down, or its hashing
/// process is gone) and answered 503. The attempt taught its sender nothing, so it is taken back
/// from every budget it was counted against, and nothing else is: a person signing in during a
/// restart is not locked out by the attempts the restart cut off.
pub async fn not_checked(conn: &mut PgConnection, attempt: Attempt) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM sign_in_failures WHERE id = ANY($1)",
        &attempt.rows
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes counted rows that have left the window, in batches that each commit on their own.
/// Safe with any number of instances: each skips the rows another is deleting.
pub async fn forget_old(
    conn: &mut PgConnection,
    config: &SessionConfig,
    now: OffsetDateTime,
) -> sqlx::Result<u64> {
    let cutoff = now - config.throttle_window();
    let batch = i64::from(config.reaper_batch_size);
    let mut total = 0;
    loop {
        let deleted = delete_older_than(conn, cutoff, batch).await?;
        total += deleted;
        if deleted < batch.unsigned_abs() {
            return Ok(total);
        }
    }
}

async fn lock(tx: &mut PgConnection, subject: &Subject) -> sqlx::Result<()> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock($1, $2)",
        subject.scope.lock_class(),
        subject.lock_key(),
    )
    .execute(tx)
    .await?;
    Ok(())
}

async fn recent_failures(
    conn: &mut PgConnection,
    subject: &Subject,
    since: OffsetDateTime,
) -> sqlx::Result<Failures> {
    let row = sqlx::query!(
        r#"SELECT count(*) AS "count!", max(failed_at) AS last_at
           FROM sign_in_failures WHERE scope = $1 AND subject = $2 AND failed_at > $3"#,
        subject.scope as _,
        &subject.digest[..],
        since,
    )
    .fetch_one(conn)
    .await?;
    Ok(Failures {
        count: u32::try_from(row.count).unwrap_or(u32::MAX),
        last_at: row.last_at,
    })
}

/// When the `n`-th most recent row of a subject in the window was counted; `None` when it has
/// fewer than `n` there.
async fn nth_latest(
    conn: &mut PgConnection,
    subject: &Subject,
    since: OffsetDateTime,
    n: u32,
) -> sqlx::Result<Option<OffsetDateTime>> {
    sqlx::query_scalar!(
        "SELECT failed_at FROM sign_in_failures WHERE scope = $1 AND subject = $2 AND failed_at > $3
         ORDER BY failed_at DESC OFFSET $4 LIMIT 1",
        subject.scope as _,
        &subject.digest[..],
        since,
        i64::from(n.saturating_sub(1)),
    )
    .fetch_optional(conn)
    .await
}

async fn insert_row(
    conn: &mut PgConnection,
    subject: &Subject,
    now: OffsetDateTime,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        "INSERT INTO sign_in_failures (scope, subject, failed_at) VALUES ($1, $2, $3) RETURNING id",
        subject.scope as _,
        &subject.digest[..],
        now,
    )
    .fetch_one(conn)
    .await
}

async fn delete_older_than(
    conn: &mut PgConnection,
    cutoff: OffsetDateTime,
    batch: i64,
) -> sqlx::Result<u64> {
    let result = sqlx::query!(
        "DELETE FROM sign_in_failures WHERE id IN (
             SELECT id FROM sign_in_failures WHERE failed_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        cutoff,
        batch,
    )
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
        Failures {
            count,
            last_at: Some(START + Duration::seconds(last_secs_after_start)),
        }
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
                None => Failures {
                    count,
                    last_at: None,
                },
            };
            let now = START + Duration::seconds(now);
            assert_eq!(
                wait(failures, 5, WINDOW, now),
                expected.map(Duration::seconds),
                "{failures:?} at {now}"
            );
        }
    }

    #[test]
    fn the_wait_never_exceeds_a_short_window() {
        let short = Duration::seconds(30);
        assert_eq!(wait(failures(5, 0), 5, short, START), Some(short));
    }

    #[test]
    fn a_flat_limit_waits_until_the_oldest_counted_event_leaves_the_window() {
        let at = |secs| Some(START + Duration::seconds(secs));
        assert_eq!(flat_wait(None, WINDOW, START), None);
        assert_eq!(flat_wait(at(0), WINDOW, START), Some(WINDOW));
        assert_eq!(
            flat_wait(at(0), WINDOW, START + Duration::seconds(899)),
            Some(Duration::seconds(1))
        );
        assert_eq!(flat_wait(at(0), WINDOW, START + WINDOW), None);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let of = |wait| RetryAfter::of(wait, Budget::SignIn).secs();
        assert_eq!(of(Duration::milliseconds(1)), 1);
        assert_eq!(of(Duration::milliseconds(59_001)), 60);
        assert_eq!(of(Duration::seconds(120)), 120);
    }

    #[test]
    fn the_time_a_page_shows_is_the_end_of_the_wait_rounded_up_to_the_minute() {
        let at = |secs, now: OffsetDateTime| {
            RetryAfter {
                secs,
                budget: Budget::SignIn,
            }
            .until(now)
        };
        let now = START + Duration::seconds(30);
        assert_eq!(at(30, now), START + Duration::minutes(1));
        assert_eq!(at(60, now), START + Duration::minutes(2));
        assert_eq!(at(900, now), START + Duration::minutes(16));
        // Half a second past a whole minute is the next minute.
        let now = START + Duration::milliseconds(30_500);
        assert_eq!(at(30, now), START + Duration::minutes(2));
    }

    #[test]
    fn the_message_speaks_in_seconds_then_minutes() {
        let message = |secs| {
            RetryAfter {
                secs,
                budget: Budget::SignIn,
            }
            .message()
        };
        assert!(message(1).contains("wait 1 second and"), "{}", message(1));
        assert!(message(45).contains("wait 45 seconds"));
        assert!(message(60).contains("wait 1 minute and"));
        assert!(message(61).contains("wait 2 minutes"));
        assert!(message(900).contains("wait 15 minutes"));
    }

    #[test]
    fn the_message_names_the_spent_budget() {
        let message = |budget| RetryAfter { secs: 60, budget }.message();
        assert_eq!(
            message(Budget::SignIn),
            "Too many failed sign-in attempts. Please wait 1 minute and try again."
        );
        assert_eq!(
            message(Budget::Recheck),
            "Too many wrong passwords. Please wait 1 minute and try again."
        );
        assert_eq!(
            message(Budget::SignUp),
            "Too many sign-ups from your network. Please wait 1 minute and try again."
        );
    }

    #[test]
    fn an_account_is_one_subject_however_its_name_is_typed() {
        let account = |typed| Subject::account(&Username::parse(typed).expect("a valid username"));
        assert_eq!(account("Alice"), account("aLICE"));
        assert_eq!(account(" alice\t"), account("ALICE"));
        assert_ne!(account("alice"), account("alice2"));
    }

    #[test]
    fn addresses_group_ipv6_by_network_and_scopes_never_share_a_subject() {
        let address = |ip| Subject::address(Scope::Address, ip);
        assert_eq!(
            address("2001:db8:1:2:aaaa::1"),
            address("2001:db8:1:2:bbbb::9")
        );
        assert_ne!(address("2001:db8:1:2::1"), address("2001:db8:1:3::1"));
        assert_ne!(address("203.0.113.7"), address("203.0.113.8"));
        // The same text in another scope is another subject: budgets never drain each other.
        let sign_ups = Subject::address(Scope::SignUp, "203.0.113.7");
        assert_ne!(sign_ups.digest, address("203.0.113.7").digest);
        let account = Subject::account(
            &Username::parse("203.0.113.7").expect("digits and dots are a username"),
        );
        assert_ne!(account.digest, address("203.0.113.7").digest);
        assert_ne!(
            Subject::session(Uuid::nil()).digest,
            Subject::session(Uuid::max()).digest
        );
    }
}
