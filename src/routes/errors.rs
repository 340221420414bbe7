//! Catchers: every error becomes a plain page (or JSON for API clients), never a stack trace.
//! A missing or ended session becomes a redirect to `/login?reason=<code>&next=<path>`.

use askama::Template;
use rocket::http::{Header, Method, Status};
use rocket::request::Outcome;
use rocket::response::Redirect;
use rocket::serde::json::{Json, Value, json};
use rocket::{Catcher, Request, Responder, catch, catchers, uri};

use super::{confirm, login};
use crate::config::SessionConfig;
use crate::error::RetryAfterSecs;
use crate::headers;
use crate::html::{Nav, Page};
use crate::local_path::LocalPath;
use crate::session::cookie::{cleared_ended_note, cleared_session_cookie, has_ended_note};
use crate::session::guard::{Check, Refusal};
use crate::session::{AuthenticatedUser, bearer};

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
    Bearer {
        body: Json<Value>,
        challenge: Header<'static>,
    },
    Page((Status, Page<ErrorPage>)),
    /// Refused for now: any of the above, with when to come back.
    RetryLater {
        response: Box<ErrorResponse>,
        retry_after: Header<'static>,
    },
}

/// What an error says: a stable `error` code for API clients (a public contract, never
/// renamed), and the page's title and message for people.
struct ErrorText {
    code: &'static str,
    title: &'static str,
    message: &'static str,
}

const fn text(code: &'static str, title: &'static str, message: &'static str) -> ErrorText {
    ErrorText {
        code,
        title,
        message,
    }
}

/// API clients and scripts that ask for JSON get JSON, not HTML or redirects.
fn wants_json(request: &Request<'_>) -> bool {
    request.uri().path().starts_with("/api/")
        || request
            .accept()
            .is_some_and(|accept| accept.preferred().is_json())
}

#[catch(401)]
fn unauthorized(request: &Request<'_>) -> ErrorResponse {
    if let Some(error) = bearer::rejection(request) {
        let challenge = Header::new("WWW-Authenticate", error.challenge());
        return ErrorResponse::Bearer {
            body: Json(json!({ "error": error.code() })),
            challenge,
        };
    }
    let reason = Check::ended_reason(request);
    // Rocket drops cookie changes made before a catcher runs: clear the dead cookie here.
    if let Some(config) = request.rocket().state::<SessionConfig>()
        && request.cookies().get(&config.cookie_name).is_some()
    {
        request.cookies().add(cleared_session_cookie(config));
    }
    // The note about an ended device-bound session has been read: the reason is shown once.
    if let Some(config) = request.rocket().state::<SessionConfig>()
        && has_ended_note(request.cookies(), config)
    {
        request.cookies().add(cleared_ended_note(config));
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
async fn forbidden(request: &Request<'_>) -> ErrorResponse {
    match Refusal::of(request) {
        // Sent with the token a rotation replaced a moment ago: the browser asks for the page
        // again, with the cookie the rotation set (the old token is refused for good after the
        // grace, and the page then goes to the sign-in page like any other).
        Refusal::Superseded if request.method() == Method::Get => {
            ErrorResponse::Redirect(Redirect::to(request.uri().to_string()))
        }
        Refusal::ConfirmationRequired if !wants_json(request) => {
            // Back to where the action started: the page for a GET, its section's page for a form post.
            let next = if request.method() == Method::Get {
                request.uri().to_string()
            } else if request.uri().path() == "/account/password" {
                "/account/password".to_owned()
            } else if request.uri().path().starts_with("/admin") {
                "/admin".to_owned()
            } else {
                "/account".to_owned()
            };
            let next = LocalPath::or_account(Some(&next));
            ErrorResponse::Redirect(Redirect::to(uri!(confirm::page(Some(next.as_str())))))
        }
        // A script cannot follow a redirect to a password form: it gets a code of its own, told
        // apart from a CSRF refusal.
        Refusal::ConfirmationRequired => {
            error_page(
                Status::Forbidden,
                text(
                    "confirmation_required",
                    "Confirmation required",
                    "This action needs a recent password confirmation: confirm at /confirm, then try again.",
                ),
                request,
            )
            .await
        }
        Refusal::NotAdmin => {
            error_page(
                Status::Forbidden,
                text(
                    "administrators_only",
                    "Administrators only",
                    "This page is for administrators. Your account does not have that role.",
                ),
                request,
            )
            .await
        }
        _ => error_page(Status::Forbidden, describe(Status::Forbidden), request).await,
    }
}

/// A page that is not there, or refused, keeps the signed-in header for a signed-in visitor (a
/// mistyped address is no reason to look signed out). The session check is the guard's own,
/// done once per request; other errors do not ask (a 503 must not wait on the database).
async fn error_page(status: Status, text: ErrorText, request: &Request<'_>) -> ErrorResponse {
    let ErrorText {
        code,
        title,
        message,
    } = text;
    if wants_json(request) {
        return ErrorResponse::Json((status, Json(json!({ "error": code, "message": message }))));
    }
    let nav = match status.code {
        403 | 404 => match request.guard::<&AuthenticatedUser>().await {
            Outcome::Success(user) => Some(Nav::of(user)),
            _ => None,
        },
        _ => None,
    };
    ErrorResponse::Page((
        status,
        Page(ErrorPage {
            nav,
            code: status.code,
            title,
            message,
        }),
    ))
}

#[catch(default)]
async fn any_error(status: Status, request: &Request<'_>) -> ErrorResponse {
    let response = error_page(status, describe(status), request).await;
    match request.local_cache(RetryAfterSecs::default) {
        RetryAfterSecs(Some(secs)) => ErrorResponse::RetryLater {
            response: Box::new(response),
            retry_after: headers::retry_after(*secs),
        },
        RetryAfterSecs(None) => response,
    }
}

fn describe(status: Status) -> ErrorText {
    match status.code {
        400 => text(
            "bad_request",
            "Bad request",
            "The request could not be understood.",
        ),
        403 => text(
            "forbidden",
            "Forbidden",
            "This form has expired or did not come from this site. Go back, reload the page and try again.",
        ),
        404 => text(
            "not_found",
            "Not found",
            "There is no page at this address.",
        ),
        405 => text(
            "method_not_allowed",
            "Method not allowed",
            "This address does not accept that kind of request.",
        ),
        413 => text(
            "too_large",
            "Too large",
            "What was sent is larger than this site accepts.",
        ),
        415 => text(
            "unsupported_media_type",
            "Unsupported media type",
            "This address does not accept that content type.",
        ),
        422 => text(
            "unprocessable",
            "Unprocessable",
            "The form was incomplete or malformed. Go back and try again.",
        ),
        429 => text(
            "too_many_requests",
            "Too many requests",
            "Too many attempts. Please wait a moment and try again.",
        ),
        503 => text(
            "service_unavailable",
            "Service unavailable",
            "The service is briefly unavailable. Please try again in a moment.",
        ),
        _ if status.class().is_client_error() => text(
            "request_refused",
            "Request refused",
            "This request cannot be served.",
        ),
        _ => text(
            "something_went_wrong",
            "Something went wrong",
            "The server could not complete this request. Please try again later.",
        ),
    }
}

pub fn catchers() -> Vec<Catcher> {
    catchers![unauthorized, forbidden, any_error]
}
