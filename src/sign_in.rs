//! Checking a username and password for `/login` and `/api/token`: the throttle first, then
//! argon2, and every failure counted and recorded.

use time::OffsetDateTime;

use crate::client::ClientInfo;
use crate::config::SessionConfig;
use crate::db::Db;
use crate::error::AppResult;
use crate::events::{self, EventKind, NewEvent};
use crate::throttle::{self, Admission, Attempt, RetryAfter};
use crate::users::{self, Password, PasswordHasher};

pub enum Verdict {
    /// The right password for an enabled account. Act on it in a transaction that also calls
    /// `throttle::succeeded(attempt)`, so the account's failure count resets with the sign-in.
    Accepted { user_id: i64, attempt: Attempt },
    /// A wrong password, an unknown username or a disabled account: one answer for all, so the
    /// client never learns which.
    Rejected,
    /// Too many recent failures for this account or address; no password was checked.
    Throttled(RetryAfter),
}

pub async fn check_password(
    db: &Db,
    hasher: &PasswordHasher,
    config: &SessionConfig,
    username: &str,
    password: String,
    client: &ClientInfo,
    now: OffsetDateTime,
) -> AppResult<Verdict> {
    // Before any argon2 work: a flood of guesses costs the server one query each.
    let attempt = match throttle::begin(&mut *db.connection().await?, config, username, &client.ip, now).await? {
        Admission::Admitted(attempt) => attempt,
        Admission::Throttled(retry_after) => return Ok(Verdict::Throttled(retry_after)),
    };
    // Out-of-range passwords are refused before any hashing: they cannot match a stored one.
    let Ok(password) = Password::parse(password) else {
        return Ok(Verdict::Rejected);
    };

    // The pooled connection is released while argon2 runs, so slow hashing cannot drain the pool.
    let account = users::store::find_credentials(&mut *db.connection().await?, username).await?;
    let stored_hash = account.as_ref().map(|account| account.password_hash.clone());
    let password_matches = hasher.verify(&password, stored_hash).await?;
    match account {
        Some(account) if password_matches && !account.disabled => {
            Ok(Verdict::Accepted { user_id: account.id, attempt })
        }
        Some(account) => {
            let event = NewEvent::new(account.id, EventKind::SignInFailed, None, client);
            events::record(&mut *db.connection().await?, event, now).await?;
            Ok(Verdict::Rejected)
        }
        None => Ok(Verdict::Rejected),
    }
}
