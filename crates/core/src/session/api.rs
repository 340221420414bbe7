//! API token families: the lifecycle verbs (issue, refresh, validate, end) for clients that are not browsers.
//!
//! A family is one `sessions` row of kind `api`, so it is listed and revoked on `/account` like any
//! device, and every "end all sessions of this user" ends it too. The row's key is the hash of the
//! current access token; the refresh tokens are kept (hashed) in `refresh_tokens`. Fingerprints are
//! stored for the record but not checked: API clients have no browser to bind to.

use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use super::SessionKind;
use super::reason::Reason;
use super::store;
use super::token::SessionToken;
use crate::client::ClientInfo;
use crate::config::SessionConfig;
use crate::events::{self, EventKind, NewEvent};
use crate::users::{self, CheckedCredentials, Role};

/// A new access and refresh token. They reach the client once, in the response body; the
/// database keeps only their hashes.
pub struct TokenPair {
    pub access_token: SessionToken,
    pub refresh_token: SessionToken,
    pub access_expires_at: OffsetDateTime,
}

impl TokenPair {
    fn generate(
        now: OffsetDateTime,
        family_expires_at: OffsetDateTime,
        config: &SessionConfig,
    ) -> Self {
        TokenPair {
            access_token: SessionToken::generate(),
            refresh_token: SessionToken::generate(),
            // Never past the family's absolute expiry, so `expires_in` tells the truth.
            access_expires_at: (now + config.access_token_lifetime()).min(family_expires_at),
        }
    }
}

/// A family whose access token passed every check on this request.
#[derive(Debug)]
pub struct ApiSession {
    pub public_id: Uuid,
    pub user_id: i64,
    pub username: String,
    pub role: Role,
}

pub enum Refreshed {
    /// The presented refresh token is spent; these replace it and its access token.
    Rotated(TokenPair),
    /// Unknown, already used (the family is now ended), ended, expired, or beaten by a
    /// concurrent refresh: the client must sign in again.
    Refused,
}

/// When a family signed in at `created_at` with absolute expiry `expires_at` ends for an account
/// whose role is `role` now: an administrator's within `admin_absolute_timeout_secs` of sign-in.
fn family_expiry(
    config: &SessionConfig,
    role: Role,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> OffsetDateTime {
    // A token family is signed in with a password: aal1, whose expiry is the one written.
    super::limits(config).absolute_expiry(role, super::Aal::Aal1, created_at, expires_at)
}

/// Starts a family for a user who has just proved who they are, inside the caller's transaction.
///
/// `None`, with nothing written: the credentials checked are no longer current (the password
/// changed, the account was disabled or signed out everywhere since the check), and the caller
/// must refuse. Otherwise holds the user's row lock until the caller commits, like a browser
/// sign-in, and ends the least recently used families beyond `max_api_families_per_user`: a flood
/// of correct-password sign-ins cannot pile up live token families.
pub async fn issue(
    tx: &mut PgConnection,
    credentials: CheckedCredentials,
    client: &ClientInfo,
    config: &SessionConfig,
    now: OffsetDateTime,
) -> sqlx::Result<Option<TokenPair>> {
    let Some(role) = users::store::lock_if_current(tx, credentials).await? else {
        return Ok(None);
    };
    let user_id = credentials.user_id;
    // The same judgement as a browser's sign-in: a guesser who got the password may use either.
    let news = super::sign_in_news(tx, user_id, client, config, now).await?;
    // The refresh lifetime is the family's absolute expiry: refreshing never extends it. An
    // administrator's family lives no longer than an administrator's browser session.
    let expires_at = family_expiry(config, role, now, now + config.refresh_token_lifetime());
    let pair = TokenPair::generate(now, expires_at, config);
    let family = store::insert(
        tx,
        &store::NewSession {
            key: &pair.access_token.key(),
            user_id,
            kind: store::NewKind::Api {
                access_expires_at: pair.access_expires_at,
            },
            now,
            expires_at,
            fingerprint: &client.fingerprint,
            ip: &client.ip,
            user_agent: &client.user_agent,
            // A token family is issued for a password.
            aal: super::Aal::Aal1,
        },
    )
    .await?;
    store::insert_refresh_token(tx, &pair.refresh_token.key(), family, 0, now).await?;
    events::record(
        tx,
        NewEvent::new(user_id, EventKind::ApiTokenIssued, Some(family), client),
        now,
    )
    .await?;
    // A new app is announced by `api_token_issued` itself; only the flag is added.
    news.flag(tx, user_id, family, client, now).await?;
    // The newest family wins, as at the browser cap: the least recently used beyond it end now.
    let cap = i64::from(config.max_api_families_per_user);
    for evicted in store::revoke_beyond_cap(tx, user_id, SessionKind::Api, cap, now).await? {
        let event =
            NewEvent::new(user_id, EventKind::SessionLimit, Some(evicted), client).by(family);
        events::record(tx, event, now).await?;
    }
    Ok(Some(pair))
}

/// Trades a refresh token for a new pair, in one transaction. A token presented a second time
/// ends its whole family: two parties hold it, and the server cannot tell the owner from the thief.
///
/// Routine refreshes write no security event: a client refreshes every few minutes, and the
/// account page would show nothing else.
pub async fn refresh(
    conn: &mut PgConnection,
    presented: &SessionToken,
    client: &ClientInfo,
    config: &SessionConfig,
    now: OffsetDateTime,
) -> sqlx::Result<Refreshed> {
    let presented_key = presented.key();
    // A refusal that writes nothing just returns: dropping `tx` rolls it back.
    let mut tx = conn.begin().await?;
    // Refreshes within one access token's lifetime: a client needs about one.
    let since = now - config.access_token_lifetime();
    let Some(token) = store::find_refresh_token(&mut tx, &presented_key, since).await? else {
        return Ok(Refreshed::Refused);
    };
    if token.used_at.is_some() {
        // Single use: presented again, it is in two hands.
        let ended = store::revoke_by_id(&mut tx, token.family, Reason::Revoked, now)
            .await?
            .is_some();
        if ended {
            let event = NewEvent::new(
                token.user_id,
                EventKind::ApiTokenRefreshReuse,
                Some(token.family),
                client,
            );
            events::record(&mut tx, event, now).await?;
        }
        tx.commit().await?;
        if ended {
            log::warn!(
                "API token family ended: refresh token {} was used twice",
                presented_key.log_id()
            );
        }
        return Ok(Refreshed::Refused);
    }
    // The role as read by this very statement: a promotion shortens the family from now on.
    let expires_at = family_expiry(config, token.role, token.created_at, token.expires_at);
    if token.revoked || token.disabled || now >= expires_at {
        return Ok(Refreshed::Refused);
    }
    if token.recent_refreshes >= i64::from(config.max_refreshes_per_access_lifetime) {
        // Far faster than any client needs: a loop, or a stolen refresh token raced against the
        // owner's. The family ends, as at reuse.
        let ended = store::revoke_by_id(&mut tx, token.family, Reason::Revoked, now)
            .await?
            .is_some();
        if ended {
            let event = NewEvent::new(
                token.user_id,
                EventKind::ApiRefreshTooFast,
                Some(token.family),
                client,
            )
            .detail(format!(
                "{} refreshes within {} seconds",
                token.recent_refreshes + 1,
                config.access_token_secs()
            ));
            events::record(&mut tx, event, now).await?;
        }
        tx.commit().await?;
        if ended {
            log::warn!(
                "API token family ended: refreshed too often (refresh token {})",
                presented_key.log_id()
            );
        }
        return Ok(Refreshed::Refused);
    }

    let pair = TokenPair::generate(now, expires_at, config);
    // The compare-and-swap on the generation: of any number of concurrent refreshes with this
    // token, exactly one moves the family on; the others change nothing and are refused.
    let advanced = store::advance_api_family(
        &mut tx,
        token.family,
        token.generation,
        &pair.access_token.key(),
        pair.access_expires_at,
        expires_at,
        now,
    )
    .await?;
    if !advanced {
        return Ok(Refreshed::Refused);
    }
    store::mark_refresh_token_used(&mut tx, &presented_key, now).await?;
    store::insert_refresh_token(
        &mut tx,
        &pair.refresh_token.key(),
        token.family,
        token.generation + 1,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Refreshed::Rotated(pair))
}

/// The live family a presented access token belongs to; `None` for a token that is unknown,
/// replaced by a refresh, past its 15 minutes or its family's expiry, revoked, or whose account
/// is disabled.
pub async fn validate(
    conn: &mut PgConnection,
    access_token: &SessionToken,
    config: &SessionConfig,
    now: OffsetDateTime,
) -> sqlx::Result<Option<ApiSession>> {
    let key = access_token.key();
    // "Last active" on the device list, written at most once per touch interval like a browser's.
    let touch = store::Touch {
        kind: SessionKind::Api,
        now,
        seen_before: now - config.touch_interval(),
        seen_after: None,
        // Token families have lifetimes of their own (`access_token_secs`, `refresh_token_secs`).
        aal2: None,
        admin: None,
    };
    // A second look only when the first one's write lost a race, as for browser sessions.
    for _ in 0..2 {
        let Some(record) = store::find_with_user(conn, &key).await? else {
            return Ok(None);
        };
        let live = record.kind == SessionKind::Api
            && record.revoke_reason.is_none()
            && !record.disabled
            && now < record.expires_at
            && record
                .access_expires_at
                .is_some_and(|access_expires_at| now < access_expires_at);
        if !live {
            return Ok(None);
        }
        // Due but not written: the family was refreshed, ended or touched meanwhile.
        if now - record.last_seen_at >= config.touch_interval()
            && !store::touch(conn, &key, &touch).await?
        {
            continue;
        }
        return Ok(Some(ApiSession {
            public_id: record.public_id,
            user_id: record.user_id,
            username: record.username,
            role: record.role,
        }));
    }
    Ok(None)
}

/// Ends a family at its client's request (`/api/logout`) and records it, in one transaction.
/// Ending an already ended family changes nothing and records nothing.
pub async fn end(
    conn: &mut PgConnection,
    session: &ApiSession,
    client: &ClientInfo,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let mut tx = conn.begin().await?;
    let ended = store::revoke_by_id(&mut tx, session.public_id, Reason::SignedOut, now)
        .await?
        .is_some();
    if ended {
        let event = NewEvent::new(
            session.user_id,
            EventKind::ApiSignOut,
            Some(session.public_id),
            client,
        );
        events::record(&mut tx, event, now).await?;
    }
    tx.commit().await?;
    Ok(ended)
}
