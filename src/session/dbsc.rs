//! Device Bound Session Credentials (DBSC): offering a browser to bind its session to a key it
//! cannot export, binding it, and renewing the bound session's short-lived token when the
//! browser signs a fresh challenge. The HTTP side (headers, status codes, the session
//! configuration) is `routes::dbsc`; the proof format is `proof`.
//!
//! Challenges live in PostgreSQL, so any app instance checks what another issued: the
//! registration challenge on the session row (one on offer at a time, reused by every page of
//! the session while fresh, so a browser that never registers costs a write only now and then),
//! refresh challenges in `dbsc_challenges` (several may be outstanding). Each is accepted once,
//! only while recent, and only for the session it was issued for.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sqlx::{Connection, PgConnection};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::policy::{self, Decision, FingerprintMatch, Lifetimes};
use super::proof::{self, Proof, ProofError};
use super::token::{SessionKey, SessionToken, random_bytes};
use super::{LiveSession, Reason, SessionKind, store};
use crate::client::ClientInfo;
use crate::config::SessionConfig;
use crate::db::PgPool;
use crate::events::{self, EventKind, NewEvent};

/// How long a challenge can be answered. A browser signs within seconds of receiving one.
pub const CHALLENGE_LIFETIME: Duration = Duration::minutes(5);
/// Refresh challenges kept per session: anyone who knows a session's public id can ask for
/// them, so they must not pile up; a few cover a signature arriving after a newer challenge.
const OUTSTANDING_CHALLENGES: i64 = 8;

/// The registration challenge a page of this request offers, set by the session guard and
/// written into `Secure-Session-Registration` by `routes::dbsc::offer_stage`.
pub struct Offer(pub Option<String>);

fn new_challenge() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes())
}

/// A new registration challenge for the session lookup of a page to put on offer, in the same
/// statement, if the session has none fresh (`store::find_with_user`).
pub fn offer_if_stale(now: OffsetDateTime) -> store::OfferIfStale {
    store::OfferIfStale {
        challenge: new_challenge(),
        stale_from: policy::offer_stale_from(CHALLENGE_LIFETIME, now),
    }
}

/// The registration challenge a page of `session` offers: the one on offer while it is fresh
/// (the lookup renewed it if it was not), none once the session is bound.
pub fn offer(session: &LiveSession, now: OffsetDateTime) -> Option<String> {
    if session.is_bound() {
        return None;
    }
    let (challenge, offered_at) = session.dbsc_offer.as_ref()?;
    policy::offer_is_fresh(Some(*offered_at), CHALLENGE_LIFETIME, now).then(|| challenge.clone())
}

/// Why a registration or a refresh was refused. Nothing about the session changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No `Secure-Session-Response` at registration.
    MissingProof,
    Proof(ProofError),
    /// The proof answers a challenge that was not issued for this session, was already used,
    /// or is older than `CHALLENGE_LIFETIME`.
    InvalidChallenge,
    /// The session is bound to a key already: a second key would let a copied cookie take it over.
    AlreadyBound,
    /// Another refresh (or rotation) replaced the token the challenge was issued under: of two
    /// refreshes at once, exactly one wins.
    Conflict,
}

impl Refusal {
    /// What the security log records about a refused proof.
    pub fn describe(&self) -> String {
        match self {
            Refusal::MissingProof => "no proof".to_owned(),
            Refusal::Proof(error) => error.describe(),
            Refusal::InvalidChallenge => "challenge unknown, already used or expired".to_owned(),
            Refusal::AlreadyBound => {
                "registration for a session that is already bound to a key".to_owned()
            }
            Refusal::Conflict => "a concurrent refresh of this session won".to_owned(),
        }
    }
}

/// Records a refused proof in the user's security activity.
async fn record_refusal(
    conn: &mut PgConnection,
    user_id: i64,
    public_id: Uuid,
    refusal: &Refusal,
    client: &ClientInfo,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    if *refusal == Refusal::MissingProof {
        return Ok(()); // no proof, nothing refused: a request that did not follow the protocol
    }
    let event = NewEvent::new(
        user_id,
        EventKind::BindingProofRefused,
        Some(public_id),
        client,
    )
    .detail(refusal.describe());
    events::record(conn, event, now).await
}

pub enum Registered {
    /// Bound: set the session cookie again, now short-lived, and answer the configuration.
    Bound(Uuid),
    /// No live browser session behind the cookie, for this reason.
    Ended(Reason),
    Refused(Refusal),
}

/// Binds the live session whose cookie is `token` to the key in the proof, if the proof is
/// signed by that key over the registration challenge on offer. The token stays: pages already
/// open keep working, and from now on it is refused `bound_cookie_secs` after this moment unless
/// the device refreshes.
///
/// The session is checked as on every request except for the fingerprint: Chromium's
/// registration request carries no `sec-ch-ua`, and the challenge in the proof was shown only on
/// this session's pages, which did pass the fingerprint check.
pub async fn register(
    conn: &mut PgConnection,
    token: Option<&SessionToken>,
    response: Option<&str>,
    client: &ClientInfo,
    config: &SessionConfig,
    now: OffsetDateTime,
) -> sqlx::Result<Registered> {
    let Some(token) = token else {
        return Ok(Registered::Ended(Reason::LoginRequired));
    };
    let key = token.key();
    // A registration is a request of the session like any other: it may write last-seen too.
    let Some(record) = store::find_with_user(
        conn,
        &key,
        &super::browser_touch(config, super::Activity::Person, now),
        None,
    )
    .await?
    else {
        return Ok(Registered::Ended(Reason::LoginRequired));
    };
    if let Some(reason) = record.revoke_reason {
        return Ok(Registered::Ended(reason));
    }
    if record.kind != SessionKind::Browser {
        return Ok(Registered::Ended(Reason::LoginRequired));
    }
    if record.disabled {
        return Ok(Registered::Ended(Reason::Revoked));
    }
    if !policy::bound_token_accepted(record.bound_until, now) {
        return Ok(Registered::Ended(Reason::BoundCookieExpired));
    }
    let lifetimes = Lifetimes {
        created_at: record.created_at,
        last_seen_at: record.last_seen_at,
        expires_at: record.expires_at,
    };
    let same_device = FingerprintMatch {
        bound: true,
        watched: true,
    };
    let role = record.role;
    if let Decision::End(reason) =
        policy::decide(lifetimes, super::limits(config), role, same_device, now)
    {
        super::end(conn, record.user_id, record.public_id, reason, client, now).await?;
        return Ok(Registered::Ended(reason));
    }

    let refusal = 'refused: {
        if record.bound_until.is_some() {
            break 'refused Refusal::AlreadyBound;
        }
        let Some(response) = response else {
            break 'refused Refusal::MissingProof;
        };
        let proof = match Proof::parse(response) {
            Ok(proof) => proof,
            Err(error) => break 'refused Refusal::Proof(error),
        };
        let Some(device_key) = proof.jwk else {
            break 'refused Refusal::Proof(ProofError::Malformed("no jwk at registration"));
        };
        if let Err(error) = proof.verify(&device_key) {
            break 'refused Refusal::Proof(error);
        }
        let mut tx = conn.begin().await?;
        let binding = store::Binding {
            challenge: &proof.challenge,
            offered_after: now - CHALLENGE_LIFETIME,
            public_key: &proof::key_bytes(&device_key),
            // The CSRF token the session's pages already carry: it stays while refreshes rotate the token.
            csrf: &token.csrf_bytes(),
            bound_until: now + config.bound_cookie_lifetime(),
        };
        if !store::bind(&mut tx, &key, &binding).await? {
            break 'refused Refusal::InvalidChallenge;
        }
        let event = NewEvent::new(
            record.user_id,
            EventKind::SessionBound,
            Some(record.public_id),
            client,
        )
        .detail(format!("key thumbprint {}", proof::thumbprint(&device_key)));
        events::record(&mut tx, event, now).await?;
        tx.commit().await?;
        return Ok(Registered::Bound(record.public_id));
    };
    record_refusal(
        conn,
        record.user_id,
        record.public_id,
        &refusal,
        client,
        now,
    )
    .await?;
    Ok(Registered::Refused(refusal))
}

pub enum Refreshed {
    /// No proof came: the device must sign this challenge and try again.
    Challenge(String),
    /// A new token for the session, its predecessor dead: set it as the bound cookie.
    Renewed(SessionToken),
    /// The session has ended, for this reason (`None`: no bound session has this id): the
    /// device must drop its DBSC session.
    Ended(Option<Reason>),
    /// Refused; for a challenge that cannot be used, a fresh one to sign instead.
    Refused {
        refusal: Refusal,
        challenge: Option<String>,
    },
}

/// A refresh challenge for the session, valid for replacing its current token `key` only.
async fn issue_challenge(
    conn: &mut PgConnection,
    session: Uuid,
    key: &SessionKey,
    now: OffsetDateTime,
) -> sqlx::Result<String> {
    let challenge = new_challenge();
    store::insert_dbsc_challenge(conn, session, key, &challenge, OUTSTANDING_CHALLENGES, now)
        .await?;
    Ok(challenge)
}

/// A refresh of the bound session `public_id`: with no proof, a challenge; with a proof signed
/// by the session's key over an unused, recent challenge issued for it, a new token (the old one
/// dies in the same transaction). The session's lifetimes are checked as on every request.
pub async fn refresh(
    conn: &mut PgConnection,
    public_id: Uuid,
    response: Option<&str>,
    client: &ClientInfo,
    config: &SessionConfig,
    now: OffsetDateTime,
) -> sqlx::Result<Refreshed> {
    let Some(record) = store::find_by_public_id(conn, public_id).await? else {
        return Ok(Refreshed::Ended(None));
    };
    let (Some(public_key), Some(key)) = (
        record.dbsc_key.as_deref().and_then(proof::key_from_bytes),
        SessionKey::from_stored(&record.key),
    ) else {
        return Ok(Refreshed::Ended(None)); // never bound (an API family has no key either)
    };
    if let Some(reason) = record.revoke_reason {
        return Ok(Refreshed::Ended(Some(reason)));
    }
    if record.disabled {
        return Ok(Refreshed::Ended(Some(Reason::Revoked)));
    }
    // Idle and absolute timeouts apply as on any request. The fingerprint does not: the proof of
    // the device's key is stronger evidence of the same device, and the browser's refresh
    // request need not carry the headers its pages do.
    let lifetimes = Lifetimes {
        created_at: record.created_at,
        last_seen_at: record.last_seen_at,
        expires_at: record.expires_at,
    };
    let same_device = FingerprintMatch {
        bound: true,
        watched: true,
    };
    let role = record.role;
    if let Decision::End(reason) =
        policy::decide(lifetimes, super::limits(config), role, same_device, now)
    {
        super::end(conn, record.user_id, public_id, reason, client, now).await?;
        return Ok(Refreshed::Ended(Some(reason)));
    }
    let Some(response) = response else {
        return Ok(Refreshed::Challenge(
            issue_challenge(conn, public_id, &key, now).await?,
        ));
    };

    let refusal = 'refused: {
        let proof = match Proof::parse(response) {
            Ok(proof) => proof,
            Err(error) => break 'refused Refusal::Proof(error),
        };
        // Always the stored key: a key in the proof's header is not trusted at refresh.
        if let Err(error) = proof.verify(&public_key) {
            break 'refused Refusal::Proof(error);
        }
        let mut tx = conn.begin().await?;
        let issued_under = store::take_dbsc_challenge(
            &mut tx,
            public_id,
            &proof.challenge,
            now - CHALLENGE_LIFETIME,
        )
        .await?;
        let Some(issued_under) = issued_under else {
            break 'refused Refusal::InvalidChallenge;
        };
        let token = SessionToken::generate();
        // Only the token the challenge was issued under is replaced: of refreshes answering
        // challenges issued together, exactly one wins, however their requests interleave.
        if !store::rotate_bound(
            &mut tx,
            &issued_under,
            &token.key(),
            now + config.bound_cookie_lifetime(),
        )
        .await?
        {
            break 'refused Refusal::Conflict;
        }
        tx.commit().await?;
        return Ok(Refreshed::Renewed(token));
    };
    record_refusal(conn, record.user_id, public_id, &refusal, client, now).await?;
    let challenge = match refusal {
        Refusal::InvalidChallenge => Some(issue_challenge(conn, public_id, &key, now).await?),
        _ => None,
    };
    Ok(Refreshed::Refused { refusal, challenge })
}

/// Deletes refresh challenges too old to be answered (the reaper's job).
pub async fn forget_old_challenges(pool: &PgPool, now: OffsetDateTime) -> sqlx::Result<u64> {
    store::reap_dbsc_challenges(&mut *pool.acquire().await?, now - CHALLENGE_LIFETIME).await
}
