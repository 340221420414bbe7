//! `/admin`: list accounts, disable or enable one, sign all of an account's sessions out.
//! Needs the `admin` role (read fresh on every request) and a recent password confirmation.

use askama::Template;
use rocket::http::{CookieJar, Status};
use rocket::response::{self, Redirect, Responder};
use rocket::{Request, Route, get, post, routes, uri};
use sqlx::Connection;

use crate::context::RequestContext;
use crate::csrf::CsrfForm;
use crate::error::AppResult;
use crate::events::{self, EventKind, NewEvent};
use crate::html::{Nav, Page};
use crate::notice::Notice;
use crate::session::{self, AdminUser, Reason, store};
use crate::users;

#[derive(Template)]
#[template(path = "admin.html")]
pub struct AdminPage {
    nav: Option<Nav>,
    /// What the action before this page did ("Disabled carol: ...").
    notice: Option<String>,
    users: Vec<store::UserOverview>,
    own_id: i64,
    csrf_token: String,
}

#[get("/admin")]
pub async fn page(
    admin: AdminUser<'_>,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<Page<AdminPage>> {
    let admin = admin.user();
    let users = store::users_with_live_sessions(&mut *ctx.connection().await?, ctx.now()).await?;
    Ok(Page(AdminPage {
        nav: Some(Nav::of(admin)),
        notice: Notice::take(cookies),
        users,
        own_id: admin.user_id(),
        csrf_token: admin.csrf_token().to_owned(),
    }))
}

/// What an admin request about one account answers: its page or redirect, or a refusal that
/// the status's catcher explains, as for any other 4xx.
pub enum AdminAnswer<R> {
    Done(R),
    /// No account has this id: 404.
    NoSuchUser,
    /// An admin may not disable or enable their own account: 400.
    OwnAccount,
}

impl<'r, R: Responder<'r, 'static>> Responder<'r, 'static> for AdminAnswer<R> {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        match self {
            AdminAnswer::Done(answer) => answer.respond_to(request),
            AdminAnswer::NoSuchUser => Err(Status::NotFound),
            AdminAnswer::OwnAccount => Err(Status::BadRequest),
        }
    }
}

#[derive(Template)]
#[template(path = "admin_disable.html")]
pub struct DisablePage {
    nav: Option<Nav>,
    id: i64,
    username: String,
    live_sessions: i64,
    csrf_token: String,
}

/// "Disable carol?": what disabling does, before it is done.
#[get("/admin/users/<id>/disable")]
pub async fn disable_page(
    admin: AdminUser<'_>,
    id: i64,
    ctx: RequestContext<'_>,
) -> AppResult<AdminAnswer<Page<DisablePage>>> {
    let admin = admin.user();
    if id == admin.user_id() {
        return Ok(AdminAnswer::OwnAccount);
    }
    let users = store::users_with_live_sessions(&mut *ctx.connection().await?, ctx.now()).await?;
    let Some(user) = users.into_iter().find(|user| user.id == id) else {
        return Ok(AdminAnswer::NoSuchUser);
    };
    Ok(AdminAnswer::Done(Page(DisablePage {
        nav: Some(Nav::of(admin)),
        id,
        username: user.username,
        live_sessions: user.live_sessions,
        csrf_token: admin.csrf_token().to_owned(),
    })))
}

/// Disables an account: every session and API token of it ends at once, and sign-in is refused.
#[post("/admin/users/<id>/disable", data = "<csrf>")]
pub async fn disable(
    admin: AdminUser<'_>,
    id: i64,
    csrf: CsrfForm,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<AdminAnswer<Redirect>> {
    set_disabled(admin, id, true, csrf, cookies, ctx).await
}

#[post("/admin/users/<id>/enable", data = "<csrf>")]
pub async fn enable(
    admin: AdminUser<'_>,
    id: i64,
    csrf: CsrfForm,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<AdminAnswer<Redirect>> {
    set_disabled(admin, id, false, csrf, cookies, ctx).await
}

/// Takes the checked form as proof: only a request from the admin's own page can get here.
async fn set_disabled(
    admin: AdminUser<'_>,
    id: i64,
    disabled: bool,
    _csrf: CsrfForm,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<AdminAnswer<Redirect>> {
    let admin = admin.user();
    if id == admin.user_id() {
        return Ok(AdminAnswer::OwnAccount);
    }
    let now = ctx.now();
    let mut conn = ctx.connection().await?;
    let mut tx = conn.begin().await?;
    let Some(username) = users::store::set_disabled(&mut tx, id, disabled).await? else {
        return Ok(AdminAnswer::NoSuchUser);
    };
    let (kind, notice) = if disabled {
        let ended = session::end_all_for_user(&mut tx, id, None, Reason::Revoked, now).await?;
        let notice = Notice::AccountDisabled {
            username,
            ended: ended.len(),
        };
        (EventKind::AccountDisabled, notice)
    } else {
        (
            EventKind::AccountEnabled,
            Notice::AccountEnabled { username },
        )
    };
    let event = NewEvent::new(id, kind, None, ctx.client)
        .by(admin.session_public_id())
        .detail(format!("by {}", admin.username()));
    events::record(&mut tx, event, now).await?;
    tx.commit().await?;
    cookies.add(notice.cookie());
    Ok(AdminAnswer::Done(Redirect::to(uri!(page))))
}

/// Signs every session and API token of an account out (the admin's own current one excepted).
#[post("/admin/users/<id>/revoke-sessions", data = "<_csrf>")]
pub async fn revoke_sessions(
    admin: AdminUser<'_>,
    id: i64,
    _csrf: CsrfForm,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<AdminAnswer<Redirect>> {
    let admin = admin.user();
    let now = ctx.now();
    let mut conn = ctx.connection().await?;
    let mut tx = conn.begin().await?;
    let Some(username) = users::store::username(&mut tx, id).await? else {
        return Ok(AdminAnswer::NoSuchUser);
    };
    let keep = (id == admin.user_id()).then(|| admin.session_public_id());
    let ended = session::end_all_for_user(&mut tx, id, keep, Reason::Revoked, now).await?;
    let event = NewEvent::new(id, EventKind::SessionsRevokedByAdmin, None, ctx.client)
        .by(admin.session_public_id())
        .detail(format!("{} sessions, by {}", ended.len(), admin.username()));
    events::record(&mut tx, event, now).await?;
    tx.commit().await?;
    let notice = Notice::AccountSignedOut {
        username,
        ended: ended.len(),
    };
    cookies.add(notice.cookie());
    Ok(AdminAnswer::Done(Redirect::to(uri!(page))))
}

pub fn routes() -> Vec<Route> {
    routes![page, disable_page, disable, enable, revoke_sessions]
}
