//! `POST /logout`: destroys the session, clears the cookie and the site's storage.

use rocket::http::{CookieJar, Header};
use rocket::response::Redirect;
use rocket::{Responder, Route, post, routes, uri};

use super::login;
use crate::context::RequestContext;
use crate::csrf::{CsrfForm, FormRefused};
use crate::error::{AppError, AppResult};
use crate::session::cookie::cleared_session_cookie;
use crate::session::{self, AuthenticatedUser, Reason, SessionError};

#[derive(Responder)]
pub struct SignedOut {
    redirect: Redirect,
    /// Tells the browser to drop this site's cookies and storage too.
    clear_site_data: Header<'static>,
}

#[post("/logout", data = "<form>")]
pub async fn logout(
    user: Result<&AuthenticatedUser, SessionError>,
    // Taken as a `Result`: with no live session there is no token to check, and nothing to end.
    form: Result<CsrfForm, FormRefused>,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<SignedOut> {
    match user {
        Ok(user) => {
            // Only a form from one of this session's own pages signs it out.
            form?;
            let mut conn = ctx.connection().await?;
            let session = user.session();
            // By its public id: a rotation of this session in another tab must not make it miss.
            session::end(
                &mut conn,
                session.user_id,
                session.public_id,
                Reason::SignedOut,
                ctx.client,
                ctx.now(),
            )
            .await?;
        }
        // Already signed out (or never signed in): there is nothing to destroy, say so all the same.
        Err(SessionError::Ended(_)) => {}
        Err(_) => return Err(AppError::SessionCheckFailed),
    }
    cookies.add(cleared_session_cookie(ctx.config));
    Ok(SignedOut {
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
