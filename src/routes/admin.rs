//! `/admin`: list accounts, disable or enable one, sign all of an account's sessions out.
//! Needs the `admin` role (read fresh on every request) and a recent confirmation, with a passkey
//! for an administrator who has one (`admin_step_up`); an action asked for without it waits on
//! the session until `/confirm` resumes it.

use askama::Template;
use rocket::http::{CookieJar, Status};
use rocket::response::{self, Redirect, Responder};
use rocket::{Request, Route, get, post, routes, uri};
use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;

use crate::client::ClientInfo;
use crate::context::RequestContext;
use crate::csrf::CsrfForm;
use crate::error::AppResult;
use crate::events::{self, EventKind, NewEvent};
use crate::html::{Nav, Page};
use crate::notice::Notice;
use crate::session::guard::Refusal;
use crate::session::pending::{AdminAction, PendingAction};
use crate::session::{
    self, AdminRole, AdminUser, AuthenticatedUser, ConfirmationRequired, Reason, store,
};
use crate::users::{self, Role};

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
    let users = store::users_with_live_sessions(
        &mut *ctx.connection().await?,
        &session::alive(ctx.config, ctx.now()),
    )
    .await?;
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
    /// The account is no longer an administrator's (checked again when a confirmation resumes
    /// an action): 403, "Administrators only".
    NotAdmin,
}

impl<R> AdminAnswer<R> {
    /// The same refusal, or what `f` makes of the answer.
    pub fn map<T>(self, f: impl FnOnce(R) -> T) -> AdminAnswer<T> {
        match self {
            AdminAnswer::Done(answer) => AdminAnswer::Done(f(answer)),
            AdminAnswer::NoSuchUser => AdminAnswer::NoSuchUser,
            AdminAnswer::OwnAccount => AdminAnswer::OwnAccount,
            AdminAnswer::NotAdmin => AdminAnswer::NotAdmin,
        }
    }
}

impl<'r, R: Responder<'r, 'static>> Responder<'r, 'static> for AdminAnswer<R> {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        match self {
            AdminAnswer::Done(answer) => answer.respond_to(request),
            AdminAnswer::NoSuchUser => Err(Status::NotFound),
            AdminAnswer::OwnAccount => Err(Status::BadRequest),
            AdminAnswer::NotAdmin => {
                request.local_cache(|| Refusal::NotAdmin);
                Err(Status::Forbidden)
            }
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
    let users = store::users_with_live_sessions(
        &mut *ctx.connection().await?,
        &session::alive(ctx.config, ctx.now()),
    )
    .await?;
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
#[post("/admin/users/<id>/disable", data = "<_csrf>")]
pub async fn disable(
    admin: AdminRole<'_>,
    id: i64,
    _csrf: CsrfForm,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<AdminAnswer<Result<Redirect, ConfirmationRequired>>> {
    act_from_page(admin, AdminAction::Disable, id, cookies, ctx).await
}

#[post("/admin/users/<id>/enable", data = "<_csrf>")]
pub async fn enable(
    admin: AdminRole<'_>,
    id: i64,
    _csrf: CsrfForm,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<AdminAnswer<Result<Redirect, ConfirmationRequired>>> {
    act_from_page(admin, AdminAction::Enable, id, cookies, ctx).await
}

/// Signs every session and API token of an account out (the admin's own current one excepted).
#[post("/admin/users/<id>/revoke-sessions", data = "<_csrf>")]
pub async fn revoke_sessions(
    admin: AdminRole<'_>,
    id: i64,
    _csrf: CsrfForm,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<AdminAnswer<Result<Redirect, ConfirmationRequired>>> {
    act_from_page(admin, AdminAction::SignOutEverywhere, id, cookies, ctx).await
}

/// An action from the admin page, its form's CSRF token already checked (the handlers' `CsrfForm`).
/// Without a recent confirmation, the action and its target are kept on the session and the 403
/// catcher sends the browser to `/confirm`, which resumes it once.
async fn act_from_page(
    admin: AdminRole<'_>,
    action: AdminAction,
    id: i64,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<AdminAnswer<Result<Redirect, ConfirmationRequired>>> {
    let now = ctx.now();
    let mut conn = ctx.connection().await?;
    let Some(admin) = admin.confirmed(&mut conn, ctx.config).await? else {
        // Refusals that need no password come first: nothing is kept that could never run.
        if id == admin.user().user_id() && action != AdminAction::SignOutEverywhere {
            return Ok(AdminAnswer::OwnAccount);
        }
        if users::store::username(&mut conn, id).await?.is_none() {
            return Ok(AdminAnswer::NoSuchUser);
        }
        let pending = PendingAction::Admin(action, id).code();
        store::set_pending_action(&mut conn, admin.user().session_public_id(), &pending, now)
            .await?;
        return Ok(AdminAnswer::Done(Err(ConfirmationRequired)));
    };
    let mut tx = conn.begin().await?;
    let answer = act(&mut tx, admin.user(), action, id, ctx.client, now).await?;
    tx.commit().await?;
    Ok(answer.map(|notice| {
        cookies.add(notice.cookie());
        Ok(Redirect::to(uri!(page)))
    }))
}

/// Carries out an administrator's action on one account inside the caller's transaction, with
/// its security event; what it did, for `/admin` to say. Needs a confirmed session: the handlers
/// above check it, and `/confirm` calls this right after confirming. The role and the target are
/// checked here, as they are now: an action resumed after a confirmation runs only if its admin
/// still is one, on the account it named, if that account still exists.
pub(crate) async fn act(
    tx: &mut PgConnection,
    admin: &AuthenticatedUser,
    action: AdminAction,
    id: i64,
    client: &ClientInfo,
    now: OffsetDateTime,
) -> sqlx::Result<AdminAnswer<Notice>> {
    if admin.role() != Role::Admin {
        return Ok(AdminAnswer::NotAdmin);
    }
    let own = id == admin.user_id();
    let (kind, notice, detail) = match action {
        AdminAction::Disable | AdminAction::Enable if own => return Ok(AdminAnswer::OwnAccount),
        AdminAction::Disable => {
            let Some(username) = users::store::set_disabled(tx, id, true).await? else {
                return Ok(AdminAnswer::NoSuchUser);
            };
            let ended = session::end_all_for_user(tx, id, None, Reason::Revoked, now).await?;
            let notice = Notice::AccountDisabled {
                username,
                ended: ended.len(),
            };
            let detail = format!("by {}", admin.username());
            (EventKind::AccountDisabled, notice, detail)
        }
        AdminAction::Enable => {
            let Some(username) = users::store::set_disabled(tx, id, false).await? else {
                return Ok(AdminAnswer::NoSuchUser);
            };
            let detail = format!("by {}", admin.username());
            (
                EventKind::AccountEnabled,
                Notice::AccountEnabled { username },
                detail,
            )
        }
        AdminAction::SignOutEverywhere => {
            let Some(username) = users::store::username(tx, id).await? else {
                return Ok(AdminAnswer::NoSuchUser);
            };
            // The admin's own current session stays: signing oneself out is the header's button.
            let keep = own.then(|| admin.session_public_id());
            let ended = session::end_all_for_user(tx, id, keep, Reason::Revoked, now).await?;
            let detail = format!("{} sessions, by {}", ended.len(), admin.username());
            let notice = if own {
                Notice::OwnAccountSignedOut(ended.len())
            } else {
                Notice::AccountSignedOut {
                    username,
                    ended: ended.len(),
                }
            };
            (EventKind::SessionsRevokedByAdmin, notice, detail)
        }
    };
    let event = NewEvent::new(id, kind, None, client)
        .by(admin.session_public_id())
        .detail(detail);
    events::record(tx, event, now).await?;
    Ok(AdminAnswer::Done(notice))
}

pub fn routes() -> Vec<Route> {
    routes![page, disable_page, disable, enable, revoke_sessions]
}
