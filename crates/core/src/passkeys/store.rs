//! Every passkey and passkey-ceremony statement.

use serde_json::Value;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;
use webauthn_rs::prelude::{CredentialID, Passkey};

use super::{Owner, unexpected};
use crate::users::CheckedCredentials;

crate::codes::text_codes! {
    /// What a ceremony in progress is for.
    pub enum CeremonyKind {
        Register = "register",
        SignIn = "sign_in",
        /// A signed-in session confirming with one of its account's passkeys.
        Confirm = "confirm",
    }
}

/// The account's user handle, the id its passkeys carry (migrations/0024).
pub async fn user_handle(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!("SELECT passkey_handle FROM users WHERE id = $1", user_id)
        .fetch_one(conn)
        .await
}

/// The credential ids of the account's passkeys.
pub async fn credential_ids(
    conn: &mut PgConnection,
    user_id: i64,
) -> sqlx::Result<Vec<CredentialID>> {
    sqlx::query_scalar!(
        "SELECT credential_id FROM passkeys WHERE user_id = $1",
        user_id
    )
    .fetch_all(conn)
    .await
}

/// Whether the account has a passkey (what step-up asks for depends on it).
pub async fn has_passkey(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM passkeys WHERE user_id = $1) AS "exists!""#,
        user_id
    )
    .fetch_one(conn)
    .await
}

/// The account's passkeys as webauthn-rs stored them: the credentials a confirmation may use.
pub async fn passkeys_of(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<Vec<Value>> {
    sqlx::query_scalar!(
        r#"SELECT passkey AS "passkey: Value" FROM passkeys WHERE user_id = $1 ORDER BY id"#,
        user_id
    )
    .fetch_all(conn)
    .await
}

pub async fn insert_ceremony(
    conn: &mut PgConnection,
    kind: CeremonyKind,
    owner: Owner<'_>,
    state: &Value,
    expires_at: OffsetDateTime,
) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    let (session, browser) = owner.columns();
    sqlx::query!(
        "INSERT INTO passkey_ceremonies (id, kind, session_public_id, browser_digest, state, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        id,
        kind as _,
        session,
        browser,
        state,
        expires_at,
    )
    .execute(conn)
    .await?;
    Ok(id)
}

/// The ceremony's state, deleted in the same statement: only its owner can take it, once, and
/// only before it expires. Concurrent takes of one ceremony: one gets it.
pub async fn take_ceremony(
    conn: &mut PgConnection,
    id: Uuid,
    kind: CeremonyKind,
    owner: Owner<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<Option<Value>> {
    let (session, browser) = owner.columns();
    sqlx::query_scalar!(
        "DELETE FROM passkey_ceremonies
         WHERE id = $1 AND kind = $2 AND session_public_id IS NOT DISTINCT FROM $3
           AND browser_digest IS NOT DISTINCT FROM $4 AND expires_at > $5
         RETURNING state",
        id,
        kind as _,
        session,
        browser,
        now,
    )
    .fetch_optional(conn)
    .await
}

/// Deletes up to `batch` ceremonies that expired before `now` (the reaper).
pub async fn reap_ceremonies(
    conn: &mut PgConnection,
    now: OffsetDateTime,
    batch: i64,
) -> sqlx::Result<u64> {
    let result = sqlx::query!(
        "DELETE FROM passkey_ceremonies WHERE id IN (
             SELECT id FROM passkey_ceremonies WHERE expires_at <= $1
             LIMIT $2 FOR UPDATE SKIP LOCKED)",
        now,
        batch,
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

/// `None` when that credential is already registered (on any account).
pub async fn insert_passkey(
    conn: &mut PgConnection,
    user_id: i64,
    name: &str,
    passkey: &Passkey,
    now: OffsetDateTime,
) -> sqlx::Result<Option<i64>> {
    let json = serde_json::to_value(passkey).map_err(unexpected)?;
    sqlx::query_scalar!(
        "INSERT INTO passkeys (user_id, credential_id, name, passkey, counter, created_at)
         VALUES ($1, $2, $3, $4, 0, $5)
         ON CONFLICT (credential_id) DO NOTHING
         RETURNING id",
        user_id,
        passkey.cred_id().as_slice(),
        name,
        json,
        now,
    )
    .fetch_optional(conn)
    .await
}

/// The account a passkey is on, when the answer's user handle is that account's.
pub struct PasskeyOwner {
    pub user_id: i64,
    pub username: String,
}

pub async fn owner_of(
    conn: &mut PgConnection,
    credential_id: &[u8],
    handle: Uuid,
) -> sqlx::Result<Option<PasskeyOwner>> {
    sqlx::query_as!(
        PasskeyOwner,
        "SELECT u.id AS user_id, u.username FROM passkeys p JOIN users u ON u.id = p.user_id
         WHERE p.credential_id = $1 AND u.passkey_handle = $2",
        credential_id,
        handle,
    )
    .fetch_optional(conn)
    .await
}

/// A passkey, locked for its sign-in, with the credentials its account has now.
pub struct LockedPasskey {
    pub id: i64,
    pub passkey: Value,
    /// The signature counter the last accepted answer carried.
    pub counter: i64,
    pub credentials: CheckedCredentials,
}

pub async fn lock_passkey(
    conn: &mut PgConnection,
    credential_id: &[u8],
    user_id: i64,
) -> sqlx::Result<Option<LockedPasskey>> {
    let row = sqlx::query!(
        r#"SELECT p.id, p.passkey AS "passkey: Value", p.counter, u.credentials_version
           FROM passkeys p JOIN users u ON u.id = p.user_id
           WHERE p.credential_id = $1 AND p.user_id = $2
           FOR UPDATE OF p"#,
        credential_id,
        user_id,
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| LockedPasskey {
        id: row.id,
        passkey: row.passkey,
        counter: row.counter,
        credentials: CheckedCredentials {
            user_id,
            version: row.credentials_version,
        },
    }))
}

/// Writes the passkey as the sign-in left it (its counter), and when it was used.
pub async fn record_use(
    conn: &mut PgConnection,
    id: i64,
    passkey: &Passkey,
    counter: u32,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    let json = serde_json::to_value(passkey).map_err(unexpected)?;
    sqlx::query!(
        "UPDATE passkeys SET passkey = $2, counter = $3, last_used_at = $4 WHERE id = $1",
        id,
        json,
        i64::from(counter),
        now,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A passkey as the account page lists it.
pub struct PasskeyRecord {
    pub id: i64,
    pub name: String,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
}

/// The account's passkeys, oldest first.
pub async fn list_for_user(
    conn: &mut PgConnection,
    user_id: i64,
) -> sqlx::Result<Vec<PasskeyRecord>> {
    sqlx::query_as!(
        PasskeyRecord,
        "SELECT id, name, created_at, last_used_at FROM passkeys WHERE user_id = $1
         ORDER BY created_at, id",
        user_id,
    )
    .fetch_all(conn)
    .await
}

/// Removes one of the account's passkeys, only while the account keeps its password, its other
/// way in (an account always has one today: the column is NOT NULL, and nothing clears it; the
/// condition keeps that true here if that ever changes). Its name, when it was removed.
pub async fn remove(
    conn: &mut PgConnection,
    user_id: i64,
    id: i64,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "DELETE FROM passkeys p USING users u
         WHERE p.id = $1 AND p.user_id = $2 AND u.id = p.user_id AND u.password_hash <> ''
         RETURNING p.name",
        id,
        user_id,
    )
    .fetch_optional(conn)
    .await
}
