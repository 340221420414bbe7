//! `GET /`: to the account page when signed in, else to the sign-in page.

use rocket::response::Redirect;
use rocket::{Route, get, routes, uri};

use super::{account, login};
use crate::error::{AppError, AppResult};
use crate::session::{AuthenticatedUser, SessionError};

#[get("/")]
fn index(user: Result<&AuthenticatedUser, SessionError>) -> AppResult<Redirect> {
    match user {
        // A token a rotation replaced a moment ago: the browser has the new cookie, or is about to.
        Ok(_) | Err(SessionError::Superseded(_)) => Ok(Redirect::to(uri!(account::page))),
        Err(SessionError::Ended(_)) => {
            Ok(Redirect::to(uri!(login::page(None::<&str>, None::<&str>))))
        }
        // The database could not be asked: a signed-in person is not sent to the sign-in page.
        Err(_) => Err(AppError::SessionCheckFailed),
    }
}

pub fn routes() -> Vec<Route> {
    routes![index]
}
