//! `RequestContext`: what every handler carries together (settings, clock, hasher, client,
//! database), as one request guard.

use rocket::Request;
use rocket::request::{FromRequest, Outcome};
use rocket_db_pools::Database;
use time::OffsetDateTime;

use crate::client::ClientInfo;
use crate::clock::AppClock;
use crate::config::SessionConfig;
use crate::db::{Db, PooledConnection};
use crate::error::AppError;
use crate::users::PasswordHasher;

/// The app's state and the facts about this request's client, in one guard: a handler names
/// its proof (`&AuthenticatedUser`, `ConfirmedUser`, ...) and its form, then this.
pub struct RequestContext<'r> {
    pub config: &'r SessionConfig,
    pub client: &'r ClientInfo,
    pub hasher: &'r PasswordHasher,
    clock: &'r AppClock,
    db: &'r Db,
}

impl RequestContext<'_> {
    /// The current time, from the app's clock (the test clock in tests): read it once per
    /// request and pass it on, so one decision sees one instant.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// One pooled connection, taken when the handler needs it: after the request's body has been
    /// read (a request guard would hold it while a slow client sends the body) and never across
    /// argon2 (a sign-in flood would drain the pool). Not getting one is a 503.
    pub async fn connection(&self) -> Result<PooledConnection, AppError> {
        self.db.connection().await
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for RequestContext<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let rocket = request.rocket();
        let config = rocket
            .state::<SessionConfig>()
            .expect("session settings are managed at ignite");
        Outcome::Success(RequestContext {
            config,
            client: client_info(request, config),
            hasher: rocket
                .state::<PasswordHasher>()
                .expect("the password hasher is managed at ignite"),
            clock: rocket
                .state::<AppClock>()
                .expect("the clock is managed at ignite"),
            db: Db::fetch(rocket).expect("the database is attached at ignite"),
        })
    }
}

/// What the request says of its client, read once per request.
pub fn client_info<'r>(request: &'r Request<'_>, config: &SessionConfig) -> &'r ClientInfo {
    request.local_cache(|| {
        let header = |name: &str| request.headers().get(name).collect::<Vec<_>>().join("\n");
        ClientInfo::new(request.client_ip(), header, config)
    })
}
