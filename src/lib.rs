//! secure-sessions: a reference implementation of secure browser sessions on PostgreSQL.
//!
//! The app is two crates. **The core** (`secure_sessions_core`, in crates/core) knows nothing of
//! HTTP or Rocket: sessions and their lifecycle, accounts and passwords, throttling, the security
//! activity log, passkeys, the clock, the settings, the connection pool and the password hasher.
//! This crate re-exports its modules under the same names ([`session`], [`users`], [`db`]...), so
//! a handler names `crate::session::store` wherever the code lives.
//!
//! **This crate is the web layer**, which turns requests into calls on the core: [`app`]
//! assembles Rocket; [`context::RequestContext`] hands a handler its settings, clock, hasher,
//! client and database; [`session::guard`], [`session::bearer`] and [`session::cookie`] prove a
//! session from a request, and [`session::reaper`] deletes what has ended; [`db::Db`] plugs the
//! core's pool into Rocket; [`csrf`] makes a checked form a type; [`error::AppError`] is every
//! failure as a response; [`routes`] holds one module per page, [`html`] and [`notice`] what
//! pages share; [`sign_in`] puts the throttle before argon2; [`test_mode`] is the `/__test/` API
//! end-to-end suites drive, off by default.

pub use secure_sessions_core::{
    activity, client, clock, codes, config, device, events, passkeys, throttle, users,
};

pub mod app;
pub mod context;
pub mod csrf;
pub mod db;
pub mod demo;
pub mod error;
pub mod fetch_metadata;
pub mod headers;
pub mod html;
pub mod local_path;
pub mod notice;
pub mod routes;
pub mod session;
pub mod sign_in;
pub mod test_mode;
