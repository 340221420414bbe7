//! Every SQL statement that touches the `sessions` table, the API's `refresh_tokens` and the
//! key of DBSC refresh challenges.
//!
//! Each function takes `&mut PgConnection` first, so a pooled connection and a transaction both
//! fit, and the time from the app's clock, never SQL `now()`. No statement brings a revoked
//! session back: updates carry `AND revoked_at IS NULL`, and nothing is ever upserted.
//!
//! A session's key changes at every rotation; its public id never does. So statements that act
//! on the token a request presents (touch, rotate) find the row by key and miss it once the token
//! is dead, while statements that *end* a session find it by public id, whatever its key is by
//! then: a sign-out must not miss a session because it rotated while the sign-out waited.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::fingerprint::Fingerprint;
use super::reason::Reason;
use super::token::SessionKey;
use super::{Aal, SessionKind};
use crate::users::Role;

/// A session row joined with the account it belongs to: one round trip per request.
#[derive(Debug)]
pub struct SessionRecord {
    pub public_id: Uuid,
    pub user_id: i64,
    pub kind: SessionKind,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub confirmed_until: Option<OffsetDateTime>,
    /// The level `confirmed_until`'s confirmation was made at (none before the first).
    pub confirmed_aal: Option<Aal>,
    /// The level the session is at: its sign-in's, or `aal2` after a confirmation with a passkey.
    pub aal: Aal,
    /// API families only: when the current access token stops working.
    pub access_expires_at: Option<OffsetDateTime>,
    pub fingerprint_bind: Vec<u8>,
    pub fingerprint_watch: Vec<u8>,
    pub revoke_reason: Option<Reason>,
    /// Device-bound sessions only: the current token is refused from this moment.
    pub bound_until: Option<OffsetDateTime>,
    /// Device-bound sessions only: the CSRF token their forms carry.
    pub bound_csrf: Option<Vec<u8>>,
    /// The registration challenge on offer (unbound browser sessions), and since when.
    pub dbsc_offer: Option<String>,
    pub dbsc_offered_at: Option<OffsetDateTime>,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
}

/// When a request writes last-seen (`touch`): for a session of `kind` that is neither revoked
/// nor past its absolute expiry (nor its access token's, nor a device-bound token's deadline: a
/// copied cookie must not keep a session alive), last seen at or before `seen_before` (the touch
/// interval has passed) and, when given, after `seen_after` (an `aal1` session not idle past its
/// timeout: such a session is ended, not touched), inside `aal2` for a session at `aal2`, and,
/// for an account whose role is `admin` at that moment, inside `admin` too (the administrator's
/// shorter limits). `policy::TouchWindow::contains` says the same.
pub struct Touch {
    pub kind: SessionKind,
    pub now: OffsetDateTime,
    pub seen_before: OffsetDateTime,
    pub seen_after: Option<OffsetDateTime>,
    pub aal2: Option<LimitTouch>,
    pub admin: Option<LimitTouch>,
}

/// A session under a level's or a role's own limits is touched only when last seen after
/// `seen_after` and signed in after `created_after`.
pub struct LimitTouch {
    pub seen_after: OffsetDateTime,
    pub created_after: OffsetDateTime,
}

/// What a new session row needs.
pub struct NewSession<'a> {
    pub key: &'a SessionKey,
    pub user_id: i64,
    pub kind: NewKind,
    pub now: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub fingerprint: &'a Fingerprint,
    pub ip: &'a str,
    pub user_agent: &'a str,
    /// What the sign-in proved (API token families: a password, `Aal1`).
    pub aal: Aal,
}

/// A browser session, or an API token family with its first access token's expiry. The API
/// columns (`generation`, `access_expires_at`) are set exactly for API families, as the
/// `sessions_api_columns` constraint demands; this type cannot express anything else.
#[derive(Debug, Clone, Copy)]
pub enum NewKind {
    Browser,
    /// Starts at generation 0; `NewSession::key` is the first access token's.
    Api {
        access_expires_at: OffsetDateTime,
    },
}

/// Inserts a session row and returns its new public id.
pub async fn insert(conn: &mut PgConnection, session: &NewSession<'_>) -> sqlx::Result<Uuid> {
    let public_id = Uuid::new_v4();
    let (kind, generation, access_expires_at) = match session.kind {
        NewKind::Browser => (SessionKind::Browser, None, None),
        NewKind::Api { access_expires_at } => (SessionKind::Api, Some(0), Some(access_expires_at)),
    };
    sqlx::query!(
        "INSERT INTO sessions (key, public_id, user_id, kind, created_at, last_seen_at, expires_at,
                               fingerprint_bind, fingerprint_watch, ip, user_agent, generation, access_expires_at,
                               aal)
         VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        session.key.as_bytes(),
        public_id,
        session.user_id,
        kind as _,
        session.now,
        session.expires_at,
        &session.fingerprint.bind[..],
        &session.fingerprint.watch[..],
        session.ip,
        session.user_agent,
        generation,
        access_expires_at,
        session.aal as _,
    )
    .execute(conn)
    .await?;
    Ok(public_id)
}

/// The session and its user's current role and status, revoked or not (a tombstone tells why):
/// one plain prepared SELECT, one round trip per request, writing nothing. The occasional writes
/// a request makes are statements of their own, sent only when due (`touch`, `offer_challenge`).
pub async fn find_with_user(
    conn: &mut PgConnection,
    key: &SessionKey,
) -> sqlx::Result<Option<SessionRecord>> {
    sqlx::query_as!(
        SessionRecord,
        r#"SELECT s.public_id, s.user_id, s.kind AS "kind: SessionKind", s.created_at, s.last_seen_at,
                  s.expires_at, s.confirmed_until, s.confirmed_aal AS "confirmed_aal: Aal", s.aal AS "aal: Aal",
                  s.access_expires_at, s.fingerprint_bind, s.fingerprint_watch,
                  s.revoke_reason AS "revoke_reason: Reason", s.bound_until, s.bound_csrf, s.dbsc_offer,
                  s.dbsc_offered_at, u.username, u.role AS "role: Role", u.disabled
           FROM sessions s JOIN users u ON u.id = s.user_id
           WHERE s.key = $1"#,
        key.as_bytes(),
    )
    .fetch_optional(conn)
    .await
}

/// Writes last-seen as `touch` says: after a lookup found it due, and for "Stay signed in".
/// Every condition is checked on the newest row, so it never brings a revoked, expired or idle
/// session back. `false`: nothing written, because the session was revoked, rotated or written
/// by a concurrent request since it was read, or is not in the window.
pub async fn touch(conn: &mut PgConnection, key: &SessionKey, touch: &Touch) -> sqlx::Result<bool> {
    let result = sqlx::query!(
        "UPDATE sessions s SET last_seen_at = $2
         FROM users u
         WHERE s.key = $1 AND u.id = s.user_id AND s.kind = $3 AND s.revoked_at IS NULL
           AND s.expires_at > $2 AND (s.access_expires_at IS NULL OR s.access_expires_at > $2)
           AND (s.bound_until IS NULL OR s.bound_until > $2)
           AND s.last_seen_at <= $4
           AND ($5::timestamptz IS NULL OR s.aal <> 'aal1' OR s.last_seen_at > $5)
           AND ($6::timestamptz IS NULL OR s.aal <> 'aal2'
                OR (s.last_seen_at > $6 AND s.created_at > $7))
           AND ($8::timestamptz IS NULL OR u.role <> 'admin'
                OR (s.last_seen_at > $8 AND s.created_at > $9))",
        key.as_bytes(),
        touch.now,
        touch.kind as _,
        touch.seen_before,
        touch.seen_after,
        touch.aal2.as_ref().map(|aal2| aal2.seen_after),
        touch.aal2.as_ref().map(|aal2| aal2.created_after),
        touch.admin.as_ref().map(|admin| admin.seen_after),
        touch.admin.as_ref().map(|admin| admin.created_after),
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Puts `challenge` on offer for a live, unbound browser session whose offer is missing or
/// stale (offered at or before `stale_from`, or after `now`: the clock went back), checked on
/// the newest row. The challenge now on offer; `None` when a concurrent request renewed the
/// offer first, or the session ended or was bound meanwhile.
pub async fn offer_challenge(
    conn: &mut PgConnection,
    key: &SessionKey,
    challenge: &str,
    stale_from: OffsetDateTime,
    now: OffsetDateTime,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        r#"UPDATE sessions SET dbsc_offer = $2, dbsc_offered_at = $4
           WHERE key = $1 AND kind = $5 AND revoked_at IS NULL AND dbsc_key IS NULL
             AND (dbsc_offered_at IS NULL OR dbsc_offered_at <= $3 OR dbsc_offered_at > $4)
           RETURNING dbsc_offer AS "dbsc_offer!""#,
        key.as_bytes(),
        challenge,
        stale_from,
        now,
        SessionKind::Browser as _,
    )
    .fetch_optional(conn)
    .await
}

/// When a change of network is a quick return to the network the session has just left.
pub struct Alternation {
    /// A return counts when the change before it came after this.
    pub changed_after: OffsetDateTime,
    /// This many quick returns in a row end the session.
    pub max_returns: i32,
}

/// What a change of network did to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkChange {
    /// Kept, on the new network, without privileged confirmation.
    Kept,
    /// Ended with `network_alternation`: it came back to the network it had just left
    /// `max_returns` times in a row, each within the window, like a cookie used from two places.
    Ended,
}

/// The watched fingerprint changed (a new network): keep the session, adopt the new values,
/// and drop privileged confirmation, which must not follow a cookie to a new network. In the
/// same statement: remember the network left, count a quick return to the one before, and end
/// the session (tombstone `network_alternation`) at the `max_returns`th return in a row. Last
/// seen moves to `now` only when `seen` (the request is the person's doing).
/// `None`: the session had ended meanwhile.
pub async fn record_network_change(
    conn: &mut PgConnection,
    key: &SessionKey,
    fingerprint: &Fingerprint,
    ip: &str,
    alternation: &Alternation,
    seen: bool,
    now: OffsetDateTime,
) -> sqlx::Result<Option<NetworkChange>> {
    // Every SET expression reads the row as it was before this statement (re-read if a concurrent
    // write came first), so the three CASEs agree on whether this change is a quick return.
    let ended = sqlx::query_scalar!(
        r#"UPDATE sessions SET fingerprint_watch = $2, ip = $3, confirmed_until = NULL,
                               last_seen_at = CASE WHEN $8 THEN $4 ELSE last_seen_at END,
                               previous_watch = fingerprint_watch, watch_changed_at = $4,
                               network_returns = CASE WHEN previous_watch = $2 AND watch_changed_at > $5
                                                      THEN network_returns + 1 ELSE 0 END,
                               revoked_at = CASE WHEN previous_watch = $2 AND watch_changed_at > $5
                                                      AND network_returns + 1 >= $6 THEN $4::timestamptz END,
                               revoke_reason = CASE WHEN previous_watch = $2 AND watch_changed_at > $5
                                                      AND network_returns + 1 >= $6 THEN $7::text END
           WHERE key = $1 AND revoked_at IS NULL
           RETURNING revoked_at IS NOT NULL AS "ended!""#,
        key.as_bytes(),
        &fingerprint.watch[..],
        ip,
        now,
        alternation.changed_after,
        alternation.max_returns,
        Reason::NetworkAlternation as _,
        seen,
    )
    .fetch_optional(conn)
    .await?;
    Ok(ended.map(|ended| {
        if ended {
            NetworkChange::Ended
        } else {
            NetworkChange::Kept
        }
    }))
}

/// Ends a session by its public id, which no rotation changes, keeping a tombstone. Returns the
/// user it belonged to (for the security log); `None`: no live session has this id (it had
/// already ended, and the first reason stands).
pub async fn revoke_by_id(
    conn: &mut PgConnection,
    public_id: Uuid,
    reason: Reason,
    now: OffsetDateTime,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!(
        "UPDATE sessions SET revoked_at = $2, revoke_reason = $3 WHERE public_id = $1 AND revoked_at IS NULL
         RETURNING user_id",
        public_id,
        now,
        reason as _,
    )
    .fetch_optional(conn)
    .await
}

/// Ends the session a presented token belongs to, like `revoke_by_id`: the token is looked up
/// once, so a rotation that commits while this waits for the row does not make it miss.
/// `false`: no live session has this token.
pub async fn revoke(
    conn: &mut PgConnection,
    key: &SessionKey,
    reason: Reason,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let result = sqlx::query!(
        "UPDATE sessions SET revoked_at = $2, revoke_reason = $3
         WHERE public_id = (SELECT public_id FROM sessions WHERE key = $1) AND revoked_at IS NULL",
        key.as_bytes(),
        now,
        reason as _,
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Deletes up to `batch` rows whose absolute expiry is older than `cutoff`. Rows another reaper
/// is deleting are skipped, not waited for, so any number of instances can reap at once.
pub async fn reap(
    conn: &mut PgConnection,
    cutoff: OffsetDateTime,
    batch: i64,
) -> sqlx::Result<u64> {
    let result = sqlx::query!(
        "DELETE FROM sessions WHERE key IN (
             SELECT key FROM sessions WHERE expires_at < $1
             ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        cutoff,
        batch,
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

/// A live session as the device list shows it.
#[derive(Debug)]
pub struct DeviceRecord {
    pub public_id: Uuid,
    pub kind: SessionKind,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub ip: String,
    pub user_agent: String,
    /// Bound to a key on the device (DBSC).
    pub bound: bool,
    pub aal: Aal,
}

/// Which sessions a list or a count shows: those `policy::decide` would let continue at `now`,
/// not rows the reaper has not reached yet. Not revoked and before the row's absolute expiry; a
/// browser session last seen after `seen_after` (not idle past its timeout; token families have
/// no idle timeout); for an account whose role is `admin`, signed in after `admin_created_after`
/// (the administrator's absolute lifetime, which token families share: `api::family_expiry`)
/// and a browser session last seen after `admin_seen_after`.
pub struct Alive {
    pub now: OffsetDateTime,
    pub seen_after: OffsetDateTime,
    /// A browser session at `aal2`: last seen after `aal2_seen_after` in place of `seen_after`,
    /// and signed in after `aal2_created_after` (token families are `aal1`).
    pub aal2_seen_after: OffsetDateTime,
    pub aal2_created_after: OffsetDateTime,
    pub admin_seen_after: OffsetDateTime,
    pub admin_created_after: OffsetDateTime,
}

/// A user's sessions that are alive (see `Alive`), most recent first.
pub async fn list_live_for_user(
    conn: &mut PgConnection,
    user_id: i64,
    alive: &Alive,
) -> sqlx::Result<Vec<DeviceRecord>> {
    // The same condition as `users_with_live_sessions`'s count.
    sqlx::query_as!(
        DeviceRecord,
        r#"SELECT s.public_id, s.kind AS "kind: SessionKind", s.created_at, s.last_seen_at, s.ip,
                  s.user_agent, s.dbsc_key IS NOT NULL AS "bound!", s.aal AS "aal: Aal"
           FROM sessions s JOIN users u ON u.id = s.user_id
           WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2
             AND (s.kind = 'api' OR s.last_seen_at > CASE WHEN s.aal = 'aal2' THEN $6::timestamptz ELSE $3::timestamptz END)
             AND (s.aal = 'aal1' OR s.created_at > $7)
             AND (u.role <> 'admin'
                  OR (s.created_at > $5 AND (s.kind = 'api' OR s.last_seen_at > $4)))
           ORDER BY s.last_seen_at DESC, s.created_at DESC"#,
        user_id,
        alive.now,
        alive.seen_after,
        alive.admin_seen_after,
        alive.admin_created_after,
        alive.aal2_seen_after,
        alive.aal2_created_after,
    )
    .fetch_all(conn)
    .await
}

/// Rotation: the row keeps its identity (public id, sign-in time) under a new key. The old key
/// moves to `previous_key` until `grace_until` (see `find_rotated_from`): no request with the old
/// token passes as the session from the moment this commits. Sets privileged confirmation, with
/// the level it was made at, or clears it (`None`).
pub async fn rotate(
    conn: &mut PgConnection,
    old_key: &SessionKey,
    new_key: &SessionKey,
    confirmed: Option<(OffsetDateTime, Aal)>,
    grace_until: OffsetDateTime,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let (confirmed_until, confirmed_aal) = confirmed.unzip();
    let result = sqlx::query!(
        "UPDATE sessions SET key = $2, confirmed_until = $3, confirmed_aal = $4, last_seen_at = $5,
                             previous_key = key, previous_key_until = $6
         WHERE key = $1 AND revoked_at IS NULL",
        old_key.as_bytes(),
        new_key.as_bytes(),
        confirmed_until,
        confirmed_aal as _,
        now,
        grace_until,
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Raises a live session to `aal2`: a confirmation with a passkey, with user verification, has
/// just proved as much as a passkey sign-in. Nothing lowers a level, and an ended session stays
/// as it was: the confirmation's rotation, in the same transaction, finds it ended and refuses.
pub async fn raise_to_aal2(conn: &mut PgConnection, public_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE sessions SET aal = $2 WHERE public_id = $1 AND revoked_at IS NULL",
        public_id,
        Aal::Aal2 as _,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The session that rotated away from this key less than its grace ago, ended or not.
#[derive(Debug)]
pub struct RotatedFrom {
    pub public_id: Uuid,
    pub user_id: i64,
    pub revoke_reason: Option<Reason>,
}

/// The session whose previous key this is, if its grace lasts past `now`: a request the browser
/// sent with the old token before the rotation's new cookie reached it. Asked only when no session
/// has this key (`find_with_user` found none), so it costs nothing on the per-request path.
pub async fn find_rotated_from(
    conn: &mut PgConnection,
    key: &SessionKey,
    now: OffsetDateTime,
) -> sqlx::Result<Option<RotatedFrom>> {
    sqlx::query_as!(
        RotatedFrom,
        r#"SELECT public_id, user_id, revoke_reason AS "revoke_reason: Reason"
           FROM sessions WHERE previous_key = $1 AND previous_key_until > $2"#,
        key.as_bytes(),
        now,
    )
    .fetch_optional(conn)
    .await
}

/// Records the sensitive action a live session asked for until its confirmation (replacing any
/// earlier one). A session that ended meanwhile records nothing: the confirmation page the
/// request is sent to finds it ended.
pub async fn set_pending_action(
    conn: &mut PgConnection,
    public_id: Uuid,
    action: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE sessions SET pending_action = $2, pending_action_at = $3
         WHERE public_id = $1 AND revoked_at IS NULL",
        public_id,
        action,
        now,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The action a live session is waiting to confirm, recorded after `since`, without taking it
/// (the confirmation page names it).
pub async fn pending_action(
    conn: &mut PgConnection,
    public_id: Uuid,
    since: OffsetDateTime,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "SELECT pending_action FROM sessions
         WHERE public_id = $1 AND revoked_at IS NULL AND pending_action_at > $2",
        public_id,
        since,
    )
    .fetch_optional(conn)
    .await
    .map(Option::flatten)
}

/// Takes a live session's pending action, recorded after `since`, and clears it whatever its
/// age: single use, under the row lock, so of two confirmations at once only one gets it.
pub async fn take_pending_action(
    conn: &mut PgConnection,
    public_id: Uuid,
    since: OffsetDateTime,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "WITH old AS (
             SELECT public_id, pending_action, pending_action_at FROM sessions
             WHERE public_id = $1 AND revoked_at IS NULL AND pending_action IS NOT NULL
             FOR UPDATE
         )
         UPDATE sessions s SET pending_action = NULL, pending_action_at = NULL
         FROM old WHERE s.public_id = old.public_id
         RETURNING CASE WHEN old.pending_action_at > $2 THEN old.pending_action END",
        public_id,
        since,
    )
    .fetch_optional(conn)
    .await
    .map(Option::flatten)
}

/// Ends one of a user's live sessions by its public id, never `current` (the one making the
/// request). `false`: no such live session of this user (already ended, someone else's, or the
/// current one).
pub async fn revoke_other(
    conn: &mut PgConnection,
    user_id: i64,
    public_id: Uuid,
    current: Uuid,
    reason: Reason,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let result = sqlx::query!(
        "UPDATE sessions SET revoked_at = $4, revoke_reason = $5
         WHERE public_id = $2 AND user_id = $1 AND public_id <> $3 AND revoked_at IS NULL",
        user_id,
        public_id,
        current,
        now,
        reason as _,
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Ends every live session and API token family of a user, except `keep` (the current one, by
/// its public id: its key may rotate meanwhile). Returns the public ids ended, for the security log.
pub async fn revoke_all_for_user(
    conn: &mut PgConnection,
    user_id: i64,
    keep: Option<Uuid>,
    reason: Reason,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "UPDATE sessions SET revoked_at = $3, revoke_reason = $4
         WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR public_id <> $2)
         RETURNING public_id",
        user_id,
        keep,
        now,
        reason as _,
    )
    .fetch_all(conn)
    .await
}

/// Keeps at most `cap` live sessions of one kind (browser sessions, or API token families) for
/// the user by ending the least recently used. Callers hold the user's row lock
/// (`users::store::lock_if_current`), so concurrent sign-ins take turns and no race can leave more
/// than `cap` alive. Rows are chosen by public id, so one whose token rotates while this waits
/// for it still ends. Returns the public ids ended.
pub async fn revoke_beyond_cap(
    conn: &mut PgConnection,
    user_id: i64,
    kind: SessionKind,
    cap: i64,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "UPDATE sessions SET revoked_at = $3, revoke_reason = $4
         WHERE revoked_at IS NULL AND public_id IN (
             SELECT public_id FROM sessions
             WHERE user_id = $1 AND kind = $5 AND revoked_at IS NULL AND expires_at > $3
             ORDER BY last_seen_at DESC, created_at DESC
             OFFSET $2)
         RETURNING public_id",
        user_id,
        cap,
        now,
        Reason::SessionLimit as _,
        kind as _,
    )
    .fetch_all(conn)
    .await
}

/// A user as the admin page lists them.
#[derive(Debug)]
pub struct UserOverview {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    pub live_sessions: i64,
}

/// Every user with the number of their sessions that are alive (see `Alive`), by name.
pub async fn users_with_live_sessions(
    conn: &mut PgConnection,
    alive: &Alive,
) -> sqlx::Result<Vec<UserOverview>> {
    // The same condition as `list_live_for_user`'s.
    sqlx::query_as!(
        UserOverview,
        r#"SELECT u.id, u.username, u.role AS "role: Role", u.disabled,
                  count(s.key) FILTER (
                      WHERE s.revoked_at IS NULL AND s.expires_at > $1
                        AND (s.kind = 'api' OR s.last_seen_at > CASE WHEN s.aal = 'aal2' THEN $5::timestamptz ELSE $2::timestamptz END)
                        AND (s.aal = 'aal1' OR s.created_at > $6)
                        AND (u.role <> 'admin'
                             OR (s.created_at > $4 AND (s.kind = 'api' OR s.last_seen_at > $3)))
                  ) AS "live_sessions!"
           FROM users u LEFT JOIN sessions s ON s.user_id = u.id
           GROUP BY u.id ORDER BY lower(u.username)"#,
        alive.now,
        alive.seen_after,
        alive.admin_seen_after,
        alive.admin_created_after,
        alive.aal2_seen_after,
        alive.aal2_created_after,
    )
    .fetch_all(conn)
    .await
}

/// The refresh compare-and-swap: moves a live API family from `generation` to the next, with a
/// new access token (the old one stops working in the same statement), and brings its absolute
/// expiry forward to `family_expires_at` if that is sooner (never later: an administrator's
/// limit, once applied, stays). `false`: a concurrent refresh won, or the family ended or expired
/// meanwhile.
pub async fn advance_api_family(
    conn: &mut PgConnection,
    family: Uuid,
    generation: i32,
    access_key: &SessionKey,
    access_expires_at: OffsetDateTime,
    family_expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let result = sqlx::query!(
        "UPDATE sessions SET key = $3, generation = generation + 1, access_expires_at = $4, last_seen_at = $5,
                             expires_at = LEAST(expires_at, $6)
         WHERE public_id = $1 AND generation = $2 AND revoked_at IS NULL AND expires_at > $5",
        family,
        generation,
        access_key.as_bytes(),
        access_expires_at,
        now,
        family_expires_at,
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn insert_refresh_token(
    conn: &mut PgConnection,
    key: &SessionKey,
    family: Uuid,
    generation: i32,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO refresh_tokens (key, family, generation, issued_at) VALUES ($1, $2, $3, $4)",
        key.as_bytes(),
        family,
        generation,
        now,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A refresh token with the state of its family and account.
#[derive(Debug)]
pub struct RefreshRecord {
    pub family: Uuid,
    pub generation: i32,
    pub used_at: Option<OffsetDateTime>,
    pub user_id: i64,
    /// The family's sign-in time: an administrator's shorter lifetime counts from it.
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked: bool,
    pub disabled: bool,
    /// The account's role now: an administrator's family lives `admin_absolute_timeout_secs`.
    pub role: Role,
    /// How many times the family was refreshed after `refreshed_since` (see `find_refresh_token`).
    pub recent_refreshes: i64,
}

/// The refresh token with this key, used or not (a used one is evidence of theft), with the
/// number of refreshes of its family since `refreshed_since`: each refresh issued one refresh
/// token of a later generation, so they are counted in the same statement.
pub async fn find_refresh_token(
    conn: &mut PgConnection,
    key: &SessionKey,
    refreshed_since: OffsetDateTime,
) -> sqlx::Result<Option<RefreshRecord>> {
    sqlx::query_as!(
        RefreshRecord,
        r#"SELECT r.family, r.generation, r.used_at, s.user_id, s.created_at, s.expires_at,
                  s.revoked_at IS NOT NULL AS "revoked!", u.disabled, u.role AS "role: Role",
                  (SELECT count(*) FROM refresh_tokens f
                   WHERE f.family = r.family AND f.generation > 0 AND f.issued_at > $2) AS "recent_refreshes!"
           FROM refresh_tokens r
           JOIN sessions s ON s.public_id = r.family
           JOIN users u ON u.id = s.user_id
           WHERE r.key = $1"#,
        key.as_bytes(),
        refreshed_since,
    )
    .fetch_optional(conn)
    .await
}

/// Single use: once set, `used_at` is never cleared or moved.
pub async fn mark_refresh_token_used(
    conn: &mut PgConnection,
    key: &SessionKey,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE refresh_tokens SET used_at = $2 WHERE key = $1 AND used_at IS NULL",
        key.as_bytes(),
        now,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What binding a session to a device's key writes.
pub struct Binding<'a> {
    /// The challenge the proof signed: it must be the one on offer, offered after `offered_after`.
    pub challenge: &'a str,
    pub offered_after: OffsetDateTime,
    /// The public key, SEC1 uncompressed.
    pub public_key: &'a [u8],
    pub csrf: &'a [u8],
    pub bound_until: OffsetDateTime,
}

/// Binds a live, not yet bound session to a device's public key, consuming the registration
/// challenge in the same statement (single use). `false`: the challenge is not the one on offer
/// or is too old, or the session is already bound or has ended; nothing changed.
pub async fn bind(
    conn: &mut PgConnection,
    key: &SessionKey,
    binding: &Binding<'_>,
) -> sqlx::Result<bool> {
    let result = sqlx::query!(
        "UPDATE sessions SET dbsc_key = $4, bound_csrf = $5, bound_until = $6, dbsc_offer = NULL, dbsc_offered_at = NULL
         WHERE key = $1 AND kind = $7 AND revoked_at IS NULL AND dbsc_key IS NULL
           AND dbsc_offer = $2 AND dbsc_offered_at > $3",
        key.as_bytes(),
        binding.challenge,
        binding.offered_after,
        binding.public_key,
        binding.csrf,
        binding.bound_until,
        SessionKind::Browser as _,
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// A session as a DBSC refresh finds it by its public id (the browser's session identifier),
/// with the key refresh challenges are signed with (`None` until the first challenge makes it).
#[derive(Debug)]
pub struct BoundRecord {
    pub key: Vec<u8>,
    pub user_id: i64,
    pub kind: SessionKind,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub aal: Aal,
    pub revoke_reason: Option<Reason>,
    pub dbsc_key: Option<Vec<u8>>,
    pub role: Role,
    pub disabled: bool,
    pub challenge_key: Option<Vec<u8>>,
}

/// The session with this public id, ended or not (a tombstone tells the device why).
pub async fn find_by_public_id(
    conn: &mut PgConnection,
    public_id: Uuid,
) -> sqlx::Result<Option<BoundRecord>> {
    sqlx::query_as!(
        BoundRecord,
        r#"SELECT s.key, s.user_id, s.kind AS "kind: SessionKind", s.created_at, s.last_seen_at, s.expires_at,
                  s.aal AS "aal: Aal", s.revoke_reason AS "revoke_reason: Reason", s.dbsc_key, u.role AS "role: Role", u.disabled,
                  k.key AS "challenge_key?"
           FROM sessions s JOIN users u ON u.id = s.user_id
                LEFT JOIN dbsc_challenge_key k ON k.only_row
           WHERE s.public_id = $1"#,
        public_id,
    )
    .fetch_optional(conn)
    .await
}

/// The key refresh challenges are signed with: `candidate` if there was none, else the one
/// another request or instance wrote first.
pub async fn create_dbsc_challenge_key(
    conn: &mut PgConnection,
    candidate: &[u8],
) -> sqlx::Result<Vec<u8>> {
    // A no-op update on conflict, so that RETURNING gives the row that won.
    sqlx::query_scalar!(
        "INSERT INTO dbsc_challenge_key (key) VALUES ($1)
         ON CONFLICT (only_row) DO UPDATE SET only_row = dbsc_challenge_key.only_row
         RETURNING key",
        candidate,
    )
    .fetch_one(conn)
    .await
}

/// A bound session's current key and whether it has ended, its row locked until the caller's
/// transaction ends: a DBSC refresh checks its challenge against this key and replaces it
/// before any other refresh can read it. `None`: no bound session has this public id.
pub async fn lock_bound(
    conn: &mut PgConnection,
    public_id: Uuid,
) -> sqlx::Result<Option<(Vec<u8>, Option<Reason>)>> {
    let row = sqlx::query!(
        r#"SELECT key, revoke_reason AS "revoke_reason: Reason" FROM sessions
           WHERE public_id = $1 AND dbsc_key IS NOT NULL FOR UPDATE"#,
        public_id,
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| (row.key, row.revoke_reason)))
}

/// A DBSC refresh, under `lock_bound`'s lock: the session's new token, with its deadline.
/// Neither last-seen nor anything else moves: a refresh is the browser's doing, not the
/// person's, so it does not keep an idle session alive.
pub async fn renew_bound(
    conn: &mut PgConnection,
    public_id: Uuid,
    new_key: &SessionKey,
    bound_until: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE sessions SET key = $2, bound_until = $3
         WHERE public_id = $1 AND revoked_at IS NULL AND dbsc_key IS NOT NULL",
        public_id,
        new_key.as_bytes(),
        bound_until,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// After a rotation of a bound session (confirmation, password change): the new token gets its
/// own deadline and the forms their new CSRF token, as an unbound session's would.
pub async fn rebind_rotated(
    conn: &mut PgConnection,
    key: &SessionKey,
    csrf: &[u8],
    bound_until: OffsetDateTime,
) -> sqlx::Result<bool> {
    let result = sqlx::query!(
        "UPDATE sessions SET bound_csrf = $2, bound_until = $3
         WHERE key = $1 AND revoked_at IS NULL AND dbsc_key IS NOT NULL",
        key.as_bytes(),
        csrf,
        bound_until,
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}
