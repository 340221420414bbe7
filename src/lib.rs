//! secure-sessions: a reference implementation of secure browser sessions on PostgreSQL.

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
pub mod routes;
pub mod session;
pub mod sign_in;
pub mod test_hooks;
pub mod throttle;
pub mod users;
