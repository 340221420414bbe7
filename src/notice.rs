//! One-time notices after a redirect ("Signed out 2 devices."): a short-lived cookie that holds
//! an outcome code, never free text, so a cookie planted by someone else can only pick one of
//! the app's own sentences.

use rocket::http::{Cookie, CookieJar, SameSite};
use time::Duration;

use crate::users::Username;

const COOKIE_NAME: &str = "__Host-notice";

/// What an action did, said on the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// "Sign out" or "Sign out all other devices": how many ended.
    DevicesSignedOut(usize),
    /// "This wasn't me": how many other devices and API tokens ended.
    AccountSecured(usize),
    /// An administrator disabled an account, ending this many of its sessions.
    AccountDisabled {
        username: String,
        ended: usize,
    },
    AccountEnabled {
        username: String,
    },
    /// An administrator signed an account out everywhere.
    AccountSignedOut {
        username: String,
        ended: usize,
    },
    /// An administrator signed their own account out everywhere but on this device.
    OwnAccountSignedOut(usize),
}

impl Notice {
    fn encode(&self) -> String {
        match self {
            Notice::DevicesSignedOut(n) => format!("signed_out:{n}"),
            Notice::AccountSecured(n) => format!("secured:{n}"),
            Notice::AccountDisabled { username, ended } => {
                format!("disabled:{ended}:{username}")
            }
            Notice::AccountEnabled { username } => format!("enabled:0:{username}"),
            Notice::AccountSignedOut { username, ended } => {
                format!("admin_signed_out:{ended}:{username}")
            }
            Notice::OwnAccountSignedOut(n) => format!("own_signed_out:{n}"),
        }
    }

    fn decode(value: &str) -> Option<Notice> {
        let mut parts = value.splitn(3, ':');
        let kind = parts.next()?;
        let count: usize = parts.next()?.parse().ok()?;
        // A name is read back only if it is one (never free text).
        let username = parts
            .next()
            .map(|name| Username::parse(name).map(|name| name.as_str().to_owned()));
        Some(match (kind, username) {
            ("signed_out", None) => Notice::DevicesSignedOut(count),
            ("secured", None) => Notice::AccountSecured(count),
            ("own_signed_out", None) => Notice::OwnAccountSignedOut(count),
            ("disabled", Some(Ok(username))) => Notice::AccountDisabled {
                username,
                ended: count,
            },
            ("enabled", Some(Ok(username))) => Notice::AccountEnabled { username },
            ("admin_signed_out", Some(Ok(username))) => Notice::AccountSignedOut {
                username,
                ended: count,
            },
            _ => return None,
        })
    }

    /// The sentence the page shows.
    pub fn message(&self) -> String {
        match self {
            Notice::DevicesSignedOut(0) => {
                "Nothing to sign out: that device had already signed out.".to_owned()
            }
            Notice::DevicesSignedOut(n) => format!("Signed out {}.", devices(*n)),
            Notice::AccountSecured(0) => "No other device was signed in to your account, so \
                 none had to be signed out. Now choose a new password."
                .to_owned(),
            Notice::AccountSecured(n) => format!(
                "Signed out {} of your account. Now choose a new password.",
                other_devices(*n)
            ),
            Notice::AccountDisabled { username, ended: 0 } => format!(
                "Disabled {username}: no device of theirs was signed in; signing in is refused \
                 until enabled."
            ),
            Notice::AccountDisabled { username, ended } => format!(
                "Disabled {}: signed out of {}; signing in is refused until enabled.",
                username,
                devices(*ended)
            ),
            Notice::AccountEnabled { username } => {
                format!("Enabled {username}: they can sign in again.")
            }
            Notice::AccountSignedOut { username, ended: 0 } => {
                format!("Nothing to sign out: {username} was not signed in anywhere.")
            }
            Notice::AccountSignedOut { username, ended } => {
                format!("Signed {} out of {}.", username, devices(*ended))
            }
            Notice::OwnAccountSignedOut(0) => {
                "Nothing to sign out: you were not signed in on any other device. This device \
                 stays signed in."
                    .to_owned()
            }
            Notice::OwnAccountSignedOut(n) => format!(
                "Signed you out of {}. This device stays signed in.",
                other_devices(*n)
            ),
        }
    }

    /// Set on the redirect; read once by the next page.
    pub fn cookie(&self) -> Cookie<'static> {
        Cookie::build((COOKIE_NAME, self.encode()))
            .path("/")
            .secure(true)
            .http_only(true)
            .same_site(SameSite::Strict)
            .max_age(Duration::minutes(1))
            .build()
    }

    /// The notice waiting for this page, if any, and clears it: it is said once.
    pub fn take(cookies: &CookieJar<'_>) -> Option<String> {
        let value = cookies.get(COOKIE_NAME)?.value().to_owned();
        cookies.remove(
            Cookie::build(COOKIE_NAME)
                .path("/")
                .secure(true)
                .http_only(true)
                .same_site(SameSite::Strict),
        );
        Notice::decode(&value).map(|notice| notice.message())
    }
}

fn devices(n: usize) -> String {
    if n == 1 {
        "1 device".to_owned()
    } else {
        format!("{n} devices")
    }
}

/// "1 other device", "3 other devices" (no count of none: each sentence says that its own way).
fn other_devices(n: usize) -> String {
    if n == 1 {
        "1 other device".to_owned()
    } else {
        format!("{n} other devices")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(value: &str) -> String {
        value.to_owned()
    }

    #[test]
    fn every_notice_reads_back_as_itself() {
        let notices = [
            Notice::DevicesSignedOut(2),
            Notice::AccountSecured(0),
            Notice::AccountDisabled {
                username: name("carol.b"),
                ended: 3,
            },
            Notice::AccountEnabled {
                username: name("carol"),
            },
            Notice::AccountSignedOut {
                username: name("carol"),
                ended: 1,
            },
            Notice::OwnAccountSignedOut(2),
        ];
        for notice in notices {
            assert_eq!(Notice::decode(&notice.encode()), Some(notice));
        }
    }

    #[test]
    fn a_planted_cookie_cannot_put_its_own_words_on_the_page() {
        for value in [
            "",
            "signed_out",
            "signed_out:x",
            "Call 555-0100 now",
            "disabled:1:call us now",
            "disabled:1",
            "signed_out:1:extra",
        ] {
            assert_eq!(Notice::decode(value), None, "{value:?}");
        }
    }

    #[test]
    fn counts_read_as_sentences() {
        assert_eq!(
            Notice::DevicesSignedOut(2).message(),
            "Signed out 2 devices."
        );
        assert_eq!(
            Notice::DevicesSignedOut(1).message(),
            "Signed out 1 device."
        );
        assert_eq!(
            Notice::AccountSecured(1).message(),
            "Signed out 1 other device of your account. Now choose a new password."
        );
        // None is said as none, never as a count of zero.
        let none = [
            Notice::AccountSecured(0),
            Notice::AccountDisabled {
                username: name("carol"),
                ended: 0,
            },
            Notice::AccountSignedOut {
                username: name("carol"),
                ended: 0,
            },
            Notice::OwnAccountSignedOut(0),
        ];
        for notice in none {
            let message = notice.message();
            assert!(!message.contains(" 0 "), "{message}");
            assert!(!message.contains("(there was none)"), "{message}");
        }
        assert_eq!(
            Notice::OwnAccountSignedOut(1).message(),
            "Signed you out of 1 other device. This device stays signed in."
        );
    }
}
