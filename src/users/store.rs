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

pub async fn find_credentials(conn: &mut PgConnection, username: &str) -> sqlx::Result<Option<Credentials>> {
    sqlx::query_as("SELECT id, password_hash, disabled FROM users WHERE lower(username) = lower($1)")
        .bind(username)
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
