//! Device Bound Session Credentials (DBSC): offering a browser to bind its session to a key it
//! cannot export, binding it, and renewing the bound session's short-lived token when the
//! browser signs a fresh challenge. The HTTP side (headers, status codes, the session
//! configuration) is `routes::dbsc`; the proof format is `proof`.
//!
//! The registration challenge lives on the session row, so any app instance checks what another
//! offered: one on offer at a time, reused by every page of the session while fresh, so a
//! browser that never registers costs a write only now and then. Only the session's own pages
//! (its cookie) reach it.
//!
//! Refresh challenges are asked for with nothing but the session's public id, which every
//! device of the account sees: a stranger can ask too, at any rate. So they are not stored
//! (`RefreshChallenge`): each carries its issue time and a MAC, with a key in PostgreSQL, over
//! that time, a nonce, the session and the token it was issued under. Asking writes nothing,
//! and no number of challenges issued to others can make the owner's stop working. Each is
//! accepted only while recent, only for its session, and once: the refresh that accepts it
//! replaces the token it names, under the session row's lock.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::{Connection, PgConnection};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::policy::{self, Decision, FingerprintMatch, Lifetimes};
use super::proof::{self, Proof, ProofError};
use super::token::{SessionKey, SessionToken, random_bytes};
use super::{LiveSession, Reason, SessionKind, store};
use crate::client::ClientInfo;
use crate::config::SessionConfig;
use crate::events::{self, EventKind, NewEvent};

/// How long a challenge can be answered. A browser signs within seconds of receiving one.
pub const CHALLENGE_LIFETIME: Duration = Duration::minutes(5);
/// Refused proofs of one session are one activity entry per this long, with their count: anyone
/// who knows a session's public id can send them, as fast as they like.
pub const REFUSALS_COUNTED_PER: Duration = Duration::hours(1);

/// The registration challenge a page of this request offers, set by the session guard and
/// written into `Secure-Session-Registration` by `routes::dbsc::offer_stage`.
pub struct Offer(pub Option<String>);

fn new_challenge() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes())
}

/// The registration challenge a page of `session` offers: the one on offer while it is fresh,
/// else a new one put on offer now (a write only now and then); none once the session is bound,
/// nor when a concurrent page renewed the offer first (a challenge that lost cannot bind).
pub async fn offer(
    conn: &mut PgConnection,
    session: &LiveSession,
    now: OffsetDateTime,
) -> sqlx::Result<Option<String>> {
    if session.is_bound() {
        return Ok(None);
    }
    if let Some((challenge, offered_at)) = &session.dbsc_offer
        && policy::offer_is_fresh(Some(*offered_at), CHALLENGE_LIFETIME, now)
    {
        return Ok(Some(challenge.clone()));
    }
    let stale_from = policy::offer_stale_from(CHALLENGE_LIFETIME, now);
    store::offer_challenge(conn, &session.key, &new_challenge(), stale_from, now).await
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
}

impl Refusal {
    /// What the security log records about a refused proof.
    pub fn describe(&self) -> String {
        match self {
            Refusal::MissingProof => "no proof".to_owned(),
            Refusal::Proof(error) => error.describe(),
            Refusal::InvalidChallenge => {
                "challenge not issued for this session's current token, or expired".to_owned()
            }
            Refusal::AlreadyBound => {
                "registration for a session that is already bound to a key".to_owned()
            }
        }
    }
}

/// Records a refused proof in the user's security activity: counted, one entry per session and
/// `REFUSALS_COUNTED_PER`.
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
    events::record_counted(conn, event, REFUSALS_COUNTED_PER, now).await
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
    let Some(record) = store::find_with_user(conn, &key).await? else {
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
        aal: record.aal,
    };
    let same_device = FingerprintMatch {
        bound: true,
        watched: true,
    };
    let role = record.role;
    match policy::decide(lifetimes, super::limits(config), role, same_device, now) {
        Decision::End(reason) => {
            super::end(conn, record.user_id, record.public_id, reason, client, now).await?;
            return Ok(Registered::Ended(reason));
        }
        // A registration is a request of the session like any other: it writes last-seen too.
        Decision::Continue { touch: true, .. } => {
            store::touch(conn, &key, &super::browser_touch(config, now)).await?;
        }
        Decision::Continue { touch: false, .. } => {}
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

/// A refresh challenge: `base64url(issued_at || nonce || tag)`, the issue time in whole Unix
/// seconds (8 bytes, big-endian), 16 random bytes, and the HMAC-SHA256 `tag` over both, the
/// session's public id and the key of the token it was issued under. Nothing is stored: the tag
/// proves this server issued it for that session and token, the time how old it is.
struct RefreshChallenge;

const NONCE_BYTES: usize = 16;
const TAG_BYTES: usize = 32;
const CHALLENGE_BYTES: usize = 8 + NONCE_BYTES + TAG_BYTES;
/// Domain separation: the key signs nothing else, but a tag must never be read as another's.
const CHALLENGE_LABEL: &[u8] = b"secure-sessions DBSC refresh challenge v1";

impl RefreshChallenge {
    fn tag(
        mac_key: &[u8],
        session: Uuid,
        key: &SessionKey,
        issued_at: [u8; 8],
        nonce: &[u8],
    ) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(mac_key).expect("HMAC takes any key length");
        // Every part has a fixed length, so their concatenation reads one way only.
        let parts: [&[u8]; 5] = [
            CHALLENGE_LABEL,
            session.as_bytes(),
            key.as_bytes(),
            &issued_at,
            nonce,
        ];
        for part in parts {
            mac.update(part);
        }
        mac
    }

    fn issue(mac_key: &[u8], session: Uuid, key: &SessionKey, now: OffsetDateTime) -> String {
        let issued_at = now.unix_timestamp().to_be_bytes();
        let random = random_bytes();
        let nonce = &random[..NONCE_BYTES];
        let tag = Self::tag(mac_key, session, key, issued_at, nonce).finalize();
        let mut challenge = Vec::with_capacity(CHALLENGE_BYTES);
        challenge.extend_from_slice(&issued_at);
        challenge.extend_from_slice(nonce);
        challenge.extend_from_slice(&tag.into_bytes());
        URL_SAFE_NO_PAD.encode(challenge)
    }

    /// Whether `challenge` was issued for `session` under its token `key`, less than
    /// `CHALLENGE_LIFETIME` before `now`. The tag is compared in constant time.
    fn accepts(
        challenge: &str,
        mac_key: &[u8],
        session: Uuid,
        key: &SessionKey,
        now: OffsetDateTime,
    ) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(challenge) else {
            return false;
        };
        if bytes.len() != CHALLENGE_BYTES {
            return false;
        }
        let (issued_at, rest) = bytes.split_at(8);
        let (nonce, tag) = rest.split_at(NONCE_BYTES);
        let issued_at: [u8; 8] = issued_at.try_into().expect("split at 8");
        if Self::tag(mac_key, session, key, issued_at, nonce)
            .verify_slice(tag)
            .is_err()
        {
            return false;
        }
        let issued_at = OffsetDateTime::from_unix_timestamp(i64::from_be_bytes(issued_at));
        issued_at.is_ok_and(|issued_at| issued_at > now - CHALLENGE_LIFETIME)
    }
}

/// The key refresh challenges are signed with, made on first use.
async fn challenge_key(conn: &mut PgConnection, stored: Option<Vec<u8>>) -> sqlx::Result<Vec<u8>> {
    match stored {
        Some(key) => Ok(key),
        None => store::create_dbsc_challenge_key(conn, &random_bytes()).await,
    }
}

/// A refresh of the bound session `public_id`: with no proof, a challenge; with a proof signed
/// by the session's key over a recent challenge issued for it under its current token, a new
/// token (the old one dies in the same transaction, and every challenge issued under it with
/// it). The session's lifetimes are checked as on every request.
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
        aal: record.aal,
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
    let mac_key = challenge_key(conn, record.challenge_key).await?;
    let Some(response) = response else {
        let challenge = RefreshChallenge::issue(&mac_key, public_id, &key, now);
        return Ok(Refreshed::Challenge(challenge));
    };

    // The token a fresh challenge is issued under, if the refusal brings one.
    let (refusal, current) = 'refused: {
        let proof = match Proof::parse(response) {
            Ok(proof) => proof,
            Err(error) => break 'refused (Refusal::Proof(error), None),
        };
        // Always the stored key: a key in the proof's header is not trusted at refresh. Checked
        // before the session row is locked: a forged proof never waits for, or holds, the lock.
        if let Err(error) = proof.verify(&public_key) {
            break 'refused (Refusal::Proof(error), None);
        }
        let mut tx = conn.begin().await?;
        // Of refreshes at once, the first to lock the row replaces the token; the others then
        // read the new one, which their challenges were not issued under.
        let Some((current, ended)) = store::lock_bound(&mut tx, public_id).await? else {
            return Ok(Refreshed::Ended(None));
        };
        if let Some(reason) = ended {
            return Ok(Refreshed::Ended(Some(reason)));
        }
        let Some(current) = SessionKey::from_stored(&current) else {
            return Ok(Refreshed::Ended(None));
        };
        if !RefreshChallenge::accepts(&proof.challenge, &mac_key, public_id, &current, now) {
            break 'refused (Refusal::InvalidChallenge, Some(current));
        }
        let token = SessionToken::generate();
        let bound_until = now + config.bound_cookie_lifetime();
        store::renew_bound(&mut tx, public_id, &token.key(), bound_until).await?;
        tx.commit().await?;
        return Ok(Refreshed::Renewed(token));
    };
    record_refusal(conn, record.user_id, public_id, &refusal, client, now).await?;
    let challenge =
        current.map(|current| RefreshChallenge::issue(&mac_key, public_id, &current, now));
    Ok(Refreshed::Refused { refusal, challenge })
}
