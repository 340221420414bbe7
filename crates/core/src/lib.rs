//! The core of secure-sessions: what a session is and when it ends, the accounts it belongs to,
//! and the SQL that keeps both. It knows nothing of HTTP or Rocket; the web layer (the
//! `secure-sessions` crate) turns requests into calls on it, and the compiler keeps it that way:
//! this crate cannot name anything up there.
//!
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
//! Two modules talk to the outside world and have their own errors: [`db`] (the connection
//! pool, whose failures are a [`db::PoolError`], and the migrations) and [`users::hashing`]
//! (argon2 on threads of its own, off the async workers).

pub mod activity;
pub mod client;
pub mod clock;
pub mod codes;
pub mod config;
pub mod db;
pub mod device;
pub mod events;
pub mod passkeys;
pub mod session;
pub mod throttle;
pub mod users;
