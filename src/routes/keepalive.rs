//! The idle warning's two requests. `POST /session/keepalive` is its "Stay signed in": it writes
//! last-seen even within the touch interval (`session::keep_alive`), and the answer tells the
//! page how long it now has.
//! `GET /session/idle` is its check when the countdown reaches zero: the page's own request,
//! which never counts as activity, so no number of open tabs keeps an unattended session alive.

use rocket::http::{CookieJar, Status};
use rocket::serde::json::{Json, Value, json};
use rocket::{Route, State, get, post, routes, uri};

use super::login;
use crate::config::SessionConfig;
use crate::context::RequestContext;
use crate::csrf::CsrfForm;
use crate::error::AppResult;
use crate::local_path::LocalPath;
use crate::session::cookie::ended_note;
use crate::session::guard::{IdleCountdown, Unattended};
use crate::session::{self, AuthenticatedUser, Reason, SessionError};

#[post("/session/keepalive", data = "<_csrf>")]
async fn keepalive(
    user: &AuthenticatedUser,
    _csrf: CsrfForm,
    ctx: RequestContext<'_>,
) -> AppResult<Json<Value>> {
    let now = ctx.now();
    let mut conn = ctx.connection().await?;
    let deadline = session::keep_alive(&mut conn, user.session(), ctx.config, now).await?;
    let countdown = IdleCountdown::until(deadline, now, ctx.config);
    Ok(Json(json!({ "idle_seconds_left": countdown.seconds_left })))
}

/// Still signed in: how long is left (another tab may have been used meanwhile). Signed out:
/// where the page goes, the sign-in page saying why and returning to `next`.
#[get("/session/idle?<next>")]
fn idle(
    user: Result<Unattended<'_>, SessionError>,
    next: Option<&str>,
    cookies: &CookieJar<'_>,
    config: &State<SessionConfig>,
) -> Result<Json<Value>, Status> {
    match user {
        Ok(user) => Ok(Json(
            json!({ "idle_seconds_left": user.user().idle_countdown().seconds_left }),
        )),
        Err(SessionError::Ended(reason)) => {
            // The dead cookie is cleared (by the session guard): the other tabs' checks will
            // come without it, and the note tells them why too.
            if reason != Reason::LoginRequired {
                cookies.add(ended_note(config, reason));
            }
            let next = next.and_then(LocalPath::parse);
            let location = uri!(login::page(
                Some(reason.code()),
                next.as_ref().map(LocalPath::as_str)
            ));
            Ok(Json(json!({ "location": location.to_string() })))
        }
        // Sent with a token a rotation replaced a moment ago: the page asks again shortly.
        Err(SessionError::Superseded(_)) => Err(Status::Conflict),
        Err(_) => Err(Status::ServiceUnavailable),
    }
}

pub fn routes() -> Vec<Route> {
    routes![keepalive, idle]
}
