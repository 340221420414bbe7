//! The one place that builds the session cookie, and the one that clears it.

use rocket::http::{Cookie, CookieJar, SameSite};
use time::Duration;

use super::token::SessionToken;
use crate::config::SessionConfig;

/// `__Host-` + Secure + Path=/ + no Domain: only this origin can set or read it. HttpOnly keeps it
/// from scripts; SameSite=Lax keeps it off cross-site POSTs. It outlives the session by the
/// tombstone grace, so a browser still presents an expired token and learns `session_expired`.
pub fn session_cookie(config: &SessionConfig, token: &SessionToken) -> Cookie<'static> {
    Cookie::build((config.cookie_name.clone(), token.expose()))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(config.absolute_timeout() + config.tombstone_grace())
        .build()
}

/// The same cookie, empty and already expired: a browser only drops a cookie whose attributes match.
pub fn cleared_session_cookie(config: &SessionConfig) -> Cookie<'static> {
    Cookie::build((config.cookie_name.clone(), ""))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(Duration::ZERO)
        .expires(time::OffsetDateTime::UNIX_EPOCH)
        .build()
}

/// The token the browser presented, if it is well-formed.
pub fn presented_token(cookies: &CookieJar<'_>, config: &SessionConfig) -> Option<SessionToken> {
    cookies.get(&config.cookie_name).and_then(|cookie| SessionToken::parse(cookie.value()))
}
