//! `/account`: who you are, your devices (and signing them out), your recent security activity,
//! and "This wasn't me".

use askama::Template;
use rocket::response::Redirect;
use rocket::{Route, State, get, post, routes, uri};
use sqlx::Connection;
use uuid::Uuid;

use super::password;
use crate::client::ClientInfo;
use crate::clock::AppClock;
use crate::csrf::CsrfForm;
use crate::db::Db;
use crate::device;
use crate::error::AppResult;
use crate::events::{self, EventKind, NewEvent};
use crate::html::{Nav, Page, format_ago, format_time};
use crate::session::{self, AuthenticatedUser, ConfirmedUser, Reason, SessionKind, store};

/// How many security events the account page shows.
const RECENT_EVENTS: i64 = 20;

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    nav: Option<Nav>,
    username: String,
    role: &'static str,
    signed_in_at: String,
    confirmed: bool,
    devices: Vec<DeviceRow>,
    events: Vec<EventRow>,
    csrf_token: String,
}

pub struct DeviceRow {
    public_id: String,
    description: String,
    kind: &'static str,
    ip: String,
    signed_in: String,
    last_active: String,
    current: bool,
    /// Bound to a key on that device (DBSC).
    bound: bool,
}

pub struct EventRow {
    description: &'static str,
    warning: bool,
    when: String,
    device: String,
    ip: String,
    this_device: bool,
}

#[get("/account")]
pub async fn page(
    user: &AuthenticatedUser,
    db: &State<Db>,
    clock: &State<AppClock>,
) -> AppResult<Page<AccountPage>> {
    let now = clock.now();
    let mut conn = db.connection().await?;
    let devices = store::list_live_for_user(&mut conn, user.user_id(), now).await?;
    let recent = events::recent_for_user(&mut conn, user.user_id(), RECENT_EVENTS).await?;

    let mut devices: Vec<DeviceRow> = devices
        .into_iter()
        .map(|device| DeviceRow {
            public_id: device.public_id.to_string(),
            description: device::describe(&device.user_agent),
            kind: match device.kind {
                SessionKind::Browser => "Browser",
                SessionKind::Api => "API token",
            },
            ip: device.ip,
            signed_in: format_time(device.created_at),
            last_active: format_ago(device.last_seen_at, now),
            current: device.public_id == user.session_public_id(),
            bound: device.bound,
        })
        .collect();
    // This device first, then the others by most recent activity.
    devices.sort_by_key(|device| !device.current);
    let events = recent
        .into_iter()
        .map(|event| EventRow {
            description: event.kind.describe(),
            warning: event.kind.is_warning(),
            when: format_time(event.occurred_at),
            device: device::describe(&event.user_agent),
            this_device: event.acting_device() == Some(user.session_public_id()),
            ip: event.ip,
        })
        .collect();

    Ok(Page(AccountPage {
        nav: Some(Nav::of(user)),
        username: user.username().to_owned(),
        role: user.role().code(),
        signed_in_at: format_time(user.signed_in_at()),
        confirmed: user.is_confirmed(),
        devices,
        events,
        csrf_token: user.csrf_token().to_owned(),
    }))
}

/// Signs one other device (or API token family) out. Needs a recent confirmation.
#[post("/account/sessions/<id>/revoke", data = "<_csrf>")]
pub async fn revoke_one(
    user: ConfirmedUser<'_>,
    id: Uuid,
    _csrf: CsrfForm,
    client: &ClientInfo,
    db: &State<Db>,
    clock: &State<AppClock>,
) -> AppResult<Redirect> {
    let ConfirmedUser(user) = user;
    let now = clock.now();
    let mut conn = db.connection().await?;
    let mut tx = conn.begin().await?;
    if store::revoke_other(
        &mut tx,
        user.user_id(),
        id,
        user.session_public_id(),
        Reason::Revoked,
        now,
    )
    .await?
    {
        let event = NewEvent::new(user.user_id(), EventKind::SessionRevoked, Some(id), client)
            .by(user.session_public_id());
        events::record(&mut tx, event, now).await?;
    }
    tx.commit().await?;
    Ok(Redirect::to(uri!(page)))
}

/// Signs every other device and API token family out. Needs a recent confirmation.
#[post("/account/sessions/revoke-others", data = "<_csrf>")]
pub async fn revoke_others(
    user: ConfirmedUser<'_>,
    _csrf: CsrfForm,
    client: &ClientInfo,
    db: &State<Db>,
    clock: &State<AppClock>,
) -> AppResult<Redirect> {
    let ConfirmedUser(user) = user;
    let now = clock.now();
    let mut conn = db.connection().await?;
    let mut tx = conn.begin().await?;
    session::end_others(
        &mut tx,
        user.session(),
        Reason::Revoked,
        EventKind::SessionRevoked,
        client,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Redirect::to(uri!(page)))
}

#[derive(Template)]
#[template(path = "not_me.html")]
pub struct NotMePage {
    nav: Option<Nav>,
    csrf_token: String,
}

/// "This wasn't me": explains what will happen. Reached only after re-entering the password.
#[get("/account/not-me")]
pub fn not_me_page(user: ConfirmedUser<'_>) -> Page<NotMePage> {
    let ConfirmedUser(user) = user;
    Page(NotMePage {
        nav: Some(Nav::of(user)),
        csrf_token: user.csrf_token().to_owned(),
    })
}

/// "This wasn't me": every other device and token signed out, then on to a new password.
#[post("/account/not-me", data = "<_csrf>")]
pub async fn not_me(
    user: ConfirmedUser<'_>,
    _csrf: CsrfForm,
    client: &ClientInfo,
    db: &State<Db>,
    clock: &State<AppClock>,
) -> AppResult<Redirect> {
    let ConfirmedUser(user) = user;
    let now = clock.now();
    let mut conn = db.connection().await?;
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
    Ok(Redirect::to(uri!(password::page)))
}

pub fn routes() -> Vec<Route> {
    routes![page, revoke_one, revoke_others, not_me_page, not_me]
}
