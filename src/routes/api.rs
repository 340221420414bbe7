//! The token API for clients that are not browsers: `POST /api/token`, `POST /api/token/refresh`,
//! `GET /api/me` and `POST /api/logout` (docs/token-api.md), and the account's devices:
//! `GET /api/sessions`, `DELETE /api/sessions/<id>`, `POST /api/sessions/revoke-others`.
//!
//! Every answer is JSON. Refusals carry a stable `error` code: `invalid_credentials`,
//! `account_disabled`, `too_many_attempts` (with `Retry-After`), `invalid_grant`,
//! `invalid_password`, `no_such_session` and `current_session` here; `missing_token` and
//! `invalid_token` from the bearer guard; the catchers' codes (`unsupported_media_type`,
//! `bad_request`, ...) for bodies that cannot be read.

use rocket::data::{self, Data, FromData};
use rocket::http::{Header, Status};
use rocket::serde::json::Json;
use rocket::serde::{Deserialize, Serialize};
use rocket::{Request, Responder, Route, delete, get, post, routes};
use sqlx::Connection;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::context::RequestContext;
use crate::device;
use crate::error::AppResult;
use crate::events::{self, EventKind, NewEvent};
use crate::headers;
use crate::session::api::{self, Refreshed, TokenPair};
use crate::session::token::SessionToken;
use crate::session::{self, ApiUser, Reason, store};
use crate::sign_in::{self, SignInVerdict, SignedIn, Verdict};
use crate::throttle::{self, Attempt};

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
    /// The right password for a disabled account.
    #[response(status = 403)]
    Disabled(Json<ErrorBody>),
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
    ctx: RequestContext<'_>,
) -> AppResult<TokenResponse> {
    let ApiJson(Credentials { username, password }) = credentials;
    let now = ctx.now();
    let (credentials, attempt) =
        match sign_in::check_password(&ctx, &username, password, now).await? {
            SignInVerdict::Accepted {
                credentials,
                attempt,
            } => (credentials, attempt),
            SignInVerdict::Rejected => return Ok(TokenResponse::refused("invalid_credentials")),
            SignInVerdict::Disabled => {
                return Ok(TokenResponse::Disabled(Json(ErrorBody {
                    error: "account_disabled",
                })));
            }
            SignInVerdict::Throttled(retry_after) => {
                let body = Json(ErrorBody {
                    error: "too_many_attempts",
                });
                return Ok(TokenResponse::Throttled {
                    body,
                    retry_after: headers::throttled(retry_after),
                });
            }
        };

    let mut conn = ctx.connection().await?;
    let mut tx = conn.begin().await?;
    throttle::succeeded(&mut tx, attempt).await?;
    let Some(pair) = api::issue(&mut tx, credentials, ctx.client, ctx.config, now).await? else {
        // The credentials changed while the password was being checked: it proves nothing now.
        return Ok(TokenResponse::refused("invalid_credentials"));
    };
    tx.commit().await?;
    Ok(TokenResponse::Issued(Json(TokenBody::of(&pair, now))))
}

#[post("/api/token/refresh", data = "<request>")]
pub async fn refresh_tokens(
    request: ApiJson<RefreshRequest>,
    ctx: RequestContext<'_>,
) -> AppResult<TokenResponse> {
    // A malformed value cannot be a token we issued: the same answer as an unknown one.
    let Some(presented) = SessionToken::parse(&request.0.refresh_token) else {
        return Ok(TokenResponse::refused("invalid_grant"));
    };
    let now = ctx.now();
    match api::refresh(
        &mut *ctx.connection().await?,
        &presented,
        ctx.client,
        ctx.config,
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
pub async fn logout(user: &ApiUser, ctx: RequestContext<'_>) -> AppResult<Status> {
    api::end(
        &mut *ctx.connection().await?,
        user.session(),
        ctx.client,
        ctx.now(),
    )
    .await?;
    Ok(Status::NoContent)
}

/// One of the account's live devices: a browser session or an API token family.
#[derive(Serialize)]
#[serde(crate = "rocket::serde")]
pub struct DeviceBody {
    /// The public id (`DELETE /api/sessions/<id>`), never a token nor its hash.
    id: String,
    /// `browser` or `api`.
    kind: &'static str,
    /// The User-Agent in words ("Chrome on Linux").
    device: String,
    ip: String,
    signed_in_at: String,
    last_active_at: String,
    /// The token family this request came with.
    current: bool,
    /// Bound to a key on the device (DBSC).
    bound: bool,
    /// The assurance level its sign-in reached: `aal1` (a password), `aal2` (a passkey).
    aal: &'static str,
}

#[derive(Serialize)]
#[serde(crate = "rocket::serde")]
pub struct DeviceList {
    sessions: Vec<DeviceBody>,
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// The account's live devices, most recently active first.
#[get("/api/sessions")]
pub async fn list_sessions(user: &ApiUser, ctx: RequestContext<'_>) -> AppResult<Json<DeviceList>> {
    let current = user.session().public_id;
    let devices = store::list_live_for_user(
        &mut *ctx.connection().await?,
        user.session().user_id,
        &session::alive(ctx.config, ctx.now()),
    )
    .await?;
    let sessions = devices
        .into_iter()
        .map(|device| DeviceBody {
            id: device.public_id.to_string(),
            current: device.public_id == current,
            device: device::describe(&device.user_agent),
            kind: device.kind.code(),
            ip: device.ip,
            signed_in_at: rfc3339(device.created_at),
            last_active_at: rfc3339(device.last_seen_at),
            bound: device.bound,
            aal: device.aal.code(),
        })
        .collect();
    Ok(Json(DeviceList { sessions }))
}

/// Deliberately not `Debug`: it holds a password.
#[derive(Deserialize)]
#[serde(crate = "rocket::serde")]
pub struct PasswordBody {
    password: String,
}

#[derive(Serialize)]
#[serde(crate = "rocket::serde")]
pub struct RevokedBody {
    revoked: usize,
}

#[derive(Responder)]
pub enum DeviceResponse {
    /// One device ended (204).
    Ended(Status),
    /// Every other device ended.
    EndedOthers(Json<RevokedBody>),
    Refused((Status, Json<ErrorBody>)),
    #[response(status = 429)]
    Throttled {
        body: Json<ErrorBody>,
        retry_after: Header<'static>,
    },
}

impl DeviceResponse {
    fn refused(status: Status, error: &'static str) -> Self {
        DeviceResponse::Refused((status, Json(ErrorBody { error })))
    }
}

/// The password again, through the signed-in re-check budget (per token family), before a token
/// may end other devices: a stolen access token alone must not sign the owner out everywhere
/// (ASVS 7.5.2). `Err`: the refusal to send.
async fn recheck(
    user: &ApiUser,
    password: String,
    ctx: &RequestContext<'_>,
    now: OffsetDateTime,
) -> AppResult<Result<Attempt, DeviceResponse>> {
    let signed_in = SignedIn {
        user_id: user.session().user_id,
        session: user.session().public_id,
    };
    Ok(
        match sign_in::check_session_password(ctx, signed_in, password, now).await? {
            Verdict::Accepted { attempt, .. } => Ok(attempt),
            Verdict::Rejected => Err(DeviceResponse::refused(
                Status::Forbidden,
                "invalid_password",
            )),
            Verdict::Throttled(retry_after) => Err(DeviceResponse::Throttled {
                body: Json(ErrorBody {
                    error: "too_many_attempts",
                }),
                retry_after: headers::throttled(retry_after),
            }),
        },
    )
}

/// Ends one other device of the account. Another account's device, an unknown or malformed id
/// and an ended device are all `404 no_such_session`: nothing is revoked, nothing is told.
#[delete("/api/sessions/<id>", data = "<body>")]
pub async fn revoke_session(
    user: &ApiUser,
    id: &str,
    body: ApiJson<PasswordBody>,
    ctx: RequestContext<'_>,
) -> AppResult<DeviceResponse> {
    let Ok(id) = Uuid::parse_str(id) else {
        return Ok(DeviceResponse::refused(Status::NotFound, "no_such_session"));
    };
    let family = user.session().public_id;
    if id == family {
        // Its own family ends with `POST /api/logout`, which needs no password.
        return Ok(DeviceResponse::refused(Status::Conflict, "current_session"));
    }
    let now = ctx.now();
    let attempt = match recheck(user, body.0.password, &ctx, now).await? {
        Ok(attempt) => attempt,
        Err(refusal) => return Ok(refusal),
    };
    let user_id = user.session().user_id;
    let mut conn = ctx.connection().await?;
    let mut tx = conn.begin().await?;
    throttle::succeeded(&mut tx, attempt).await?;
    // Scoped to this account: another user's id matches no row, and so ends nothing.
    if !store::revoke_other(&mut tx, user_id, id, family, Reason::Revoked, now).await? {
        tx.commit().await?; // the right password still resets the budget
        return Ok(DeviceResponse::refused(Status::NotFound, "no_such_session"));
    }
    let event = NewEvent::new(user_id, EventKind::SessionRevoked, Some(id), ctx.client).by(family);
    events::record(&mut tx, event, now).await?;
    tx.commit().await?;
    Ok(DeviceResponse::Ended(Status::NoContent))
}

/// Ends every other device and token family of the account; this family goes on.
#[post("/api/sessions/revoke-others", data = "<body>")]
pub async fn revoke_other_sessions(
    user: &ApiUser,
    body: ApiJson<PasswordBody>,
    ctx: RequestContext<'_>,
) -> AppResult<DeviceResponse> {
    let now = ctx.now();
    let attempt = match recheck(user, body.0.password, &ctx, now).await? {
        Ok(attempt) => attempt,
        Err(refusal) => return Ok(refusal),
    };
    let mut conn = ctx.connection().await?;
    let mut tx = conn.begin().await?;
    throttle::succeeded(&mut tx, attempt).await?;
    let revoked = session::end_others_of(
        &mut tx,
        user.session().user_id,
        user.session().public_id,
        Reason::Revoked,
        EventKind::SessionRevoked,
        ctx.client,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(DeviceResponse::EndedOthers(Json(RevokedBody { revoked })))
}

pub fn routes() -> Vec<Route> {
    routes![
        issue_tokens,
        refresh_tokens,
        me,
        logout,
        list_sessions,
        revoke_session,
        revoke_other_sessions
    ]
}
