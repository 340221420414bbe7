//! Pure decisions about a session's life: no I/O, so a table of cases tests them all.

use time::{Duration, OffsetDateTime};

use super::reason::Reason;

/// The times that decide whether a session lives on.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// The settings the decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub touch_interval: Duration,
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

/// Decides a live (not revoked) session's fate at `now`.
///
/// Absolute expiry wins over idleness (the stronger statement), and both over the fingerprint.
/// Idleness is measured from `last_seen_at`, which is written at most once per touch interval:
/// a session may end up to one touch interval early, never late.
pub fn decide(
    lifetimes: Lifetimes,
    limits: Limits,
    fingerprint: FingerprintMatch,
    now: OffsetDateTime,
) -> Decision {
    if now >= lifetimes.expires_at {
        return Decision::End(Reason::SessionExpired);
    }
    let idle_for = now - lifetimes.last_seen_at;
    if idle_for >= limits.idle_timeout {
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

/// The last-seen times for which a request at `now` writes last-seen, as `decide` has it: at or
/// before the first (the touch interval has passed), after the second (not idle past the
/// timeout). The lookup writes in the statement that reads the row, before `decide` has seen it.
pub fn touch_window(limits: Limits, now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
    (now - limits.touch_interval, now - limits.idle_timeout)
}

/// When the idle timeout will end the session if no request comes first, as far as the
/// server can promise (see `decide`).
pub fn idle_deadline(lifetimes: Lifetimes, limits: Limits) -> OffsetDateTime {
    (lifetimes.last_seen_at + limits.idle_timeout).min(lifetimes.expires_at)
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
    offered_at.is_some_and(|at| now - at < lifetime / 2 && at <= now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const SIGN_IN: OffsetDateTime = datetime!(2026-01-01 08:00 UTC);
    const LIMITS: Limits = Limits {
        idle_timeout: Duration::minutes(30),
        touch_interval: Duration::minutes(1),
    };
    const SAME: FingerprintMatch = FingerprintMatch {
        bound: true,
        watched: true,
    };

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
        // (last seen, absolute expiry, now, fingerprint) -> decision; minutes after sign-in.
        let table = [
            (0, 720, 0, SAME, keep),
            (
                0,
                720,
                0,
                new_ip,
                Decision::Continue {
                    touch: false,
                    watched_changed: true,
                },
            ),
            (0, 720, 1, SAME, touch),
            (10, 720, 10, SAME, keep),
            (10, 720, 39, SAME, touch),
            (10, 720, 40, SAME, Decision::End(Reason::IdleTimeout)),
            (10, 720, 41, new_browser, Decision::End(Reason::IdleTimeout)),
            (
                0,
                720,
                29,
                new_browser,
                Decision::End(Reason::FingerprintMismatch),
            ),
            (715, 720, 719, SAME, touch),
            (719, 720, 720, SAME, Decision::End(Reason::SessionExpired)),
            (700, 720, 800, SAME, Decision::End(Reason::SessionExpired)),
        ];
        for (last_seen, expires, now, fingerprint, expected) in table {
            let lifetimes = Lifetimes {
                last_seen_at: at(last_seen),
                expires_at: at(expires),
            };
            assert_eq!(
                decide(lifetimes, LIMITS, fingerprint, at(now)),
                expected,
                "last seen {last_seen}, expires {expires}, now {now}, {fingerprint:?}"
            );
        }
    }

    #[test]
    fn the_touch_window_writes_exactly_when_decide_says_touch() {
        let now = at(45);
        let (seen_before, seen_after) = touch_window(LIMITS, now);
        for seconds in 0..=45 * 60 {
            let last_seen_at = SIGN_IN + Duration::seconds(seconds);
            let lifetimes = Lifetimes {
                last_seen_at,
                expires_at: at(720),
            };
            let touch = matches!(
                decide(lifetimes, LIMITS, SAME, now),
                Decision::Continue { touch: true, .. }
            );
            let in_window = seen_after < last_seen_at && last_seen_at <= seen_before;
            assert_eq!(in_window, touch, "last seen {seconds} s after sign-in");
        }
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
            last_seen_at: at(0),
            expires_at: at(720),
        };
        assert_eq!(idle_deadline(fresh, LIMITS), at(30));
        let late = Lifetimes {
            last_seen_at: at(700),
            expires_at: at(720),
        };
        assert_eq!(idle_deadline(late, LIMITS), at(720));
    }
}
