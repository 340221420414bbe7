//! The token API for clients that are not browsers: `POST /api/token`, `POST /api/token/refresh`,
//! `GET /api/me` and `POST /api/logout` (DESIGN section 7).
//!
//! Every answer is JSON. Refusals carry a stable `error` code: `invalid_credentials`,
//! `too_many_attempts` (with `Retry-After`) and `invalid_grant` here; `missing_token` and
//! `invalid_token` from the bearer guard; the catchers' codes (`unsupported_media_type`,
//! `bad_request`, ...) for bodies that cannot be read.

use rocket::data::{self, Data, FromData};
use rocket::http::{Header, Status};
use rocket::serde::json::Json;
use rocket::serde::{Deserialize, Serialize};
use rocket::{Request, Responder, Route, State, get, post, routes};
use sqlx::Connection;
use time::OffsetDateTime;

use crate::client::ClientInfo;
use crate::clock::AppClock;
use crate::config::SessionConfig;
use crate::db::Db;
use crate::error::AppResult;
use crate::session::ApiUser;
use crate::session::api::{self, Refreshed, TokenPair};
use crate::session::token::SessionToken;
use crate::sign_in::{self, Verdict};
use crate::throttle;
use crate::users::PasswordHasher;

/// A JSON request body. Any other content type is refused (415) before a byte is read, which also
/// keeps cross-site HTML forms (they cannot send JSON) away from these endpoints. Malformed JSON
/// is 400, a missing or mistyped field 422, a body over `limits.json` 413.
pub struct ApiJson<T>(pub T);

/// Why a body was refused, and nothing of the body itself: Rocket logs a data guard's error, and
/// its own JSON error quotes the body, which here carries passwords and refresh tokens.
#[derive(Debug)]
pub enum RefusedBody {
    NotJson,
    TooLarge,
    Malformed,
    WrongFields,
}

impl RefusedBody {
    fn of(status: Status) -> Self {
        match status {
            Status::PayloadTooLarge => RefusedBody::TooLarge,
            Status::UnprocessableEntity => RefusedBody::WrongFields,
            _ => RefusedBody::Malformed,
        }
    }
}

#[rocket::async_trait]
impl<'r, T: Deserialize<'r>> FromData<'r> for ApiJson<T> {
    type Error = RefusedBody;

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        if !request
            .content_type()
            .is_some_and(|content_type| content_type.is_json())
        {
            return data::Outcome::Error((Status::UnsupportedMediaType, RefusedBody::NotJson));
        }
        match <Json<T> as FromData>::from_data(request, data).await {
            data::Outcome::Success(Json(value)) => data::Outcome::Success(ApiJson(value)),
            data::Outcome::Error((status, _quotes_the_body)) => {
                data::Outcome::Error((status, RefusedBody::of(status)))
            }
            data::Outcome::Forward(forward) => data::Outcome::Forward(forward),
        }
    }
}

/// Deliberately not `Debug`: it holds a password.
#[derive(Deserialize)]
#[serde(crate = "rocket::serde")]
pub struct Credentials {
    username: String,
    password: String,
}

/// Deliberately not `Debug`: it holds a refresh token.
#[derive(Deserialize)]
#[serde(crate = "rocket::serde")]
pub struct RefreshRequest {
    refresh_token: String,
}

#[derive(Serialize)]
#[serde(crate = "rocket::serde")]
pub struct TokenBody {
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
    /// Seconds until the access token stops working.
    expires_in: i64,
}

impl TokenBody {
    fn of(pair: &TokenPair, now: OffsetDateTime) -> Self {
        TokenBody {
            access_token: pair.access_token.expose(),
            refresh_token: pair.refresh_token.expose(),
            token_type: "Bearer",
            expires_in: (pair.access_expires_at - now).whole_seconds(),
        }
    }
}

#[derive(Serialize)]
#[serde(crate = "rocket::serde")]
pub struct ErrorBody {
    error: &'static str,
}

#[derive(Responder)]
pub enum TokenResponse {
    Issued(Json<TokenBody>),
    #[response(status = 401)]
    Refused(Json<ErrorBody>),
    #[response(status = 429)]
    Throttled {
        body: Json<ErrorBody>,
        retry_after: Header<'static>,
    },
}

impl TokenResponse {
    fn refused(error: &'static str) -> Self {
        TokenResponse::Refused(Json(ErrorBody { error }))
    }
}

#[post("/api/token", data = "<credentials>")]
pub async fn issue_tokens(
    credentials: ApiJson<Credentials>,
    client: &ClientInfo,
    db: &State<Db>,
    hasher: &State<PasswordHasher>,
    config: &State<SessionConfig>,
    clock: &State<AppClock>,
) -> AppResult<TokenResponse> {
    let ApiJson(Credentials { username, password }) = credentials;
    let now = clock.now();
    let (credentials, attempt) = match sign_in::check_password(
        db, hasher, config, &username, password, client, now,
    )
    .await?
    {
        Verdict::Accepted {
            credentials,
            attempt,
        } => (credentials, attempt),
        Verdict::Rejected => return Ok(TokenResponse::refused("invalid_credentials")),
        Verdict::Throttled(retry_after) => {
            let body = Json(ErrorBody {
                error: "too_many_attempts",
            });
            return Ok(TokenResponse::Throttled {
                body,
                retry_after: retry_after.header(),
            });
        }
    };

    let mut conn = db.connection().await?;
    let mut tx = conn.begin().await?;
    throttle::succeeded(&mut tx, attempt).await?;
    let Some(pair) = api::issue(&mut tx, credentials, client, config, now).await? else {
        // The credentials changed while the password was being checked: it proves nothing now.
        return Ok(TokenResponse::refused("invalid_credentials"));
    };
    tx.commit().await?;
    Ok(TokenResponse::Issued(Json(TokenBody::of(&pair, now))))
}

#[post("/api/token/refresh", data = "<request>")]
pub async fn refresh_tokens(
    request: ApiJson<RefreshRequest>,
    client: &ClientInfo,
    db: &State<Db>,
    config: &State<SessionConfig>,
    clock: &State<AppClock>,
) -> AppResult<TokenResponse> {
    // A malformed value cannot be a token we issued: the same answer as an unknown one.
    let Some(presented) = SessionToken::parse(&request.0.refresh_token) else {
        return Ok(TokenResponse::refused("invalid_grant"));
    };
    let now = clock.now();
    match api::refresh(
        &mut *db.connection().await?,
        &presented,
        client,
        config,
        now,
    )
    .await?
    {
        Refreshed::Rotated(pair) => Ok(TokenResponse::Issued(Json(TokenBody::of(&pair, now)))),
        Refreshed::Refused => Ok(TokenResponse::refused("invalid_grant")),
    }
}

#[derive(Serialize)]
#[serde(crate = "rocket::serde")]
pub struct Me {
    username: String,
    role: &'static str,
}

#[get("/api/me")]
pub fn me(user: &ApiUser) -> Json<Me> {
    Json(Me {
        username: user.username().to_owned(),
        role: user.role().code(),
    })
}

/// Ends the family of the presented access token: it, its refresh token and any later ones.
#[post("/api/logout")]
pub async fn logout(
    user: &ApiUser,
    client: &ClientInfo,
    db: &State<Db>,
    clock: &State<AppClock>,
) -> AppResult<Status> {
    api::end(
        &mut *db.connection().await?,
        user.session(),
        client,
        clock.now(),
    )
    .await?;
    Ok(Status::NoContent)
}

pub fn routes() -> Vec<Route> {
    routes![issue_tokens, refresh_tokens, me, logout]
}
