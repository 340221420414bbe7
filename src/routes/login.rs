//! `GET /login` and `POST /login`: the sign-in form, and signing in with a fresh session.

use askama::Template;
use rocket::form::Form;
use rocket::http::CookieJar;
use rocket::response::Redirect;
use rocket::{get, post, routes, FromForm, Responder, Route, State};
use sqlx::Connection;

use crate::client::ClientInfo;
use crate::clock::AppClock;
use crate::config::SessionConfig;
use crate::csrf::PreSessionCsrf;
use crate::db::Db;
use crate::error::AppResult;
use crate::events::{self, EventKind, NewEvent};
use crate::html::{Nav, Page};
use crate::local_path::LocalPath;
use crate::session::cookie::{presented_token, session_cookie};
use crate::session::{self, AuthenticatedUser, Reason};
use crate::users::{self, Password, PasswordHasher};

/// The one message for every credential failure: it never says which part was wrong.
const CREDENTIALS_REJECTED: &str = "Incorrect username or password.";

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    nav: Option<Nav>,
    reason_message: Option<&'static str>,
    error: Option<&'static str>,
    username: String,
    next: Option<String>,
    csrf_token: String,
}

impl LoginPage {
    fn new(csrf: &PreSessionCsrf, next: Option<&str>) -> Self {
        LoginPage {
            nav: None,
            reason_message: None,
            error: None,
            username: String::new(),
            next: next.and_then(LocalPath::parse).map(|path| path.as_str().to_owned()),
            csrf_token: csrf.token().to_owned(),
        }
    }
}

#[derive(Responder)]
pub enum LoginResponse {
    Redirect(Redirect),
    Page(Page<LoginPage>),
}

#[get("/login?<reason>&<next>")]
pub fn page(
    reason: Option<&str>,
    next: Option<&str>,
    user: Option<&AuthenticatedUser>,
    csrf: PreSessionCsrf,
) -> LoginResponse {
    if user.is_some() {
        return LoginResponse::Redirect(Redirect::to(LocalPath::or_account(next).as_str().to_owned()));
    }
    let mut page = LoginPage::new(&csrf, next);
    page.reason_message = reason.and_then(Reason::from_code).map(Reason::message);
    LoginResponse::Page(Page(page))
}

#[derive(FromForm)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf_token: String,
    next: Option<String>,
}

#[post("/login", data = "<form>")]
#[allow(clippy::too_many_arguments)] // each guard is one piece of proof or state the handler needs
pub async fn submit(
    form: Form<LoginForm>,
    csrf: PreSessionCsrf,
    client: &ClientInfo,
    cookies: &CookieJar<'_>,
    db: &State<Db>,
    hasher: &State<PasswordHasher>,
    config: &State<SessionConfig>,
    clock: &State<AppClock>,
) -> AppResult<LoginResponse> {
    csrf.verify(&form.csrf_token)?;
    let rejected = || {
        let mut page = LoginPage::new(&csrf, form.next.as_deref());
        page.error = Some(CREDENTIALS_REJECTED);
        page.username = form.username.chars().take(64).collect();
        Ok(LoginResponse::Page(Page(page)))
    };
    // Out-of-range passwords are refused before any hashing: they cannot match a stored one.
    let Ok(password) = Password::parse(form.password.clone()) else {
        return rejected();
    };

    // The pooled connection is released while argon2 runs, so slow hashing cannot drain the pool.
    let account = users::store::find_credentials(&mut *db.connection().await?, &form.username).await?;
    let stored_hash = account.as_ref().map(|account| account.password_hash.clone());
    let password_matches = hasher.verify(&password, stored_hash).await?;
    let now = clock.now();
    let mut conn = db.connection().await?;
    let account = match account {
        Some(account) if password_matches && !account.disabled => account,
        Some(account) => {
            let event = NewEvent::new(account.id, EventKind::SignInFailed, None, client);
            events::record(&mut conn, event, now).await?;
            return rejected();
        }
        None => return rejected(),
    };

    let mut tx = conn.begin().await?;
    let started = session::start(&mut tx, account.id, presented_token(cookies, config), client, config, now).await?;
    tx.commit().await?;

    cookies.add(session_cookie(config, &started.token));
    Ok(LoginResponse::Redirect(Redirect::to(LocalPath::or_account(form.next.as_deref()).as_str().to_owned())))
}

pub fn routes() -> Vec<Route> {
    routes![page, submit]
}
