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
use crate::headers;
use crate::html::{FormErrors, Nav, Page};
use crate::session::cookie::{presented_token, session_cookie};
use crate::session::{self, Aal};
use crate::throttle::{self, Admission};
use crate::users::{self, CheckedCredentials, Password, Role, Username};

#[derive(Template)]
#[template(path = "register.html")]
pub struct RegisterPage {
    nav: Option<Nav>,
    errors: FormErrors,
    username: String,
    csrf_token: String,
    rules: &'static str,
}

impl RegisterPage {
    fn new(csrf: &PreSessionCsrf) -> Self {
        RegisterPage {
            nav: None,
            errors: FormErrors::default(),
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

/// The account the form asks for, or every reason it cannot be created, each by its field.
fn validate(form: &RegisterForm) -> Result<(Username, Password), FormErrors> {
    let username = Username::parse(&form.username);
    let password = Password::parse(form.password.clone());
    let mut errors = FormErrors::default();
    if let Err(problem) = &username {
        errors.field("username", *problem);
    }
    match &password {
        Err(rule) => errors.field("password", *rule),
        Ok(_) if form.password != form.password_confirm => {
            errors.field("password_confirm", "The two passwords do not match.");
        }
        Ok(password) => {
            if let Some(weakness) = password.weakness(&form.username) {
                errors.field("password", weakness);
            }
        }
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
    // The username typed stays in the form; passwords never come back.
    let form_again = |errors: FormErrors| {
        let mut page = RegisterPage::new(csrf);
        page.errors = errors;
        page.username = form.username.chars().take(64).collect();
        Page(page)
    };
    let refuse = |errors: FormErrors| Ok(RegisterResponse::Page(form_again(errors)));
    let (username, password) = match validate(&form) {
        Ok(valid) => valid,
        Err(errors) => return refuse(errors),
    };
    let now = ctx.now();
    // A place in the hashing queue first: when it is full, the answer is 503 at once, and the
    // sign-up is not counted against the address.
    let admitted = ctx.hasher.admit()?;
    // Counted before the argon2 work, which a flood of sign-ups would otherwise buy for free.
    if let Admission::Throttled(retry_after) = throttle::begin_sign_up(
        &mut *ctx.connection().await?,
        ctx.config,
        &ctx.client.ip,
        now,
    )
    .await?
    {
        let mut errors = FormErrors::default();
        errors.form(retry_after.message());
        let page = form_again(errors);
        return Ok(RegisterResponse::Throttled {
            page,
            retry_after: headers::throttled(retry_after),
        });
    }
    let password_hash = admitted.hash(&password).await?;

    let mut conn = ctx.connection().await?;
    let mut tx = conn.begin().await?;
    let Some(user_id) =
        users::store::create(&mut tx, &username, &password_hash, Role::User, now).await?
    else {
        let mut errors = FormErrors::default();
        errors.field(
            "username",
            "That username is taken, or looks too much like one that is. Please choose another.",
        );
        return refuse(errors);
    };
    let created = NewEvent::new(user_id, EventKind::Registered, None, ctx.client);
    events::record(&mut tx, created, now).await?;
    let credentials = CheckedCredentials::new_account(user_id);
    let presented = presented_token(cookies, ctx.config);
    let Some(started) = session::start(
        &mut tx,
        credentials,
        presented,
        ctx.client,
        ctx.config,
        Aal::Aal1,
        now,
    )
    .await?
    else {
        // Unreachable in practice: no one else can change an account this transaction created.
        let mut errors = FormErrors::default();
        errors.form("The account could not be signed in. Please try again.");
        return refuse(errors);
    };
    tx.commit().await?;

    cookies.add(session_cookie(
        ctx.config,
        &started.token,
        started.expires_at,
        now,
    ));
    Ok(RegisterResponse::Redirect(Redirect::to(uri!(
        account::page
    ))))
}

pub fn routes() -> Vec<Route> {
    routes![page, submit]
}
