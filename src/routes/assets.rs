//! The stylesheet and the small scripts (the idle warning, local times, pages brought back by
//! Back or Forward, passkeys), compiled into the binary so it runs from anywhere.

use rocket::http::{ContentType, Header};
use rocket::{Responder, Route, get, routes};

#[derive(Responder)]
struct Asset {
    body: &'static str,
    content_type: ContentType,
    cache: Header<'static>,
}

fn asset(body: &'static str, content_type: ContentType) -> Asset {
    Asset {
        body,
        content_type,
        cache: Header::new("Cache-Control", "public, max-age=3600"),
    }
}

#[get("/static/app.css")]
fn stylesheet() -> Asset {
    asset(include_str!("../../static/app.css"), ContentType::CSS)
}

#[get("/static/idle.js")]
fn idle_script() -> Asset {
    asset(
        include_str!("../../static/idle.js"),
        ContentType::JavaScript,
    )
}

#[get("/static/back-forward.js")]
fn back_forward_script() -> Asset {
    asset(
        include_str!("../../static/back-forward.js"),
        ContentType::JavaScript,
    )
}

#[get("/static/local-time.js")]
fn local_time_script() -> Asset {
    asset(
        include_str!("../../static/local-time.js"),
        ContentType::JavaScript,
    )
}

#[get("/static/passkeys.js")]
fn passkeys_script() -> Asset {
    asset(
        include_str!("../../static/passkeys.js"),
        ContentType::JavaScript,
    )
}

pub fn routes() -> Vec<Route> {
    routes![
        stylesheet,
        idle_script,
        back_forward_script,
        local_time_script,
        passkeys_script
    ]
}
