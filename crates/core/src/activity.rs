//! The security activity as the account page shows it: the log's rows read for the device
//! looking at them. Pure, so its rules read in one place (docs/security.md, "The activity log"):
//!
//! - **This device**: an entry caused by the session reading the page, or, for one no session
//!   caused (a failed sign-in, the account's creation), one from its User-Agent and address.
//! - **Warnings** only on what deserves a second look (`EventKind::concern`): detections of a
//!   copy, an administrator's action, always; a new device, a wrong password, a password change,
//!   a device signed out, unless this device did it.
//! - **"This wasn't me"** on entries another device caused whose kind it can help with
//!   (`EventKind::disownable`); never on this device's own.
//! - **Repeats** next to each other (same kind, same device, about the same session) are one
//!   entry with their count and the span of time they took.
//! - **Devices are named**: a device signed out by another says which, and from which.

use std::collections::HashMap;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::device;
use crate::events::{Concern, EventKind, EventRecord};
use crate::session::Aal;

/// The device reading the page.
pub struct Viewer<'a> {
    pub session: Uuid,
    pub user_agent: &'a str,
    pub ip: &'a str,
}

/// One entry of the activity list.
#[derive(Debug)]
pub struct Entry {
    pub description: String,
    pub warning: bool,
    /// Listed first until the owner acts on it (`events::open_flags`).
    pub flagged: bool,
    /// "This wasn't me" is offered.
    pub disown: bool,
    /// The device that caused it ("Chrome on Linux"), and whether it is the one reading.
    pub device: String,
    pub this_device: bool,
    pub ip: String,
    /// How many times it happened, and when the first and the last time was.
    pub count: i64,
    pub first: OffsetDateTime,
    pub last: OffsetDateTime,
    /// A sign-in's entry: the assurance level it reached (`aal1`, `aal2`).
    pub aal: Option<&'static str>,
}

/// What makes two rows next to each other the same entry.
#[derive(PartialEq, Eq)]
struct Key {
    kind: EventKind,
    session: Option<Uuid>,
    actor: Option<Uuid>,
    user_agent: String,
    ip: String,
}

/// The entries for `records` (newest first; the flagged ones, `flagged`, first of all), at most
/// `limit`. `user_agents`: the User-Agent each session the rows are about signed in with.
pub fn entries(
    records: Vec<EventRecord>,
    flagged: &[i64],
    user_agents: &HashMap<Uuid, String>,
    viewer: &Viewer<'_>,
    limit: usize,
) -> Vec<Entry> {
    // One sign-in is one entry: "new device" is said on the sign-in's own entry.
    let new_device_sign_ins: Vec<Uuid> = records
        .iter()
        .filter(|event| event.kind == EventKind::NewDevice)
        .filter_map(|event| event.session_public_id)
        .collect();
    let mut entries: Vec<Entry> = Vec::new();
    let mut last_key: Option<Key> = None;
    for event in records {
        let session = event.session_public_id;
        if event.kind == EventKind::NewDevice && session.is_some() {
            continue;
        }
        let aal = match event.kind {
            EventKind::SignIn => Some(Aal::Aal1.code()),
            EventKind::PasskeySignIn => Some(Aal::Aal2.code()),
            _ => None,
        };
        let kind = match event.kind {
            kind if kind.is_sign_in()
                && session.is_some_and(|id| new_device_sign_ins.contains(&id)) =>
            {
                EventKind::NewDevice
            }
            kind => kind,
        };
        let is_flagged = flagged.contains(&event.id);
        let key = Key {
            kind,
            session,
            actor: event.actor_public_id,
            user_agent: event.user_agent.clone(),
            ip: event.ip.clone(),
        };
        if !is_flagged
            && last_key.as_ref() == Some(&key)
            && let Some(entry) = entries.last_mut()
            && !entry.flagged
        {
            entry.count += i64::from(event.repeats);
            entry.first = event.occurred_at;
            continue;
        }
        if entries.len() == limit {
            break;
        }
        entries.push(entry(&event, kind, aal, is_flagged, user_agents, viewer));
        last_key = Some(key);
    }
    for entry in &mut entries {
        if entry.count > 1 {
            entry.description = format!("{} ({} times)", entry.description, entry.count);
        }
    }
    entries
}

fn entry(
    event: &EventRecord,
    kind: EventKind,
    aal: Option<&'static str>,
    flagged: bool,
    user_agents: &HashMap<Uuid, String>,
    viewer: &Viewer<'_>,
) -> Entry {
    let this_device = match event.acting_device() {
        Some(id) => id == viewer.session,
        None => event.user_agent == viewer.user_agent && event.ip == viewer.ip,
    };
    let device = device::describe(&event.user_agent);
    let actor = if this_device {
        format!("{device} (this device)")
    } else {
        device.clone()
    };
    // The device the entry is about, when another one caused it.
    let subject = event
        .actor_public_id
        .and(event.session_public_id)
        .map(|id| match user_agents.get(&id) {
            Some(user_agent) => device::describe(user_agent),
            None => "A device".to_owned(),
        });
    let description = match (kind, subject) {
        (EventKind::SessionRevoked, Some(subject)) => {
            format!("{subject} was signed out from {actor}")
        }
        (EventKind::SessionLimit, Some(subject)) => {
            format!("{subject} was signed out: too many devices signed in when {actor} signed in")
        }
        (EventKind::SignInFailed, _) if this_device => "Password mistyped when signing in".into(),
        (EventKind::ConfirmFailed, _) if this_device => {
            "Password mistyped when asked to enter it again".into()
        }
        (kind, _) => kind.describe().to_owned(),
    };
    let warning = match kind.concern() {
        Concern::Always => true,
        Concern::UnlessThisDevice => !this_device,
        Concern::Never => false,
    };
    Entry {
        aal,
        description,
        warning,
        flagged,
        disown: !this_device && kind.disownable(),
        device,
        this_device,
        ip: device::describe_ip(&event.ip),
        count: i64::from(event.repeats),
        first: event.occurred_at,
        last: event.occurred_at,
    }
}
