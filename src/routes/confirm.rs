//! `GET /confirm` and `POST /confirm`: re-enter the password for a sensitive action ("sudo mode").
//! Success sets `confirmed_until` and rotates the session token.

use askama::Template;
use rocket::http::{CookieJar, Header};
use rocket::response::Redirect;
use rocket::{FromForm, Responder, Route, get, post, routes, uri};
use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;

use super::admin::{self, AdminAnswer};
use super::{account, login};
use crate::config::SessionConfig;
use crate::context::RequestContext;
use crate::csrf::CsrfForm;
use crate::device;
use crate::error::AppResult;
use crate::events::{self, EventKind, NewEvent};
use crate::headers;
use crate::html::{Nav, Page};
use crate::local_path::LocalPath;
use crate::session::cookie::issued_cookie;
use crate::session::pending::{AccountAction, AdminAction, PENDING_ACTION_LIFETIME, PendingAction};
use crate::session::{self, AuthenticatedUser, Reason, store};
use crate::sign_in::{self, Verdict};
use crate::throttle;
use crate::users::{self, Role};

#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    nav: Option<Nav>,
    next: String,
    /// The action waiting for this confirmation: its code (sent back with the form) and its name.
    action: Option<(String, String)>,
    /// Without one, what the page it returns to is for ("open the administration page").
    purpose: Option<String>,
    /// A wrong password: said next to the field.
    error: Option<String>,
    /// Too many wrong passwords: how long to wait, above the form.
    throttled: Option<String>,
    csrf_token: String,
    window_minutes: u32,
}

impl ConfirmPage {
    fn new(user: &AuthenticatedUser, next: Option<&str>, config: &SessionConfig) -> Self {
        ConfirmPage {
            nav: Some(Nav::of(user)),
            next: LocalPath::or_account(next).as_str().to_owned(),
            action: None,
            purpose: None,
            error: None,
            throttled: None,
            csrf_token: user.csrf_token().to_owned(),
            window_minutes: config.confirm_window_secs.div_ceil(60),
        }
    }

    /// Names the action this confirmation will carry out, if the session is waiting for one
    /// and the confirmation returns to the page where it was asked for. An administrator's
    /// action is named only while it could run: for an administrator, on an account that exists.
    async fn with_pending_action(
        mut self,
        conn: &mut PgConnection,
        user: &AuthenticatedUser,
        config: &SessionConfig,
        now: OffsetDateTime,
    ) -> sqlx::Result<Self> {
        let since = now - PENDING_ACTION_LIFETIME;
        let pending = store::pending_action(conn, user.session_public_id(), since).await?;
        let Some(action) = pending.as_deref().and_then(PendingAction::parse) else {
            return Ok(self);
        };
        if self.next != action.home() {
            return Ok(self);
        }
        let name = match action {
            PendingAction::Account(AccountAction::SignOutOthers) => {
                "sign out all your other devices".to_owned()
            }
            PendingAction::Account(AccountAction::SignOut(id)) => {
                let devices =
                    store::list_live_for_user(conn, user.user_id(), &session::alive(config, now))
                        .await?;
                match devices.iter().find(|device| device.public_id == id) {
                    Some(device) => format!(
                        "sign out {} ({})",
                        device::describe(&device.user_agent),
                        device::describe_ip(&device.ip)
                    ),
                    None => "sign out a device".to_owned(),
                }
            }
            PendingAction::Admin(admin_action, id) => {
                if user.role() != Role::Admin {
                    return Ok(self);
                }
                let Some(username) = users::store::username(conn, id).await? else {
                    return Ok(self);
                };
                match admin_action {
                    AdminAction::Disable => format!("disable {username}"),
                    AdminAction::Enable => format!("enable {username}"),
                    AdminAction::SignOutEverywhere if id == user.user_id() => {
                        "sign yourself out on every other device (this one stays signed in)"
                            .to_owned()
                    }
                    AdminAction::SignOutEverywhere => format!("sign {username} out everywhere"),
                }
            }
        };
        self.action = Some((action.code(), name));
        Ok(self)
    }

    /// Without a waiting action, names what the page the confirmation opens is for, when it is
    /// one that asks for it: the person knows what the password is wanted for.
    async fn with_purpose(
        mut self,
        conn: &mut PgConnection,
        user: &AuthenticatedUser,
    ) -> sqlx::Result<Self> {
        if self.action.is_some() {
            return Ok(self);
        }
        let admin = user.role() == Role::Admin;
        self.purpose = match self.next.as_str() {
            "/account/not-me" => Some(
                "secure your account: sign out every other device, then choose a new password"
                    .to_owned(),
            ),
            "/admin" if admin => Some("open the administration page".to_owned()),
            path if admin => match path
                .strip_prefix("/admin/users/")
                .and_then(|rest| rest.strip_suffix("/disable"))
                .and_then(|id| id.parse().ok())
            {
                Some(id) => users::store::username(conn, id)
                    .await?
                    .map(|username| format!("choose whether to disable {username}")),
                None => None,
            },
            _ => None,
        };
        Ok(self)
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
pub async fn page(
    user: &AuthenticatedUser,
    next: Option<&str>,
    ctx: RequestContext<'_>,
) -> AppResult<Page<ConfirmPage>> {
    let mut conn = ctx.connection().await?;
    let page = ConfirmPage::new(user, next, ctx.config)
        .with_pending_action(&mut conn, user, ctx.config, ctx.now())
        .await?
        .with_purpose(&mut conn, user)
        .await?;
    Ok(Page(page))
}

#[derive(FromForm)]
pub struct ConfirmForm {
    password: String,
    next: Option<String>,
    /// The pending action the page named (`PendingAction::code`): only that one resumes.
    action: Option<String>,
}

#[post("/confirm", data = "<form>")]
pub async fn submit(
    user: &AuthenticatedUser,
    form: CsrfForm<ConfirmForm>,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<ConfirmResponse> {
    let (now, config, client) = (ctx.now(), ctx.config, ctx.client);
    let form_again =
        async |error: Option<String>, throttled: Option<String>| -> AppResult<Page<ConfirmPage>> {
            let mut conn = ctx.connection().await?;
            let mut page = ConfirmPage::new(user, form.next.as_deref(), config)
                .with_pending_action(&mut conn, user, config, now)
                .await?
                .with_purpose(&mut conn, user)
                .await?;
            page.error = error;
            page.throttled = throttled;
            Ok(Page(page))
        };
    let attempt = match sign_in::check_own_password(&ctx, user, form.password.clone(), now).await? {
        Verdict::Accepted { attempt, .. } => attempt,
        Verdict::Rejected => {
            return Ok(ConfirmResponse::Page(
                form_again(Some("That password is not correct.".into()), None).await?,
            ));
        }
        Verdict::Throttled(retry_after) => {
            let page = form_again(None, Some(retry_after.message())).await?;
            return Ok(ConfirmResponse::Throttled {
                page,
                retry_after: headers::throttled(retry_after),
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
        client,
    );
    events::record(&mut tx, event, now).await?;
    // The action that sent the person here runs now, once: taking it clears it, in the
    // transaction that makes the confirmation, and the form that asked for it named it.
    let next = LocalPath::or_account(form.next.as_deref());
    let since = now - PENDING_ACTION_LIFETIME;
    let pending = store::take_pending_action(&mut tx, user.session_public_id(), since).await?;
    let resumed = match pending.as_deref().and_then(PendingAction::parse) {
        Some(action) if next.as_str() == action.home() && form.action == Some(action.code()) => {
            match action {
                PendingAction::Account(action) => {
                    Some(account::sign_out(&mut tx, user, action, client, now).await?)
                }
                // Checked as if posted now: a refusal (no longer an admin, no such account)
                // does nothing, and `/admin` then says why if it still applies.
                PendingAction::Admin(action, id) => {
                    match admin::act(&mut tx, user, action, id, client, now).await? {
                        AdminAnswer::Done(notice) => Some(notice),
                        AdminAnswer::NoSuchUser
                        | AdminAnswer::OwnAccount
                        | AdminAnswer::NotAdmin => None,
                    }
                }
            }
        }
        _ => None,
    };
    tx.commit().await?;

    cookies.add(issued_cookie(config, &token, user.session(), now));
    if let Some(notice) = resumed {
        cookies.add(notice.cookie());
    }
    Ok(ConfirmResponse::Redirect(Redirect::to(
        next.as_str().to_owned(),
    )))
}

pub fn routes() -> Vec<Route> {
    routes![page, submit]
}
