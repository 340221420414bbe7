//! Catchers: every error becomes a plain page (or JSON for API clients), never a stack trace.
//! A missing or ended session becomes a redirect to `/login?reason=<code>&next=<path>`.

use askama::Template;
use rocket::http::{Method, Status};
use rocket::response::Redirect;
use rocket::serde::json::{json, Json, Value};
use rocket::{catch, catchers, uri, Catcher, Request, Responder};

use super::{confirm, login};
use crate::config::SessionConfig;
use crate::html::{Nav, Page};
use crate::local_path::LocalPath;
use crate::session::cookie::cleared_session_cookie;
use crate::session::guard::{Check, Refusal};

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    nav: Option<Nav>,
    code: u16,
    title: &'static str,
    message: &'static str,
}

#[derive(Responder)]
pub enum ErrorResponse {
    Redirect(Redirect),
    Json((Status, Json<Value>)),
    Page((Status, Page<ErrorPage>)),
}

/// API clients and scripts that ask for JSON get JSON, not HTML or redirects.
fn wants_json(request: &Request<'_>) -> bool {
    request.uri().path().starts_with("/api/")
        || request.accept().is_some_and(|accept| accept.preferred().is_json())
}

#[catch(401)]
fn unauthorized(request: &Request<'_>) -> ErrorResponse {
    let reason = Check::ended_reason(request);
    // Rocket drops cookie changes made before a catcher runs: clear the dead cookie here.
    if let Some(config) = request.rocket().state::<SessionConfig>()
        && request.cookies().get(&config.cookie_name).is_some()
    {
        request.cookies().add(cleared_session_cookie(config));
    }
    if wants_json(request) {
        let body = json!({ "error": "unauthorized", "reason": reason.code() });
        return ErrorResponse::Json((Status::Unauthorized, Json(body)));
    }
    // Only a page that was being viewed is worth returning to; a form post is not replayed.
    let next = (request.method() == Method::Get)
        .then(|| request.uri().to_string())
        .and_then(|uri| LocalPath::parse(&uri))
        .map(|path| path.as_str().to_owned());
    ErrorResponse::Redirect(Redirect::to(uri!(login::page(Some(reason.code()), next))))
}

#[catch(403)]
fn forbidden(request: &Request<'_>) -> ErrorResponse {
    match Refusal::of(request) {
        Refusal::ConfirmationRequired if !wants_json(request) => {
            // Back to where the action started: the page for a GET, its section's page for a form post.
            let next = if request.method() == Method::Get {
                request.uri().to_string()
            } else if request.uri().path().starts_with("/admin") {
                "/admin".to_owned()
            } else {
                "/account".to_owned()
            };
            let next = LocalPath::or_account(Some(&next));
            ErrorResponse::Redirect(Redirect::to(uri!(confirm::page(Some(next.as_str())))))
        }
        Refusal::NotAdmin => error_page(
            Status::Forbidden,
            "Administrators only",
            "This page is for administrators. Your account does not have that role.",
            request,
        ),
        _ => {
            let (title, message) = describe(Status::Forbidden);
            error_page(Status::Forbidden, title, message, request)
        }
    }
}

fn error_page(status: Status, title: &'static str, message: &'static str, request: &Request<'_>) -> ErrorResponse {
    if wants_json(request) {
        let code = title.to_lowercase().replace(' ', "_");
        return ErrorResponse::Json((status, Json(json!({ "error": code, "message": message }))));
    }
    ErrorResponse::Page((status, Page(ErrorPage { nav: None, code: status.code, title, message })))
}

#[catch(default)]
fn any_error(status: Status, request: &Request<'_>) -> ErrorResponse {
    let (title, message) = describe(status);
    error_page(status, title, message, request)
}

fn describe(status: Status) -> (&'static str, &'static str) {
    match status.code {
        400 => ("Bad request", "The request could not be understood."),
        403 => (
            "Forbidden",
            "This form has expired or did not come from this site. Go back, reload the page and try again.",
        ),
        404 => ("Not found", "There is no page at this address."),
        405 => ("Method not allowed", "This address does not accept that kind of request."),
        413 => ("Too large", "What was sent is larger than this site accepts."),
        415 => ("Unsupported media type", "This address does not accept that content type."),
        422 => ("Unprocessable", "The form was incomplete or malformed. Go back and try again."),
        429 => ("Too many requests", "Too many attempts. Please wait a moment and try again."),
        503 => ("Service unavailable", "The service is briefly unavailable. Please try again in a moment."),
        401..=499 => ("Request refused", "This request cannot be served."),
        _ => ("Something went wrong", "The server could not complete this request. Please try again later."),
    }
}

pub fn catchers() -> Vec<Catcher> {
    catchers![unauthorized, forbidden, any_error]
}
