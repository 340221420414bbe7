//! `GET /register` and `POST /register`: demo sign-up (limited per client address), which signs the new account in.

use askama::Template;
use rocket::http::{CookieJar, Header};
use rocket::response::Redirect;
use rocket::{FromForm, Responder, Route, get, post, routes, uri};
use sqlx::Connection;

use super::account;
use crate::context::RequestContext;
use crate::csrf::{PreSessionCsrf, PreSessionCsrfForm};
use crate::error::AppResult;
use crate::events::{self, EventKind, NewEvent};
use crate::html::{Nav, Page};
use crate::session;
use crate::session::cookie::{presented_token, session_cookie};
use crate::throttle::{self, Admission};
use crate::users::{self, CheckedCredentials, Password, Role, Username};

#[derive(Template)]
#[template(path = "register.html")]
pub struct RegisterPage {
    nav: Option<Nav>,
    errors: Vec<String>,
    username: String,
    csrf_token: String,
    rules: &'static str,
}

impl RegisterPage {
    fn new(csrf: &PreSessionCsrf) -> Self {
        RegisterPage {
            nav: None,
            errors: Vec::new(),
            username: String::new(),
            csrf_token: csrf.token().to_owned(),
            rules: Username::RULES,
        }
    }
}

#[derive(Responder)]
pub enum RegisterResponse {
    Redirect(Redirect),
    Page(Page<RegisterPage>),
    /// Too many sign-ups from this address: the form again, with how long to wait.
    #[response(status = 429)]
    Throttled {
        page: Page<RegisterPage>,
        retry_after: Header<'static>,
    },
}

#[get("/register")]
pub fn page(csrf: &PreSessionCsrf) -> Page<RegisterPage> {
    Page(RegisterPage::new(csrf))
}

#[derive(FromForm)]
pub struct RegisterForm {
    username: String,
    password: String,
    password_confirm: String,
}

/// The account the form asks for, or every reason it cannot be created.
fn validate(form: &RegisterForm) -> Result<(Username, Password), Vec<String>> {
    let username = Username::parse(&form.username);
    let password = Password::parse(form.password.clone());
    let mut errors = Vec::new();
    if let Err(rule) = &username {
        errors.push(rule.to_string());
    }
    match &password {
        Err(rule) => errors.push(rule.to_string()),
        Ok(_) if form.password != form.password_confirm => {
            errors.push("The two passwords do not match.".into())
        }
        Ok(password) => errors.extend(password.weakness(&form.username)),
    }
    match (username, password) {
        (Ok(username), Ok(password)) if errors.is_empty() => Ok((username, password)),
        _ => Err(errors),
    }
}

#[post("/register", data = "<form>")]
pub async fn submit(
    form: PreSessionCsrfForm<RegisterForm>,
    csrf: &PreSessionCsrf,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<RegisterResponse> {
    let form_again = |errors: Vec<String>| {
        let mut page = RegisterPage::new(csrf);
        page.errors = errors;
        page.username = form.username.chars().take(64).collect();
        Page(page)
    };
    let refuse = |errors: Vec<String>| Ok(RegisterResponse::Page(form_again(errors)));
    let (username, password) = match validate(&form) {
        Ok(valid) => valid,
        Err(errors) => return refuse(errors),
    };
    let now = ctx.now();
    // Counted before the argon2 work, which a flood of sign-ups would otherwise buy for free.
    if let Admission::Throttled(retry_after) = throttle::begin_sign_up(
        &mut *ctx.connection().await?,
        ctx.config,
        &ctx.client.ip,
        now,
    )
    .await?
    {
        let page = form_again(vec![retry_after.message()]);
        return Ok(RegisterResponse::Throttled {
            page,
            retry_after: retry_after.header(),
        });
    }
    let password_hash = ctx.hasher.hash(&password).await?;

    let mut conn = ctx.connection().await?;
    let mut tx = conn.begin().await?;
    let Some(user_id) =
        users::store::create(&mut tx, &username, &password_hash, Role::User, now).await?
    else {
        return refuse(vec![
            "That username is taken. Please choose another.".into(),
        ]);
    };
    let created = NewEvent::new(user_id, EventKind::Registered, None, ctx.client);
    events::record(&mut tx, created, now).await?;
    let credentials = CheckedCredentials::new_account(user_id);
    let presented = presented_token(cookies, ctx.config);
    let Some(started) =
        session::start(&mut tx, credentials, presented, ctx.client, ctx.config, now).await?
    else {
        // Unreachable in practice: no one else can change an account this transaction created.
        return refuse(vec![
            "The account could not be signed in. Please try again.".into(),
        ]);
    };
    tx.commit().await?;

    cookies.add(session_cookie(ctx.config, &started.token));
    Ok(RegisterResponse::Redirect(Redirect::to(uri!(
        account::page
    ))))
}

pub fn routes() -> Vec<Route> {
    routes![page, submit]
}
