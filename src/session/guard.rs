//! Request guards: an `&AuthenticatedUser` in a handler's arguments is proof of a live session.

use rocket::Request;
use rocket::http::{Method, Status};
use rocket::outcome::try_outcome;
use rocket::request::{FromRequest, Outcome};
use rocket::response::{self, Responder};
use time::OffsetDateTime;
use uuid::Uuid;

use super::cookie::{cleared_ended_note, cleared_session_cookie, has_ended_note, read_ended_note};
use super::dbsc::{self, Offer};
use super::token::{SessionToken, encode_csrf};
use super::{Aal, Activity, LiveSession, Reason, Superseded, Validated, policy};
use crate::client::ClientInfo;
use crate::clock::AppClock;
use crate::config::{SessionConfig, StepUp};
use crate::context;
use crate::db::Db;
use crate::error::AppError;
use crate::fetch_metadata;
use crate::passkeys;
use crate::users::Role;
use rocket_db_pools::Database;
use sqlx::PgConnection;

/// A signed-in user and the session that proves it. Only `FromRequest` builds one.
pub struct AuthenticatedUser {
    session: Box<LiveSession>,
    csrf_token: String,
    idle: IdleCountdown,
    /// The level of the privileged confirmation ("sudo mode") in force for this request, if one is.
    confirmed: Option<Aal>,
}

/// How long this session has before the idle timeout, as of this request, in whole seconds
/// rounded up: what the page's "Stay signed in" warning counts down from, so its check at zero
/// reaches the server after the deadline, never before.
#[derive(Debug, Clone, Copy)]
pub struct IdleCountdown {
    pub seconds_left: i64,
    pub warning_secs: u32,
}

impl IdleCountdown {
    /// The countdown to the idle `deadline` as of `now`.
    pub fn until(deadline: OffsetDateTime, now: OffsetDateTime, config: &SessionConfig) -> Self {
        IdleCountdown {
            seconds_left: whole_seconds_until(deadline, now),
            warning_secs: config.idle_warning_secs(),
        }
    }
}

impl AuthenticatedUser {
    pub fn user_id(&self) -> i64 {
        self.session.user_id
    }

    pub fn username(&self) -> &str {
        &self.session.username
    }

    pub fn role(&self) -> Role {
        self.session.role
    }

    pub fn session(&self) -> &LiveSession {
        &self.session
    }

    pub fn session_public_id(&self) -> Uuid {
        self.session.public_id
    }

    pub fn signed_in_at(&self) -> OffsetDateTime {
        self.session.created_at
    }

    pub fn is_confirmed(&self) -> bool {
        self.confirmed.is_some()
    }

    /// The session's level now (`Aal`).
    pub fn aal(&self) -> Aal {
        self.session.aal
    }

    /// The level the confirmation before an action that asks for `step_up` must be at, for this
    /// session and account. Whether the account has a passkey is read only when the answer
    /// depends on it (a passkey can only make `aal2` needed): an `aal1` session's pages under
    /// the default settings cost no query for it.
    pub async fn level_needed(
        &self,
        conn: &mut PgConnection,
        step_up: StepUp,
    ) -> sqlx::Result<Aal> {
        if policy::level_needed(step_up, self.aal(), true) == Aal::Aal1 {
            return Ok(Aal::Aal1);
        }
        let has_passkey = passkeys::store::has_passkey(conn, self.user_id()).await?;
        Ok(policy::level_needed(step_up, self.aal(), has_passkey))
    }

    /// Whether the confirmation in force is enough for an action that asks for `step_up`.
    pub async fn confirmed_for(
        &self,
        conn: &mut PgConnection,
        step_up: StepUp,
    ) -> sqlx::Result<bool> {
        if !self.is_confirmed() {
            return Ok(false);
        }
        let needed = self.level_needed(conn, step_up).await?;
        Ok(policy::confirmation_suffices(self.confirmed, needed))
    }

    /// Whether an action that asks for `step_up`, and that a password typed with it would
    /// otherwise confirm (the password change), must first be confirmed with a passkey: it
    /// needs `aal2`, and no confirmation at `aal2` is in force.
    pub async fn needs_passkey_for(
        &self,
        conn: &mut PgConnection,
        step_up: StepUp,
    ) -> sqlx::Result<bool> {
        if self.confirmed == Some(Aal::Aal2) {
            return Ok(false);
        }
        Ok(self.level_needed(conn, step_up).await? == Aal::Aal2)
    }

    pub fn idle_countdown(&self) -> IdleCountdown {
        self.idle
    }

    /// The token this session's forms must carry (`csrf::CsrfForm` checks it).
    pub fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// Why a guard refused.
#[derive(Debug, Clone, Copy)]
pub enum SessionError {
    /// No live session: the 401 catcher sends the visitor to `/login?reason=<code>`.
    Ended(Reason),
    /// The database could not be asked: 503, and the session is left as it is.
    Unavailable,
    /// Signed in, but the action needs a fresh password confirmation: the 403 catcher sends
    /// the visitor to `/confirm`.
    ConfirmationRequired,
    /// Signed in, but not an administrator: 403.
    NotAdmin,
    /// The token the session rotated away from a moment ago (`Validated::Superseded`): 403, and
    /// the new cookie is left alone. The 403 catcher sends a page request to ask again, with the
    /// cookie the rotation set; only a sign-out acts on it (`routes::logout`).
    Superseded(Superseded),
    /// A state-changing request the browser says another site sent (`fetch_metadata`): 403,
    /// refused before the session was looked up.
    CrossSite,
}

/// Why a signed-in request was refused with 403, for the catcher to explain (a CSRF failure
/// sets nothing: `Unspecified`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Unspecified,
    ConfirmationRequired,
    NotAdmin,
    Superseded,
}

impl Refusal {
    pub(crate) fn of(request: &Request<'_>) -> Refusal {
        *request.local_cache(|| Refusal::Unspecified)
    }
}

/// A handler's answer when its action needs a fresh password confirmation: the same 403 the
/// `ConfirmedUser` guard gives, which the catcher turns into a redirect to `/confirm` (or JSON).
/// For handlers that first record what was asked (`pending`), after checking the form's CSRF token.
pub struct ConfirmationRequired;

impl<'r> Responder<'r, 'static> for ConfirmationRequired {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        request.local_cache(|| Refusal::ConfirmationRequired);
        Err(Status::Forbidden)
    }
}

/// Proof of a live session whose owner confirmed (password or passkey) within `confirm_window_secs`.
/// Required to sign other devices out: a stolen cookie alone cannot sign the owner out everywhere.
/// Only its guard builds one (the field is private).
pub struct ConfirmedUser<'r>(&'r AuthenticatedUser);

/// Proof of a confirmed session of a user whose role is `admin` right now (read on this request).
/// Only its guard builds one (the field is private).
pub struct AdminUser<'r>(&'r AuthenticatedUser);

/// Proof of a session, confirmed or not, of a user whose role is `admin` right now: for the
/// admin's actions, which record what was asked (after the form's CSRF check) before asking for
/// the password. `confirmed` turns it into an `AdminUser`. Only its guard builds one.
pub struct AdminRole<'r>(&'r AuthenticatedUser);

impl<'r> ConfirmedUser<'r> {
    pub fn user(&self) -> &'r AuthenticatedUser {
        self.0
    }
}

impl<'r> AdminUser<'r> {
    pub fn user(&self) -> &'r AuthenticatedUser {
        self.0
    }
}

impl<'r> AdminRole<'r> {
    pub fn user(&self) -> &'r AuthenticatedUser {
        self.0
    }

    /// The proof that this admin also confirmed recently, at the level `admin_step_up` asks
    /// for, if they did.
    pub async fn confirmed(
        &self,
        conn: &mut PgConnection,
        config: &SessionConfig,
    ) -> sqlx::Result<Option<AdminUser<'r>>> {
        let confirmed = self.0.confirmed_for(conn, config.admin_step_up).await?;
        Ok(confirmed.then_some(AdminUser(self.0)))
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ConfirmedUser<'r> {
    type Error = SessionError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let user = try_outcome!(request.guard::<&AuthenticatedUser>().await);
        if user.is_confirmed() {
            Outcome::Success(ConfirmedUser(user))
        } else {
            request.local_cache(|| Refusal::ConfirmationRequired);
            Outcome::Error((Status::Forbidden, SessionError::ConfirmationRequired))
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AdminRole<'r> {
    type Error = SessionError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let user = try_outcome!(request.guard::<&AuthenticatedUser>().await);
        if user.role() != Role::Admin {
            request.local_cache(|| Refusal::NotAdmin);
            return Outcome::Error((Status::Forbidden, SessionError::NotAdmin));
        }
        Outcome::Success(AdminRole(user))
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AdminUser<'r> {
    type Error = SessionError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        // The role first: a non-admin is not asked for a password it cannot use here.
        let admin = try_outcome!(request.guard::<AdminRole<'r>>().await);
        try_outcome!(request.guard::<ConfirmedUser<'r>>().await);
        let rocket = request.rocket();
        let config = rocket
            .state::<SessionConfig>()
            .expect("session settings are managed at ignite");
        let db = Db::fetch(rocket).expect("the database is attached at ignite");
        let proof = match db.pool().acquire().await {
            Ok(mut conn) => admin
                .confirmed(&mut conn, config)
                .await
                .map_err(AppError::from),
            Err(error) => Err(AppError::from(error)),
        };
        match proof {
            Ok(Some(admin)) => Outcome::Success(admin),
            // Confirmed, but below the level asked for: `/confirm` asks for the passkey.
            Ok(None) => {
                request.local_cache(|| Refusal::ConfirmationRequired);
                Outcome::Error((Status::Forbidden, SessionError::ConfirmationRequired))
            }
            Err(error) => {
                rocket::warn!("admin step-up check failed: {error}");
                Outcome::Error((Status::ServiceUnavailable, SessionError::Unavailable))
            }
        }
    }
}

/// The outcome of checking this request's session, computed once and cached on the request
/// (the 401 catcher reads it back for the reason code).
pub(crate) enum Check {
    Live(AuthenticatedUser),
    Failed(SessionError),
}

impl Check {
    pub(crate) fn ended_reason(request: &Request<'_>) -> Reason {
        match request.local_cache(|| Check::Failed(SessionError::Ended(Reason::LoginRequired))) {
            Check::Failed(SessionError::Ended(reason)) => *reason,
            _ => Reason::LoginRequired,
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for &'r AuthenticatedUser {
    type Error = SessionError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        outcome(
            request,
            request
                .local_cache_async(check(request, Activity::Person))
                .await,
        )
    }
}

fn outcome<'r>(
    request: &Request<'_>,
    check: &'r Check,
) -> Outcome<&'r AuthenticatedUser, SessionError> {
    match check {
        Check::Live(user) => Outcome::Success(user),
        Check::Failed(error @ SessionError::Ended(_)) => {
            Outcome::Error((Status::Unauthorized, *error))
        }
        Check::Failed(error @ SessionError::Superseded(_)) => {
            request.local_cache(|| Refusal::Superseded);
            Outcome::Error((Status::Forbidden, *error))
        }
        Check::Failed(error @ SessionError::CrossSite) => {
            Outcome::Error((Status::Forbidden, *error))
        }
        Check::Failed(error) => Outcome::Error((Status::ServiceUnavailable, *error)),
    }
}

/// Proof of a live session, checked for a request the page made on its own (the idle warning's
/// check when its countdown reaches zero): it writes no last-seen, so it never keeps the session
/// alive (`Activity::Page`). Only its guard builds one. A route takes this or
/// `&AuthenticatedUser`, never both.
pub struct Unattended<'r>(&'r AuthenticatedUser);

impl<'r> Unattended<'r> {
    pub fn user(&self) -> &'r AuthenticatedUser {
        self.0
    }
}

/// The check of a page's own request, cached apart from the person's (`Check`).
struct PageCheck(Check);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Unattended<'r> {
    type Error = SessionError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let PageCheck(checked) = request
            .local_cache_async(async { PageCheck(check(request, Activity::Page).await) })
            .await;
        outcome(request, checked).map(Unattended)
    }
}

/// Seconds from `now` to `deadline`, rounded up: a countdown that ends on it ends after it.
fn whole_seconds_until(deadline: OffsetDateTime, now: OffsetDateTime) -> i64 {
    let left = deadline - now;
    let rounded_up = left.whole_seconds() + i64::from(left.subsec_nanoseconds() > 0);
    rounded_up.max(0)
}

async fn check(request: &Request<'_>, activity: Activity) -> Check {
    if fetch_metadata::refuses(request) {
        return Check::Failed(SessionError::CrossSite);
    }
    let rocket = request.rocket();
    let config = rocket
        .state::<SessionConfig>()
        .expect("session settings are managed at ignite");
    let cookies = request.cookies();
    let Some(cookie) = cookies.get(&config.cookie_name) else {
        // A device-bound session that ended was noticed by the browser's refresh, which left a
        // note with the reason: the bound cookie itself had already expired.
        let reason = read_ended_note(cookies, config).unwrap_or(Reason::LoginRequired);
        return Check::Failed(SessionError::Ended(reason));
    };
    let Some(token) = SessionToken::parse(cookie.value()) else {
        // Malformed: treated as absent, and cleared so the browser stops sending it.
        cookies.add(cleared_session_cookie(config));
        return Check::Failed(SessionError::Ended(Reason::LoginRequired));
    };
    let db = Db::fetch(rocket).expect("the database is attached at ignite");
    let clock = rocket
        .state::<AppClock>()
        .expect("the clock is managed at ignite");
    let client = context::client_info(request, config);

    let now = clock.now();
    // A page offers the browser to bind this session to a key of its own (DBSC).
    let offers = request.method() == Method::Get && activity == Activity::Person;
    let validated = look_up(db, &token, client, config, activity, offers, now).await;
    match validated {
        Ok((Validated::Live(session), offer)) => {
            let deadline =
                policy::idle_deadline(session.lifetimes(), super::limits(config), session.role);
            let idle = IdleCountdown::until(deadline, now, config);
            // A confirmation written before levels were recorded was a password's.
            let confirmed = session
                .confirmed_until
                .is_some_and(|until| until > now)
                .then(|| session.confirmed_aal.unwrap_or(Aal::Aal1));
            // A bound session keeps its forms' token while DBSC refreshes replace the cookie.
            let csrf_token = session
                .bound_csrf
                .as_deref()
                .map_or_else(|| token.csrf_token(), encode_csrf);
            if has_ended_note(cookies, config) {
                cookies.add(cleared_ended_note(config)); // about an earlier session: stale now
            }
            request.local_cache(|| Offer(offer));
            Check::Live(AuthenticatedUser {
                session,
                csrf_token,
                idle,
                confirmed,
            })
        }
        // Neither signed in nor out: the browser holds the new cookie, or is about to.
        Ok((Validated::Superseded(superseded), _)) => {
            Check::Failed(SessionError::Superseded(superseded))
        }
        Ok((Validated::Ended(reason), _)) => {
            // Kept when the handler runs anyway (an optional guard); the 401 catcher clears it otherwise.
            cookies.add(cleared_session_cookie(config));
            Check::Failed(SessionError::Ended(reason))
        }
        Err(error) => {
            rocket::warn!("session check failed: {error}");
            Check::Failed(SessionError::Unavailable)
        }
    }
}

/// The session's check on one pooled connection, and for a page of a live session the
/// device-binding challenge it offers (`dbsc::offer`).
async fn look_up(
    db: &Db,
    token: &SessionToken,
    client: &ClientInfo,
    config: &SessionConfig,
    activity: Activity,
    offers: bool,
    now: OffsetDateTime,
) -> Result<(Validated, Option<String>), AppError> {
    let mut conn = db.pool().acquire().await?;
    let validated = super::validate(&mut conn, token, client, config, activity, now).await?;
    let offer = match &validated {
        Validated::Live(session) if offers => dbsc::offer(&mut conn, session, now).await?,
        _ => None,
    };
    Ok((validated, offer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;
    use time::macros::datetime;

    #[test]
    fn the_countdown_rounds_up_so_it_ends_after_the_deadline_never_before() {
        let now = datetime!(2026-01-01 08:00 UTC);
        let at = |millis: i64| now + Duration::milliseconds(millis);
        assert_eq!(whole_seconds_until(at(5_000), now), 5);
        assert_eq!(whole_seconds_until(at(4_001), now), 5);
        assert_eq!(whole_seconds_until(at(4_999), now), 5);
        assert_eq!(whole_seconds_until(at(1), now), 1);
        assert_eq!(whole_seconds_until(now, now), 0);
        assert_eq!(whole_seconds_until(at(-1_500), now), 0);
    }
}
