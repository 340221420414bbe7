//! Cross-site request forgery defences: every state-changing form carries a token.
//!
//! Signed-in forms carry a token derived from the session (`SessionToken::csrf_token`). The
//! sign-in and sign-up forms have no session yet: they use a double-submit token whose cookie
//! is encrypted and authenticated with the app's secret key, so a cookie planted by someone
//! else (a sibling subdomain, a network attacker) is rejected.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rocket::http::{Cookie, SameSite};
use rocket::request::{FromRequest, Outcome};
use rocket::Request;
use sha2::{Digest, Sha256};

use crate::error::AppError;
use crate::session::token::random_bytes;

/// The form field every state-changing form carries.
pub const FIELD: &str = "csrf_token";
const PRE_SESSION_COOKIE: &str = "__Host-csrf";

/// Compares a presented token with the expected one in constant time (both are hashed first,
/// so the comparison's timing says nothing about the secret).
pub fn verify(expected: &str, presented: &str) -> Result<(), AppError> {
    if Sha256::digest(expected) == Sha256::digest(presented) && !expected.is_empty() {
        Ok(())
    } else {
        Err(AppError::CsrfRejected)
    }
}

/// The double-submit token of a visitor without a session. Created on first sight.
pub struct PreSessionCsrf(String);

impl PreSessionCsrf {
    pub fn token(&self) -> &str {
        &self.0
    }

    pub fn verify(&self, presented: &str) -> Result<(), AppError> {
        verify(&self.0, presented)
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for PreSessionCsrf {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let cookies = request.cookies();
        if let Some(cookie) = cookies.get_private(PRE_SESSION_COOKIE) {
            return Outcome::Success(PreSessionCsrf(cookie.value().to_owned()));
        }
        let token = URL_SAFE_NO_PAD.encode(random_bytes());
        let cookie = Cookie::build((PRE_SESSION_COOKIE, token.clone()))
            .path("/")
            .secure(true)
            .http_only(true)
            .same_site(SameSite::Lax);
        cookies.add_private(cookie);
        Outcome::Success(PreSessionCsrf(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_passes() {
        assert!(verify("abc", "abc").is_ok());
        assert!(verify("abc", "abd").is_err());
        assert!(verify("abc", "").is_err());
        assert!(verify("", "").is_err());
    }
}
