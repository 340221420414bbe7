//! Checking a password (`/login`, `/api/token`, `/confirm`, the password change): the throttle first, then
//! argon2, and every failure counted and recorded.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::context::RequestContext;
use crate::error::{AppError, AppResult};
use crate::events::{self, EventKind, NewEvent};
use crate::session::AuthenticatedUser;
use crate::throttle::{self, Admission, Attempt, RetryAfter};
use crate::users::hashing::HashingError;
use crate::users::{self, CheckedCredentials, Password, Username};

/// What a sign-in's password check found (`check_password`).
pub enum SignInVerdict {
    /// The right password for an enabled account, as of `credentials.version`. Act on it in a
    /// transaction that also calls `throttle::succeeded(attempt)`, so the account's budget
    /// starts afresh with the new session or token family, and that creates nothing unless the
    /// credentials are still current (`users::store::lock_if_current`: `session::start` and
    /// `api::issue` check it).
    Accepted {
        credentials: CheckedCredentials,
        attempt: Attempt,
    },
    /// A wrong password or an unknown username, whether or not the account is disabled: one
    /// answer for all, so the client never learns which.
    Rejected,
    /// The right password for a disabled account: told so, and what to do, rather than left to
    /// retry until throttled. Only someone who knows the password learns it. The attempt still
    /// counts against the budgets.
    Disabled,
    /// The account's or the address's budget is spent. No password was checked.
    Throttled(RetryAfter),
}

/// What a signed-in user's password re-check found (`check_own_password`,
/// `check_session_password`).
pub enum Verdict {
    /// The right password, as of `credentials.version`. Act on it in a transaction that also
    /// calls `throttle::succeeded(attempt)`, so the session's budget starts afresh with the
    /// action.
    Accepted {
        credentials: CheckedCredentials,
        attempt: Attempt,
    },
    /// A wrong password.
    Rejected,
    /// The session's budget is spent. No password was checked.
    Throttled(RetryAfter),
}

pub async fn check_password(
    ctx: &RequestContext<'_>,
    username: &str,
    password: String,
    now: OffsetDateTime,
) -> AppResult<SignInVerdict> {
    // One canonical form for the throttle and the lookup. Text that cannot be a username names
    // no account: look-alikes and control characters never reach the database as a name.
    let username = Username::parse(username).ok();
    // A place in the hashing queue before anything else: when it is full, the answer is 503 at
    // once, and the attempt costs neither a throttle write nor a place in anyone's budget.
    let admitted = ctx.hasher.admit()?;
    // Before any argon2 work: a flood of guesses costs the server one query each.
    let admission = throttle::begin_sign_in(
        &mut *ctx.connection().await?,
        ctx.config,
        username.as_ref(),
        &ctx.client.ip,
        now,
    )
    .await?;
    let attempt = match admission {
        Admission::Admitted(attempt) => attempt,
        Admission::Throttled(retry_after) => return Ok(SignInVerdict::Throttled(retry_after)),
    };
    // Out-of-range passwords and names are refused before any hashing: they cannot match an
    // account, and their rules are public, so answering them sooner tells nothing.
    let (Ok(password), Some(username)) = (Password::parse(password), username) else {
        return Ok(SignInVerdict::Rejected);
    };

    // The pooled connection is released while argon2 runs, so slow hashing cannot drain the pool.
    let account = users::store::find_credentials(&mut *ctx.connection().await?, &username).await?;
    let stored_hash = account
        .as_ref()
        .map(|account| account.password_hash.clone());
    let password_matches = match admitted.verify(&password, stored_hash).await {
        Ok(matches) => matches,
        Err(unchecked) => return Err(take_back(ctx, attempt, unchecked).await),
    };
    match account {
        Some(account) if password_matches && account.disabled => Ok(SignInVerdict::Disabled),
        Some(account) if password_matches => Ok(SignInVerdict::Accepted {
            credentials: account.checked(),
            attempt,
        }),
        account => {
            // A wrong password and an unknown name do the same work before the answer.
            let account_id = account.map(|account| account.id);
            events::record_sign_in_failure(
                &mut *ctx.connection().await?,
                account_id,
                events::Refused::Password,
                ctx.client,
                now,
            )
            .await?;
            Ok(SignInVerdict::Rejected)
        }
    }
}

/// Re-checks the password of a signed-in user (`/confirm`, the password change), throttled per
/// session: a stolen cookie must not become an unlimited password oracle, and yet neither its
/// guesses nor strangers' failed sign-ins may lock the owner's own session out. A wrong password
/// is recorded as `confirm_failed`.
pub async fn check_own_password(
    ctx: &RequestContext<'_>,
    user: &AuthenticatedUser,
    password: String,
    now: OffsetDateTime,
) -> AppResult<Verdict> {
    let session = SignedIn {
        user_id: user.user_id(),
        session: user.session_public_id(),
    };
    check_session_password(ctx, session, password, now).await
}

/// The session (browser session or API token family) whose owner's password is checked again.
#[derive(Debug, Clone, Copy)]
pub struct SignedIn {
    pub user_id: i64,
    pub session: Uuid,
}

/// `check_own_password` for any signed-in session, browser or API token family (ending devices
/// over the API): the same per-session budget, the same `confirm_failed` record.
pub async fn check_session_password(
    ctx: &RequestContext<'_>,
    signed_in: SignedIn,
    password: String,
    now: OffsetDateTime,
) -> AppResult<Verdict> {
    let admitted = ctx.hasher.admit()?;
    let attempt = match throttle::begin_recheck(
        &mut *ctx.connection().await?,
        ctx.config,
        signed_in.session,
        now,
    )
    .await?
    {
        Admission::Admitted(attempt) => attempt,
        Admission::Throttled(retry_after) => return Ok(Verdict::Throttled(retry_after)),
    };
    let account =
        users::store::find_credentials_by_id(&mut *ctx.connection().await?, signed_in.user_id)
            .await?;
    let stored_hash = account
        .as_ref()
        .map(|account| account.password_hash.clone());
    let matches = match Password::parse(password) {
        Ok(password) => match admitted.verify(&password, stored_hash).await {
            Ok(matches) => matches,
            Err(unchecked) => return Err(take_back(ctx, attempt, unchecked).await),
        },
        Err(_) => false,
    };
    if let Some(account) = account.filter(|_| matches) {
        return Ok(Verdict::Accepted {
            credentials: account.checked(),
            attempt,
        });
    }
    let event = NewEvent::new(
        signed_in.user_id,
        EventKind::ConfirmFailed,
        Some(signed_in.session),
        ctx.client,
    );
    events::record(&mut *ctx.connection().await?, event, now).await?;
    Ok(Verdict::Rejected)
}

/// The server could not check the password (`unchecked`: it is shutting down, or its hashing
/// process is gone): the attempt is taken back from the throttle's budgets, since it taught
/// nothing. The answer stays the hashing error (503), even if taking it back could not be
/// written; then the attempt stays counted, as a wrong password would be.
async fn take_back(
    ctx: &RequestContext<'_>,
    attempt: Attempt,
    unchecked: HashingError,
) -> AppError {
    let taken_back: AppResult<()> = async {
        throttle::not_checked(&mut *ctx.connection().await?, attempt).await?;
        Ok(())
    }
    .await;
    if let Err(error) = taken_back {
        rocket::warn!("an attempt whose password was not checked stays counted: {error}");
    }
    AppError::Hashing(unchecked)
}
