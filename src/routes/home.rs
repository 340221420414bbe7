//! `GET /`: to the account page when signed in, else to the sign-in page.

use rocket::response::Redirect;
use rocket::{get, routes, uri, Route};

use super::{account, login};
use crate::session::AuthenticatedUser;

#[get("/")]
fn index(user: Option<&AuthenticatedUser>) -> Redirect {
    match user {
        Some(_) => Redirect::to(uri!(account::page)),
        None => Redirect::to(uri!(login::page(None::<&str>, None::<&str>))),
    }
}

pub fn routes() -> Vec<Route> {
    routes![index]
}
