//! Cross-site request forgery defences: a state-changing form's fields reach a handler only
//! through a data guard that has checked the form's CSRF token first.
//!
//! Signed-in forms carry a token derived from the session (`SessionToken::csrf_token`):
//! `CsrfForm` compares it with the one of this request's `&AuthenticatedUser`. The sign-in and
//! sign-up forms have no session yet: `PreSessionCsrfForm` compares it with a double-submit
//! token whose cookie is encrypted and authenticated with the app's secret key
//! (`PreSessionCsrf`), so a cookie planted by someone else (a sibling subdomain, a network
//! attacker) is rejected. The token is checked before any other field is read: a forged request
//! gets 403 whatever else it lacks. Before the token, a request the browser says another site
//! sent (`fetch_metadata`) is refused unread: by the session guard for signed-in forms, by
//! `PreSessionCsrfForm` for the others.
//!
//! The sign-out form alone (`SignOutForm`) also accepts the browser's word that one of this
//! site's own pages sent it, in place of the token: a tab opened before another tab rotated the
//! session carries a token that no longer matches, and "Sign out" there must still sign out.

use std::borrow::Cow;
use std::ops::Deref;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rocket::Request;
use rocket::data::{self, Data, FromData, Limits};
use rocket::form::{self, Form, FromForm};
use rocket::http::{Cookie, RawStr, SameSite, Status};
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest};
use subtle::ConstantTimeEq;

use crate::config::SessionConfig;
use crate::fetch_metadata::{self, Initiator};
use crate::session::cookie::presented_token as presented_session_token;
use crate::session::token::random_bytes;
use crate::session::{AuthenticatedUser, SessionError};

/// The form field every state-changing form carries.
pub const FIELD: &str = "csrf_token";
const PRE_SESSION_COOKIE: &str = "__Host-csrf";

/// The body of a signed-in form whose CSRF token is this session's own. Only the data guard
/// builds one, so a handler cannot read the form's fields without the check having passed.
pub struct CsrfForm<T = NoFields>(T);

/// The body of a sign-in or sign-up form whose CSRF token matches this visitor's sealed
/// double-submit cookie. Only the data guard builds one.
pub struct PreSessionCsrfForm<T>(T);

/// The sign-out form, checked: its token is the session's (the live session's, or the one derived
/// from a token a rotation replaced a moment ago, `SessionError::Superseded`), or the browser says
/// one of this site's pages sent it. Only the data guard builds one.
pub struct SignOutForm(());

/// The fields of a form that carries nothing but its CSRF token (sign out, sign a device out ...).
pub struct NoFields;

/// Written out: `#[derive(FromForm)]` wants at least one field. Every field is ignored.
#[rocket::async_trait]
impl<'v> FromForm<'v> for NoFields {
    type Context = ();

    fn init(_: form::Options) -> Self::Context {}

    fn push_value(_: &mut Self::Context, _: form::ValueField<'v>) {}

    async fn push_data(_: &mut Self::Context, _: form::DataField<'v, '_>) {}

    fn finalize(_: Self::Context) -> form::Result<'v, Self> {
        Ok(NoFields)
    }
}

impl<T> Deref for CsrfForm<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Deref for PreSessionCsrfForm<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// Why a form was refused. Rocket logs it, so it holds nothing of the body.
#[derive(Debug, thiserror::Error)]
pub enum FormRefused {
    #[error("the form's CSRF token is missing or wrong")]
    Forged,
    /// The browser says another site or subdomain sent it (`fetch_metadata`).
    #[error("the browser says another site sent the form")]
    CrossSite,
    /// Only `application/x-www-form-urlencoded`, what every form of this app sends.
    #[error("the body is not a URL-encoded form")]
    NotAForm,
    #[error("the form is larger than limits.form")]
    TooLarge,
    #[error("the form could not be read")]
    Malformed,
    #[error("the form lacks a field or has a wrong one")]
    WrongFields,
    /// No live session to bind the token to: the session guard's own refusal (401 or 503).
    #[error("no live session to check the form against")]
    NoSession(SessionError),
}

impl FormRefused {
    pub fn status(&self) -> Status {
        match self {
            FormRefused::Forged | FormRefused::CrossSite => Status::Forbidden,
            FormRefused::NotAForm => Status::UnsupportedMediaType,
            FormRefused::TooLarge => Status::PayloadTooLarge,
            FormRefused::Malformed => Status::BadRequest,
            FormRefused::WrongFields => Status::UnprocessableEntity,
            FormRefused::NoSession(SessionError::Ended(_)) => Status::Unauthorized,
            FormRefused::NoSession(SessionError::Superseded(_) | SessionError::CrossSite) => {
                Status::Forbidden
            }
            FormRefused::NoSession(_) => Status::ServiceUnavailable,
        }
    }
}

#[rocket::async_trait]
impl<'r, T: for<'a> FromForm<'a> + 'static> FromData<'r> for CsrfForm<T> {
    type Error = FormRefused;

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        // Cached: the handler's own session guard has already run, this asks no database twice.
        let user = match request.guard::<&AuthenticatedUser>().await {
            Outcome::Success(user) => user,
            Outcome::Error((_, error)) => return refuse(FormRefused::NoSession(error)),
            Outcome::Forward(status) => return Outcome::Forward((data, status)),
        };
        read_checked(request, data, user.csrf_token())
            .await
            .map(CsrfForm)
    }
}

#[rocket::async_trait]
impl<'r, T: for<'a> FromForm<'a> + 'static> FromData<'r> for PreSessionCsrfForm<T> {
    type Error = FormRefused;

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        // Before the double-submit cookie is read or set: a refused request changes nothing.
        if fetch_metadata::refuses(request) {
            return refuse(FormRefused::CrossSite);
        }
        let expected = PreSessionCsrf::of(request).token();
        read_checked(request, data, expected)
            .await
            .map(PreSessionCsrfForm)
    }
}

#[rocket::async_trait]
impl<'r> FromData<'r> for SignOutForm {
    type Error = FormRefused;

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let expected = match request.guard::<&AuthenticatedUser>().await {
            Outcome::Success(user) => user.csrf_token().to_owned(),
            Outcome::Error((_, SessionError::Superseded(_))) => {
                let config = request
                    .rocket()
                    .state::<SessionConfig>()
                    .expect("session settings are managed at ignite");
                // The guard found the session by this very cookie's token (a device-bound
                // session's forms carry a token of their own: it falls to the browser's word).
                match presented_session_token(request.cookies(), config) {
                    Some(token) => token.csrf_token(),
                    None => return refuse(FormRefused::Forged),
                }
            }
            Outcome::Error((_, error)) => return refuse(FormRefused::NoSession(error)),
            Outcome::Forward(status) => return Outcome::Forward((data, status)),
        };
        if Initiator::of(request) == Initiator::SameOrigin {
            return Outcome::Success(SignOutForm(()));
        }
        read_checked::<NoFields>(request, data, &expected)
            .await
            .map(|_| SignOutForm(()))
    }
}

/// Reads a URL-encoded body, checks its CSRF field against `expected`, and only then parses the
/// other fields as `T` (leniently, as Rocket's `Form` does: the token field is ignored there).
async fn read_checked<'r, T: for<'a> FromForm<'a> + 'static>(
    request: &'r Request<'_>,
    data: Data<'r>,
    expected: &str,
) -> data::Outcome<'r, T, FormRefused> {
    if !request
        .content_type()
        .is_some_and(|content_type| content_type.is_form())
    {
        return refuse(FormRefused::NotAForm);
    }
    let limit = request.limits().get("form").unwrap_or(Limits::FORM);
    let body = match data.open(limit).into_string().await {
        Ok(body) if body.is_complete() => body.into_inner(),
        Ok(_) => return refuse(FormRefused::TooLarge),
        // Not UTF-8, or the connection failed mid-body.
        Err(_) => return refuse(FormRefused::Malformed),
    };
    let body = RawStr::new(&body);
    if !presented_token(body).is_some_and(|presented| tokens_match(expected, &presented)) {
        return refuse(FormRefused::Forged);
    }
    match Form::<T>::parse_encoded(body) {
        Ok(value) => Outcome::Success(value),
        Err(_) => refuse(FormRefused::WrongFields),
    }
}

fn refuse<'r, T>(refused: FormRefused) -> data::Outcome<'r, T, FormRefused> {
    Outcome::Error((refused.status(), refused))
}

/// The value of the form's one CSRF field, decoded; none when it is missing or repeated.
fn presented_token(body: &RawStr) -> Option<Cow<'_, str>> {
    let mut tokens = body.as_str().split('&').filter_map(|field| {
        let (name, value) = field.split_once('=').unwrap_or((field, ""));
        (RawStr::new(name).url_decode_lossy() == FIELD)
            .then(|| RawStr::new(value).url_decode_lossy())
    });
    let token = tokens.next()?;
    tokens.next().is_none().then_some(token)
}

/// Compares in constant time, so the time taken says nothing about how much of the token was
/// right. (A length mismatch returns at once: every token has the same, public, length.)
fn tokens_match(expected: &str, presented: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// The double-submit token of a visitor without a session. Created on first sight.
pub struct PreSessionCsrf(String);

impl PreSessionCsrf {
    pub fn token(&self) -> &str {
        &self.0
    }

    /// This request's token: from the sealed cookie, or new (and its cookie set). Cached on the
    /// request, so the page and the form guard see the same one.
    fn of<'r>(request: &'r Request<'_>) -> &'r PreSessionCsrf {
        request.local_cache(|| {
            let cookies = request.cookies();
            if let Some(cookie) = cookies.get_private(PRE_SESSION_COOKIE) {
                return PreSessionCsrf(cookie.value().to_owned());
            }
            let token = URL_SAFE_NO_PAD.encode(random_bytes());
            let cookie = Cookie::build((PRE_SESSION_COOKIE, token.clone()))
                .path("/")
                .secure(true)
                .http_only(true)
                .same_site(SameSite::Lax);
            cookies.add_private(cookie);
            PreSessionCsrf(token)
        })
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for &'r PreSessionCsrf {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        Outcome::Success(PreSessionCsrf::of(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_passes() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("abc", "ab"));
        assert!(!tokens_match("abc", "abcd"));
        assert!(!tokens_match("abc", ""));
        assert!(!tokens_match("", ""));
    }

    #[test]
    fn the_token_is_read_decoded_and_only_when_it_appears_once() {
        let token = |body: &str| presented_token(RawStr::new(body)).map(Cow::into_owned);
        assert_eq!(
            token("csrf_token=a-b_c&username=x").as_deref(),
            Some("a-b_c")
        );
        assert_eq!(
            token("username=x&csrf%5Ftoken=a%2Db").as_deref(),
            Some("a-b")
        );
        assert_eq!(token("csrf_token").as_deref(), Some(""));
        assert_eq!(token("username=x"), None);
        assert_eq!(token("csrf_token=a&csrf_token=a"), None);
        assert_eq!(token(""), None);
    }
}
