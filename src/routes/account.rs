//! `/account`: who you are, your devices (and signing them out), your passkeys (`passkeys`
//! adds and removes them), your recent security activity, and "This wasn't me".

use std::collections::HashMap;

use askama::Template;
use rocket::http::CookieJar;
use rocket::response::Redirect;
use rocket::{Route, get, post, routes, uri};
use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use super::password;
use crate::activity::{self, Entry, Viewer};
use crate::client::ClientInfo;
use crate::context::RequestContext;
use crate::csrf::CsrfForm;
use crate::device;
use crate::error::AppResult;
use crate::events::{self, EventKind, NewEvent};
use crate::html::{Nav, Page, When, format_ago};
use crate::notice::Notice;
use crate::passkeys;
use crate::session::pending::{AccountAction, PendingAction};
use crate::session::{
    self, AuthenticatedUser, ConfirmationRequired, ConfirmedUser, Reason, SessionKind, store,
};
use crate::users::Role;

/// How many entries the account page's activity shows, and how many of the newest events it
/// reads to make them (repeats next to each other are one entry).
const RECENT_ENTRIES: usize = 20;
const RECENT_EVENTS: i64 = 200;

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    nav: Option<Nav>,
    /// What the action before this page did ("Signed out 2 devices.").
    notice: Option<String>,
    username: String,
    /// Said only when it is not the ordinary one (an administrator's account).
    role: Option<&'static str>,
    signed_in_at: When,
    confirmed: bool,
    /// The confirmation in force is enough to remove a passkey (`passkey_removal_step_up`).
    can_remove_passkeys: bool,
    devices: Vec<DeviceRow>,
    passkeys: Vec<PasskeyRow>,
    events: Vec<EventRow>,
    csrf_token: String,
}

pub struct PasskeyRow {
    id: i64,
    name: String,
    added: When,
    last_used: Option<When>,
}

pub struct DeviceRow {
    public_id: String,
    description: String,
    kind: &'static str,
    ip: String,
    signed_in: When,
    last_active: String,
    current: bool,
    /// Bound to a key on that device (DBSC).
    bound: bool,
    /// The assurance level its sign-in reached (`aal1`, `aal2`).
    aal: &'static str,
}

pub struct EventRow {
    description: String,
    warning: bool,
    /// Shown before every other entry until the owner acts on it (a sign-in that may have been
    /// the guesser's).
    flagged: bool,
    /// How many times it happened: from `since` (when more than once) to `when`.
    count: i64,
    since: Option<When>,
    when: When,
    device: String,
    ip: String,
    this_device: bool,
    /// "This wasn't me" is offered (`activity`).
    disown: bool,
    /// A sign-in's entry: the assurance level it reached.
    aal: Option<&'static str>,
}

impl From<Entry> for EventRow {
    fn from(entry: Entry) -> Self {
        EventRow {
            description: entry.description,
            warning: entry.warning,
            flagged: entry.flagged,
            count: entry.count,
            // A span only when its ends read differently (they are shown to the minute).
            since: Some(When::at(entry.first))
                .filter(|since| since.text != When::at(entry.last).text),
            when: When::at(entry.last),
            device: entry.device,
            ip: entry.ip,
            this_device: entry.this_device,
            disown: entry.disown,
            aal: entry.aal,
        }
    }
}

/// What the device list calls a kind of session, in plain words.
fn kind_name(kind: SessionKind) -> &'static str {
    match kind {
        SessionKind::Browser => "Browser",
        SessionKind::Api => "App or script",
    }
}

#[get("/account")]
pub async fn page(
    user: &AuthenticatedUser,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<Page<AccountPage>> {
    let now = ctx.now();
    let mut conn = ctx.connection().await?;
    let devices =
        store::list_live_for_user(&mut conn, user.user_id(), &session::alive(ctx.config, now))
            .await?;
    let passkeys = passkeys::store::list_for_user(&mut conn, user.user_id())
        .await?
        .into_iter()
        .map(|passkey| PasskeyRow {
            id: passkey.id,
            name: passkey.name,
            added: When::at(passkey.created_at),
            last_used: passkey.last_used_at.map(When::at),
        })
        .collect();
    // Open flags first, however much came after them; then the newest entries.
    let flags = events::open_flags(&mut conn, user.user_id(), RECENT_EVENTS).await?;
    let flagged: Vec<i64> = flags.iter().map(|event| event.id).collect();
    let mut recent = flags;
    recent.extend(
        events::recent_for_user(&mut conn, user.user_id(), RECENT_EVENTS)
            .await?
            .into_iter()
            .filter(|event| !flagged.contains(&event.id)),
    );
    // The devices other devices acted on, named by what they signed in with.
    let acted_on: Vec<Uuid> = recent
        .iter()
        .filter(|event| event.actor_public_id.is_some())
        .filter_map(|event| event.session_public_id)
        .collect();
    let user_agents: HashMap<Uuid, String> =
        events::sign_in_user_agents(&mut conn, user.user_id(), &acted_on)
            .await?
            .into_iter()
            .chain(
                devices
                    .iter()
                    .map(|device| (device.public_id, device.user_agent.clone())),
            )
            .collect();
    let viewer = Viewer {
        session: user.session_public_id(),
        user_agent: &ctx.client.user_agent,
        ip: &ctx.client.ip,
    };
    let can_remove_passkeys = user
        .confirmed_for(&mut conn, ctx.config.passkey_removal_step_up)
        .await?;
    let events = activity::entries(recent, &flagged, &user_agents, &viewer, RECENT_ENTRIES)
        .into_iter()
        .map(EventRow::from)
        .collect();

    let mut devices: Vec<DeviceRow> = devices
        .into_iter()
        .map(|device| DeviceRow {
            public_id: device.public_id.to_string(),
            description: device::describe(&device.user_agent),
            kind: kind_name(device.kind),
            ip: device::describe_ip(&device.ip),
            signed_in: When::at(device.created_at),
            last_active: format_ago(device.last_seen_at, now),
            current: device.public_id == user.session_public_id(),
            bound: device.bound,
            aal: device.aal.code(),
        })
        .collect();
    // This device first, then the others by most recent activity.
    devices.sort_by_key(|device| !device.current);

    Ok(Page(AccountPage {
        nav: Some(Nav::of(user)),
        notice: Notice::take(cookies),
        username: user.username().to_owned(),
        role: (user.role() != Role::User).then(|| user.role().code()),
        signed_in_at: When::at(user.signed_in_at()),
        confirmed: user.is_confirmed(),
        can_remove_passkeys,
        devices,
        passkeys,
        events,
        csrf_token: user.csrf_token().to_owned(),
    }))
}

/// Carries out a sign-out the person asked for, inside the caller's transaction, with its
/// security events; what it did, for the next page to say. Needs a confirmed session: the
/// handlers below check it, and `/confirm` calls this right after confirming.
pub(crate) async fn sign_out(
    tx: &mut PgConnection,
    user: &AuthenticatedUser,
    action: AccountAction,
    client: &ClientInfo,
    now: OffsetDateTime,
) -> sqlx::Result<Notice> {
    let ended = match action {
        AccountAction::SignOut(id) => {
            let ended = store::revoke_other(
                tx,
                user.user_id(),
                id,
                user.session_public_id(),
                Reason::Revoked,
                now,
            )
            .await?;
            if ended {
                let event =
                    NewEvent::new(user.user_id(), EventKind::SessionRevoked, Some(id), client)
                        .by(user.session_public_id());
                events::record(tx, event, now).await?;
            }
            usize::from(ended)
        }
        AccountAction::SignOutOthers => {
            session::end_others(
                tx,
                user.session(),
                Reason::Revoked,
                EventKind::SessionRevoked,
                client,
                now,
            )
            .await?
        }
    };
    Ok(Notice::DevicesSignedOut(ended))
}

/// A sign-out from the account page. Without a recent confirmation, the action is kept on the
/// session (its CSRF token checked first) and the 403 catcher sends the browser to `/confirm`,
/// which resumes it once.
async fn sign_out_from_page(
    user: &AuthenticatedUser,
    action: AccountAction,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<Result<Redirect, ConfirmationRequired>> {
    let now = ctx.now();
    let mut conn = ctx.connection().await?;
    if !user.is_confirmed() {
        let pending = PendingAction::Account(action).code();
        store::set_pending_action(&mut conn, user.session_public_id(), &pending, now).await?;
        return Ok(Err(ConfirmationRequired));
    }
    let mut tx = conn.begin().await?;
    let notice = sign_out(&mut tx, user, action, ctx.client, now).await?;
    tx.commit().await?;
    cookies.add(notice.cookie());
    Ok(Ok(Redirect::to(uri!(page))))
}

/// Signs one other device (or API token family) out. Needs a recent confirmation.
#[post("/account/sessions/<id>/revoke", data = "<_csrf>")]
pub async fn revoke_one(
    user: &AuthenticatedUser,
    id: Uuid,
    _csrf: CsrfForm,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<Result<Redirect, ConfirmationRequired>> {
    let action = AccountAction::SignOut(id);
    sign_out_from_page(user, action, cookies, ctx).await
}

/// Signs every other device and API token family out. Needs a recent confirmation.
#[post("/account/sessions/revoke-others", data = "<_csrf>")]
pub async fn revoke_others(
    user: &AuthenticatedUser,
    _csrf: CsrfForm,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<Result<Redirect, ConfirmationRequired>> {
    let action = AccountAction::SignOutOthers;
    sign_out_from_page(user, action, cookies, ctx).await
}

#[derive(Template)]
#[template(path = "not_me.html")]
pub struct NotMePage {
    nav: Option<Nav>,
    csrf_token: String,
}

/// "This wasn't me": explains what will happen. Reached only after re-entering the password.
#[get("/account/not-me")]
pub fn not_me_page(confirmed: ConfirmedUser<'_>) -> Page<NotMePage> {
    let user = confirmed.user();
    Page(NotMePage {
        nav: Some(Nav::of(user)),
        csrf_token: user.csrf_token().to_owned(),
    })
}

/// "This wasn't me": every other device and token signed out, then on to a new password.
#[post("/account/not-me", data = "<_csrf>")]
pub async fn not_me(
    confirmed: ConfirmedUser<'_>,
    _csrf: CsrfForm,
    cookies: &CookieJar<'_>,
    ctx: RequestContext<'_>,
) -> AppResult<Redirect> {
    let user = confirmed.user();
    let (now, client) = (ctx.now(), ctx.client);
    let mut conn = ctx.connection().await?;
    let mut tx = conn.begin().await?;
    let ended = session::end_others(
        &mut tx,
        user.session(),
        Reason::Revoked,
        EventKind::SessionRevoked,
        client,
        now,
    )
    .await?;
    let event = NewEvent::new(
        user.user_id(),
        EventKind::AccountSecured,
        Some(user.session_public_id()),
        client,
    )
    .detail(format!("{ended} other devices signed out"));
    events::record(&mut tx, event, now).await?;
    tx.commit().await?;
    cookies.add(Notice::AccountSecured(ended).cookie());
    Ok(Redirect::to(uri!(password::page)))
}

pub fn routes() -> Vec<Route> {
    routes![page, revoke_one, revoke_others, not_me_page, not_me]
}
