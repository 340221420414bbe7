//! `/admin`: list accounts, disable or enable one, sign all of an account's sessions out.
//! Needs the `admin` role (read fresh on every request) and a recent password confirmation.

use askama::Template;
use rocket::http::Status;
use rocket::response::{self, Redirect, Responder};
use rocket::{Request, Route, get, post, routes, uri};
use sqlx::Connection;

use crate::context::RequestContext;
use crate::csrf::CsrfForm;
use crate::error::AppResult;
use crate::events::{self, EventKind, NewEvent};
use crate::html::{Nav, Page};
use crate::session::{self, AdminUser, Reason, store};
use crate::users;

#[derive(Template)]
#[template(path = "admin.html")]
pub struct AdminPage {
    nav: Option<Nav>,
    users: Vec<store::UserOverview>,
    own_id: i64,
    csrf_token: String,
}

#[get("/admin")]
pub async fn page(admin: AdminUser<'_>, ctx: RequestContext<'_>) -> AppResult<Page<AdminPage>> {
    let admin = admin.user();
    let users = store::users_with_live_sessions(&mut *ctx.connection().await?, ctx.now()).await?;
    Ok(Page(AdminPage {
        nav: Some(Nav::of(admin)),
        users,
        own_id: admin.user_id(),
        csrf_token: admin.csrf_token().to_owned(),
    }))
}

/// What an admin action did. The refusals are answered by their status's catcher, as any other
/// 4xx is.
pub enum AdminAction {
    /// Done: back to the admin page.
    Done,
    /// No account has this id: 404.
    NoSuchUser,
    /// An admin may not disable or enable their own account: 400.
    OwnAccount,
}

impl<'r> Responder<'r, 'static> for AdminAction {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        match self {
            AdminAction::Done => Redirect::to(uri!(page)).respond_to(request),
            AdminAction::NoSuchUser => Err(Status::NotFound),
            AdminAction::OwnAccount => Err(Status::BadRequest),
        }
    }
}

/// Disables an account: every session and API token of it ends at once, and sign-in is refused.
#[post("/admin/users/<id>/disable", data = "<csrf>")]
pub async fn disable(
    admin: AdminUser<'_>,
    id: i64,
    csrf: CsrfForm,
    ctx: RequestContext<'_>,
) -> AppResult<AdminAction> {
    set_disabled(admin, id, true, csrf, ctx).await
}

#[post("/admin/users/<id>/enable", data = "<csrf>")]
pub async fn enable(
    admin: AdminUser<'_>,
    id: i64,
    csrf: CsrfForm,
    ctx: RequestContext<'_>,
) -> AppResult<AdminAction> {
    set_disabled(admin, id, false, csrf, ctx).await
}

/// Takes the checked form as proof: only a request from the admin's own page can get here.
async fn set_disabled(
    admin: AdminUser<'_>,
    id: i64,
    disabled: bool,
    _csrf: CsrfForm,
    ctx: RequestContext<'_>,
) -> AppResult<AdminAction> {
    let admin = admin.user();
    if id == admin.user_id() {
        return Ok(AdminAction::OwnAccount);
    }
    let now = ctx.now();
    let mut conn = ctx.connection().await?;
    let mut tx = conn.begin().await?;
    if users::store::set_disabled(&mut tx, id, disabled)
        .await?
        .is_none()
    {
        return Ok(AdminAction::NoSuchUser);
    }
    let kind = if disabled {
        session::end_all_for_user(&mut tx, id, None, Reason::Revoked, now).await?;
        EventKind::AccountDisabled
    } else {
        EventKind::AccountEnabled
    };
    let event = NewEvent::new(id, kind, None, ctx.client)
        .by(admin.session_public_id())
        .detail(format!("by {}", admin.username()));
    events::record(&mut tx, event, now).await?;
    tx.commit().await?;
    Ok(AdminAction::Done)
}

/// Signs every session and API token of an account out (the admin's own current one excepted).
#[post("/admin/users/<id>/revoke-sessions", data = "<_csrf>")]
pub async fn revoke_sessions(
    admin: AdminUser<'_>,
    id: i64,
    _csrf: CsrfForm,
    ctx: RequestContext<'_>,
) -> AppResult<AdminAction> {
    let admin = admin.user();
    let now = ctx.now();
    let mut conn = ctx.connection().await?;
    let mut tx = conn.begin().await?;
    if users::store::username(&mut tx, id).await?.is_none() {
        return Ok(AdminAction::NoSuchUser);
    }
    let keep = (id == admin.user_id()).then(|| admin.session_public_id());
    let ended = session::end_all_for_user(&mut tx, id, keep, Reason::Revoked, now).await?;
    let event = NewEvent::new(id, EventKind::SessionsRevokedByAdmin, None, ctx.client)
        .by(admin.session_public_id())
        .detail(format!("{} sessions, by {}", ended.len(), admin.username()));
    events::record(&mut tx, event, now).await?;
    tx.commit().await?;
    Ok(AdminAction::Done)
}

pub fn routes() -> Vec<Route> {
    routes![page, disable, enable, revoke_sessions]
}
