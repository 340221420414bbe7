//! Passkeys (WebAuthn): registering one on an account, signing in with one, and the relying
//! party settings both check against. Ceremony state lives in PostgreSQL (`store`), bound to
//! whoever started the ceremony, taken once, and refused after `passkey_ceremony_secs`.
//!
//! The cryptography and the checks of the browser's answer (challenge, origin, RP id, user
//! verification, signature, counter) are webauthn-rs's; this module decides what is stored,
//! who may finish a ceremony, and what a sign-in proves.

pub mod store;

use std::net::IpAddr;

use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse, Url, Webauthn,
    WebauthnBuilder, WebauthnError,
};

use crate::config::SessionConfig;
use crate::session::Aal;
use crate::users::CheckedCredentials;
use store::CeremonyKind;

/// The relying party: this app as passkeys know it (its RP id and origin), built once at start.
pub struct RelyingParty {
    webauthn: Webauthn,
    rp_id: String,
    origin: Url,
}

impl RelyingParty {
    /// From `passkey_origin` and `passkey_rp_id`, or their defaults: `http://localhost:PORT` for
    /// an app listening on a loopback address, and the origin's host. Refuses to guess for any
    /// other address (an IP address is never an RP id, and the public origin is the proxy's),
    /// an origin that is not HTTPS (plain HTTP only on `localhost`, which browsers treat as
    /// secure), and an RP id that is not the origin's host or a parent domain of it.
    pub fn new(config: &SessionConfig, address: IpAddr, port: u16) -> Result<Self, String> {
        let origin = match &config.passkey_origin {
            Some(origin) => origin.clone(),
            None if address.is_loopback() => format!("http://localhost:{port}"),
            None => {
                return Err(format!(
                    "passkey_origin must be set when the app listens on {address}: the public https:// origin passkeys are used from (a passkey never names an IP address)"
                ));
            }
        };
        let origin = Url::parse(&origin)
            .map_err(|error| format!("passkey_origin = {origin:?} is not a URL: {error}"))?;
        let host = origin.host_str().unwrap_or_default().to_owned();
        let secure =
            origin.scheme() == "https" || (origin.scheme() == "http" && host == "localhost");
        if !secure || origin.path() != "/" || origin.query().is_some() {
            return Err(format!(
                "passkey_origin = \"{origin}\" must be an https:// origin (http:// only for localhost), without a path"
            ));
        }
        let rp_id = config.passkey_rp_id.clone().unwrap_or(host);
        let invalid = || {
            format!(
                "passkey_rp_id = {rp_id:?} must be passkey_origin's host or a parent domain of it (\"{origin}\"), not an IP address"
            )
        };
        let webauthn = WebauthnBuilder::new(&rp_id, &origin)
            .map_err(|_| invalid())?
            .rp_name("secure-sessions")
            .timeout(std::time::Duration::from_secs(
                config.passkey_ceremony_secs.into(),
            ))
            .build()
            .map_err(|_| invalid())?;
        Ok(RelyingParty {
            webauthn,
            rp_id,
            origin,
        })
    }

    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }

    pub fn origin(&self) -> &str {
        self.origin.as_str().trim_end_matches('/')
    }
}

/// Why a ceremony was refused. Each is the client's doing (or an attacker's): a 4xx, never a 500.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// No such ceremony for this session or browser: never started, started by someone else,
    /// already used, or expired.
    #[error("this passkey request has expired or was already used; please try again")]
    UnknownCeremony,
    /// The browser's answer does not check out: a wrong origin or RP id, a bad signature, no
    /// user verification, a challenge of another ceremony.
    #[error("the passkey's answer was refused")]
    Refused(WebauthnError),
    /// The authenticator's signature counter did not go up: a copy of the passkey may exist.
    #[error("the passkey's counter went backwards; it may have been copied")]
    CounterWentBack,
    /// The credential names no passkey on record (never registered, or removed).
    #[error("this passkey is not registered here (it may have been removed)")]
    UnknownCredential,
    /// That passkey is already on an account.
    #[error("this passkey is already registered")]
    AlreadyRegistered,
}

impl From<WebauthnError> for PasskeyError {
    fn from(error: WebauthnError) -> Self {
        match error {
            WebauthnError::CredentialPossibleCompromise => PasskeyError::CounterWentBack,
            error => PasskeyError::Refused(error),
        }
    }
}

/// A failure of this server's own making (options it could not make, state it could not
/// serialize): never the client's input, so answered as an internal error, like a failed query.
fn unexpected(error: impl std::error::Error + Send + Sync + 'static) -> sqlx::Error {
    sqlx::Error::Encode(Box::new(error))
}

/// Who a ceremony belongs to: the signed-in session that asked to register a passkey, or the
/// browser (its sealed pre-session CSRF token) that asked to sign in with one.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    Session(Uuid),
    Browser(&'a str),
}

impl Owner<'_> {
    fn columns(self) -> (Option<Uuid>, Option<Vec<u8>>) {
        match self {
            Owner::Session(id) => (Some(id), None),
            // A digest: the token itself is never stored.
            Owner::Browser(token) => (None, Some(Sha256::digest(token.as_bytes()).to_vec())),
        }
    }
}

/// The account a registration is for.
pub struct Account<'a> {
    pub user_id: i64,
    pub username: &'a str,
}

/// Starts registering a passkey for `account`, owned by `session`: the options for
/// `navigator.credentials.create` (as JSON), and the ceremony's id to send back with the answer.
///
/// The options ask for a discoverable credential (a resident key): signing in names no
/// account, so the authenticator must find the passkey on its own. webauthn-rs's passkey
/// options leave that to the authenticator; a passkey made without it could never sign in.
pub async fn start_registration(
    conn: &mut PgConnection,
    rp: &RelyingParty,
    config: &SessionConfig,
    account: Account<'_>,
    session: Uuid,
    now: OffsetDateTime,
) -> Result<(Uuid, serde_json::Value), sqlx::Error> {
    let handle = store::user_handle(conn, account.user_id).await?;
    // The account's own passkeys are excluded: the authenticator says it has one already.
    let existing = store::credential_ids(conn, account.user_id).await?;
    let (options, state) = rp
        .webauthn
        .start_passkey_registration(handle, account.username, account.username, Some(existing))
        .map_err(unexpected)?;
    let mut options = serde_json::to_value(options).map_err(unexpected)?;
    let selection = &mut options["publicKey"]["authenticatorSelection"];
    selection["residentKey"] = "required".into();
    selection["requireResidentKey"] = true.into();
    let state = serde_json::to_value(state).map_err(unexpected)?;
    let id = store::insert_ceremony(
        conn,
        CeremonyKind::Register,
        Owner::Session(session),
        &state,
        now + config.passkey_ceremony(),
    )
    .await?;
    Ok((id, options))
}

/// A registration's answer, as the session that asked for it sends it back.
pub struct Registration<'a> {
    pub ceremony: Uuid,
    /// The session sending it (only the one that started the ceremony may finish it).
    pub session: Uuid,
    pub user_id: i64,
    pub name: &'a str,
    pub answer: &'a RegisterPublicKeyCredential,
}

/// Finishes a registration, inside the caller's transaction: takes the ceremony (once, only
/// for the session that started it, only before it expires), checks the browser's answer and
/// stores the passkey under its name. Its row id.
pub async fn finish_registration(
    tx: &mut PgConnection,
    rp: &RelyingParty,
    registration: Registration<'_>,
    now: OffsetDateTime,
) -> Result<Result<i64, PasskeyError>, sqlx::Error> {
    let Registration {
        ceremony,
        session,
        user_id,
        name,
        answer,
    } = registration;
    let Some(state) = store::take_ceremony(
        tx,
        ceremony,
        CeremonyKind::Register,
        Owner::Session(session),
        now,
    )
    .await?
    else {
        return Ok(Err(PasskeyError::UnknownCeremony));
    };
    let Ok(state) = serde_json::from_value::<PasskeyRegistration>(state) else {
        return Ok(Err(PasskeyError::UnknownCeremony));
    };
    let passkey = match rp.webauthn.finish_passkey_registration(answer, &state) {
        Ok(passkey) => passkey,
        Err(error) => return Ok(Err(error.into())),
    };
    match store::insert_passkey(tx, user_id, name, &passkey, now).await? {
        Some(id) => Ok(Ok(id)),
        None => Ok(Err(PasskeyError::AlreadyRegistered)),
    }
}

/// Starts a sign-in with a passkey for the browser whose pre-session token is `browser`: the
/// options for `navigator.credentials.get` (any passkey of this site: the person picks it, no
/// username asked), and the ceremony's id.
pub async fn start_sign_in(
    conn: &mut PgConnection,
    rp: &RelyingParty,
    config: &SessionConfig,
    browser: &str,
    now: OffsetDateTime,
) -> Result<(Uuid, RequestChallengeResponse), sqlx::Error> {
    let (options, state) = rp
        .webauthn
        .start_discoverable_authentication()
        .map_err(unexpected)?;
    let state = serde_json::to_value(state).map_err(unexpected)?;
    let id = store::insert_ceremony(
        conn,
        CeremonyKind::SignIn,
        Owner::Browser(browser),
        &state,
        now + config.passkey_ceremony(),
    )
    .await?;
    Ok((id, options))
}

/// The sign-in ceremony taken, and the passkey its answer names: what `verify_sign_in` checks.
pub struct SignInAttempt {
    state: DiscoverableAuthentication,
    /// The account the passkey is on, and its name (for the throttle).
    pub user_id: i64,
    pub username: String,
}

/// Takes the sign-in ceremony (once, only for the browser that started it, only before it
/// expires) and finds the passkey the answer names, on its own statement: the ceremony is used
/// up whatever happens next, so an answer can never be tried twice.
pub async fn begin_sign_in(
    conn: &mut PgConnection,
    ceremony: Uuid,
    browser: &str,
    answer: &PublicKeyCredential,
    now: OffsetDateTime,
) -> Result<Result<SignInAttempt, PasskeyError>, sqlx::Error> {
    let Some(state) = store::take_ceremony(
        conn,
        ceremony,
        CeremonyKind::SignIn,
        Owner::Browser(browser),
        now,
    )
    .await?
    else {
        return Ok(Err(PasskeyError::UnknownCeremony));
    };
    let Ok(state) = serde_json::from_value::<DiscoverableAuthentication>(state) else {
        return Ok(Err(PasskeyError::UnknownCeremony));
    };
    let Some(handle) = answer
        .get_user_unique_id()
        .and_then(|handle| Uuid::from_slice(handle).ok())
    else {
        return Ok(Err(PasskeyError::UnknownCredential));
    };
    let Some(owner) = store::owner_of(conn, answer.get_credential_id(), handle).await? else {
        return Ok(Err(PasskeyError::UnknownCredential));
    };
    Ok(Ok(SignInAttempt {
        state,
        user_id: owner.user_id,
        username: owner.username,
    }))
}

/// What a passkey sign-in proved: start the session with these (`session::start`).
#[derive(Debug, Clone, Copy)]
pub struct SignedIn {
    pub credentials: CheckedCredentials,
    pub aal: Aal,
}

/// Checks the answer against the passkey, inside the caller's transaction (the sign-in's),
/// holding the passkey's row lock: its counter and last use are written there, so two
/// sign-ins with the same answer cannot both pass, and a removal cannot slip in between.
pub async fn verify_sign_in(
    tx: &mut PgConnection,
    rp: &RelyingParty,
    attempt: SignInAttempt,
    answer: &PublicKeyCredential,
    now: OffsetDateTime,
) -> Result<Result<SignedIn, PasskeyError>, sqlx::Error> {
    let Some(stored) = store::lock_passkey(tx, answer.get_credential_id(), attempt.user_id).await?
    else {
        return Ok(Err(PasskeyError::UnknownCredential));
    };
    let Ok(mut passkey) = serde_json::from_value::<Passkey>(stored.passkey) else {
        return Ok(Err(PasskeyError::UnknownCredential));
    };
    let result =
        match rp
            .webauthn
            .finish_discoverable_authentication_v2(answer, attempt.state, &passkey)
        {
            Ok(result) => result,
            Err(error) => return Ok(Err(error.into())),
        };
    passkey.update_credential(&result);
    store::record_use(tx, stored.id, &passkey, result.counter(), now).await?;
    Ok(Ok(SignedIn {
        credentials: stored.credentials,
        // Discoverable sign-in requires user verification; a passkey without it proves no more
        // than one factor.
        aal: if result.user_verified() {
            Aal::Aal2
        } else {
            Aal::Aal1
        },
    }))
}

/// Starts a confirmation with a passkey for the signed-in `session` of `user_id`: the options for
/// `navigator.credentials.get`, naming the account's passkeys and requiring user verification,
/// and the ceremony's id. `None`: the account has no passkey to confirm with.
pub async fn start_confirmation(
    conn: &mut PgConnection,
    rp: &RelyingParty,
    config: &SessionConfig,
    user_id: i64,
    session: Uuid,
    now: OffsetDateTime,
) -> Result<Option<(Uuid, RequestChallengeResponse)>, sqlx::Error> {
    let passkeys: Vec<Passkey> = store::passkeys_of(conn, user_id)
        .await?
        .into_iter()
        .filter_map(|passkey| serde_json::from_value(passkey).ok())
        .collect();
    if passkeys.is_empty() {
        return Ok(None);
    }
    let (options, state) = rp
        .webauthn
        .start_passkey_authentication(&passkeys)
        .map_err(unexpected)?;
    let state = serde_json::to_value(state).map_err(unexpected)?;
    let id = store::insert_ceremony(
        conn,
        CeremonyKind::Confirm,
        Owner::Session(session),
        &state,
        now + config.passkey_ceremony(),
    )
    .await?;
    Ok(Some((id, options)))
}

/// A confirmation ceremony taken by its session: what `verify_confirmation` checks.
pub struct ConfirmAttempt {
    state: PasskeyAuthentication,
}

/// Takes the confirmation ceremony (once, only for the session that started it, only before it
/// expires), on its own statement: it is used up whatever happens next.
pub async fn begin_confirmation(
    conn: &mut PgConnection,
    ceremony: Uuid,
    session: Uuid,
    now: OffsetDateTime,
) -> Result<Result<ConfirmAttempt, PasskeyError>, sqlx::Error> {
    let state = store::take_ceremony(
        conn,
        ceremony,
        CeremonyKind::Confirm,
        Owner::Session(session),
        now,
    )
    .await?;
    match state.map(serde_json::from_value::<PasskeyAuthentication>) {
        Some(Ok(state)) => Ok(Ok(ConfirmAttempt { state })),
        _ => Ok(Err(PasskeyError::UnknownCeremony)),
    }
}

/// Checks a confirmation's answer against the passkey of `user_id` it names, inside the caller's
/// transaction (the confirmation's), holding the passkey's row lock while its counter and last
/// use are written, as a sign-in does. Success proves `aal2`: the options required user
/// verification, and the answer is refused without it.
pub async fn verify_confirmation(
    tx: &mut PgConnection,
    rp: &RelyingParty,
    attempt: ConfirmAttempt,
    user_id: i64,
    answer: &PublicKeyCredential,
    now: OffsetDateTime,
) -> Result<Result<(), PasskeyError>, sqlx::Error> {
    let Some(stored) = store::lock_passkey(tx, answer.get_credential_id(), user_id).await? else {
        return Ok(Err(PasskeyError::UnknownCredential));
    };
    let Ok(mut passkey) = serde_json::from_value::<Passkey>(stored.passkey) else {
        return Ok(Err(PasskeyError::UnknownCredential));
    };
    let result = match rp
        .webauthn
        .finish_passkey_authentication(answer, &attempt.state)
    {
        Ok(result) => result,
        Err(error) => return Ok(Err(error.into())),
    };
    if !result.user_verified() {
        return Ok(Err(PasskeyError::Refused(WebauthnError::UserNotVerified)));
    }
    // webauthn-rs checked the counter against the passkey as the options named it; a sign-in
    // since may have moved it on. As WebAuthn asks, against the row as it is now: when either
    // counter is in use, the answer's must be the greater.
    let counter = i64::from(result.counter());
    if (counter != 0 || stored.counter != 0) && counter <= stored.counter {
        return Ok(Err(PasskeyError::CounterWentBack));
    }
    passkey.update_credential(&result);
    store::record_use(tx, stored.id, &passkey, result.counter(), now).await?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn with(origin: Option<&str>, rp_id: Option<&str>) -> SessionConfig {
        SessionConfig {
            passkey_origin: origin.map(str::to_owned),
            passkey_rp_id: rp_id.map(str::to_owned),
            ..SessionConfig::default()
        }
    }

    #[test]
    fn unset_on_a_loopback_address_the_origin_is_localhost_on_the_apps_port() {
        let rp = RelyingParty::new(&with(None, None), LOOPBACK, 8000).unwrap();
        assert_eq!(rp.origin(), "http://localhost:8000");
        assert_eq!(rp.rp_id(), "localhost");
    }

    #[test]
    fn an_ip_address_is_never_guessed_nor_accepted_as_the_rp_id() {
        let address = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let error = RelyingParty::new(&with(None, None), address, 8000)
            .err()
            .unwrap();
        assert!(error.starts_with("passkey_origin must be set"), "{error}");
        // Named explicitly, an IP address is refused as the RP id.
        let origin = Some("https://192.0.2.1");
        let error = RelyingParty::new(&with(origin, None), LOOPBACK, 8000)
            .err()
            .unwrap();
        assert!(
            error.starts_with("passkey_rp_id = \"192.0.2.1\""),
            "{error}"
        );
    }

    #[test]
    fn the_origin_must_be_https_but_on_localhost_and_have_no_path() {
        for origin in [
            "http://app.example",
            "https://app.example/login",
            "ftp://app.example",
        ] {
            let error = RelyingParty::new(&with(Some(origin), None), LOOPBACK, 8000)
                .err()
                .unwrap();
            assert!(error.starts_with("passkey_origin = "), "{origin}: {error}");
        }
        let error = RelyingParty::new(&with(Some("not a url"), None), LOOPBACK, 8000)
            .err()
            .unwrap();
        assert!(error.contains("is not a URL"), "{error}");
    }

    #[test]
    fn the_rp_id_is_the_origins_host_or_a_parent_domain() {
        let origin = Some("https://app.example.com");
        let rp = RelyingParty::new(&with(origin, None), LOOPBACK, 8000).unwrap();
        assert_eq!(rp.rp_id(), "app.example.com");
        let rp = RelyingParty::new(&with(origin, Some("example.com")), LOOPBACK, 8000).unwrap();
        assert_eq!(rp.rp_id(), "example.com");
        for rp_id in ["other.com", "ample.com", "www.app.example.com"] {
            let error = RelyingParty::new(&with(origin, Some(rp_id)), LOOPBACK, 8000)
                .err()
                .unwrap();
            assert!(error.starts_with("passkey_rp_id = "), "{rp_id}: {error}");
        }
    }
}
