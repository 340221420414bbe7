//! Every SQL statement that touches the `users` table.

use sqlx::PgConnection;
use time::OffsetDateTime;

use super::{CheckedCredentials, Role, Username};

/// What a password check needs to know about an account. The version is read in the same
/// statement as the hash, so it names the credentials the check is about to verify.
pub struct Credentials {
    pub id: i64,
    pub password_hash: String,
    pub disabled: bool,
    pub credentials_version: i64,
}

impl Credentials {
    /// What a successful check of these credentials proves.
    pub fn checked(&self) -> CheckedCredentials {
        CheckedCredentials {
            user_id: self.id,
            version: self.credentials_version,
        }
    }
}

/// The account a username names, compared in its canonical form: the same form the sign-in
/// throttle counts, so every spelling that reaches an account shares that account's budget.
/// Stored names are ASCII (`Username::parse` admits no other), and on ASCII `lower()`, which the
/// unique index uses, is the canonical form.
pub async fn find_credentials(
    conn: &mut PgConnection,
    username: &Username,
) -> sqlx::Result<Option<Credentials>> {
    sqlx::query_as!(
        Credentials,
        "SELECT id, password_hash, disabled, credentials_version FROM users WHERE lower(username) = $1",
        username.canonical(),
    )
    .fetch_optional(conn)
    .await
}

/// The credentials of a signed-in user, for a password re-check.
pub async fn find_credentials_by_id(
    conn: &mut PgConnection,
    user_id: i64,
) -> sqlx::Result<Option<Credentials>> {
    sqlx::query_as!(
        Credentials,
        "SELECT id, password_hash, disabled, credentials_version FROM users WHERE id = $1",
        user_id,
    )
    .fetch_optional(conn)
    .await
}

/// `None` when the name is taken (case-insensitively), or one that looks like it
/// (`Username::look_alike_key`). Both are unique indexes, so of two sign-ups racing for names
/// that look alike exactly one commits; the other waits for it, then inserts nothing.
pub async fn create(
    conn: &mut PgConnection,
    username: &Username,
    password_hash: &str,
    role: Role,
    now: OffsetDateTime,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!(
        "INSERT INTO users (username, look_alike_key, password_hash, role, created_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING RETURNING id",
        username.as_str(),
        username.look_alike_key(),
        password_hash,
        role as _,
        now,
    )
    .fetch_optional(conn)
    .await
}

/// Locks the user's row until the transaction ends, if the account is still enabled and its
/// credentials are still those `checked` was made against, and returns its role as of the lock
/// (a new session's limits depend on it). `None`: a password change, a disable or "sign out
/// everywhere" committed since the check, which therefore proves nothing now.
///
/// The row lock makes everything that creates or ends a user's sessions take turns: sign-ins
/// (and with them the session caps) and every change that moves the version on. If such a
/// change holds the row, this waits for its commit and then reads the new version.
pub async fn lock_if_current(
    conn: &mut PgConnection,
    checked: CheckedCredentials,
) -> sqlx::Result<Option<Role>> {
    sqlx::query_scalar!(
        r#"SELECT role AS "role: Role" FROM users
           WHERE id = $1 AND credentials_version = $2 AND NOT disabled FOR UPDATE"#,
        checked.user_id,
        checked.version,
    )
    .fetch_optional(conn)
    .await
}

/// Moves the account's credentials version on (and takes its row lock): every password check
/// made before this transaction commits proves nothing any more. Part of every change that ends
/// all of a user's sessions.
pub async fn bump_credentials_version(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET credentials_version = credentials_version + 1 WHERE id = $1",
        user_id,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A new password; checks of the old one stop counting (the version moves on).
pub async fn set_password_hash(
    conn: &mut PgConnection,
    user_id: i64,
    password_hash: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET password_hash = $2, credentials_version = credentials_version + 1 WHERE id = $1",
        user_id,
        password_hash,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Disables or enables an account; either way checks made before stop counting (the version
/// moves on), so a sign-in that began before a disable cannot come back with an enable.
/// `None` when there is no such user.
pub async fn set_disabled(
    conn: &mut PgConnection,
    user_id: i64,
    disabled: bool,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "UPDATE users SET disabled = $2, credentials_version = credentials_version + 1 WHERE id = $1 RETURNING username",
        user_id,
        disabled,
    )
    .fetch_optional(conn)
    .await
}

pub async fn username(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!("SELECT username FROM users WHERE id = $1", user_id)
        .fetch_optional(conn)
        .await
}
