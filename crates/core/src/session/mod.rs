//! Browser sessions: the lifecycle verbs (start, validate, end) over the store and the policy.
//! API token families, which share the table, have theirs in [`api`]. The web layer proves a
//! session from a request with these verbs (its `session::guard` and `session::bearer`).

pub mod api;
pub mod dbsc;
pub mod fingerprint;
pub mod pending;
pub mod policy;
pub mod proof;
pub mod reason;
pub mod store;
pub mod token;

pub use reason::Reason;

use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::client::ClientInfo;
use crate::config::SessionConfig;
use crate::events::{self, EventKind, NewEvent};
use crate::users::{self, CheckedCredentials, Role};
use policy::{Decision, FingerprintMatch, Lifetimes, Limits};
use token::{SessionKey, SessionToken};

crate::codes::text_codes! {
    /// How strongly the sign-in that made a session proved who was signing in (NIST SP
    /// 800-63B-4's authentication assurance level): `aal1` a password, `aal2` a passkey with
    /// user verification. Set when the session starts; only a confirmation with a passkey
    /// raises it (to `aal2`), and nothing lowers it: a session is never worth more than the
    /// strongest proof it was given. Ordered: `Aal1 < Aal2`.
    #[derive(PartialOrd, Ord)]
    pub enum Aal {
        Aal1 = "aal1",
        Aal2 = "aal2",
    }
}

crate::codes::text_codes! {
    /// What a `sessions` row is: a browser's session, or an API token family (`api`).
    pub enum SessionKind {
        Browser = "browser",
        Api = "api",
    }
}

/// A session that passed every check on this request.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub key: SessionKey,
    pub public_id: Uuid,
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub confirmed_until: Option<OffsetDateTime>,
    /// The level the confirmation in `confirmed_until` was made at.
    pub confirmed_aal: Option<Aal>,
    /// The session's level now (its sign-in's, or raised by a confirmation with a passkey).
    pub aal: Aal,
    /// Device-bound sessions only: the CSRF token their forms carry.
    pub bound_csrf: Option<Vec<u8>>,
    /// The registration challenge on offer, and since when (unbound sessions).
    pub dbsc_offer: Option<(String, OffsetDateTime)>,
}

impl LiveSession {
    pub fn lifetimes(&self) -> Lifetimes {
        Lifetimes {
            created_at: self.created_at,
            last_seen_at: self.last_seen_at,
            expires_at: self.expires_at,
            aal: self.aal,
        }
    }

    /// When the session ends however active: its absolute expiry, brought forward for an
    /// administrator or by its level's lifetime (the role and level as read on this request).
    pub fn ends_at(&self, config: &SessionConfig) -> OffsetDateTime {
        limits(config).absolute_expiry(self.role, self.aal, self.created_at, self.expires_at)
    }

    /// Bound to a key on the device (DBSC): its tokens are short-lived and renewed by signed refreshes.
    pub fn is_bound(&self) -> bool {
        self.bound_csrf.is_some()
    }
}

pub enum Validated {
    /// Boxed: the row is large, and the guard keeps it for the rest of the request.
    Live(Box<LiveSession>),
    /// The token this session rotated away from, within `policy::ROTATION_GRACE`: the browser
    /// sent the request before the rotation's new cookie reached it. Not a live session (the old
    /// token proves nothing the rotation raised it to), but not an ended one either.
    Superseded(Superseded),
    Ended(Reason),
}

/// The session a request's superseded token belongs to (see `Validated::Superseded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superseded {
    pub public_id: Uuid,
    pub user_id: i64,
}

/// Who made a request: the person (a click, a form, "Stay signed in"), or the page on its own
/// (the idle warning's check at zero). Only the person's requests count as activity: a page's
/// timer must not keep an unattended session alive, however many tabs are open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Person,
    Page,
}

/// A freshly started session: the token goes into the cookie, and nowhere else.
pub struct Started {
    pub token: SessionToken,
    pub public_id: Uuid,
    /// When it ends however active (an administrator's sooner).
    pub expires_at: OffsetDateTime,
}

/// When a request of a browser session writes last-seen (see `policy::touch_window`): the write
/// reads the level and the role again, and applies the windows of what it reads.
pub(crate) fn browser_touch(config: &SessionConfig, now: OffsetDateTime) -> store::Touch {
    let window = policy::touch_window(limits(config), now);
    store::Touch {
        kind: SessionKind::Browser,
        now,
        seen_before: window.seen_before,
        seen_after: Some(window.seen_after),
        aal2: Some(store::LimitTouch {
            seen_after: window.aal2_seen_after,
            created_after: window.aal2_created_after,
        }),
        admin: Some(store::LimitTouch {
            seen_after: window.admin_seen_after,
            created_after: window.admin_created_after,
        }),
    }
}

/// "Stay signed in": writes last-seen now, even when the touch interval has not passed since the
/// last write (which the lookup of this same request then skipped), unless it was written within
/// `policy::KEEPALIVE_GAP`. Pressing it always moves the idle deadline, whatever time was left.
/// The session's idle deadline afterwards.
pub async fn keep_alive(
    conn: &mut PgConnection,
    session: &LiveSession,
    config: &SessionConfig,
    now: OffsetDateTime,
) -> sqlx::Result<OffsetDateTime> {
    let mut touch = browser_touch(config, now);
    touch.seen_before = now - policy::KEEPALIVE_GAP;
    let touched = store::touch(conn, &session.key, &touch).await?;
    let mut lifetimes = session.lifetimes();
    if touched {
        lifetimes.last_seen_at = now;
    }
    Ok(policy::idle_deadline(
        lifetimes,
        limits(config),
        session.role,
    ))
}

/// Which sessions the device list and the admin page's counts show at `now` (`store::Alive`):
/// those `policy::decide` would let continue, whose windows are the ones the lookup touches in.
pub fn alive(config: &SessionConfig, now: OffsetDateTime) -> store::Alive {
    let window = policy::touch_window(limits(config), now);
    store::Alive {
        now,
        seen_after: window.seen_after,
        aal2_seen_after: window.aal2_seen_after,
        aal2_created_after: window.aal2_created_after,
        admin_seen_after: window.admin_seen_after,
        admin_created_after: window.admin_created_after,
    }
}

/// The settings the policy applies, read from the configuration on every request.
pub fn limits(config: &SessionConfig) -> Limits {
    Limits {
        idle_timeout: config.idle_timeout(),
        touch_interval: config.touch_interval(),
        admin_idle_timeout: config.admin_idle_timeout(),
        admin_absolute_timeout: config.admin_absolute_timeout(),
        aal2_idle_timeout: config.aal2_idle_timeout(),
        aal2_absolute_timeout: config.aal2_absolute_timeout(),
    }
}

/// What is news about a sign-in, judged against the account's history before its row is
/// written: the browser's and the token API's sign-ins both go through it (`start`, `api::issue`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignInNews {
    /// A device the security log has not seen sign in (`events::is_new_device`).
    pub new_device: bool,
    /// A new device on a new network right after failed guesses: perhaps the guesser got in.
    pub suspicious: bool,
}

/// Judges a sign-in of `user_id` by `client`, inside the caller's transaction and before the new
/// row and its event are written (else the sign-in would find itself and never be new).
pub(crate) async fn sign_in_news(
    tx: &mut PgConnection,
    user_id: i64,
    client: &ClientInfo,
    config: &SessionConfig,
    now: OffsetDateTime,
) -> sqlx::Result<SignInNews> {
    let new_device = events::is_new_device(tx, user_id, &client.user_agent).await?;
    // The network and the failures are looked at only when the device already points at a
    // stranger.
    let suspicious = new_device
        && events::is_new_network(tx, user_id, &client.ip).await?
        && events::count_since(
            tx,
            user_id,
            EventKind::SignInFailed,
            now - config.suspicious_sign_in_window(),
        )
        .await?
            >= i64::from(config.suspicious_sign_in_failures);
    Ok(SignInNews {
        new_device,
        suspicious,
    })
}

impl SignInNews {
    /// Records `suspicious_sign_in` for the session or token family `public_id` just created,
    /// when the sign-in is suspicious: the account page lists it first, with "This wasn't me".
    pub(crate) async fn flag(
        self,
        tx: &mut PgConnection,
        user_id: i64,
        public_id: Uuid,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> sqlx::Result<()> {
        if !self.suspicious {
            return Ok(());
        }
        let event = NewEvent::new(
            user_id,
            EventKind::SuspiciousSignIn,
            Some(public_id),
            client,
        );
        events::record(tx, event, now).await
    }
}

/// Starts a browser session for a user who has just proved who they are, inside the caller's
/// transaction, and destroys the session the browser came with (`presented`), if any.
///
/// `None`, with nothing written: the credentials checked are no longer current (the password
/// changed, the account was disabled or signed out everywhere since the check), and the caller
/// must refuse the sign-in. Otherwise holds the user's row lock until the caller commits, so a
/// change cannot slip in before the commit and concurrent sign-ins cannot exceed
/// `max_sessions_per_user`.
///
/// Always a new random token: a token chosen before sign-in (fixation) never becomes a
/// signed-in one.
///
/// `aal` is what the sign-in proved: a password (`Aal1`) or a passkey with user verification
/// (`Aal2`, recorded as `passkey_sign_in` rather than `sign_in`). Everything else is the same
/// for both: one path, one set of defences.
pub async fn start(
    tx: &mut PgConnection,
    credentials: CheckedCredentials,
    presented: Option<SessionToken>,
    client: &ClientInfo,
    config: &SessionConfig,
    aal: Aal,
    now: OffsetDateTime,
) -> sqlx::Result<Option<Started>> {
    let Some(role) = users::store::lock_if_current(tx, credentials).await? else {
        return Ok(None);
    };
    let user_id = credentials.user_id;
    if let Some(previous) = presented {
        store::revoke(tx, &previous.key(), Reason::SignedOut, now).await?;
    }
    let news = sign_in_news(tx, user_id, client, config, now).await?;
    let token = SessionToken::generate();
    // The level's lifetime, and the role's own deadline, so an administrator's row expires (and
    // its tombstone is reaped) on time; the role read on each request still tightens it after a
    // promotion.
    let lifetime = match aal {
        Aal::Aal1 => config.absolute_timeout(),
        Aal::Aal2 => config.aal2_absolute_timeout(),
    };
    let expires_at = limits(config).absolute_expiry(role, aal, now, now + lifetime);
    let public_id = store::insert(
        tx,
        &store::NewSession {
            key: &token.key(),
            user_id,
            kind: store::NewKind::Browser,
            now,
            expires_at,
            fingerprint: &client.fingerprint,
            ip: &client.ip,
            user_agent: &client.user_agent,
            aal,
        },
    )
    .await?;
    let kind = match aal {
        Aal::Aal1 => EventKind::SignIn,
        Aal::Aal2 => EventKind::PasskeySignIn,
    };
    events::record(
        tx,
        NewEvent::new(user_id, kind, Some(public_id), client),
        now,
    )
    .await?;
    if news.new_device {
        events::record(
            tx,
            NewEvent::new(user_id, EventKind::NewDevice, Some(public_id), client),
            now,
        )
        .await?;
    }
    news.flag(tx, user_id, public_id, client, now).await?;
    // The newest sign-in wins: the least recently used sessions beyond the cap end now.
    let cap = i64::from(config.max_sessions_per_user);
    for evicted in store::revoke_beyond_cap(tx, user_id, SessionKind::Browser, cap, now).await? {
        let event =
            NewEvent::new(user_id, EventKind::SessionLimit, Some(evicted), client).by(public_id);
        events::record(tx, event, now).await?;
    }
    Ok(Some(Started {
        token,
        public_id,
        expires_at,
    }))
}

/// Checks a presented token against its row, the account and the policy, and writes last-seen
/// when it is due and the request is the person's; ends the session (with its security event, in
/// one transaction) when the policy says so.
pub async fn validate(
    conn: &mut PgConnection,
    token: &SessionToken,
    client: &ClientInfo,
    config: &SessionConfig,
    activity: Activity,
    now: OffsetDateTime,
) -> sqlx::Result<Validated> {
    let key = token.key();
    // A second look only when the first one's write lost a race (see `validate_once`).
    for _ in 0..2 {
        if let Some(validated) = validate_once(conn, &key, client, config, activity, now).await? {
            return Ok(validated);
        }
    }
    // The row changed under both looks: answered like any write that finds the session ended.
    Ok(Validated::Ended(Reason::Revoked))
}

/// One look at the session. `None`: last-seen was due, but the write found the row changed since
/// it was read (revoked, rotated, or touched by a concurrent request of this session), so this
/// read cannot tell whether the session lives: look again.
async fn validate_once(
    conn: &mut PgConnection,
    key: &SessionKey,
    client: &ClientInfo,
    config: &SessionConfig,
    activity: Activity,
    now: OffsetDateTime,
) -> sqlx::Result<Option<Validated>> {
    let Some(record) = store::find_with_user(conn, key).await? else {
        return superseded_or_unknown(conn, key, now).await.map(Some);
    };
    if let Some(reason) = record.revoke_reason {
        // A tombstone: tell the returning device why it was signed out.
        return Ok(Some(Validated::Ended(reason)));
    }
    if record.kind != SessionKind::Browser {
        return Ok(Some(Validated::Ended(Reason::LoginRequired)));
    }
    if record.disabled {
        return Ok(Some(Validated::Ended(Reason::Revoked)));
    }
    if !policy::bound_token_accepted(record.bound_until, now) {
        // Only the device's key could have renewed this token: refused, and the session is left
        // alone, so a copied cookie can neither use nor end it.
        return Ok(Some(Validated::Ended(Reason::BoundCookieExpired)));
    }
    // The level as read by this very statement, like the role: a raise applies from now on.
    let lifetimes = Lifetimes {
        created_at: record.created_at,
        last_seen_at: record.last_seen_at,
        expires_at: record.expires_at,
        aal: record.aal,
    };
    let fingerprint = FingerprintMatch {
        bound: record.fingerprint_bind == client.fingerprint.bind,
        watched: record.fingerprint_watch == client.fingerprint.watch,
    };
    // The role as read on this request: a promotion or demotion applies from now on.
    let role = record.role;
    let (touch, watched_changed) =
        match policy::decide(lifetimes, limits(config), role, fingerprint, now) {
            Decision::End(reason) => {
                end(conn, record.user_id, record.public_id, reason, client, now).await?;
                if reason == Reason::FingerprintMismatch {
                    log::warn!(
                        "session {} ended: binding fingerprint changed",
                        key.log_id()
                    );
                }
                return Ok(Some(Validated::Ended(reason)));
            }
            Decision::Continue {
                touch,
                watched_changed,
            } => (touch, watched_changed),
        };
    let touch = touch && activity == Activity::Person;
    // Last-seen is a statement of its own, sent only when due; a change of network writes it below.
    if touch && !watched_changed && !store::touch(conn, key, &browser_touch(config, now)).await? {
        return Ok(None);
    }

    let mut confirmed_until = record.confirmed_until;
    if watched_changed {
        confirmed_until = None;
        // A change of network is already a transaction of its own (the change and its event);
        // noticing a cookie used from two networks by turns is part of the same statement.
        let alternation = store::Alternation {
            changed_after: now - config.network_alternation_window(),
            max_returns: i32::try_from(config.network_alternations_max).unwrap_or(i32::MAX),
        };
        let mut tx = conn.begin().await?;
        let change = store::record_network_change(
            &mut tx,
            key,
            &client.fingerprint,
            &client.ip,
            &alternation,
            activity == Activity::Person,
            now,
        )
        .await?;
        let kind = match change {
            Some(store::NetworkChange::Kept) => EventKind::NetworkChanged,
            Some(store::NetworkChange::Ended) => EventKind::NetworkAlternation,
            // Ended between our read and our write (a sign-out elsewhere): honour the tombstone.
            None => return Ok(Some(Validated::Ended(Reason::Revoked))),
        };
        let event = NewEvent::new(record.user_id, kind, Some(record.public_id), client);
        events::record(&mut tx, event, now).await?;
        tx.commit().await?;
        if change == Some(store::NetworkChange::Ended) {
            log::warn!(
                "session {} ended: used from two networks by turns",
                key.log_id()
            );
            return Ok(Some(Validated::Ended(Reason::NetworkAlternation)));
        }
    }
    Ok(Some(Validated::Live(Box::new(LiveSession {
        key: *key,
        public_id: record.public_id,
        user_id: record.user_id,
        username: record.username,
        role,
        created_at: record.created_at,
        last_seen_at: if touch || (watched_changed && activity == Activity::Person) {
            now
        } else {
            record.last_seen_at
        },
        expires_at: record.expires_at,
        confirmed_until,
        confirmed_aal: record.confirmed_aal,
        aal: record.aal,
        bound_csrf: record.bound_csrf,
        dbsc_offer: record.dbsc_offer.zip(record.dbsc_offered_at),
    }))))
}

/// A token no session has as its key: one its session rotated away from within the grace
/// (superseded, or the reason that session ended since), or unknown.
async fn superseded_or_unknown(
    conn: &mut PgConnection,
    key: &SessionKey,
    now: OffsetDateTime,
) -> sqlx::Result<Validated> {
    Ok(match store::find_rotated_from(conn, key, now).await? {
        Some(store::RotatedFrom {
            revoke_reason: Some(reason),
            ..
        }) => Validated::Ended(reason),
        Some(rotated) => Validated::Superseded(Superseded {
            public_id: rotated.public_id,
            user_id: rotated.user_id,
        }),
        None => Validated::Ended(Reason::LoginRequired),
    })
}

/// Ends one session for `reason` and records why, in one transaction. Ending an already ended
/// session changes nothing and records nothing.
///
/// By public id, not by the token the request came with: if the session rotated since the
/// request was checked (a confirmation or password change in another tab), it still ends.
pub async fn end(
    conn: &mut PgConnection,
    user_id: i64,
    public_id: Uuid,
    reason: Reason,
    client: &ClientInfo,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let mut tx = conn.begin().await?;
    let ended = store::revoke_by_id(&mut tx, public_id, reason, now)
        .await?
        .is_some();
    if ended {
        let kind = match reason {
            Reason::IdleTimeout => EventKind::IdleTimeout,
            Reason::SessionExpired => EventKind::SessionExpired,
            Reason::FingerprintMismatch => EventKind::FingerprintMismatch,
            _ => EventKind::SignOut,
        };
        let event = NewEvent::new(user_id, kind, Some(public_id), client);
        events::record(&mut tx, event, now).await?;
    }
    tx.commit().await?;
    Ok(ended)
}

/// Gives the current session a new token and sets (until when, at which level) or clears its
/// privileged confirmation, inside the caller's transaction. The old token no longer passes as the session; for
/// `policy::ROTATION_GRACE` it is still recognised as the session's (`Validated::Superseded`), so
/// a sign-out sent with it ends the session. `None`: it ended meanwhile.
/// A device-bound session stays bound: the new token gets its own deadline (set its cookie
/// with `cookie::issued_cookie`).
pub async fn rotate(
    tx: &mut PgConnection,
    session: &LiveSession,
    confirmed: Option<(OffsetDateTime, Aal)>,
    config: &SessionConfig,
    now: OffsetDateTime,
) -> sqlx::Result<Option<SessionToken>> {
    let token = SessionToken::generate();
    let grace_until = now + policy::ROTATION_GRACE;
    let mut rotated =
        store::rotate(tx, &session.key, &token.key(), confirmed, grace_until, now).await?;
    if rotated && session.is_bound() {
        let bound_until = now + config.bound_cookie_lifetime();
        rotated = store::rebind_rotated(tx, &token.key(), &token.csrf_bytes(), bound_until).await?;
    }
    Ok(rotated.then_some(token))
}

/// Ends every session and API token family of a user but `keep` for `reason`, inside the
/// caller's transaction, and moves the user's credentials version on first (taking the user's row
/// lock): a sign-in whose password check is under way cannot create a session that outlives this
/// ("sign out everywhere", a password change, a disabled account). Returns the public ids ended.
pub async fn end_all_for_user(
    tx: &mut PgConnection,
    user_id: i64,
    keep: Option<Uuid>,
    reason: Reason,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<Uuid>> {
    users::store::bump_credentials_version(tx, user_id).await?;
    store::revoke_all_for_user(tx, user_id, keep, reason, now).await
}

/// Ends every other session and API token family of the session's user for `reason`, with a
/// security event for each, inside the caller's transaction (`end_all_for_user`). The current
/// session is kept by its public id, so a concurrent rotation of it cannot make it end itself.
/// Returns how many ended.
pub async fn end_others(
    tx: &mut PgConnection,
    session: &LiveSession,
    reason: Reason,
    kind: EventKind,
    client: &ClientInfo,
    now: OffsetDateTime,
) -> sqlx::Result<usize> {
    end_others_of(
        tx,
        session.user_id,
        session.public_id,
        reason,
        kind,
        client,
        now,
    )
    .await
}

/// `end_others` for the session or API token family with public id `keep` of `user_id`.
pub async fn end_others_of(
    tx: &mut PgConnection,
    user_id: i64,
    keep: Uuid,
    reason: Reason,
    kind: EventKind,
    client: &ClientInfo,
    now: OffsetDateTime,
) -> sqlx::Result<usize> {
    let ended = end_all_for_user(tx, user_id, Some(keep), reason, now).await?;
    for public_id in &ended {
        let event = NewEvent::new(user_id, kind, Some(*public_id), client).by(keep);
        events::record(tx, event, now).await?;
    }
    Ok(ended.len())
}
