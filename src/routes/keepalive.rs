//! `POST /session/keepalive`: the idle warning's "Stay signed in". The session guard records
//! the activity; the answer tells the page how long it now has.

use rocket::serde::json::{Json, Value, json};
use rocket::{Route, post, routes};

use crate::csrf::CsrfForm;
use crate::session::AuthenticatedUser;

#[post("/session/keepalive", data = "<_csrf>")]
fn keepalive(user: &AuthenticatedUser, _csrf: CsrfForm) -> Json<Value> {
    Json(json!({ "idle_seconds_left": user.idle_countdown().seconds_left }))
}

pub fn routes() -> Vec<Route> {
    routes![keepalive]
}
