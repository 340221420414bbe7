//! `GET /confirm` and `POST /confirm`: re-enter the password for a sensitive action ("sudo mode").
//! Success sets `confirmed_until` and rotates the session token.

use askama::Template;
use rocket::http::{CookieJar, Header};
use rocket::response::Redirect;
use rocket::{FromForm, Responder, Route, get, post, routes, uri};
use sqlx::Connection;

use super::login;
use crate::config::SessionConfig;
use crate::context::RequestContext;
use crate::csrf::CsrfForm;
use crate::error::AppResult;
use crate::events::{self, EventKind, NewEvent};
use crate::html::{Nav, Page};
use crate::local_path::LocalPath;
use crate::session::cookie::issued_cookie;
use crate::session::{self, AuthenticatedUser, Reason};
use crate::sign_in::{self, Verdict};
use crate::throttle;

#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    nav: Option<Nav>,
    next: String,
    error: Option<String>,
    csrf_token: String,
    window_minutes: u32,
}

impl ConfirmPage {
    fn new(user: &AuthenticatedUser, next: Option<&str>, config: &SessionConfig) -> Self {
        ConfirmPage {
            nav: Some(Nav::of(user)),
            next: LocalPath::or_account(next).as_str().to_owned(),
            error: None,
            csrf_token: user.csrf_token().to_owned(),
            window_minutes: config.confirm_window_secs.div_ceil(60),
        }
    }
}

#[derive(Responder)]
pub enum ConfirmResponse {
    Redirect(Redirect),
    Page(Page<ConfirmPage>),
    /// Too many wrong passwords: the form again, with how long to wait.
    #[response(status = 429)]
    Throttled {
        page: Page<ConfirmPage>,
        retry_after: Header<'static>,
    },
}

#[get("/confirm?<next>")]
pub fn page(
    user: &AuthenticatedUser,
    next: Option<&str>,
    ctx: RequestContext<'_>,
) -> Page<ConfirmPage> {
    Page(ConfirmPage::new(user, next, ctx.config))
}

#[derive(FromForm)]
pub struct ConfirmForm {
    password: String,
    next: Option<String>,
}

#[post("/confirm", data = "<form>")]
pub async fn submit(
    user: &AuthenticatedUser,
    form: CsrfForm<ConfirmForm>,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<ConfirmResponse> {
    let now = ctx.now();
    let config = ctx.config;
    let form_again = |error: String| {
        let mut page = ConfirmPage::new(user, form.next.as_deref(), config);
        page.error = Some(error);
        Page(page)
    };
    let attempt = match sign_in::check_own_password(&ctx, user, form.password.clone(), now).await? {
        Verdict::Accepted { attempt, .. } => attempt,
        Verdict::Rejected => {
            return Ok(ConfirmResponse::Page(form_again(
                "That password is not correct.".into(),
            )));
        }
        Verdict::Throttled(retry_after) => {
            let page = form_again(retry_after.message());
            return Ok(ConfirmResponse::Throttled {
                page,
                retry_after: retry_after.header(),
            });
        }
    };

    let mut conn = ctx.connection().await?;
    let mut tx = conn.begin().await?;
    // A new token as privilege rises: a token seen before the confirmation is worth less than this one.
    let Some(token) = session::rotate(
        &mut tx,
        user.session(),
        Some(now + config.confirm_window()),
        config,
        now,
    )
    .await?
    else {
        return Ok(ConfirmResponse::Redirect(Redirect::to(uri!(login::page(
            Some(Reason::LoginRequired.code()),
            None::<&str>
        )))));
    };
    throttle::succeeded(&mut tx, attempt).await?;
    let event = NewEvent::new(
        user.user_id(),
        EventKind::Confirmed,
        Some(user.session_public_id()),
        ctx.client,
    );
    events::record(&mut tx, event, now).await?;
    tx.commit().await?;

    cookies.add(issued_cookie(config, &token, user.session().is_bound()));
    Ok(ConfirmResponse::Redirect(Redirect::to(
        LocalPath::or_account(form.next.as_deref())
            .as_str()
            .to_owned(),
    )))
}

pub fn routes() -> Vec<Route> {
    routes![page, submit]
}
