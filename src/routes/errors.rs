//! Catchers: every error becomes a plain page (or JSON for API clients), never a stack trace.
//! A missing or ended session becomes a redirect to `/login?reason=<code>&next=<path>`.

use askama::Template;
use rocket::http::{Header, Method, Status};
use rocket::response::Redirect;
use rocket::serde::json::{json, Json, Value};
use rocket::{catch, catchers, uri, Catcher, Request, Responder};

use super::login;
use crate::config::SessionConfig;
use crate::html::{Nav, Page};
use crate::local_path::LocalPath;
use crate::session::bearer;
use crate::session::cookie::cleared_session_cookie;
use crate::session::guard::Check;

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
    /// A refused bearer token, with its `WWW-Authenticate` challenge (RFC 6750).
    #[response(status = 401)]
    Bearer { body: Json<Value>, challenge: Header<'static> },
    Page((Status, Page<ErrorPage>)),
}

/// API clients and scripts that ask for JSON get JSON, not HTML or redirects.
fn wants_json(request: &Request<'_>) -> bool {
    request.uri().path().starts_with("/api/")
        || request.accept().is_some_and(|accept| accept.preferred().is_json())
}

#[catch(401)]
fn unauthorized(request: &Request<'_>) -> ErrorResponse {
    if let Some(error) = bearer::rejection(request) {
        let challenge = Header::new("WWW-Authenticate", error.challenge());
        return ErrorResponse::Bearer { body: Json(json!({ "error": error.code() })), challenge };
    }
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

#[catch(default)]
fn any_error(status: Status, request: &Request<'_>) -> ErrorResponse {
    let (code, title, message) = describe(status);
    if wants_json(request) {
        return ErrorResponse::Json((status, Json(json!({ "error": code, "message": message }))));
    }
    ErrorResponse::Page((status, Page(ErrorPage { nav: None, code: status.code, title, message })))
}

/// The stable `error` code for API clients (a public contract, never renamed), the page title
/// and the message.
fn describe(status: Status) -> (&'static str, &'static str, &'static str) {
    match status.code {
        400 => ("bad_request", "Bad request", "The request could not be understood."),
        403 => (
            "forbidden",
            "Forbidden",
            "This form has expired or did not come from this site. Go back, reload the page and try again.",
        ),
        404 => ("not_found", "Not found", "There is no page at this address."),
        405 => ("method_not_allowed", "Method not allowed", "This address does not accept that kind of request."),
        413 => ("too_large", "Too large", "What was sent is larger than this site accepts."),
        415 => ("unsupported_media_type", "Unsupported media type", "This address does not accept that content type."),
        422 => ("unprocessable", "Unprocessable", "The form was incomplete or malformed. Go back and try again."),
        429 => ("too_many_requests", "Too many requests", "Too many attempts. Please wait a moment and try again."),
        503 => (
            "service_unavailable",
            "Service unavailable",
            "The service is briefly unavailable. Please try again in a moment.",
        ),
        _ if status.class().is_client_error() => ("request_refused", "Request refused", "This request cannot be served."),
        _ => (
            "something_went_wrong",
            "Something went wrong",
            "The server could not complete this request. Please try again later.",
        ),
    }
}

pub fn catchers() -> Vec<Catcher> {
    catchers![unauthorized, any_error]
}
