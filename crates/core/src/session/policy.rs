//! Pure decisions about a session's life: no I/O, so a table of cases tests them all.
//!
//! [`decide`] is the whole rule. A session signed in at nine, last seen at nine, with a 30-minute
//! idle timeout, ends for idleness at half past, whatever its absolute lifetime:
//!
//! ```
//! use secure_sessions_core::session::{Aal, Reason};
//! use secure_sessions_core::session::policy::{decide, Decision, FingerprintMatch, Lifetimes, Limits};
//! use secure_sessions_core::users::Role;
//! use time::{Duration, macros::datetime};
//!
//! let nine = datetime!(2026-12-06 09:00 UTC);
//! let lifetimes = Lifetimes {
//!     created_at: nine,
//!     last_seen_at: nine,
//!     expires_at: nine + Duration::hours(12),
//!     aal: Aal::Aal1,
//! };
//! let limits = Limits {
//!     idle_timeout: Duration::minutes(30),
//!     touch_interval: Duration::minutes(1),
//!     admin_idle_timeout: Duration::minutes(15),
//!     admin_absolute_timeout: Duration::hours(8),
//!     aal2_idle_timeout: Duration::hours(1),
//!     aal2_absolute_timeout: Duration::hours(24),
//! };
//! let same_browser = FingerprintMatch { bound: true, watched: true };
//!
//! let at = |minutes| nine + Duration::minutes(minutes);
//! assert_eq!(
//!     decide(lifetimes, limits, Role::User, same_browser, at(29)),
//!     Decision::Continue { touch: true, watched_changed: false },
//! );
//! assert_eq!(
//!     decide(lifetimes, limits, Role::User, same_browser, at(30)),
//!     Decision::End(Reason::IdleTimeout),
//! );
//! // An administrator's shorter idle timeout applies from the request after a promotion.
//! assert_eq!(
//!     decide(lifetimes, limits, Role::Admin, same_browser, at(15)),
//!     Decision::End(Reason::IdleTimeout),
//! );
//! // A session at aal2 (a passkey) has its level's longer idle timeout.
//! let passkey = Lifetimes { aal: Aal::Aal2, ..lifetimes };
//! assert_eq!(
//!     decide(passkey, limits, Role::User, same_browser, at(45)),
//!     Decision::Continue { touch: true, watched_changed: false },
//! );
//! ```

use time::{Duration, OffsetDateTime};

use super::Aal;
use super::reason::Reason;
use crate::config::StepUp;
use crate::users::Role;

/// How long after a rotation the token it replaced is still recognised as the session's (never
/// accepted as it): long enough for a request the browser sent before the new cookie reached it,
/// short enough that a token seen before a confirmation is worth nothing soon after.
pub const ROTATION_GRACE: Duration = Duration::seconds(5);

/// "Stay signed in" writes last-seen even within the touch interval (the person asked, and the
/// deadline must move), but at most once in this long per session: a script repeating the request
/// costs no more writes than a person could. The deadline it gives is never more than this short
/// of a full idle timeout.
pub const KEEPALIVE_GAP: Duration = Duration::seconds(5);

/// The times that decide whether a session lives on.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// Sign-in time: an administrator's shorter absolute lifetime counts from it.
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    /// The absolute expiry written at sign-in (the level's absolute timeout, or the shorter
    /// `admin_absolute_timeout_secs` for an administrator), never extended.
    pub expires_at: OffsetDateTime,
    /// The session's level as read on this request: its timeouts follow it.
    pub aal: Aal,
}

/// The settings the decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub touch_interval: Duration,
    /// An administrator's idle timeout, when shorter than everyone's (`admin_idle_timeout_secs`).
    pub admin_idle_timeout: Duration,
    /// An administrator's absolute lifetime from sign-in (`admin_absolute_timeout_secs`).
    pub admin_absolute_timeout: Duration,
    /// An `aal2` session's idle timeout (`aal2_idle_timeout_secs`); `idle_timeout` is `aal1`'s.
    pub aal2_idle_timeout: Duration,
    /// An `aal2` session's absolute lifetime from sign-in (`aal2_absolute_timeout_secs`);
    /// `aal1`'s is the expiry written at sign-in.
    pub aal2_absolute_timeout: Duration,
}

impl Limits {
    /// The idle timeout for a session at level `aal` whose account has `role` now. A role's own
    /// limit only ever tightens the level's: no setting makes an administrator's session outlive
    /// a user's.
    pub fn idle_timeout(&self, role: Role, aal: Aal) -> Duration {
        let level = match aal {
            Aal::Aal1 => self.idle_timeout,
            Aal::Aal2 => self.aal2_idle_timeout,
        };
        match role {
            Role::User => level,
            Role::Admin => self.admin_idle_timeout.min(level),
        }
    }

    /// When a session at level `aal` that began at `created_at` and was given `expires_at` at
    /// sign-in ends, however active, for an account whose role is `role` now. A promotion
    /// mid-session brings the end forward at the next request; a demotion moves it back, never
    /// past `expires_at`. A session raised to `aal2` keeps its expiry, or ends sooner if `aal2`'s
    /// lifetime from sign-in is shorter: a level never lengthens a session.
    pub fn absolute_expiry(
        &self,
        role: Role,
        aal: Aal,
        created_at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> OffsetDateTime {
        let level = match aal {
            Aal::Aal1 => expires_at,
            Aal::Aal2 => (created_at + self.aal2_absolute_timeout).min(expires_at),
        };
        match role {
            Role::User => level,
            Role::Admin => (created_at + self.admin_absolute_timeout).min(level),
        }
    }
}

/// How the request's fingerprint compares with the one recorded at sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FingerprintMatch {
    /// The binding parts (User-Agent, ...) are unchanged.
    pub bound: bool,
    /// The watched parts (the IP prefix, ...) are unchanged.
    pub watched: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The session stays. `touch`: last-seen is older than the touch interval, write it.
    /// `watched_changed`: record the anomaly and end privileged confirmation.
    Continue { touch: bool, watched_changed: bool },
    /// The session ends now, for this reason.
    End(Reason),
}

/// Decides a live (not revoked) session's fate at `now`, for an account whose role is `role` as
/// read on this request (so a promotion or demotion applies at the next request).
///
/// Absolute expiry wins over idleness (the stronger statement), and both over the fingerprint.
/// Idleness is measured from `last_seen_at`, which is written at most once per touch interval:
/// a session may end up to one touch interval early, never late.
pub fn decide(
    lifetimes: Lifetimes,
    limits: Limits,
    role: Role,
    fingerprint: FingerprintMatch,
    now: OffsetDateTime,
) -> Decision {
    let aal = lifetimes.aal;
    if now >= limits.absolute_expiry(role, aal, lifetimes.created_at, lifetimes.expires_at) {
        return Decision::End(Reason::SessionExpired);
    }
    let idle_for = now - lifetimes.last_seen_at;
    if idle_for >= limits.idle_timeout(role, aal) {
        return Decision::End(Reason::IdleTimeout);
    }
    if !fingerprint.bound {
        return Decision::End(Reason::FingerprintMismatch);
    }
    Decision::Continue {
        touch: idle_for >= limits.touch_interval,
        watched_changed: !fingerprint.watched,
    }
}

/// For which sessions a request at `now` writes last-seen, as `decide` has it. The write
/// (`store::touch`) checks the newest row, whose level and role may have changed since the lookup
/// read it, so it applies each bound to what it reads: the level's window to the row's level,
/// and the administrator's window too when the role is `admin`. Both hold for an administrator,
/// which is `decide`'s tighter of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TouchWindow {
    /// Last seen at or before this: the touch interval has passed.
    pub seen_before: OffsetDateTime,
    /// An `aal1` session last seen after this: not idle past its timeout.
    pub seen_after: OffsetDateTime,
    /// An `aal2` session last seen after this, and signed in after `aal2_created_after`.
    pub aal2_seen_after: OffsetDateTime,
    pub aal2_created_after: OffsetDateTime,
    /// An administrator's session last seen after this, and signed in after
    /// `admin_created_after` (the row's own expiry is checked by the write anyway).
    pub admin_seen_after: OffsetDateTime,
    pub admin_created_after: OffsetDateTime,
}

pub fn touch_window(limits: Limits, now: OffsetDateTime) -> TouchWindow {
    let since = |lifetime: Duration| {
        now.checked_sub(lifetime)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    };
    TouchWindow {
        seen_before: now - limits.touch_interval,
        seen_after: now - limits.idle_timeout,
        aal2_seen_after: now - limits.aal2_idle_timeout,
        aal2_created_after: since(limits.aal2_absolute_timeout),
        admin_seen_after: now - limits.admin_idle_timeout,
        admin_created_after: since(limits.admin_absolute_timeout),
    }
}

impl TouchWindow {
    /// Whether a session at `aal`, of an account whose role is `role`, last seen at
    /// `last_seen_at` and signed in at `created_at`, is inside the window: what the lookup's
    /// SQL checks (`store::touch`), said once in Rust for the tests to hold it to `decide`.
    pub fn contains(
        &self,
        role: Role,
        aal: Aal,
        created_at: OffsetDateTime,
        last_seen_at: OffsetDateTime,
    ) -> bool {
        let level = match aal {
            Aal::Aal1 => last_seen_at > self.seen_after,
            Aal::Aal2 => {
                last_seen_at > self.aal2_seen_after && created_at > self.aal2_created_after
            }
        };
        let admin = role != Role::Admin
            || (last_seen_at > self.admin_seen_after && created_at > self.admin_created_after);
        last_seen_at <= self.seen_before && level && admin
    }
}

/// When the idle timeout will end the session if no request of the person comes first, as far
/// as the server can promise (see `decide`).
pub fn idle_deadline(lifetimes: Lifetimes, limits: Limits, role: Role) -> OffsetDateTime {
    let aal = lifetimes.aal;
    (lifetimes.last_seen_at + limits.idle_timeout(role, aal)).min(limits.absolute_expiry(
        role,
        aal,
        lifetimes.created_at,
        lifetimes.expires_at,
    ))
}

/// The level the confirmation before an action must be at: the action's `step_up` setting, for
/// a session at level `session`, on an account that has a passkey or not. Without one, the
/// password is the only way to confirm, so it is enough: a setting never locks an account out
/// of its own actions.
pub fn level_needed(step_up: StepUp, session: Aal, has_passkey: bool) -> Aal {
    match step_up {
        StepUp::SessionLevel if has_passkey => session,
        StepUp::Aal2 if has_passkey => Aal::Aal2,
        StepUp::Confirmed | StepUp::SessionLevel | StepUp::Aal2 => Aal::Aal1,
    }
}

/// Whether the confirmation in force (made at `confirmed`; `None`: none in force) is enough for
/// an action that needs `needed`.
pub fn confirmation_suffices(confirmed: Option<Aal>, needed: Aal) -> bool {
    confirmed.is_some_and(|level| level >= needed)
}

/// Whether the presented token of a session may be used at `now`. An unbound session's token
/// (`None`) lives as long as the session; a device-bound one only until its deadline, however
/// long the session has left: past it, only a refresh signed with the device's key brings a new
/// token, so a copied cookie stops working even if it is sent before the browser refreshes.
pub fn bound_token_accepted(bound_until: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    bound_until.is_none_or(|deadline| now < deadline)
}

/// Whether the registration challenge on offer since `offered_at` can still be shown on a page.
/// Renewed at half its lifetime, so a browser that registers a moment later still finds it
/// valid; at most one write per half lifetime for browsers that never register.
pub fn offer_is_fresh(
    offered_at: Option<OffsetDateTime>,
    lifetime: Duration,
    now: OffsetDateTime,
) -> bool {
    offered_at.is_some_and(|at| at > offer_stale_from(lifetime, now) && at <= now)
}

/// An offer made at or before this moment is stale at `now` (the lookup renews it in SQL; see
/// `offer_is_fresh`).
pub fn offer_stale_from(lifetime: Duration, now: OffsetDateTime) -> OffsetDateTime {
    now - lifetime / 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const SIGN_IN: OffsetDateTime = datetime!(2026-01-01 08:00 UTC);
    const LIMITS: Limits = Limits {
        idle_timeout: Duration::minutes(30),
        touch_interval: Duration::minutes(1),
        admin_idle_timeout: Duration::minutes(15),
        admin_absolute_timeout: Duration::hours(4),
        aal2_idle_timeout: Duration::hours(1),
        aal2_absolute_timeout: Duration::hours(24),
    };
    const SAME: FingerprintMatch = FingerprintMatch {
        bound: true,
        watched: true,
    };
    const USER: Role = Role::User;
    const ADMIN: Role = Role::Admin;

    fn at(minutes_after_sign_in: i64) -> OffsetDateTime {
        SIGN_IN + Duration::minutes(minutes_after_sign_in)
    }

    #[test]
    fn decisions_follow_the_table() {
        let new_ip = FingerprintMatch {
            bound: true,
            watched: false,
        };
        let new_browser = FingerprintMatch {
            bound: false,
            watched: true,
        };
        let keep = Decision::Continue {
            touch: false,
            watched_changed: false,
        };
        let touch = Decision::Continue {
            touch: true,
            watched_changed: false,
        };
        let idle = Decision::End(Reason::IdleTimeout);
        let expired = Decision::End(Reason::SessionExpired);
        // (role, last seen, absolute expiry, now, fingerprint) -> decision; minutes after sign-in.
        // The role is the one read on the request: a session that began as a user's and is an
        // administrator's now is judged by the administrator's limits, and the other way round.
        let table = [
            (USER, 0, 720, 0, SAME, keep),
            (
                USER,
                0,
                720,
                0,
                new_ip,
                Decision::Continue {
                    touch: false,
                    watched_changed: true,
                },
            ),
            (USER, 0, 720, 1, SAME, touch),
            (USER, 10, 720, 10, SAME, keep),
            (USER, 10, 720, 39, SAME, touch),
            (USER, 10, 720, 40, SAME, idle),
            (USER, 10, 720, 41, new_browser, idle),
            (
                USER,
                0,
                720,
                29,
                new_browser,
                Decision::End(Reason::FingerprintMismatch),
            ),
            (USER, 715, 720, 719, SAME, touch),
            (USER, 719, 720, 720, SAME, expired),
            (USER, 700, 720, 800, SAME, expired),
            // An administrator: 15 minutes idle, 4 hours from sign-in.
            (ADMIN, 0, 720, 14, SAME, touch),
            (ADMIN, 0, 720, 15, SAME, idle),
            (ADMIN, 10, 720, 24, SAME, touch),
            (ADMIN, 10, 720, 25, SAME, idle),
            (ADMIN, 230, 720, 239, SAME, touch),
            (ADMIN, 239, 720, 240, SAME, expired),
            (ADMIN, 239, 720, 241, SAME, expired),
            // A user idle for 20 minutes lives on; promoted, the same session ends at once.
            (USER, 100, 720, 120, SAME, touch),
            (ADMIN, 100, 720, 120, SAME, idle),
            // Five hours in: alive as a user, past an administrator's lifetime.
            (USER, 299, 720, 300, SAME, touch),
            (ADMIN, 299, 720, 300, SAME, expired),
            // The row's own expiry still bounds an administrator (a short absolute_timeout_secs).
            (ADMIN, 55, 60, 60, SAME, expired),
        ];
        // A session at aal2: an hour idle, a day from sign-in; an administrator's limits still
        // tighten them, and a session raised to aal2 keeps the expiry it was signed in with.
        let aal2 = [
            (USER, 0, 1440, 45, SAME, touch),
            (USER, 0, 1440, 59, SAME, touch),
            (USER, 0, 1440, 60, SAME, idle),
            (USER, 1400, 1440, 1439, SAME, touch),
            (USER, 1439, 1440, 1440, SAME, expired),
            (ADMIN, 0, 1440, 15, SAME, idle),
            (ADMIN, 239, 1440, 240, SAME, expired),
            (USER, 700, 720, 719, SAME, touch),
            (USER, 700, 720, 720, SAME, expired),
        ];
        let levels = table
            .into_iter()
            .map(|row| (Aal::Aal1, row))
            .chain(aal2.into_iter().map(|row| (Aal::Aal2, row)));
        for (aal, (role, last_seen, expires, now, fingerprint, expected)) in levels {
            let lifetimes = Lifetimes {
                created_at: SIGN_IN,
                last_seen_at: at(last_seen),
                expires_at: at(expires),
                aal,
            };
            assert_eq!(
                decide(lifetimes, LIMITS, role, fingerprint, at(now)),
                expected,
                "{aal:?}, {role:?}, last seen {last_seen}, expires {expires}, now {now}, {fingerprint:?}"
            );
        }
    }

    #[test]
    fn a_role_limit_only_ever_tightens_the_general_one() {
        let loose = Limits {
            admin_idle_timeout: Duration::hours(2),
            admin_absolute_timeout: Duration::days(2),
            ..LIMITS
        };
        for aal in [Aal::Aal1, Aal::Aal2] {
            assert_eq!(
                loose.idle_timeout(ADMIN, aal),
                LIMITS.idle_timeout(USER, aal)
            );
            assert_eq!(loose.absolute_expiry(ADMIN, aal, at(0), at(720)), at(720));
        }
    }

    #[test]
    fn a_level_never_lengthens_a_session_and_a_shorter_one_applies_at_once() {
        // Raised to aal2 late in a 12-hour sign-in: the sign-in's expiry stands.
        assert_eq!(
            LIMITS.absolute_expiry(USER, Aal::Aal2, at(0), at(720)),
            at(720)
        );
        // An aal2 lifetime shorter than aal1's: a session raised after it has already ended.
        let short = Limits {
            aal2_idle_timeout: Duration::minutes(10),
            aal2_absolute_timeout: Duration::hours(2),
            ..LIMITS
        };
        assert_eq!(
            short.absolute_expiry(USER, Aal::Aal2, at(0), at(720)),
            at(120)
        );
        assert_eq!(short.idle_timeout(USER, Aal::Aal2), Duration::minutes(10));
        assert_eq!(short.idle_timeout(USER, Aal::Aal1), Duration::minutes(30));
    }

    #[test]
    fn the_touch_window_writes_exactly_when_decide_says_touch() {
        for role in [USER, ADMIN] {
            for aal in [Aal::Aal1, Aal::Aal2] {
                for now in [at(45), at(75), at(245)] {
                    let window = touch_window(LIMITS, now);
                    for seconds in (0..=245 * 60).step_by(7) {
                        let last_seen_at = SIGN_IN + Duration::seconds(seconds);
                        if last_seen_at > now {
                            break;
                        }
                        let lifetimes = Lifetimes {
                            created_at: SIGN_IN,
                            last_seen_at,
                            expires_at: at(1440),
                            aal,
                        };
                        let touch = matches!(
                            decide(lifetimes, LIMITS, role, SAME, now),
                            Decision::Continue { touch: true, .. }
                        );
                        assert_eq!(
                            window.contains(role, aal, SIGN_IN, last_seen_at),
                            touch,
                            "{role:?}, {aal:?}, now {now}, last seen {seconds} s after sign-in"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_level_an_action_needs_follows_its_setting_the_session_and_the_passkeys() {
        use Aal::{Aal1, Aal2};
        use StepUp::{Aal2 as Passkey, Confirmed, SessionLevel};
        // (setting, session's level, account has a passkey) -> level needed.
        let table = [
            (Confirmed, Aal1, true, Aal1),
            (Confirmed, Aal2, true, Aal1),
            (SessionLevel, Aal1, true, Aal1),
            (SessionLevel, Aal2, true, Aal2),
            (Passkey, Aal1, true, Aal2),
            (Passkey, Aal2, true, Aal2),
            // No passkey (never had one, or the last one removed): the password is enough.
            (SessionLevel, Aal2, false, Aal1),
            (Passkey, Aal1, false, Aal1),
        ];
        for (step_up, session, has_passkey, needed) in table {
            assert_eq!(
                level_needed(step_up, session, has_passkey),
                needed,
                "{step_up:?}, {session:?}, passkey {has_passkey}"
            );
        }
        assert!(confirmation_suffices(Some(Aal2), Aal1));
        assert!(confirmation_suffices(Some(Aal1), Aal1));
        assert!(!confirmation_suffices(Some(Aal1), Aal2));
        assert!(!confirmation_suffices(None, Aal1));
    }

    #[test]
    fn a_bound_token_is_accepted_only_before_its_deadline() {
        let deadline = Some(at(10));
        // (deadline, now) -> accepted; minutes after sign-in.
        let table = [
            (None, at(0), true),
            (None, at(700), true),
            (deadline, at(0), true),
            (deadline, at(10) - Duration::microseconds(1), true),
            (deadline, at(10), false),
            (deadline, at(11), false),
            (deadline, at(700), false),
        ];
        for (bound_until, now, expected) in table {
            assert_eq!(
                bound_token_accepted(bound_until, now),
                expected,
                "deadline {bound_until:?}, now {now}"
            );
        }
    }

    #[test]
    fn an_offer_is_reused_for_half_its_lifetime() {
        let lifetime = Duration::minutes(5);
        let offered = Some(at(0));
        // (offered at, now) -> still fresh.
        let table = [
            (None, at(0), false),
            (offered, at(0), true),
            (offered, at(2), true),
            (offered, at(0) + Duration::seconds(150), false),
            (offered, at(4), false),
            (Some(at(3)), at(2), false), // written by an instance whose clock runs ahead: renew
        ];
        for (offered_at, now, expected) in table {
            assert_eq!(
                offer_is_fresh(offered_at, lifetime, now),
                expected,
                "offered {offered_at:?}, now {now}"
            );
        }
    }

    #[test]
    fn the_idle_deadline_never_passes_the_absolute_expiry() {
        let fresh = Lifetimes {
            created_at: SIGN_IN,
            last_seen_at: at(0),
            expires_at: at(720),
            aal: Aal::Aal1,
        };
        assert_eq!(idle_deadline(fresh, LIMITS, USER), at(30));
        assert_eq!(idle_deadline(fresh, LIMITS, ADMIN), at(15));
        let passkey = Lifetimes {
            aal: Aal::Aal2,
            ..fresh
        };
        assert_eq!(idle_deadline(passkey, LIMITS, USER), at(60));
        assert_eq!(idle_deadline(passkey, LIMITS, ADMIN), at(15));
        let late = Lifetimes {
            created_at: SIGN_IN,
            last_seen_at: at(700),
            expires_at: at(720),
            aal: Aal::Aal1,
        };
        assert_eq!(idle_deadline(late, LIMITS, USER), at(720));
        let late_admin = Lifetimes {
            created_at: SIGN_IN,
            last_seen_at: at(230),
            expires_at: at(720),
            aal: Aal::Aal1,
        };
        assert_eq!(idle_deadline(late_admin, LIMITS, ADMIN), at(240));
    }
}
