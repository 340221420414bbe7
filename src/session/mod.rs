//! Sessions as the web layer sees them: the core's lifecycle (re-exported whole, so that
//! `session::store` or `session::Reason` reads the same here as in the core) and the request
//! guards that prove a session from a cookie or a bearer token.

pub use secure_sessions_core::session::*;

pub mod bearer;
pub mod cookie;
pub mod guard;
pub mod reaper;

pub use bearer::ApiUser;
pub use guard::{
    AdminRole, AdminUser, AuthenticatedUser, ConfirmationRequired, ConfirmedUser, SessionError,
};
