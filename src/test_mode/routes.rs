//! `/__test/`: the JSON API end-to-end suites drive in test mode. Mounted only when
//! `test_hooks` is on, served only to direct loopback clients (the parent module has the
//! guards). Every route takes a JSON body (`{}` when there is nothing to say): a cross-site
//! form cannot send one.

use rocket::http::Status;
use rocket::serde::Deserialize;
use rocket::serde::json::{Json, Value, json};
use rocket::{Route, State, post, routes};
use sqlx::Connection;
use time::Duration;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::LoopbackClient;
use crate::clock::AppClock;
use crate::context::RequestContext;
use crate::error::AppResult;
use crate::events::{self, EventKind, NewEvent};
use crate::routes::api::ApiJson;
use crate::session::{self, Reason, store};
use crate::users::{self, Password, Role, Username};

/// A JSON answer with its status; refusals carry a stable `error` code.
type Answer = (Status, Json<Value>);

fn refused(status: Status, error: &str, message: &str) -> Answer {
    (status, Json(json!({ "error": error, "message": message })))
}

#[derive(Deserialize)]
#[serde(crate = "rocket::serde", deny_unknown_fields)]
pub struct Advance {
    secs: u32,
}

/// Moves the app's clock forward by `secs`: every timeout, throttle wait and confirmation window
/// sees the new time at once. It never moves back, not even on reset.
#[post("/clock/advance", data = "<body>")]
fn advance_clock(
    _client: LoopbackClient,
    body: ApiJson<Advance>,
    clock: &State<AppClock>,
) -> Answer {
    match clock.advance(Duration::seconds(body.0.secs.into())) {
        Ok(now) => (
            Status::Ok,
            Json(json!({ "now": now.format(&Rfc3339).ok() })),
        ),
        Err(error) => refused(
            Status::UnprocessableEntity,
            "out_of_range",
            &error.to_string(),
        ),
    }
}

/// Deliberately not `Debug`: it holds a password.
#[derive(Deserialize)]
#[serde(crate = "rocket::serde", deny_unknown_fields)]
pub struct NewUser {
    username: String,
    password: String,
    /// `user` (the default) or `admin`.
    role: Option<String>,
}

/// Creates an account with a role, as the demo seed does: the username and length rules apply,
/// the strength check of the sign-up form does not, and no security event is recorded.
#[post("/users", data = "<body>")]
async fn create_user(
    _client: LoopbackClient,
    body: ApiJson<NewUser>,
    ctx: RequestContext<'_>,
) -> AppResult<Answer> {
    let ApiJson(NewUser {
        username,
        password,
        role,
    }) = body;
    let username = match Username::parse(&username) {
        Ok(username) => username,
        Err(rules) => {
            return Ok(refused(
                Status::UnprocessableEntity,
                "invalid_username",
                rules,
            ));
        }
    };
    let password = match Password::parse(password) {
        Ok(password) => password,
        Err(rules) => {
            return Ok(refused(
                Status::UnprocessableEntity,
                "invalid_password",
                rules,
            ));
        }
    };
    // No role is an ordinary user; an unknown one is refused: a typo must not quietly make one.
    let Some(role) = role.as_deref().map_or(Some(Role::User), Role::from_code) else {
        return Ok(refused(
            Status::UnprocessableEntity,
            "invalid_role",
            "role is \"user\" or \"admin\"",
        ));
    };
    let password_hash = ctx.hasher.hash(&password).await?;
    let mut conn = ctx.connection().await?;
    match users::store::create(&mut conn, &username, &password_hash, role, ctx.now()).await? {
        Some(id) => {
            let body = json!({ "id": id, "username": username.as_str(), "role": role.code() });
            Ok((Status::Created, Json(body)))
        }
        None => Ok(refused(
            Status::Conflict,
            "username_taken",
            "an account with this username exists",
        )),
    }
}

/// Which sessions to sign out: every session and API token of an account, or one session by
/// the public id its device's `/account` page shows (`data-session-id`).
#[derive(Deserialize)]
#[serde(crate = "rocket::serde", deny_unknown_fields)]
pub struct RevokeRequest {
    username: Option<String>,
    session_id: Option<Uuid>,
}

/// Signs sessions out as an administrator would: each device learns `reason=revoked` at its
/// next request, and the account's security activity records it.
#[post("/sessions/revoke", data = "<body>")]
async fn revoke_sessions(
    _client: LoopbackClient,
    body: ApiJson<RevokeRequest>,
    ctx: RequestContext<'_>,
) -> AppResult<Answer> {
    let (now, client) = (ctx.now(), ctx.client);
    let mut conn = ctx.connection().await?;
    let mut tx = conn.begin().await?;
    let revoked = match body.0 {
        RevokeRequest {
            username: Some(username),
            session_id: None,
        } => {
            // Text that cannot be a username names no account.
            let username = Username::parse(&username).ok();
            let user = match &username {
                Some(username) => users::store::find_credentials(&mut tx, username).await?,
                None => None,
            };
            let Some(user) = user else {
                return Ok(refused(
                    Status::NotFound,
                    "no_such_user",
                    "no account has this username",
                ));
            };
            let ended =
                session::end_all_for_user(&mut tx, user.id, None, Reason::Revoked, now).await?;
            let event = NewEvent::new(user.id, EventKind::SessionsRevokedByAdmin, None, client)
                .detail(format!("{} sessions, by the test hooks", ended.len()));
            events::record(&mut tx, event, now).await?;
            ended.len()
        }
        RevokeRequest {
            username: None,
            session_id: Some(public_id),
        } => {
            let Some(user_id) =
                store::revoke_by_id(&mut tx, public_id, Reason::Revoked, now).await?
            else {
                return Ok(refused(
                    Status::NotFound,
                    "no_such_session",
                    "no live session has this id",
                ));
            };
            let event = NewEvent::new(user_id, EventKind::SessionRevoked, Some(public_id), client)
                .detail("by the test hooks");
            events::record(&mut tx, event, now).await?;
            1
        }
        _ => {
            let message = "give either \"username\" or \"session_id\"";
            return Ok(refused(
                Status::UnprocessableEntity,
                "unprocessable",
                message,
            ));
        }
    };
    tx.commit().await?;
    Ok((Status::Ok, Json(json!({ "revoked": revoked }))))
}

/// The reset body: `{}`.
#[derive(Deserialize)]
#[serde(crate = "rocket::serde", deny_unknown_fields)]
pub struct Nothing {}

/// Empties the database: no accounts, sessions, activity or throttle counts remain. The clock
/// keeps its offset.
#[post("/reset", data = "<_body>")]
async fn reset(
    _client: LoopbackClient,
    _body: ApiJson<Nothing>,
    ctx: RequestContext<'_>,
) -> AppResult<Status> {
    super::erase_all_data(&mut *ctx.connection().await?).await?;
    Ok(Status::NoContent)
}

pub fn routes() -> Vec<Route> {
    routes![advance_clock, create_user, revoke_sessions, reset]
}
