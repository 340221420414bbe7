//! `GET /account/password` and `POST /account/password`: change the password. In one
//! transaction: the new hash, every other session and API token ended (`password_changed`),
//! and a new token for this one. The current password is asked for unless this session
//! confirmed it within the confirmation window (as "This wasn't me" has just had it do). When
//! `password_change_step_up` asks for `aal2` (by default, a session signed in or raised with a
//! passkey), a recent confirmation with the passkey comes first: the 403 sends the browser to
//! `/confirm`, which returns here.

use askama::Template;
use rocket::http::{CookieJar, Header};
use rocket::response::Redirect;
use rocket::{FromForm, Responder, Route, get, post, routes, uri};
use sqlx::Connection;

use super::login;
use crate::context::RequestContext;
use crate::csrf::CsrfForm;
use crate::error::AppResult;
use crate::events::{self, EventKind, NewEvent};
use crate::headers;
use crate::html::{FormErrors, Nav, Page};
use crate::notice::Notice;
use crate::session::cookie::issued_cookie;
use crate::session::{self, AuthenticatedUser, ConfirmationRequired, Reason};
use crate::sign_in::{self, Verdict};
use crate::throttle;
use crate::users::{self, Password};

#[derive(Template)]
#[template(path = "password.html")]
pub struct PasswordPage {
    nav: Option<Nav>,
    /// What "This wasn't me" did just before ("Signed out 2 other devices ...").
    notice: Option<String>,
    errors: FormErrors,
    /// The current password is asked for: this session has not confirmed it recently.
    ask_current: bool,
    /// The rules for a new password, shown before typing.
    rules: &'static str,
    /// After a change: how many other devices were signed out.
    signed_out: Option<usize>,
    csrf_token: String,
}

#[derive(Responder)]
pub enum PasswordResponse {
    Redirect(Redirect),
    Page(Page<PasswordPage>),
    /// A confirmation with the passkey must come first (`password_change_step_up`).
    Confirm(ConfirmationRequired),
    /// Too many wrong current passwords: the form again, with how long to wait.
    #[response(status = 429)]
    Throttled {
        page: Page<PasswordPage>,
        retry_after: Header<'static>,
    },
}

/// What a new password must be, said before it is typed.
const RULES: &str = "At least 8 characters, different from your current password, and not easy \
     to guess (not your username, a common word or a pattern such as 12345678). Long passphrases \
     of unrelated words are strong and easy to remember.";

const SAME_AS_CURRENT: &str = "The new password must differ from the current one.";

fn form_page(user: &AuthenticatedUser, errors: FormErrors) -> Page<PasswordPage> {
    Page(PasswordPage {
        nav: Some(Nav::of(user)),
        notice: None,
        // Shown again to say what is wrong with it, if a confirmed session sent one anyway.
        ask_current: !user.is_confirmed() || errors.of("current_password").is_some(),
        errors,
        rules: RULES,
        signed_out: None,
        csrf_token: user.csrf_token().to_owned(),
    })
}

#[get("/account/password")]
pub async fn page(
    user: &AuthenticatedUser,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<Result<Page<PasswordPage>, ConfirmationRequired>> {
    let step_up = ctx.config.password_change_step_up;
    if user
        .needs_passkey_for(&mut *ctx.connection().await?, step_up)
        .await?
    {
        return Ok(Err(ConfirmationRequired));
    }
    let mut page = form_page(user, FormErrors::default());
    page.0.notice = Notice::take(cookies);
    Ok(Ok(page))
}

#[derive(FromForm)]
pub struct PasswordForm {
    /// Left out by a page that does not ask for it (a session confirmed moments ago).
    #[field(default = String::new())]
    current_password: String,
    new_password: String,
    new_password_confirm: String,
}

/// The new password, or every reason the form cannot be used, each by its field, all at once:
/// a missing current password (unless this session confirmed it recently), the rules, the
/// strength estimate and the confirmation. Whether the current password is right is checked
/// after this, once the rest is in order, as that check counts against the attempt budget.
fn validate(form: &PasswordForm, username: &str, confirmed: bool) -> Result<Password, FormErrors> {
    let mut errors = FormErrors::default();
    if form.current_password.is_empty() && !confirmed {
        errors.field("current_password", "Enter your current password.");
    }
    let password = match Password::parse(form.new_password.clone()) {
        Err(_) if form.new_password.is_empty() => {
            errors.field("new_password", "Enter a new password.");
            None
        }
        Err(rule) => {
            errors.field("new_password", rule);
            None
        }
        Ok(password) => {
            if form.new_password == form.current_password {
                errors.field("new_password", SAME_AS_CURRENT);
            }
            if let Some(weakness) = password.weakness(username) {
                errors.field("new_password", weakness);
            }
            Some(password)
        }
    };
    if form.new_password_confirm.is_empty() {
        errors.field("new_password_confirm", "Enter the new password again.");
    } else if form.new_password != form.new_password_confirm {
        errors.field(
            "new_password_confirm",
            "The two new passwords do not match.",
        );
    }
    match password {
        Some(password) if errors.is_empty() => Ok(password),
        _ => Err(errors),
    }
}

#[post("/account/password", data = "<form>")]
pub async fn submit(
    user: &AuthenticatedUser,
    form: CsrfForm<PasswordForm>,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<PasswordResponse> {
    let (now, config, client) = (ctx.now(), ctx.config, ctx.client);
    let step_up = config.password_change_step_up;
    if user
        .needs_passkey_for(&mut *ctx.connection().await?, step_up)
        .await?
    {
        return Ok(PasswordResponse::Confirm(ConfirmationRequired));
    }
    let new_password = match validate(&form, user.username(), user.is_confirmed()) {
        Ok(password) => password,
        Err(errors) => return Ok(PasswordResponse::Page(form_page(user, errors))),
    };
    let current = form.current_password.clone();
    let changed_meanwhile = || {
        let mut errors = FormErrors::default();
        errors.form("Your account changed while the password was being checked. Please try again.");
        Ok(PasswordResponse::Page(form_page(user, errors)))
    };
    // What proves the person knows the password: the current one, typed now; or, left empty
    // (`validate` allows that only to a confirmed session), the confirmation moments ago on
    // this session, which also gave it a new token.
    let (credentials, attempt) = if current.is_empty() {
        let stored =
            users::store::find_credentials_by_id(&mut *ctx.connection().await?, user.user_id())
                .await?;
        let Some(stored) = stored else {
            return changed_meanwhile();
        };
        // Still refused: "securing" an account with the password someone else knows.
        if ctx
            .hasher
            .verify(&new_password, Some(stored.password_hash.clone()))
            .await?
        {
            let mut errors = FormErrors::default();
            errors.field("new_password", SAME_AS_CURRENT);
            return Ok(PasswordResponse::Page(form_page(user, errors)));
        }
        (stored.checked(), None)
    } else {
        match sign_in::check_own_password(&ctx, user, current, now).await? {
            Verdict::Accepted {
                credentials,
                attempt,
            } => (credentials, Some(attempt)),
            Verdict::Rejected => {
                let mut errors = FormErrors::default();
                errors.field("current_password", "Your current password is not correct.");
                return Ok(PasswordResponse::Page(form_page(user, errors)));
            }
            Verdict::Throttled(retry_after) => {
                let mut errors = FormErrors::default();
                errors.form(retry_after.message());
                let page = form_page(user, errors);
                return Ok(PasswordResponse::Throttled {
                    page,
                    retry_after: headers::throttled(retry_after),
                });
            }
        }
    };
    let new_hash = ctx.hasher.hash(&new_password).await?;

    let mut conn = ctx.connection().await?;
    let mut tx = conn.begin().await?;
    if let Some(attempt) = attempt {
        throttle::succeeded(&mut tx, attempt).await?;
    }
    if users::store::lock_if_current(&mut tx, credentials)
        .await?
        .is_none()
    {
        // The password checked was replaced, or every device signed out, while it was being
        // checked: nothing is committed.
        return changed_meanwhile();
    }
    users::store::set_password_hash(&mut tx, user.user_id(), &new_hash).await?;
    let signed_out = session::end_others(
        &mut tx,
        user.session(),
        Reason::PasswordChanged,
        EventKind::SessionRevoked,
        client,
        now,
    )
    .await?;
    // A new token for this device, and any privileged confirmation ends with the old password.
    let Some(token) = session::rotate(&mut tx, user.session(), None, config, now).await? else {
        // This session ended while the change was under way: nothing is committed.
        return Ok(PasswordResponse::Redirect(Redirect::to(uri!(login::page(
            Some(Reason::Revoked.code()),
            None::<&str>
        )))));
    };
    let event = NewEvent::new(
        user.user_id(),
        EventKind::PasswordChanged,
        Some(user.session_public_id()),
        client,
    )
    .detail(format!("{signed_out} other devices signed out"));
    events::record(&mut tx, event, now).await?;
    tx.commit().await?;

    cookies.add(issued_cookie(config, &token, user.session(), now));
    // Rendered, not redirected, so the page can say what happened; its forms carry the new token's CSRF value.
    let mut nav = Nav::of(user);
    nav.csrf_token = token.csrf_token();
    let page = PasswordPage {
        nav: Some(nav),
        notice: None,
        errors: FormErrors::default(),
        ask_current: false,
        rules: RULES,
        signed_out: Some(signed_out),
        csrf_token: token.csrf_token(),
    };
    Ok(PasswordResponse::Page(Page(page)))
}

pub fn routes() -> Vec<Route> {
    routes![page, submit]
}
