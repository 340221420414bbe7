//! The security activity log: an append-only table, written in the same transaction as the
//! change it records, and shown on the account page.

use sqlx::{Connection, PgConnection};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::client::ClientInfo;

crate::codes::text_codes! {
    /// What a security event records (`security_events.kind`).
    pub enum EventKind {
        SignIn = "sign_in",
        SignInFailed = "sign_in_failed",
        SignOut = "sign_out",
        IdleTimeout = "idle_timeout",
        SessionExpired = "session_expired",
        FingerprintMismatch = "fingerprint_mismatch",
        NetworkChanged = "network_changed",
        Registered = "registered",
        NewDevice = "new_device",
        SessionRevoked = "session_revoked",
        SessionLimit = "session_limit",
        PasswordChanged = "password_changed",
        Confirmed = "confirmed",
        ConfirmFailed = "confirm_failed",
        AccountSecured = "account_secured",
        AccountDisabled = "account_disabled",
        AccountEnabled = "account_enabled",
        SessionsRevokedByAdmin = "sessions_revoked_by_admin",
        ApiTokenIssued = "api_token_issued",
        ApiSignOut = "api_sign_out",
        ApiTokenRefreshReuse = "refresh_reuse",
        SessionBound = "session_bound",
        BindingProofRefused = "binding_proof_refused",
        NetworkAlternation = "network_alternation",
        ApiRefreshTooFast = "refresh_too_fast",
        SuspiciousSignIn = "suspicious_sign_in",
        PasskeySignIn = "passkey_sign_in",
        PasskeyAdded = "passkey_added",
        PasskeyRemoved = "passkey_removed",
    }
}

impl EventKind {
    /// What the account page says happened.
    pub fn describe(self) -> &'static str {
        match self {
            EventKind::SignIn => "Signed in",
            EventKind::SignInFailed => "Failed sign-in attempt (wrong password)",
            EventKind::SignOut => "Signed out",
            EventKind::IdleTimeout => "Signed out after inactivity",
            EventKind::SessionExpired => "Signed out: the sign-in reached its time limit",
            EventKind::FingerprintMismatch => {
                "Signed out: the browser no longer looked like the one that signed in"
            }
            EventKind::NetworkChanged => "Network changed during a session",
            EventKind::Registered => "Account created",
            EventKind::NewDevice => "Signed in from a new device",
            EventKind::SessionRevoked => "A device was signed out from another device",
            EventKind::SessionLimit => "A device was signed out: too many devices signed in",
            EventKind::PasswordChanged => "Password changed; other devices signed out",
            EventKind::Confirmed => "Password confirmed for a sensitive action",
            EventKind::ConfirmFailed => "Wrong password when confirming a sensitive action",
            EventKind::AccountSecured => "\"This wasn't me\": every other device signed out",
            EventKind::AccountDisabled => "Account disabled by an administrator",
            EventKind::AccountEnabled => "Account enabled by an administrator",
            EventKind::SessionsRevokedByAdmin => "All devices signed out by an administrator",
            EventKind::ApiTokenIssued => "An app or script signed in with your password",
            EventKind::ApiSignOut => "An app or script signed out",
            EventKind::ApiTokenRefreshReuse => {
                "An app or script was signed out: an already used refresh token was presented again (it may have been copied)"
            }
            EventKind::SessionBound => {
                "Session bound to this device's key (a copied cookie stops working within minutes)"
            }
            EventKind::BindingProofRefused => {
                "A proof of this device's key was refused (the session is unchanged)"
            }
            EventKind::NetworkAlternation => {
                "Signed out: this session was used from two networks by turns within minutes \
                 (someone else may have had a copy of it)"
            }
            EventKind::ApiRefreshTooFast => {
                "An app or script was signed out: it renewed its sign-in far more often than any app needs (it may have been copied)"
            }
            EventKind::SuspiciousSignIn => {
                "Signed in from a new device and a new network right after failed sign-in attempts"
            }
            EventKind::PasskeySignIn => "Signed in with a passkey",
            EventKind::PasskeyAdded => "Passkey added",
            EventKind::PasskeyRemoved => "Passkey removed",
        }
    }

    /// Whether an entry of this kind deserves a second look (the account page's warning).
    pub fn concern(self) -> Concern {
        match self {
            // Detections of a copied cookie or token, refused proofs, an administrator's action.
            EventKind::SuspiciousSignIn
            | EventKind::FingerprintMismatch
            | EventKind::NetworkAlternation
            | EventKind::ApiTokenRefreshReuse
            | EventKind::ApiRefreshTooFast
            | EventKind::BindingProofRefused
            | EventKind::AccountDisabled
            | EventKind::SessionsRevokedByAdmin => Concern::Always,
            // Ordinary when the person did it here; from anywhere else, worth a look.
            EventKind::NewDevice
            | EventKind::SignInFailed
            | EventKind::ConfirmFailed
            | EventKind::PasswordChanged
            | EventKind::SessionRevoked
            | EventKind::SessionLimit
            | EventKind::AccountSecured
            | EventKind::NetworkChanged
            // A new way into the account, or one gone: a notice (NIST SP 800-63B-4), and a
            // warning when another device did it.
            | EventKind::PasskeyAdded
            | EventKind::PasskeyRemoved => Concern::UnlessThisDevice,
            EventKind::SignIn
            | EventKind::PasskeySignIn
            | EventKind::SignOut
            | EventKind::IdleTimeout
            | EventKind::SessionExpired
            | EventKind::Registered
            | EventKind::Confirmed
            | EventKind::AccountEnabled
            | EventKind::ApiTokenIssued
            | EventKind::ApiSignOut
            | EventKind::SessionBound => Concern::Never,
        }
    }

    /// Whether "This wasn't me" (sign out everywhere else, then change the password) can help
    /// with an entry of this kind that another device caused: not for the account's creation,
    /// endings by time or by the person's own sign-out, an administrator's actions, nor a device
    /// pushed out by a sign-in (that sign-in's own entry offers it).
    pub fn disownable(self) -> bool {
        !matches!(
            self,
            EventKind::Registered
                | EventKind::SignOut
                | EventKind::IdleTimeout
                | EventKind::SessionExpired
                | EventKind::AccountDisabled
                | EventKind::AccountEnabled
                | EventKind::SessionsRevokedByAdmin
                | EventKind::ApiSignOut
                | EventKind::SessionBound
                | EventKind::SessionLimit
                | EventKind::AccountSecured
        )
    }

    /// A sign-in's own entry, whatever it proved (`session::start`).
    pub fn is_sign_in(self) -> bool {
        matches!(self, EventKind::SignIn | EventKind::PasskeySignIn)
    }
}

/// How much an entry deserves a second look (`EventKind::concern`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concern {
    Never,
    /// A warning unless this device caused it.
    UnlessThisDevice,
    Always,
}

/// One entry to append.
pub struct NewEvent<'a> {
    pub user_id: i64,
    pub kind: EventKind,
    /// The device the event is about.
    pub session: Option<Uuid>,
    /// The device that caused it, when it was another one (signing a device out remotely).
    pub actor: Option<Uuid>,
    /// The request that caused it.
    pub client: &'a ClientInfo,
    pub detail: String,
}

impl<'a> NewEvent<'a> {
    /// An event about `session` (or the account, with `None`), caused by `client`'s request.
    pub fn new(
        user_id: i64,
        kind: EventKind,
        session: Option<Uuid>,
        client: &'a ClientInfo,
    ) -> Self {
        NewEvent {
            user_id,
            kind,
            session,
            actor: None,
            client,
            detail: String::new(),
        }
    }

    pub fn by(mut self, actor: Uuid) -> Self {
        self.actor = Some(actor);
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

pub async fn record(
    conn: &mut PgConnection,
    event: NewEvent<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO security_events (user_id, kind, session_public_id, actor_public_id, ip, user_agent, detail,
                                      occurred_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        event.user_id,
        event.kind as _,
        event.session,
        event.actor,
        event.client.ip,
        event.client.user_agent,
        event.detail,
        now,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records an event a stranger can cause as often as they like (a refused DBSC proof) as one
/// row per session, kind and `window`: the first occurrence in a window inserts it, each later
/// one adds to its count and moves its time, address and detail to the latest. One statement,
/// so concurrent occurrences never make a second row.
pub async fn record_counted(
    conn: &mut PgConnection,
    event: NewEvent<'_>,
    window: Duration,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    let counted_from = window_start(now, window);
    sqlx::query!(
        "INSERT INTO security_events (user_id, kind, session_public_id, actor_public_id, ip, user_agent, detail,
                                      occurred_at, counted_from)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (session_public_id, kind, counted_from) WHERE counted_from IS NOT NULL
         DO UPDATE SET repeats = security_events.repeats + 1, occurred_at = EXCLUDED.occurred_at,
                       ip = EXCLUDED.ip, user_agent = EXCLUDED.user_agent, detail = EXCLUDED.detail",
        event.user_id,
        event.kind as _,
        event.session,
        event.actor,
        event.client.ip,
        event.client.user_agent,
        event.detail,
        now,
        counted_from,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The start of the `window`-long slice of time since the Unix epoch that `now` falls in.
fn window_start(now: OffsetDateTime, window: Duration) -> OffsetDateTime {
    let window = window.whole_seconds().max(1);
    let start = now.unix_timestamp().div_euclid(window) * window;
    OffsetDateTime::from_unix_timestamp(start).expect("within the range of `now`")
}

/// Records a refused sign-in against `account`, or against no account for a name that has none
/// (`None`): the same statement writing one row either way (migrations/0021), so the time to
/// the answer does not tell a real account from an unknown name. Only a real account's entries
/// are shown to anyone (`recent_for_user`); all are deleted after `event_retention_days`.
pub async fn record_sign_in_failure(
    conn: &mut PgConnection,
    account: Option<i64>,
    client: &ClientInfo,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO security_events (user_id, kind, ip, user_agent, occurred_at)
         VALUES ($1, $2, $3, $4, $5)",
        account,
        EventKind::SignInFailed as _,
        client.ip,
        client.user_agent,
        now,
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug)]
pub struct EventRecord {
    pub id: i64,
    pub kind: EventKind,
    pub session_public_id: Option<Uuid>,
    pub actor_public_id: Option<Uuid>,
    pub ip: String,
    pub user_agent: String,
    pub detail: String,
    pub occurred_at: OffsetDateTime,
    /// How many times it happened (more than once only for `record_counted` events).
    pub repeats: i32,
}

impl EventRecord {
    /// The device whose request caused the event (its IP and user agent are recorded): the
    /// actor when another device acted, else the device the event is about.
    pub fn acting_device(&self) -> Option<Uuid> {
        self.actor_public_id.or(self.session_public_id)
    }
}

/// The events by which the account came to know a device or a network: it was created there, or
/// signed in there (with a password, a passkey or for an API token). Failed sign-ins teach it
/// nothing: a guesser does not become known by guessing.
const KNOWN_BY_SIGN_IN: [EventKind; 4] = [
    EventKind::Registered,
    EventKind::SignIn,
    EventKind::PasskeySignIn,
    EventKind::ApiTokenIssued,
];

/// Whether a sign-in with `user_agent` is from a new device, by what the log knows (so within
/// `event_retention_days`): the account has signed in or been created before (the device it
/// was created on is known from then), and never from this User-Agent. Failed sign-ins teach it
/// nothing: a guesser's device does not become known by guessing.
pub async fn is_new_device(
    conn: &mut PgConnection,
    user_id: i64,
    user_agent: &str,
) -> sqlx::Result<bool> {
    let known: Vec<String> = KNOWN_BY_SIGN_IN
        .iter()
        .map(|kind| kind.code().to_owned())
        .collect();
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM security_events WHERE user_id = $1 AND kind = ANY($2))
                  AND NOT EXISTS (SELECT 1 FROM security_events
                                  WHERE user_id = $1 AND kind = ANY($2) AND user_agent = $3) AS "new!""#,
        user_id,
        &known,
        user_agent,
    )
    .fetch_one(conn)
    .await
}

/// Whether a sign-in from the address `ip` comes from a new network, by what the log knows (so
/// within `event_retention_days`): the account has signed in or been created before, and never
/// from this network (an IPv4 /24 or an IPv6 /48, the prefix old addresses are cut to). Like
/// devices, networks are remembered by the log, not by session rows that the reaper deletes.
pub async fn is_new_network(conn: &mut PgConnection, user_id: i64, ip: &str) -> sqlx::Result<bool> {
    let known: Vec<String> = KNOWN_BY_SIGN_IN
        .iter()
        .map(|kind| kind.code().to_owned())
        .collect();
    let addresses = sqlx::query_scalar!(
        "SELECT DISTINCT ip FROM security_events WHERE user_id = $1 AND kind = ANY($2)",
        user_id,
        &known,
    )
    .fetch_all(conn)
    .await?;
    let network = network_of(ip);
    Ok(!addresses.is_empty() && !addresses.iter().any(|seen| network_of(seen) == network))
}

/// The network an address recorded in the log belongs to: a cut address is its own network; an
/// address that is not one (none was known) is the empty network.
fn network_of(ip: &str) -> String {
    if ip.contains('/') {
        return ip.to_owned();
    }
    ip.parse()
        .map(crate::session::fingerprint::network_prefix)
        .unwrap_or_default()
}

/// The User-Agent each of the user's sessions or token families in `ids` signed in with, as
/// its sign-in event recorded it: what names a device in entries about it that another device
/// caused (signing it out). A session whose sign-in has aged out of the log is not listed.
pub async fn sign_in_user_agents(
    conn: &mut PgConnection,
    user_id: i64,
    ids: &[Uuid],
) -> sqlx::Result<Vec<(Uuid, String)>> {
    let rows = sqlx::query!(
        r#"SELECT session_public_id AS "id!", user_agent FROM security_events
           WHERE user_id = $1 AND kind IN ($2, $3) AND session_public_id = ANY($4)"#,
        user_id,
        EventKind::SignIn as _,
        EventKind::ApiTokenIssued as _,
        ids,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.id, row.user_agent))
        .collect())
}

/// How many events of `kind` the user has had since `since`.
pub async fn count_since(
    conn: &mut PgConnection,
    user_id: i64,
    kind: EventKind,
    since: OffsetDateTime,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM security_events
           WHERE user_id = $1 AND kind = $2 AND occurred_at > $3"#,
        user_id,
        kind as _,
        since,
    )
    .fetch_one(conn)
    .await
}

/// The newest events of a user, newest first.
pub async fn recent_for_user(
    conn: &mut PgConnection,
    user_id: i64,
    limit: i64,
) -> sqlx::Result<Vec<EventRecord>> {
    sqlx::query_as!(
        EventRecord,
        r#"SELECT id, kind AS "kind: EventKind", session_public_id, actor_public_id, ip, user_agent, detail, occurred_at,
                  repeats
           FROM security_events
           WHERE user_id = $1 ORDER BY occurred_at DESC, id DESC LIMIT $2"#,
        user_id,
        limit,
    )
    .fetch_all(conn)
    .await
}

/// The user's flagged events (`suspicious_sign_in`: a sign-in that may have been a guesser's),
/// which the account page lists before any other, that the owner has not acted on, newest first.
/// Acting on one is "This wasn't me", a password change, or signing out the device it is about,
/// after it; nothing else that comes after hides it.
pub async fn open_flags(
    conn: &mut PgConnection,
    user_id: i64,
    limit: i64,
) -> sqlx::Result<Vec<EventRecord>> {
    sqlx::query_as!(
        EventRecord,
        r#"SELECT f.id, f.kind AS "kind: EventKind", f.session_public_id, f.actor_public_id, f.ip, f.user_agent,
                  f.detail, f.occurred_at, f.repeats
           FROM security_events f
           WHERE f.user_id = $1 AND f.kind = 'suspicious_sign_in' -- a literal: the partial index's
             AND NOT EXISTS (
                 SELECT 1 FROM security_events a
                 WHERE a.user_id = f.user_id AND a.id > f.id
                   AND (a.kind IN ($2, $3) OR (a.kind = $4 AND a.session_public_id = f.session_public_id)))
           ORDER BY f.id DESC LIMIT $5"#,
        user_id,
        EventKind::AccountSecured as _,
        EventKind::PasswordChanged as _,
        EventKind::SessionRevoked as _,
        limit,
    )
    .fetch_all(conn)
    .await
}

/// Deletes up to `batch` events that occurred before `cutoff`, oldest first. Rows another
/// reaper is deleting are skipped, not waited for.
pub async fn delete_older_than(
    conn: &mut PgConnection,
    cutoff: OffsetDateTime,
    batch: i64,
) -> sqlx::Result<u64> {
    let result = sqlx::query!(
        "DELETE FROM security_events WHERE id IN (
             SELECT id FROM security_events WHERE occurred_at < $1
             ORDER BY occurred_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        cutoff,
        batch,
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

/// Cuts the addresses of up to `batch` events that occurred before `cutoff`, and whose address
/// is still whole, to their network prefix (`203.0.113.0/24`, `2001:db8:1::/48`), in one
/// transaction. A value that is not an address is cleared: nothing is kept that cannot be cut.
/// Returns how many were cut.
pub async fn cut_addresses_older_than(
    conn: &mut PgConnection,
    cutoff: OffsetDateTime,
    batch: i64,
) -> sqlx::Result<u64> {
    let mut tx = conn.begin().await?;
    // The predicate is the partial index's (migrations/0015): a cut address has a `/`.
    let whole = sqlx::query!(
        "SELECT id, ip FROM security_events
         WHERE occurred_at < $1 AND ip <> '' AND strpos(ip, '/') = 0
         ORDER BY occurred_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        cutoff,
        batch,
    )
    .fetch_all(&mut *tx)
    .await?;
    if whole.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let (ids, cut): (Vec<i64>, Vec<String>) = whole
        .into_iter()
        .map(|row| {
            let network = row
                .ip
                .parse()
                .map(crate::session::fingerprint::network_prefix)
                .unwrap_or_default();
            (row.id, network)
        })
        .unzip();
    let result = sqlx::query!(
        "UPDATE security_events e SET ip = c.ip
         FROM unnest($1::bigint[], $2::text[]) AS c (id, ip) WHERE e.id = c.id",
        &ids,
        &cut,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(result.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_windows_are_whole_slices_of_time() {
        let hour = Duration::hours(1);
        let at = |secs| OffsetDateTime::from_unix_timestamp(secs).unwrap();
        assert_eq!(window_start(at(7200), hour), at(7200));
        assert_eq!(window_start(at(7200 + 3599), hour), at(7200));
        assert_eq!(window_start(at(7200 + 3600), hour), at(10800));
        assert_eq!(window_start(at(-1), hour), at(-3600));
    }

    #[test]
    fn every_kind_round_trips_through_its_code() {
        for &kind in EventKind::ALL {
            assert_eq!(EventKind::from_code(kind.code()), Some(kind));
        }
    }
}
