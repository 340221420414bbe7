//! `/admin`: list accounts, disable or enable one, sign all of an account's sessions out.
//! Needs the `admin` role (read fresh on every request) and a recent password confirmation.

use askama::Template;
use rocket::http::{CookieJar, Status};
use rocket::response::Redirect;
use rocket::{Route, State, get, post, routes, uri};
use sqlx::Connection;

use crate::client::ClientInfo;
use crate::clock::AppClock;
use crate::csrf::CsrfForm;
use crate::db::Db;
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
    db: &State<Db>,
    clock: &State<AppClock>,
) -> AppResult<Page<AdminPage>> {
    let AdminUser(admin) = admin;
    let users = store::users_with_live_sessions(&mut *db.connection().await?, clock.now()).await?;
    Ok(Page(AdminPage {
        nav: Some(Nav::of(admin)),
        notice: Notice::take(cookies),
        users,
        own_id: admin.user_id(),
        csrf_token: admin.csrf_token().to_owned(),
    }))
}

/// What an admin action did: `Err(404)` when there is no such user, `Err(400)` for acting on oneself.
type AdminOutcome = AppResult<Result<Redirect, Status>>;

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
    db: &State<Db>,
    clock: &State<AppClock>,
) -> AppResult<Result<Page<DisablePage>, Status>> {
    let AdminUser(admin) = admin;
    if id == admin.user_id() {
        return Ok(Err(Status::BadRequest));
    }
    let users = store::users_with_live_sessions(&mut *db.connection().await?, clock.now()).await?;
    let Some(user) = users.into_iter().find(|user| user.id == id) else {
        return Ok(Err(Status::NotFound));
    };
    Ok(Ok(Page(DisablePage {
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
    client: &ClientInfo,
    cookies: &CookieJar<'_>,
    db: &State<Db>,
    clock: &State<AppClock>,
) -> AdminOutcome {
    set_disabled(admin, id, true, csrf, client, cookies, db, clock).await
}

#[post("/admin/users/<id>/enable", data = "<csrf>")]
pub async fn enable(
    admin: AdminUser<'_>,
    id: i64,
    csrf: CsrfForm,
    client: &ClientInfo,
    cookies: &CookieJar<'_>,
    db: &State<Db>,
    clock: &State<AppClock>,
) -> AdminOutcome {
    set_disabled(admin, id, false, csrf, client, cookies, db, clock).await
}

/// Takes the checked form as proof: only a request from the admin's own page can get here.
#[allow(clippy::too_many_arguments)] // each guard is one piece of proof or state the handler needs
async fn set_disabled(
    AdminUser(admin): AdminUser<'_>,
    id: i64,
    disabled: bool,
    _csrf: CsrfForm,
    client: &ClientInfo,
    cookies: &CookieJar<'_>,
    db: &State<Db>,
    clock: &State<AppClock>,
) -> AdminOutcome {
    if id == admin.user_id() {
        return Ok(Err(Status::BadRequest));
    }
    let now = clock.now();
    let mut conn = db.connection().await?;
    let mut tx = conn.begin().await?;
    let Some(username) = users::store::set_disabled(&mut tx, id, disabled).await? else {
        return Ok(Err(Status::NotFound));
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
    let event = NewEvent::new(id, kind, None, client)
        .by(admin.session_public_id())
        .detail(format!("by {}", admin.username()));
    events::record(&mut tx, event, now).await?;
    tx.commit().await?;
    cookies.add(notice.cookie());
    Ok(Ok(Redirect::to(uri!(page))))
}

/// Signs every session and API token of an account out (the admin's own current one excepted).
#[post("/admin/users/<id>/revoke-sessions", data = "<_csrf>")]
pub async fn revoke_sessions(
    admin: AdminUser<'_>,
    id: i64,
    _csrf: CsrfForm,
    client: &ClientInfo,
    cookies: &CookieJar<'_>,
    db: &State<Db>,
    clock: &State<AppClock>,
) -> AdminOutcome {
    let AdminUser(admin) = admin;
    let now = clock.now();
    let mut conn = db.connection().await?;
    let mut tx = conn.begin().await?;
    let Some(username) = users::store::username(&mut tx, id).await? else {
        return Ok(Err(Status::NotFound));
    };
    let keep = (id == admin.user_id()).then(|| admin.session_public_id());
    let ended = session::end_all_for_user(&mut tx, id, keep, Reason::Revoked, now).await?;
    let event = NewEvent::new(id, EventKind::SessionsRevokedByAdmin, None, client)
        .by(admin.session_public_id())
        .detail(format!("{} sessions, by {}", ended.len(), admin.username()));
    events::record(&mut tx, event, now).await?;
    tx.commit().await?;
    let notice = Notice::AccountSignedOut {
        username,
        ended: ended.len(),
    };
    cookies.add(notice.cookie());
    Ok(Ok(Redirect::to(uri!(page))))
}

pub fn routes() -> Vec<Route> {
    routes![page, disable_page, disable, enable, revoke_sessions]
}
