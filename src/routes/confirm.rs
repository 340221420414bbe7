//! `GET /confirm` and `POST /confirm`: re-enter the password for a sensitive action ("sudo mode"),
//! or confirm with a passkey (`/confirm/passkey/options`, `/confirm/passkey`), which also raises
//! the session to `aal2`. Success sets `confirmed_until` with its level and rotates the session
//! token; an action waiting for the confirmation runs once, if the level is enough for it.

use askama::Template;
use rocket::http::{CookieJar, Header, Status};
use rocket::response::Redirect;
use rocket::serde::json::{Json, json};
use rocket::{FromForm, Responder, Route, State, get, post, routes, uri};
use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;
use webauthn_rs::prelude::PublicKeyCredential;

use super::admin::{self, AdminAnswer};
use super::passkeys::{CeremonyResponse, parse};
use super::{account, login};
use crate::config::{SessionConfig, StepUp};
use crate::context::RequestContext;
use crate::csrf::CsrfForm;
use crate::device;
use crate::error::AppResult;
use crate::events::{self, EventKind, NewEvent, Refused};
use crate::headers;
use crate::html::{Nav, Page};
use crate::local_path::LocalPath;
use crate::notice::Notice;
use crate::passkeys::{self, RelyingParty};
use crate::session::cookie::issued_cookie;
use crate::session::pending::{AccountAction, AdminAction, PENDING_ACTION_LIFETIME, PendingAction};
use crate::session::token::SessionToken;
use crate::session::{self, Aal, AuthenticatedUser, Reason, policy, store};
use crate::sign_in::{self, Verdict};
use crate::throttle::{self, Admission};
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
    /// The account has a passkey: "Confirm with a passkey" is offered.
    passkey: bool,
    /// The password is enough for what waits (no step-up to `aal2`): its form is shown.
    password: bool,
    /// When it is not, why: the session's own level, or the action's setting.
    passkey_because: Option<&'static str>,
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
            passkey: false,
            password: true,
            passkey_because: None,
        }
    }

    /// How the page asks to confirm, after "To (the action), ".
    fn how(&self) -> &'static str {
        match (self.password, self.passkey) {
            (true, false) => "enter your password again",
            (true, true) => "enter your password again or use a passkey",
            (false, _) => "confirm with your passkey",
        }
    }

    /// Which ways to confirm the page offers: a passkey when the account has one, and the
    /// password unless what waits needs more (`step_up_for`).
    async fn with_ways(
        mut self,
        conn: &mut PgConnection,
        user: &AuthenticatedUser,
        config: &SessionConfig,
    ) -> sqlx::Result<Self> {
        self.passkey = passkeys::store::has_passkey(conn, user.user_id()).await?;
        let pending = self
            .action
            .as_ref()
            .and_then(|(code, _)| PendingAction::parse(code));
        let step_up = step_up_for(config, &self.next, pending);
        let needed = user.level_needed(conn, step_up).await?;
        self.password = needed == Aal::Aal1;
        self.passkey_because = (needed == Aal::Aal2).then_some(match step_up {
            StepUp::Aal2 => "this action asks for a passkey whenever your account has one",
            // `Confirmed` never needs more than a password.
            StepUp::SessionLevel | StepUp::Confirmed => {
                "this session signed in or confirmed with a passkey, so it confirms with one too"
            }
        });
        Ok(self)
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
            "/account/password" => Some("change your password".to_owned()),
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
        .await?
        .with_ways(&mut conn, user, ctx.config)
        .await?;
    Ok(Page(page))
}

/// What the confirmation is for decides the setting it must meet: the waiting action's, or the
/// setting of the page it returns to (the password change; the account page, where a passkey is
/// removed; the admin pages). Anything else asks for any confirmation. The level that setting
/// needs depends on this session and account (`AuthenticatedUser::level_needed`).
fn step_up_for(config: &SessionConfig, next: &str, pending: Option<PendingAction>) -> StepUp {
    match pending {
        Some(PendingAction::Admin(..)) => config.admin_step_up,
        None if next == "/admin" || next.starts_with("/admin/") => config.admin_step_up,
        None if next == "/account/password" => config.password_change_step_up,
        None if next == "/account" => config.passkey_removal_step_up,
        // The account page's sign-outs, and any other page.
        Some(PendingAction::Account(_)) | None => StepUp::Confirmed,
    }
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
    let (now, config) = (ctx.now(), ctx.config);
    let form_again =
        async |error: Option<String>, throttled: Option<String>| -> AppResult<Page<ConfirmPage>> {
            let mut conn = ctx.connection().await?;
            let mut page = ConfirmPage::new(user, form.next.as_deref(), config)
                .with_pending_action(&mut conn, user, config, now)
                .await?
                .with_purpose(&mut conn, user)
                .await?
                .with_ways(&mut conn, user, config)
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
    throttle::succeeded(&mut tx, attempt).await?;
    let confirmation = Confirmation {
        level: Aal::Aal1,
        event: EventKind::Confirmed,
        next: form.next.as_deref(),
        action: form.action.as_deref(),
    };
    match confirm(&mut tx, user, confirmation, &ctx).await? {
        Some(confirmed) => {
            tx.commit().await?;
            let next = confirmed.set_cookies(cookies, user, config, now);
            Ok(ConfirmResponse::Redirect(Redirect::to(next)))
        }
        None => Ok(ConfirmResponse::Redirect(Redirect::to(uri!(login::page(
            Some(Reason::LoginRequired.code()),
            None::<&str>
        ))))),
    }
}

/// A confirmation that has just succeeded, by password (`aal1`) or passkey (`aal2`).
struct Confirmation<'a> {
    level: Aal,
    event: EventKind,
    /// Where to go next, and the waiting action the page named, as the form sent them.
    next: Option<&'a str>,
    action: Option<&'a str>,
}

/// What a recorded confirmation gives the browser once its transaction commits.
struct Confirmed {
    /// The page to go to.
    next: LocalPath,
    /// The session's new token.
    token: SessionToken,
    /// What the resumed action did, for that page to say.
    resumed: Option<Notice>,
}

impl Confirmed {
    /// Sets the new token's cookie and the resumed action's notice; the page to go to.
    fn set_cookies(
        self,
        cookies: &CookieJar<'_>,
        user: &AuthenticatedUser,
        config: &SessionConfig,
        now: OffsetDateTime,
    ) -> String {
        cookies.add(issued_cookie(config, &self.token, user.session(), now));
        if let Some(notice) = self.resumed {
            cookies.add(notice.cookie());
        }
        self.next.as_str().to_owned()
    }
}

/// Records a confirmation inside the caller's transaction: a new token with `confirmed_until`
/// and its level, the event, and the action that sent the person here, run now, once, when the
/// confirmation's level is enough for it. `None` if the session ended meanwhile (nothing is to
/// be committed).
async fn confirm(
    tx: &mut PgConnection,
    user: &AuthenticatedUser,
    confirmation: Confirmation<'_>,
    ctx: &RequestContext<'_>,
) -> AppResult<Option<Confirmed>> {
    let (now, config, client) = (ctx.now(), ctx.config, ctx.client);
    // A new token as privilege rises: a token seen before the confirmation is worth less than this one.
    let confirmed = Some((now + config.confirm_window(), confirmation.level));
    let Some(token) = session::rotate(tx, user.session(), confirmed, config, now).await? else {
        return Ok(None);
    };
    let event = NewEvent::new(
        user.user_id(),
        confirmation.event,
        Some(user.session_public_id()),
        client,
    );
    events::record(tx, event, now).await?;
    // Taking the waiting action clears it, in the transaction that makes the confirmation, and
    // the form that asked for it named it.
    let next = LocalPath::or_account(confirmation.next);
    let since = now - PENDING_ACTION_LIFETIME;
    let pending = store::take_pending_action(tx, user.session_public_id(), since).await?;
    let action = match pending.as_deref().and_then(PendingAction::parse) {
        Some(action)
            if next.as_str() == action.home()
                && confirmation.action == Some(action.code().as_str()) =>
        {
            Some(action)
        }
        _ => None,
    };
    let resumed = match action {
        Some(action) => {
            // The level the action asks for, as the page that offered this confirmation saw it.
            let step_up = step_up_for(config, next.as_str(), Some(action));
            let needed = user.level_needed(tx, step_up).await?;
            if policy::confirmation_suffices(Some(confirmation.level), needed) {
                resume(tx, user, action, ctx).await?
            } else {
                None
            }
        }
        None => None,
    };
    Ok(Some(Confirmed {
        next,
        token,
        resumed,
    }))
}

async fn resume(
    tx: &mut PgConnection,
    user: &AuthenticatedUser,
    action: PendingAction,
    ctx: &RequestContext<'_>,
) -> AppResult<Option<Notice>> {
    let (now, client) = (ctx.now(), ctx.client);
    Ok(match action {
        PendingAction::Account(action) => {
            Some(account::sign_out(tx, user, action, client, now).await?)
        }
        // Checked as if posted now: a refusal (no longer an admin, no such account) does
        // nothing, and `/admin` then says why if it still applies.
        PendingAction::Admin(action, id) => {
            match admin::act(tx, user, action, id, client, now).await? {
                AdminAnswer::Done(notice) => Some(notice),
                AdminAnswer::NoSuchUser | AdminAnswer::OwnAccount | AdminAnswer::NotAdmin => None,
            }
        }
    })
}

/// Options for `navigator.credentials.get` to confirm with one of the account's passkeys: a
/// ceremony owned by this session. 400 when the account has none.
#[post("/confirm/passkey/options", data = "<_csrf>")]
pub async fn passkey_options(
    user: &AuthenticatedUser,
    _csrf: CsrfForm,
    rp: &State<RelyingParty>,
    ctx: RequestContext<'_>,
) -> AppResult<CeremonyResponse> {
    let mut conn = ctx.connection().await?;
    let started = passkeys::start_confirmation(
        &mut conn,
        rp,
        ctx.config,
        user.user_id(),
        user.session_public_id(),
        ctx.now(),
    )
    .await?;
    Ok(match started {
        Some((ceremony, options)) => {
            CeremonyResponse::Done(Json(json!({ "ceremony": ceremony, "options": options })))
        }
        None => CeremonyResponse::refused(Status::BadRequest, "This account has no passkey."),
    })
}

#[derive(FromForm)]
pub struct PasskeyConfirmForm {
    ceremony: String,
    credential: String,
    next: Option<String>,
    /// The pending action the page named, as for the password.
    action: Option<String>,
}

/// The answer to this session's confirmation ceremony. Counted against the session's budget
/// like a password (`throttle::begin_recheck`), and a refusal is recorded as `confirm_failed`.
/// On success, in one transaction: the confirmation at `aal2`, the session raised to `aal2`,
/// the `passkey_confirmed` event, and the waiting action resumed. The answer says where to go.
#[post("/confirm/passkey", data = "<form>")]
pub async fn passkey_submit(
    user: &AuthenticatedUser,
    form: CsrfForm<PasskeyConfirmForm>,
    cookies: &CookieJar<'_>,
    rp: &State<RelyingParty>,
    ctx: RequestContext<'_>,
) -> AppResult<CeremonyResponse> {
    let (now, config, client) = (ctx.now(), ctx.config, ctx.client);
    let (ceremony, answer) = match parse::<PublicKeyCredential>(&form.ceremony, &form.credential) {
        Ok(parsed) => parsed,
        Err(refused) => return Ok(refused),
    };
    let mut conn = ctx.connection().await?;
    let session_id = user.session_public_id();
    // Counted before anything is checked, and kept unless the confirmation succeeds.
    let attempt = match throttle::begin_recheck(&mut conn, config, session_id, now).await? {
        Admission::Admitted(attempt) => attempt,
        Admission::Throttled(retry_after) => {
            return Ok(CeremonyResponse::throttled(retry_after));
        }
    };
    let failed = async |conn: &mut PgConnection, error: passkeys::PasskeyError| {
        let event = NewEvent::new(
            user.user_id(),
            EventKind::ConfirmFailed,
            Some(session_id),
            client,
        )
        .detail(Refused::PASSKEY_DETAIL);
        events::record(conn, event, now).await?;
        AppResult::Ok(CeremonyResponse::from_error(&error))
    };
    let begun = passkeys::begin_confirmation(&mut conn, ceremony, session_id, now).await?;
    let attempted = match begun {
        Ok(attempted) => attempted,
        Err(error) => return failed(&mut conn, error).await,
    };
    let mut tx = conn.begin().await?;
    let verified =
        passkeys::verify_confirmation(&mut tx, rp, attempted, user.user_id(), &answer, now).await?;
    if let Err(error) = verified {
        tx.rollback().await?;
        return failed(&mut conn, error).await;
    }
    throttle::succeeded(&mut tx, attempt).await?;
    store::raise_to_aal2(&mut tx, session_id).await?;
    let confirmation = Confirmation {
        level: Aal::Aal2,
        event: EventKind::PasskeyConfirmed,
        next: form.next.as_deref(),
        action: form.action.as_deref(),
    };
    let Some(confirmed) = confirm(&mut tx, user, confirmation, &ctx).await? else {
        return Ok(CeremonyResponse::refused(
            Status::Unauthorized,
            "This session has ended. Please sign in again.",
        ));
    };
    tx.commit().await?;
    let next = confirmed.set_cookies(cookies, user, config, now);
    Ok(CeremonyResponse::Done(Json(json!({ "redirect": next }))))
}

pub fn routes() -> Vec<Route> {
    routes![page, submit, passkey_options, passkey_submit]
}
