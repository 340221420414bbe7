//! `POST /logout`: destroys the session, clears the cookie and the site's storage.

use rocket::http::{CookieJar, Header};
use rocket::response::Redirect;
use rocket::{Responder, Route, post, routes, uri};

use super::login;
use crate::context::RequestContext;
use crate::csrf::{FormRefused, SignOutForm};
use crate::error::{AppError, AppResult};
use crate::session::cookie::cleared_session_cookie;
use crate::session::{self, AuthenticatedUser, Reason, SessionError};

#[derive(Responder)]
pub enum LogoutResponse {
    SignedOut {
        redirect: Redirect,
        /// Tells the browser to drop this site's cookies and storage too.
        clear_site_data: Header<'static>,
    },
    /// No session came with the request: nothing is ended, and the site's data is not cleared
    /// (the browser may hold a live session this request did not carry, like a cross-site
    /// form's). A dead cookie is dropped by the session guard, as on every page.
    NothingToEnd(Redirect),
}

#[post("/logout", data = "<form>")]
pub async fn logout(
    user: Result<&AuthenticatedUser, SessionError>,
    // Taken as a `Result`: with no session there is no token to check, and nothing to end.
    form: Result<SignOutForm, FormRefused>,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<LogoutResponse> {
    let (user_id, public_id) = match user {
        Ok(user) => (user.user_id(), user.session_public_id()),
        // The token another tab's rotation replaced a moment ago: the same session, and the
        // sign-out ends it (the rotation's new cookie is what the browser holds now).
        Err(SessionError::Superseded(session)) => (session.user_id, session.public_id),
        Err(SessionError::Ended(reason)) => {
            return Ok(LogoutResponse::NothingToEnd(Redirect::to(uri!(
                login::page(Some(reason.code()), None::<&str>)
            ))));
        }
        Err(SessionError::CrossSite) => return Err(FormRefused::CrossSite.into()),
        Err(_) => return Err(AppError::SessionCheckFailed),
    };
    // Only a form from one of this session's own pages signs it out.
    form?;
    let mut conn = ctx.connection().await?;
    // By its public id: a rotation of this session in another tab must not make it miss.
    session::end(
        &mut conn,
        user_id,
        public_id,
        Reason::SignedOut,
        ctx.client,
        ctx.now(),
    )
    .await?;
    cookies.add(cleared_session_cookie(ctx.config));
    Ok(LogoutResponse::SignedOut {
        redirect: Redirect::to(uri!(login::page(
            Some(Reason::SignedOut.code()),
            None::<&str>
        ))),
        clear_site_data: Header::new("Clear-Site-Data", "\"cookies\", \"storage\""),
    })
}

pub fn routes() -> Vec<Route> {
    routes![logout]
}
