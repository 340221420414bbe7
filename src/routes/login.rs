//! `GET /login` and `POST /login`: the sign-in form, and signing in with a fresh session.

use askama::Template;
use rocket::http::{CookieJar, Header};
use rocket::response::Redirect;
use rocket::{FromForm, Responder, Route, get, post, routes};
use sqlx::Connection;

use crate::context::RequestContext;
use crate::csrf::{PreSessionCsrf, PreSessionCsrfForm};
use crate::error::{AppError, AppResult};
use crate::headers;
use crate::html::{FormErrors, Nav, Page, When};
use crate::local_path::LocalPath;
use crate::session::cookie::{presented_token, session_cookie};
use crate::session::reason::{CHANGE_PASSWORD, Tone};
use crate::session::{self, Aal, AuthenticatedUser, Reason, SessionError};
use crate::sign_in::{self, SignInVerdict};
use crate::throttle;

/// The one message for every credential failure: it never says which part was wrong.
const CREDENTIALS_REJECTED: &str = "Incorrect username or password.";
/// After the right password only: what happened, and what to do.
const ACCOUNT_DISABLED: &str =
    "This account has been disabled. Please contact an administrator to have it enabled again.";

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    nav: Option<Nav>,
    reason: Option<ReasonBanner>,
    errors: FormErrors,
    /// When a throttled sign-in can be tried again.
    retry_at: Option<When>,
    username: String,
    next: Option<String>,
    csrf_token: String,
}

impl LoginPage {
    fn new(csrf: &PreSessionCsrf, next: Option<&str>) -> Self {
        LoginPage {
            nav: None,
            reason: None,
            errors: FormErrors::default(),
            retry_at: None,
            username: String::new(),
            next: next
                .and_then(LocalPath::parse)
                .map(|path| path.as_str().to_owned()),
            csrf_token: csrf.token().to_owned(),
        }
    }
}

/// Why the visitor is on the sign-in page, as the page shows it: first in the title, in a banner
/// that takes the focus (a message already there when the page loads is not announced, a
/// focused one is), styled by its tone, with advice to change the password as a link.
pub struct ReasonBanner {
    title: Option<&'static str>,
    class: &'static str,
    warning: bool,
    /// The message up to its advice to change the password, or all of it.
    before: String,
    /// The rest of the message after that advice, if it gives it.
    after: Option<String>,
}

impl ReasonBanner {
    fn of(reason: Reason, max_devices: u32) -> Self {
        let message = reason.message(max_devices);
        let (before, after) = match message.split_once(CHANGE_PASSWORD) {
            Some((before, after)) => (before.to_owned(), Some(after.to_owned())),
            None => (message, None),
        };
        let tone = reason.tone();
        ReasonBanner {
            title: reason.title(),
            class: match tone {
                Tone::Done => "success",
                Tone::Info => "notice",
                Tone::Warning => "warning",
            },
            warning: tone == Tone::Warning,
            before,
            after,
        }
    }
}

#[derive(Responder)]
pub enum LoginResponse {
    Redirect(Redirect),
    Page(Page<LoginPage>),
    /// Too many failed attempts: the form again, with how long to wait.
    #[response(status = 429)]
    Throttled {
        page: Page<LoginPage>,
        retry_after: Header<'static>,
    },
}

#[get("/login?<reason>&<next>")]
pub fn page(
    reason: Option<&str>,
    next: Option<&str>,
    user: Result<&AuthenticatedUser, SessionError>,
    csrf: &PreSessionCsrf,
    ctx: RequestContext<'_>,
) -> AppResult<LoginResponse> {
    match user {
        // A token a rotation replaced a moment ago is the same signed-in person's.
        Ok(_) | Err(SessionError::Superseded(_)) => Ok(LoginResponse::Redirect(Redirect::to(
            LocalPath::or_account(next).as_str().to_owned(),
        ))),
        Err(SessionError::Ended(_)) => {
            let mut page = LoginPage::new(csrf, next);
            page.reason = reason
                .and_then(Reason::from_code)
                .map(|reason| ReasonBanner::of(reason, ctx.config.max_sessions_per_user));
            Ok(LoginResponse::Page(Page(page)))
        }
        // Whether this visitor is signed in is unknown: a 503, not a sign-in form for someone signed in.
        Err(_) => Err(AppError::SessionCheckFailed),
    }
}

#[derive(FromForm)]
pub struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

#[post("/login", data = "<form>")]
pub async fn submit(
    form: PreSessionCsrfForm<LoginForm>,
    csrf: &PreSessionCsrf,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<LoginResponse> {
    // The username typed stays in the form; the password never comes back.
    let form_again = |errors: FormErrors| {
        let mut page = LoginPage::new(csrf, form.next.as_deref());
        page.errors = errors;
        page.username = form.username.chars().take(64).collect();
        page
    };
    let rejected = || {
        let mut errors = FormErrors::default();
        // One message for both fields, which never says which was wrong; next to the password,
        // which is what a person retypes.
        errors.field("password", CREDENTIALS_REJECTED);
        Page(form_again(errors))
    };
    let now = ctx.now();
    let verdict = sign_in::check_password(&ctx, &form.username, form.password.clone(), now).await?;
    let (credentials, attempt) = match verdict {
        SignInVerdict::Accepted {
            credentials,
            attempt,
        } => (credentials, attempt),
        SignInVerdict::Rejected => return Ok(LoginResponse::Page(rejected())),
        SignInVerdict::Disabled => {
            let mut errors = FormErrors::default();
            errors.form(ACCOUNT_DISABLED);
            return Ok(LoginResponse::Page(Page(form_again(errors))));
        }
        SignInVerdict::Throttled(retry_after) => {
            let mut errors = FormErrors::default();
            errors.form(retry_after.message());
            let mut page = form_again(errors);
            page.retry_at = Some(When::at(retry_after.until(now)));
            return Ok(LoginResponse::Throttled {
                page: Page(page),
                retry_after: headers::throttled(retry_after),
            });
        }
    };

    let mut conn = ctx.connection().await?;
    let mut tx = conn.begin().await?;
    throttle::succeeded(&mut tx, attempt).await?;
    let Some(started) = session::start(
        &mut tx,
        credentials,
        presented_token(cookies, ctx.config),
        ctx.client,
        ctx.config,
        Aal::Aal1,
        now,
    )
    .await?
    else {
        // The password was changed, or the account disabled or signed out everywhere, while it
        // was being checked: the check proves nothing now. Nothing is committed, so the attempt
        // still counts as a failure.
        return Ok(LoginResponse::Page(rejected()));
    };
    tx.commit().await?;

    cookies.add(session_cookie(
        ctx.config,
        &started.token,
        started.expires_at,
        now,
    ));
    Ok(LoginResponse::Redirect(Redirect::to(
        LocalPath::or_account(form.next.as_deref())
            .as_str()
            .to_owned(),
    )))
}

pub fn routes() -> Vec<Route> {
    routes![page, submit]
}
