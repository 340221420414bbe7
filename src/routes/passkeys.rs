//! Passkeys: adding one to the account and removing it (`/account/passkeys`, after a recent
//! confirmation), and signing in with one (`/login/passkey`). The ceremonies' browser side is
//! static/passkeys.js; their state stays on the server (`passkeys`).
//!
//! Every endpoint takes a URL-encoded form, CSRF-checked like every other (`CsrfForm`,
//! `PreSessionCsrfForm`); the browser's answer to `navigator.credentials` travels as JSON text in the
//! `credential` field. The ceremony endpoints answer JSON: the options, or `{"error": ...}`
//! with a 4xx for anything the client sent wrong.

use rocket::http::{CookieJar, Header, Status};
use rocket::response::Redirect;
use rocket::serde::json::{Json, Value, json};
use rocket::{FromForm, Responder, Route, State, post, routes, uri};
use sqlx::Connection;
use uuid::Uuid;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use super::account;
use crate::context::RequestContext;
use crate::csrf::{CsrfForm, NoFields, PreSessionCsrf, PreSessionCsrfForm};
use crate::error::AppResult;
use crate::events::{self, EventKind, NewEvent, Refused};
use crate::headers;
use crate::local_path::LocalPath;
use crate::passkeys::{self, Account, PasskeyError, Registration, RelyingParty};
use crate::session::cookie::{presented_token, session_cookie};
use crate::session::{self, ConfirmationRequired, ConfirmedUser};
use crate::throttle::{self, Admission, RetryAfter};
use crate::users::Username;

/// The longest name a passkey may have (the column's CHECK agrees).
const MAX_NAME_CHARS: usize = 64;

/// A ceremony endpoint's answer.
#[derive(Responder)]
pub enum CeremonyResponse {
    Done(Json<Value>),
    Refused((Status, Json<Value>)),
    #[response(status = 429)]
    Throttled {
        body: Json<Value>,
        retry_after: Header<'static>,
    },
}

impl CeremonyResponse {
    pub(super) fn refused(status: Status, message: impl std::fmt::Display) -> Self {
        CeremonyResponse::Refused((status, Json(json!({ "error": message.to_string() }))))
    }

    pub(super) fn from_error(error: &PasskeyError) -> Self {
        let status = match error {
            PasskeyError::AlreadyRegistered => Status::Conflict,
            PasskeyError::UnknownCeremony
            | PasskeyError::Refused(_)
            | PasskeyError::CounterWentBack
            | PasskeyError::UnknownCredential => Status::BadRequest,
        };
        CeremonyResponse::refused(status, error)
    }

    /// 429: the budget is spent; the body and `Retry-After` say how long to wait.
    pub(super) fn throttled(retry_after: RetryAfter) -> Self {
        CeremonyResponse::Throttled {
            body: Json(json!({ "error": retry_after.message() })),
            retry_after: headers::throttled(retry_after),
        }
    }
}

/// The ceremony id and the browser's answer, each refused with a 400 when malformed.
pub(super) fn parse<T: serde::de::DeserializeOwned>(
    ceremony: &str,
    credential: &str,
) -> Result<(Uuid, T), CeremonyResponse> {
    let ceremony = Uuid::parse_str(ceremony)
        .map_err(|_| CeremonyResponse::refused(Status::BadRequest, "malformed ceremony id"))?;
    let answer = serde_json::from_str(credential)
        .map_err(|_| CeremonyResponse::refused(Status::BadRequest, "malformed passkey answer"))?;
    Ok((ceremony, answer))
}

/// Options for `navigator.credentials.create`: a registration owned by this session.
#[post("/account/passkeys/options", data = "<_csrf>")]
pub async fn registration_options(
    confirmed: ConfirmedUser<'_>,
    _csrf: CsrfForm,
    rp: &State<RelyingParty>,
    ctx: RequestContext<'_>,
) -> AppResult<Json<Value>> {
    let user = confirmed.user();
    let mut conn = ctx.connection().await?;
    let account = Account {
        user_id: user.user_id(),
        username: user.username(),
    };
    let (ceremony, options) = passkeys::start_registration(
        &mut conn,
        rp,
        ctx.config,
        account,
        user.session_public_id(),
        ctx.now(),
    )
    .await?;
    Ok(Json(json!({ "ceremony": ceremony, "options": options })))
}

#[derive(FromForm)]
pub struct AddForm {
    ceremony: String,
    name: String,
    credential: String,
}

/// The authenticator's answer to a registration this session started: the passkey is stored
/// under its name, with a `passkey_added` event, in one transaction.
#[post("/account/passkeys", data = "<form>")]
pub async fn add(
    confirmed: ConfirmedUser<'_>,
    form: CsrfForm<AddForm>,
    rp: &State<RelyingParty>,
    ctx: RequestContext<'_>,
) -> AppResult<CeremonyResponse> {
    let user = confirmed.user();
    let (now, client) = (ctx.now(), ctx.client);
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Ok(CeremonyResponse::refused(
            Status::UnprocessableEntity,
            format!("Give the passkey a name of 1 to {MAX_NAME_CHARS} characters."),
        ));
    }
    let (ceremony, answer) =
        match parse::<RegisterPublicKeyCredential>(&form.ceremony, &form.credential) {
            Ok(parsed) => parsed,
            Err(refused) => return Ok(refused),
        };
    let mut conn = ctx.connection().await?;
    let mut tx = conn.begin().await?;
    let registration = Registration {
        ceremony,
        session: user.session_public_id(),
        user_id: user.user_id(),
        name,
        answer: &answer,
    };
    let finished = passkeys::finish_registration(&mut tx, rp, registration, now).await?;
    if let Err(error) = finished {
        // The ceremony is used up even so: an answer is never tried twice.
        tx.commit().await?;
        return Ok(CeremonyResponse::from_error(&error));
    }
    let event = NewEvent::new(
        user.user_id(),
        EventKind::PasskeyAdded,
        Some(user.session_public_id()),
        client,
    )
    .detail(name);
    events::record(&mut tx, event, now).await?;
    tx.commit().await?;
    Ok(CeremonyResponse::Done(Json(json!({ "added": name }))))
}

/// Removes one of the account's passkeys, with a `passkey_removed` event, after a recent
/// confirmation at the level `passkey_removal_step_up` asks for (by default the session's own:
/// a session signed in with a passkey confirms with one). 404 for a passkey that is not this
/// account's (or is already gone).
#[post("/account/passkeys/<id>/remove", data = "<_csrf>")]
pub async fn remove(
    confirmed: ConfirmedUser<'_>,
    id: i64,
    _csrf: CsrfForm,
    ctx: RequestContext<'_>,
) -> AppResult<Result<Redirect, Result<Status, ConfirmationRequired>>> {
    let user = confirmed.user();
    let (now, client) = (ctx.now(), ctx.client);
    let mut conn = ctx.connection().await?;
    if !user
        .confirmed_for(&mut conn, ctx.config.passkey_removal_step_up)
        .await?
    {
        return Ok(Err(Err(ConfirmationRequired)));
    }
    let mut tx = conn.begin().await?;
    let Some(name) = passkeys::store::remove(&mut tx, user.user_id(), id).await? else {
        return Ok(Err(Ok(Status::NotFound)));
    };
    let event = NewEvent::new(
        user.user_id(),
        EventKind::PasskeyRemoved,
        Some(user.session_public_id()),
        client,
    )
    .detail(name);
    events::record(&mut tx, event, now).await?;
    tx.commit().await?;
    Ok(Ok(Redirect::to(uri!(account::page))))
}

/// Options for `navigator.credentials.get`: a sign-in owned by this browser (its sealed
/// pre-session cookie), for any passkey of this site.
#[post("/login/passkey/options", data = "<_csrf>")]
pub async fn sign_in_options(
    _csrf: PreSessionCsrfForm<NoFields>,
    csrf: &PreSessionCsrf,
    rp: &State<RelyingParty>,
    ctx: RequestContext<'_>,
) -> AppResult<Json<Value>> {
    let mut conn = ctx.connection().await?;
    let (ceremony, options) =
        passkeys::start_sign_in(&mut conn, rp, ctx.config, csrf.token(), ctx.now()).await?;
    Ok(Json(json!({ "ceremony": ceremony, "options": options })))
}

#[derive(FromForm)]
pub struct SignInForm {
    ceremony: String,
    credential: String,
    next: Option<String>,
}

/// The answer to this browser's sign-in ceremony. Throttled like a password (the account's and
/// the address's budgets, counted before the signature is checked), and on success the very
/// same session start as a password sign-in (`session::start`: a new token, the old session
/// ended, the cap, the new-device and suspicious-sign-in checks), at `aal2`.
#[post("/login/passkey", data = "<form>")]
pub async fn sign_in(
    form: PreSessionCsrfForm<SignInForm>,
    csrf: &PreSessionCsrf,
    cookies: &CookieJar<'_>,
    rp: &State<RelyingParty>,
    ctx: RequestContext<'_>,
) -> AppResult<CeremonyResponse> {
    let (now, config, client) = (ctx.now(), ctx.config, ctx.client);
    let (ceremony, answer) = match parse::<PublicKeyCredential>(&form.ceremony, &form.credential) {
        Ok(parsed) => parsed,
        Err(refused) => return Ok(refused),
    };
    let mut conn = ctx.connection().await?;
    let begun = passkeys::begin_sign_in(&mut conn, ceremony, csrf.token(), &answer, now).await?;
    // Counted before anything is checked, and kept unless the sign-in succeeds.
    let username = begun
        .as_ref()
        .ok()
        .and_then(|attempt| Username::parse(&attempt.username).ok());
    let throttled =
        throttle::begin_sign_in(&mut conn, config, username.as_ref(), &client.ip, now).await?;
    let budget = match throttled {
        Admission::Admitted(budget) => budget,
        Admission::Throttled(retry_after) => {
            return Ok(CeremonyResponse::throttled(retry_after));
        }
    };
    // A refused answer is a failed sign-in, recorded like a wrong password: against the account
    // whose passkey it named, if any, so the suspicious sign-in rule counts it.
    let attempt = match begun {
        Ok(attempt) => attempt,
        Err(error) => {
            events::record_sign_in_failure(&mut conn, None, Refused::Passkey, client, now).await?;
            return Ok(CeremonyResponse::from_error(&error));
        }
    };
    let account = attempt.user_id;
    let mut tx = conn.begin().await?;
    let signed_in = match passkeys::verify_sign_in(&mut tx, rp, attempt, &answer, now).await? {
        Ok(signed_in) => signed_in,
        Err(error) => {
            tx.rollback().await?;
            events::record_sign_in_failure(&mut conn, Some(account), Refused::Passkey, client, now)
                .await?;
            return Ok(CeremonyResponse::from_error(&error));
        }
    };
    throttle::succeeded(&mut tx, budget).await?;
    let Some(started) = session::start(
        &mut tx,
        signed_in.credentials,
        presented_token(cookies, config),
        client,
        config,
        signed_in.aal,
        now,
    )
    .await?
    else {
        // Disabled, or signed out everywhere, since the passkey was looked up: nothing is
        // committed, and the attempt stays counted.
        return Ok(CeremonyResponse::refused(
            Status::Forbidden,
            "This account cannot sign in right now. Please contact an administrator.",
        ));
    };
    tx.commit().await?;
    cookies.add(session_cookie(
        config,
        &started.token,
        started.expires_at,
        now,
    ));
    let next = LocalPath::or_account(form.next.as_deref());
    Ok(CeremonyResponse::Done(Json(
        json!({ "redirect": next.as_str() }),
    )))
}

pub fn routes() -> Vec<Route> {
    routes![registration_options, add, remove, sign_in_options, sign_in]
}
