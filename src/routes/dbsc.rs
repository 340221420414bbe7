//! Device-bound sessions over HTTP: the registration offer on pages, `POST /session/dbsc/register`
//! and `POST /session/dbsc/refresh` (the DBSC draft's registration and refresh endpoints).
//!
//! Neither endpoint takes a CSRF token: each needs a proof signed over a challenge only the
//! session's own pages (or refresh answers) carried, and browsers never let a page set the
//! `Secure-Session-Response` or `Sec-Secure-Session-Id` headers for another site.

use rocket::fairing::AdHoc;
use rocket::http::{CookieJar, Header, Status};
use rocket::request::{FromRequest, Outcome};
use rocket::response::{self, Responder};
use rocket::serde::json::{Json, Value, json};
use rocket::{Request, Route, post, routes, uri};
use uuid::Uuid;

use crate::config::SessionConfig;
use crate::context::RequestContext;
use crate::error::AppResult;
use crate::session::Reason;
use crate::session::cookie::{
    bound_session_cookie, cleared_session_cookie, credential_attributes, ended_note,
    presented_token,
};
use crate::session::dbsc::{self, Offer, Refreshed, Refusal, Registered};
use crate::session::proof::ProofError;

/// The DBSC request headers, as sent (absent ones are `None`).
pub struct DbscHeaders<'r> {
    /// `Sec-Secure-Session-Id`: the session the browser wants refreshed.
    session_id: Option<&'r str>,
    /// `Secure-Session-Response`: the signed proof.
    response: Option<&'r str>,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for DbscHeaders<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let headers = request.headers();
        Outcome::Success(DbscHeaders {
            session_id: headers.get_one("Sec-Secure-Session-Id"),
            response: headers.get_one("Secure-Session-Response"),
        })
    }
}

/// A session identifier as browsers send it: bare, or as the draft's structured-field string
/// (`"…"`, parameters after `;` ignored). Ours are UUIDs; anything else names no session.
fn parse_session_id(value: &str) -> Option<Uuid> {
    let value = value.trim();
    let id = match value.strip_prefix('"') {
        Some(quoted) => quoted.split_once('"')?.0,
        None => value.split(';').next()?.trim(),
    };
    Uuid::try_parse(id).ok()
}

/// An answer to a DBSC endpoint: JSON, with a challenge to sign when there is one.
pub struct DbscResponse {
    status: Status,
    body: Value,
    challenge: Option<(String, Uuid)>,
}

impl DbscResponse {
    fn new(status: Status, body: Value) -> Self {
        DbscResponse {
            status,
            body,
            challenge: None,
        }
    }

    fn error(status: Status, code: &str, message: String) -> Self {
        DbscResponse::new(status, json!({ "error": code, "message": message }))
    }

    /// `403` with a challenge: the DBSC draft's "sign this and try again".
    fn challenge(challenge: String, session: Uuid, body: Value) -> Self {
        DbscResponse {
            status: Status::Forbidden,
            body,
            challenge: Some((challenge, session)),
        }
    }

    /// The session is gone: the browser ends its DBSC session (`continue: false`, and any 4xx
    /// other than 403 does the same), and the reason code is in the body for other clients.
    fn ended(reason: Reason) -> Self {
        let body = json!({ "continue": false, "error": "unauthorized", "reason": reason.code() });
        DbscResponse::new(Status::Unauthorized, body)
    }

    fn refused(refusal: &Refusal) -> Self {
        let (status, code) = match refusal {
            Refusal::MissingProof => (Status::BadRequest, "missing_proof"),
            Refusal::Proof(ProofError::Malformed(_)) => (Status::BadRequest, "malformed_proof"),
            Refusal::Proof(ProofError::Algorithm) => (Status::BadRequest, "unsupported_algorithm"),
            Refusal::Proof(ProofError::Signature) => (Status::Unauthorized, "invalid_signature"),
            Refusal::InvalidChallenge => (Status::Forbidden, "invalid_challenge"),
            Refusal::AlreadyBound => (Status::Conflict, "already_bound"),
        };
        DbscResponse::error(status, code, refusal.describe())
    }
}

impl<'r> Responder<'r, 'static> for DbscResponse {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let mut response = Json(self.body).respond_to(request)?;
        response.set_status(self.status);
        if let Some((challenge, session)) = self.challenge {
            response.set_header(Header::new(
                "Secure-Session-Challenge",
                format!("\"{challenge}\";id=\"{session}\""),
            ));
        }
        Ok(response)
    }
}

/// The session configuration (the draft's "session instructions"): which session, where to
/// refresh it, what it covers (this origin: the registration URL's, as no `origin` is given),
/// and the cookie it keeps alive, named with exactly the attributes it is set with.
fn configuration(public_id: Uuid, config: &SessionConfig) -> Value {
    json!({
        "session_identifier": public_id.to_string(),
        "refresh_url": uri!(refresh).to_string(),
        "scope": { "include_site": false },
        "credentials": [{
            "type": "cookie",
            "name": config.cookie_name,
            "attributes": credential_attributes(config),
        }],
    })
}

/// Registration: binds the session of the cookie to the key in the proof. Not behind the session
/// guard: the browser's registration request lacks headers the fingerprint covers (see
/// `dbsc::register`).
#[post("/session/dbsc/register")]
pub async fn register(
    headers: DbscHeaders<'_>,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<DbscResponse> {
    let (config, client) = (ctx.config, ctx.client);
    let token = presented_token(cookies, config);
    let mut conn = ctx.connection().await?;
    let registered = dbsc::register(
        &mut conn,
        token.as_ref(),
        headers.response,
        client,
        config,
        ctx.now(),
    )
    .await?;
    Ok(match registered {
        Registered::Bound(public_id) => {
            if let Some(token) = &token {
                // The same token, now short-lived: refused by the server past `bound_cookie_secs`
                // however long the browser would keep it.
                cookies.add(bound_session_cookie(config, token));
            }
            DbscResponse::new(Status::Ok, configuration(public_id, config))
        }
        Registered::Ended(reason) => {
            if cookies.get(&config.cookie_name).is_some() {
                cookies.add(cleared_session_cookie(config));
            }
            DbscResponse::ended(reason)
        }
        Registered::Refused(refusal) => DbscResponse::refused(&refusal),
    })
}

/// Refresh: with no proof, a challenge; with a valid proof, a new bound cookie.
#[post("/session/dbsc/refresh")]
pub async fn refresh(
    headers: DbscHeaders<'_>,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<DbscResponse> {
    let (config, client) = (ctx.config, ctx.client);
    let Some(public_id) = headers.session_id.and_then(parse_session_id) else {
        let message = "Sec-Secure-Session-Id must name a session".to_owned();
        return Ok(DbscResponse::error(
            Status::BadRequest,
            "missing_session_id",
            message,
        ));
    };
    let mut conn = ctx.connection().await?;
    let refreshed = dbsc::refresh(
        &mut conn,
        public_id,
        headers.response,
        client,
        config,
        ctx.now(),
    )
    .await?;
    Ok(match refreshed {
        Refreshed::Challenge(challenge) => {
            let body = json!({ "error": "proof_required", "message": "sign the challenge with the session's key" });
            DbscResponse::challenge(challenge, public_id, body)
        }
        Refreshed::Renewed(token) => {
            cookies.add(bound_session_cookie(config, &token));
            DbscResponse::new(Status::Ok, configuration(public_id, config))
        }
        Refreshed::Ended(reason) => {
            cookies.add(cleared_session_cookie(config));
            if let Some(reason) = reason {
                // The bound cookie has expired in the browser by now: without this note, the
                // page it loads next could only say `login_required`.
                cookies.add(ended_note(config, reason));
            }
            DbscResponse::ended(reason.unwrap_or(Reason::LoginRequired))
        }
        Refreshed::Refused {
            refusal,
            challenge: Some(challenge),
        } => {
            let refused = DbscResponse::refused(&refusal);
            DbscResponse::challenge(challenge, public_id, refused.body)
        }
        Refreshed::Refused {
            refusal,
            challenge: None,
        } => DbscResponse::refused(&refusal),
    })
}

/// Adds the registration offer the session guard chose for this request, if any.
pub fn offer_stage() -> AdHoc {
    AdHoc::on_response("DBSC registration offer", |request, response| {
        Box::pin(async move {
            if let Offer(Some(challenge)) = request.local_cache(|| Offer(None)) {
                let offer = format!(
                    "(ES256);path=\"{}\";challenge=\"{challenge}\"",
                    uri!(register)
                );
                response.set_header(Header::new("Secure-Session-Registration", offer));
            }
        })
    })
}

pub fn routes() -> Vec<Route> {
    routes![register, refresh]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_read_bare_or_quoted() {
        let id = Uuid::new_v4();
        for value in [
            id.to_string(),
            format!("\"{id}\""),
            format!(" \"{id}\";x=1"),
            format!("{id};x=1"),
        ] {
            assert_eq!(parse_session_id(&value), Some(id), "{value}");
        }
        for value in [
            "",
            "\"",
            "\"\"",
            "abc",
            "\"abc\"",
            "\u{0}",
            &"9".repeat(5000),
        ] {
            assert_eq!(parse_session_id(value), None, "{value:?}");
        }
    }
}
