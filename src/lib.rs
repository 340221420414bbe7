//! secure-sessions: a reference implementation of secure browser sessions on PostgreSQL.
//!
//! The modules form three layers; each imports only from its own layer and those below it.
//!
//! **The core** knows nothing of HTTP or Rocket: what a session is and when it ends, and the
//! SQL that keeps it.
//! - [`session`]: the lifecycle verbs (start, validate, rotate, end) in the module itself, the
//!   pure decisions in [`session::policy`], every session statement in [`session::store`], the
//!   secret in [`session::token`], API token families in [`session::api`], device-bound
//!   sessions in [`session::dbsc`] and [`session::proof`], the fingerprint in
//!   [`session::fingerprint`].
//! - [`users`]: usernames, passwords and roles, and their SQL; [`throttle`]: the sign-in and
//!   confirmation budgets; [`events`]: the security activity log, and [`activity`]: how it reads
//!   to the person looking at it (warnings, repeats, device names); [`passkeys`]: the account's
//!   passkeys and their ceremonies.
//! - [`clock`]: the one source of time, which tests move; [`config`]: the `[sessions]`
//!   settings; [`client`], [`device`], [`codes`]: what a request's client is, in words, and
//!   enums stored as text codes.
//!
//! **Infrastructure** talks to the outside world and has its own errors: [`db`] (the
//! connection pool, whose failures are a [`db::PoolError`], and the migrations) and
//! [`users::hashing`] (argon2 off the async workers).
//!
//! **The web layer** turns requests into calls on the core: [`app`] assembles Rocket;
//! [`context::RequestContext`] hands a handler its settings, clock, hasher, client and
//! database; [`session::guard`], [`session::bearer`] and [`session::cookie`] prove a session
//! from a request; [`csrf`] makes a checked form a type; [`error::AppError`] is every failure
//! as a response; [`routes`] holds one module per page, [`html`] and [`notice`] what pages
//! share; [`sign_in`] puts the throttle before argon2; [`test_mode`] is the `/__test/` API
//! end-to-end suites drive, off by default.

pub mod activity;
pub mod app;
pub mod client;
pub mod clock;
pub mod codes;
pub mod config;
pub mod context;
pub mod csrf;
pub mod db;
pub mod demo;
pub mod device;
pub mod error;
pub mod events;
pub mod fetch_metadata;
pub mod headers;
pub mod html;
pub mod local_path;
pub mod notice;
pub mod passkeys;
pub mod routes;
pub mod session;
pub mod sign_in;
pub mod test_mode;
pub mod throttle;
pub mod users;
