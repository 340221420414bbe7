//! The one place that builds (and clears) the session cookie, and the note that tells a device
//! why its device-bound session ended.

use rocket::http::{Cookie, CookieJar, SameSite};
use time::{Duration, OffsetDateTime};

use super::LiveSession;
use super::reason::Reason;
use super::token::SessionToken;
use crate::config::SessionConfig;

/// `__Host-` + Secure + Path=/ + no Domain: only this origin can set or read it. `HttpOnly` keeps it
/// from scripts; SameSite=Lax keeps it off cross-site POSTs. Every cookie of this module has them.
fn host_only(name: String, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .build()
}

/// The session cookie of a session that is not device-bound and ends, however active, at
/// `ends_at` (an administrator's sooner). It outlives the session by the tombstone grace, so a
/// browser still presents an expired token and learns `session_expired`, and no longer.
pub fn session_cookie(
    config: &SessionConfig,
    token: &SessionToken,
    ends_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Cookie<'static> {
    let mut cookie = host_only(config.cookie_name.clone(), token.expose());
    cookie.set_max_age((ends_at - now).max(Duration::ZERO) + config.tombstone_grace());
    cookie
}

/// The session cookie of a device-bound session: it lives `bound_cookie_secs`, as long as the
/// server accepts its token, so the browser notices it is gone and refreshes with its key.
pub fn bound_session_cookie(config: &SessionConfig, token: &SessionToken) -> Cookie<'static> {
    let mut cookie = host_only(config.cookie_name.clone(), token.expose());
    cookie.set_max_age(config.bound_cookie_lifetime());
    cookie
}

/// The cookie for a token just issued to a live session, bound or not.
pub fn issued_cookie(
    config: &SessionConfig,
    token: &SessionToken,
    session: &LiveSession,
    now: OffsetDateTime,
) -> Cookie<'static> {
    if session.is_bound() {
        bound_session_cookie(config, token)
    } else {
        session_cookie(config, token, session.ends_at(config), now)
    }
}

/// The session cookie's attributes as a DBSC session configuration names them: the browser
/// watches for the cookie with exactly these (Max-Age aside), so they come from the same builder.
pub fn credential_attributes(config: &SessionConfig) -> String {
    let cookie = host_only(config.cookie_name.clone(), String::new());
    let rendered = cookie.to_string();
    let prefix = format!("{}=; ", config.cookie_name);
    rendered
        .strip_prefix(&prefix)
        .unwrap_or(&rendered)
        .to_owned()
}

/// The same cookie, empty and already expired: a browser only drops a cookie whose attributes match.
pub fn cleared_session_cookie(config: &SessionConfig) -> Cookie<'static> {
    cleared(config.cookie_name.clone())
}

fn cleared(name: String) -> Cookie<'static> {
    let mut cookie = host_only(name, String::new());
    cookie.set_max_age(Duration::ZERO);
    cookie.set_expires(OffsetDateTime::UNIX_EPOCH);
    cookie
}

/// The token the browser presented, if it is well-formed.
pub fn presented_token(cookies: &CookieJar<'_>, config: &SessionConfig) -> Option<SessionToken> {
    cookies
        .get(&config.cookie_name)
        .and_then(|cookie| SessionToken::parse(cookie.value()))
}

/// How long the note about an ended device-bound session is kept: it is read by the request
/// the browser retries right after its refresh was answered.
const ENDED_NOTE_LIFETIME: Duration = Duration::minutes(5);

fn ended_note_name(config: &SessionConfig) -> String {
    format!("{}-ended", config.cookie_name)
}

/// A device-bound session that ended is noticed by the refresh, after the bound cookie has
/// already expired in the browser; the next page arrives with no session cookie at all. This
/// note carries the reason code (public, never a secret) to that page.
pub fn ended_note(config: &SessionConfig, reason: Reason) -> Cookie<'static> {
    let mut cookie = host_only(ended_note_name(config), reason.code().to_owned());
    cookie.set_max_age(ENDED_NOTE_LIFETIME);
    cookie
}

pub fn cleared_ended_note(config: &SessionConfig) -> Cookie<'static> {
    cleared(ended_note_name(config))
}

/// The reason a note carries, if there is one with a known code (anything else is ignored).
pub fn read_ended_note(cookies: &CookieJar<'_>, config: &SessionConfig) -> Option<Reason> {
    cookies
        .get(&ended_note_name(config))
        .and_then(|cookie| Reason::from_code(cookie.value()))
}

pub fn has_ended_note(cookies: &CookieJar<'_>, config: &SessionConfig) -> bool {
    cookies.get(&ended_note_name(config)).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_attributes_are_the_cookies_own() {
        let config = SessionConfig::default();
        assert_eq!(
            credential_attributes(&config),
            "HttpOnly; SameSite=Lax; Secure; Path=/"
        );
        let token = SessionToken::generate();
        let set_cookie = bound_session_cookie(&config, &token).to_string();
        let expected = format!(
            "__Host-sid={}; {}; Max-Age=600",
            token.expose(),
            credential_attributes(&config)
        );
        assert_eq!(set_cookie, expected);
    }
}
