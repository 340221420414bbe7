//! `GET /account`: who you are, your devices, and your recent security activity.

use askama::Template;
use rocket::{get, routes, Route, State};

use crate::clock::AppClock;
use crate::db::Db;
use crate::device;
use crate::error::AppResult;
use crate::events;
use crate::html::{format_ago, format_time, Nav, Page};
use crate::session::{store, AuthenticatedUser};

/// How many security events the account page shows.
const RECENT_EVENTS: i64 = 20;

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    nav: Option<Nav>,
    username: String,
    role: &'static str,
    signed_in_at: String,
    devices: Vec<DeviceRow>,
    events: Vec<EventRow>,
}

pub struct DeviceRow {
    description: String,
    kind: &'static str,
    ip: String,
    signed_in: String,
    last_active: String,
    current: bool,
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
pub async fn page(user: &AuthenticatedUser, db: &State<Db>, clock: &State<AppClock>) -> AppResult<Page<AccountPage>> {
    let now = clock.now();
    let mut conn = db.connection().await?;
    let devices = store::list_live_for_user(&mut conn, user.user_id(), now).await?;
    let recent = events::recent_for_user(&mut conn, user.user_id(), RECENT_EVENTS).await?;

    let devices = devices
        .into_iter()
        .map(|device| DeviceRow {
            description: device::describe(&device.user_agent),
            kind: if device.kind == "api" { "API token" } else { "Browser" },
            ip: device.ip,
            signed_in: format_time(device.created_at),
            last_active: format_ago(device.last_seen_at, now),
            current: device.public_id == user.session_public_id(),
        })
        .collect();
    let events = recent
        .into_iter()
        .filter_map(|event| {
            let kind = event.kind()?;
            Some(EventRow {
                description: kind.describe(),
                warning: kind.is_warning(),
                when: format_time(event.occurred_at),
                device: device::describe(&event.user_agent),
                ip: event.ip,
                this_device: event.session_public_id == Some(user.session_public_id()),
            })
        })
        .collect();

    Ok(Page(AccountPage {
        nav: Some(Nav::of(user)),
        username: user.username().to_owned(),
        role: user.role().as_str(),
        signed_in_at: format_time(user.signed_in_at()),
        devices,
        events,
    }))
}

pub fn routes() -> Vec<Route> {
    routes![page]
}
