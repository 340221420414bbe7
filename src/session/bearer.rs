//! The bearer guard: an `&ApiUser` in a handler's arguments is proof of a live API access token
//! (`Authorization: Bearer <access_token>`).
//!
//! Browsers never attach this header on their own, so bearer endpoints need no CSRF token.

use rocket::Request;
use rocket::http::Status;
use rocket::request::{FromRequest, Outcome};

use super::api::{self, ApiSession};
use super::token::SessionToken;
use crate::clock::AppClock;
use crate::config::SessionConfig;
use crate::db::Db;
use crate::error::AppError;
use crate::users::Role;
use rocket_db_pools::Database;

/// A user signed in through the token API. Only `FromRequest` builds one.
pub struct ApiUser {
    session: ApiSession,
}

impl ApiUser {
    pub fn username(&self) -> &str {
        &self.session.username
    }

    pub fn role(&self) -> Role {
        self.session.role
    }

    pub fn session(&self) -> &ApiSession {
        &self.session
    }
}

/// Why the guard refused. Its `Debug` (which Rocket logs) never holds the presented token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// No `Authorization` header at all.
    Missing,
    /// A header that is not a bearer token, or a token that is malformed, unknown, replaced,
    /// expired or revoked: all look alike to the client, which must refresh or sign in again.
    Invalid,
    /// The database could not be asked: 503, and the token is left as it is.
    Unavailable,
}

impl BearerError {
    /// The `error` code of the JSON body: a public contract, never renamed.
    pub fn code(self) -> &'static str {
        match self {
            BearerError::Missing => "missing_token",
            BearerError::Invalid => "invalid_token",
            BearerError::Unavailable => "service_unavailable",
        }
    }

    /// The `WWW-Authenticate` challenge of a 401 (RFC 6750, section 3).
    pub fn challenge(self) -> &'static str {
        match self {
            BearerError::Missing => "Bearer",
            BearerError::Invalid | BearerError::Unavailable => "Bearer error=\"invalid_token\"",
        }
    }

    fn status(self) -> Status {
        match self {
            BearerError::Missing | BearerError::Invalid => Status::Unauthorized,
            BearerError::Unavailable => Status::ServiceUnavailable,
        }
    }
}

/// The guard's refusal, kept on the request for the 401 catcher; `None` where no bearer guard refused.
struct BearerRejection(Option<BearerError>);

/// Why the bearer guard refused this request, if it did.
pub fn rejection(request: &Request<'_>) -> Option<BearerError> {
    request.local_cache(|| BearerRejection(None)).0
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for &'r ApiUser {
    type Error = BearerError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        match request.local_cache_async(check(request)).await {
            Ok(user) => Outcome::Success(user),
            Err(error) => {
                request.local_cache(|| BearerRejection(Some(*error)));
                Outcome::Error((error.status(), *error))
            }
        }
    }
}

async fn check(request: &Request<'_>) -> Result<ApiUser, BearerError> {
    let token = presented_token(request)?;
    let rocket = request.rocket();
    let config = rocket
        .state::<SessionConfig>()
        .expect("session settings are managed at ignite");
    let clock = rocket
        .state::<AppClock>()
        .expect("the clock is managed at ignite");
    let db = Db::fetch(rocket).expect("the database is attached at ignite");
    let validated = match db.pool().acquire().await {
        Ok(mut conn) => api::validate(&mut conn, &token, config, clock.now())
            .await
            .map_err(AppError::from),
        Err(error) => Err(AppError::from(error)),
    };
    match validated {
        Ok(Some(session)) => Ok(ApiUser { session }),
        Ok(None) => Err(BearerError::Invalid),
        Err(error) => {
            rocket::warn!("bearer token check failed: {error}");
            Err(BearerError::Unavailable)
        }
    }
}

/// The token of the one `Authorization: Bearer` header (the scheme is case-insensitive).
/// Two headers are refused rather than one of them picked.
fn presented_token(request: &Request<'_>) -> Result<SessionToken, BearerError> {
    let mut values = request.headers().get("Authorization");
    let value = values.next().ok_or(BearerError::Missing)?;
    if values.next().is_some() {
        return Err(BearerError::Invalid);
    }
    let (scheme, token) = value.split_once(' ').ok_or(BearerError::Invalid)?;
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return Err(BearerError::Invalid);
    }
    SessionToken::parse(token.trim()).ok_or(BearerError::Invalid)
}
