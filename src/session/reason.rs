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
    }
}

impl Reason {
    /// What the sign-in page tells a person, in plain words.
    pub fn message(self) -> &'static str {
        match self {
            Reason::LoginRequired => "Please sign in to continue.",
            Reason::SignedOut => "You have been signed out.",
            Reason::IdleTimeout => "You were signed out because you were inactive for a while.",
            Reason::SessionExpired => "Your session has expired. Please sign in again.",
            Reason::FingerprintMismatch => {
                "You were signed out because your browser changed unexpectedly during the session. \
                 Please sign in again."
            }
            Reason::Revoked => {
                "This device was signed out from another device or by an administrator."
            }
            Reason::PasswordChanged => {
                "Your password was changed, so this device was signed out. Sign in with the new password."
            }
            Reason::SessionLimit => {
                "You were signed out because your account signed in on more devices than allowed."
            }
            Reason::BoundCookieExpired => {
                "This sign-in is bound to a device, and its cookie was not renewed by that device in time. \
                 Please sign in again."
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
    fn unknown_codes_are_ignored() {
        for code in ["", "LOGIN_REQUIRED", "<script>", "signed_out ", "hacked"] {
            assert_eq!(Reason::from_code(code), None);
        }
    }
}
