//! `POST /session/keepalive`: the idle warning's "Stay signed in". The session guard records
//! the activity; the answer tells the page how long it now has.

use rocket::form::Form;
use rocket::serde::json::{json, Json, Value};
use rocket::{post, routes, FromForm, Route};

use crate::error::AppResult;
use crate::session::AuthenticatedUser;

#[derive(FromForm)]
pub struct KeepaliveForm {
    csrf_token: String,
}

#[post("/session/keepalive", data = "<form>")]
fn keepalive(user: &AuthenticatedUser, form: Form<KeepaliveForm>) -> AppResult<Json<Value>> {
    user.verify_csrf(&form.csrf_token)?;
    Ok(Json(json!({ "idle_seconds_left": user.idle_countdown().seconds_left })))
}

pub fn routes() -> Vec<Route> {
    routes![keepalive]
}
