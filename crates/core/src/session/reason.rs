//! Why a visitor is on the sign-in page: the `reason=` codes, a public contract that is never renamed.

crate::codes::text_codes! {
    /// Every code the app puts in `/login?reason=`. An ended session's row stores one as its
    /// tombstone (`sessions.revoke_reason`).
    pub enum Reason {
        LoginRequired = "login_required",
        SignedOut = "signed_out",
        IdleTimeout = "idle_timeout",
        SessionExpired = "session_expired",
        FingerprintMismatch = "fingerprint_mismatch",
        Revoked = "revoked",
        PasswordChanged = "password_changed",
        SessionLimit = "session_limit",
        BoundCookieExpired = "bound_cookie_expired",
        NetworkAlternation = "network_alternation",
    }
}

/// How a reason's banner looks: plain news, or news that may mean someone else was involved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// The person did this themselves ("You have been signed out.").
    Done,
    /// Something the person should know, nothing more (a timeout).
    Info,
    /// It may have been someone else: worth a second look.
    Warning,
}

/// The advice in some messages, which the sign-in page makes a link to the password change.
pub const CHANGE_PASSWORD: &str = "change your password";

impl Reason {
    /// The start of the sign-in page's title, so the reason is the first thing a screen reader
    /// says ("Signed out – Sign in"); `None` when the plain "Sign in" says it all.
    pub fn title(self) -> Option<&'static str> {
        Some(match self {
            Reason::LoginRequired => return None,
            Reason::SignedOut => "Signed out",
            Reason::IdleTimeout => "Signed out after inactivity",
            Reason::SessionExpired => "Session expired",
            Reason::FingerprintMismatch => "Signed out: browser changed",
            Reason::Revoked => "Signed out from another device",
            Reason::PasswordChanged => "Signed out: password changed",
            Reason::SessionLimit => "Signed out: too many devices",
            Reason::BoundCookieExpired => "Signed out: device sign-in expired",
            Reason::NetworkAlternation => "Signed out: used from two networks",
        })
    }

    /// Whether the reason may mean that someone else has the password or a copy of the session.
    pub fn tone(self) -> Tone {
        match self {
            Reason::SignedOut => Tone::Done,
            Reason::LoginRequired
            | Reason::IdleTimeout
            | Reason::SessionExpired
            | Reason::PasswordChanged
            | Reason::BoundCookieExpired => Tone::Info,
            Reason::FingerprintMismatch
            | Reason::Revoked
            | Reason::SessionLimit
            | Reason::NetworkAlternation => Tone::Warning,
        }
    }

    /// What the sign-in page tells a person, in plain words: what happened and what to do.
    /// `max_devices` is the concurrent-session cap (`max_sessions_per_user`).
    pub fn message(self, max_devices: u32) -> String {
        match self {
            Reason::LoginRequired => "Please sign in to continue.".to_owned(),
            Reason::SignedOut => "You have been signed out.".to_owned(),
            Reason::IdleTimeout => {
                "You were signed out because you were inactive for a while.".to_owned()
            }
            Reason::SessionExpired => "Your session has expired. Please sign in again.".to_owned(),
            Reason::FingerprintMismatch => {
                "You were signed out because this browser no longer looked like the one you signed in \
                 with (after a browser update, or because someone copied your sign-in to another \
                 browser). Please sign in again; if this keeps happening, change your password."
                    .to_owned()
            }
            Reason::Revoked => {
                "This device was signed out from another device or by an administrator. \
                 If this wasn’t you, change your password after signing in."
                    .to_owned()
            }
            Reason::PasswordChanged => {
                "Your password was changed, so this device was signed out. Sign in with the new password."
                    .to_owned()
            }
            Reason::SessionLimit => format!(
                "You were signed out because your account signed in on more devices than allowed \
                 ({max_devices} at once): the device used least recently is signed out first. \
                 If you did not sign in elsewhere just now, change your password."
            ),
            Reason::BoundCookieExpired => {
                "This sign-in is bound to a device, and its cookie was not renewed by that device in time. \
                 Please sign in again."
                    .to_owned()
            }
            Reason::NetworkAlternation => {
                "You were signed out because this session was used from two networks by turns, \
                 as happens when someone else has a copy of it. Sign in again, and check your \
                 security activity; if you see anything you did not do, change your password."
                    .to_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_parses_back_to_itself() {
        for &reason in Reason::ALL {
            assert_eq!(Reason::from_code(reason.code()), Some(reason));
        }
    }

    #[test]
    fn every_warning_says_what_to_do_and_only_warnings_ask_for_a_new_password() {
        for &reason in Reason::ALL {
            let asks = reason.message(5).contains(CHANGE_PASSWORD);
            assert_eq!(asks, reason.tone() == Tone::Warning, "{reason:?}");
        }
    }

    #[test]
    fn unknown_codes_are_ignored() {
        for code in ["", "LOGIN_REQUIRED", "<script>", "signed_out ", "hacked"] {
            assert_eq!(Reason::from_code(code), None);
        }
    }
}
