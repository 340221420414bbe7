//! `AppError`: the failures (not the expected outcomes) a request can meet, and how each is answered.

use rocket::Request;
use rocket::http::Status;
use rocket::response::{self, Responder};

use crate::csrf::FormRefused;
use crate::db::PoolError;
use crate::users::hashing::HashingError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("the database is unreachable")]
    DatabaseUnavailable(#[source] sqlx::Error),
    #[error("no database connection")]
    NoConnection(#[from] PoolError),
    #[error("database query failed")]
    Database(#[source] sqlx::Error),
    #[error("the session could not be checked: the database is unreachable")]
    SessionCheckFailed,
    #[error(transparent)]
    FormRefused(#[from] FormRefused),
    #[error("template rendering failed")]
    Template(#[from] askama::Error),
    /// Busy (refused at once, with `Retry-After`) and unavailable are 503; a hash argon2
    /// refused (a damaged stored hash) is a 500.
    #[error(transparent)]
    Hashing(#[from] HashingError),
}

/// How many seconds a refused request should wait before it comes back, for the catcher to send
/// as `Retry-After` (a catcher sees only the status, so the responder leaves it in the request's
/// local cache).
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryAfterSecs(pub Option<u64>);

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            // Connection-level failures: the database is down or restarting, not a bug.
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => {
                AppError::DatabaseUnavailable(error)
            }
            sqlx::Error::Database(ref db) if db.code().is_some_and(is_unavailable_sqlstate) => {
                AppError::DatabaseUnavailable(error)
            }
            _ => AppError::Database(error),
        }
    }
}

/// SQLSTATE classes 08 (connection exception) and 57P (operator intervention: shutdown, restart).
fn is_unavailable_sqlstate(code: std::borrow::Cow<'_, str>) -> bool {
    code.starts_with("08") || code.starts_with("57P")
}

impl AppError {
    pub fn status(&self) -> Status {
        match self {
            AppError::DatabaseUnavailable(_)
            | AppError::NoConnection(_)
            | AppError::SessionCheckFailed
            | AppError::Hashing(
                HashingError::Busy { .. } | HashingError::Unavailable | HashingError::ShuttingDown,
            ) => Status::ServiceUnavailable,
            AppError::FormRefused(refused) => refused.status(),
            AppError::Database(_)
            | AppError::Template(_)
            | AppError::Hashing(HashingError::Failed(_)) => Status::InternalServerError,
        }
    }
}

impl<'r> Responder<'r, 'static> for AppError {
    /// Logs the cause chain once, then lets the catcher for the status render a plain page:
    /// the visitor never sees internals.
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        if let AppError::Hashing(HashingError::Busy { retry_after_secs }) = self {
            // Logged once per flood by the hasher, not once per refusal.
            request.local_cache(|| RetryAfterSecs(Some(retry_after_secs.max(1))));
            return Err(self.status());
        }
        if let AppError::Hashing(HashingError::ShuttingDown) = self {
            // Logged once by the hasher, with how many requests it answered so.
            return Err(self.status());
        }
        let mut message = self.to_string();
        let mut source = std::error::Error::source(&self);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        match self.status().code {
            500.. => rocket::error!("{message}"),
            _ => rocket::warn!("{message}"),
        }
        Err(self.status())
    }
}

pub type AppResult<T> = Result<T, AppError>;
