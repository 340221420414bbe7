//! Every SQL statement that touches the `users` table.

use sqlx::PgConnection;
use time::OffsetDateTime;

use super::{Role, Username};

/// What sign-in needs to know about an account.
#[derive(sqlx::FromRow)]
pub struct Credentials {
    pub id: i64,
    pub password_hash: String,
    pub disabled: bool,
}

/// The account a username names, compared in its canonical form: the same form the sign-in
/// throttle counts, so every spelling that reaches an account shares that account's budget.
/// Stored names are ASCII (`Username::parse` admits no other), and on ASCII `lower()`, which the
/// unique index uses, is the canonical form.
pub async fn find_credentials(conn: &mut PgConnection, username: &Username) -> sqlx::Result<Option<Credentials>> {
    sqlx::query_as("SELECT id, password_hash, disabled FROM users WHERE lower(username) = $1")
        .bind(username.canonical())
        .fetch_optional(conn)
        .await
}

/// `None` when the name is taken (case-insensitively).
pub async fn create(
    conn: &mut PgConnection,
    username: &Username,
    password_hash: &str,
    role: Role,
    now: OffsetDateTime,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "INSERT INTO users (username, password_hash, role, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(username.as_str())
    .bind(password_hash)
    .bind(role.as_str())
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// Locks the user's row until the transaction ends: sign-ins and password changes of one
/// account take turns (the session cap and the password-change revocation rely on it).
pub async fn lock(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<()> {
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE").bind(user_id).execute(conn).await?;
    Ok(())
}

pub async fn password_hash(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1").bind(user_id).fetch_optional(conn).await
}

pub async fn set_password_hash(conn: &mut PgConnection, user_id: i64, password_hash: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(user_id)
        .bind(password_hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// `None` when there is no such user.
pub async fn set_disabled(conn: &mut PgConnection, user_id: i64, disabled: bool) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("UPDATE users SET disabled = $2 WHERE id = $1 RETURNING username")
        .bind(user_id)
        .bind(disabled)
        .fetch_optional(conn)
        .await
}

pub async fn username(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT username FROM users WHERE id = $1").bind(user_id).fetch_optional(conn).await
}
