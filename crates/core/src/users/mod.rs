//! Accounts: usernames, passwords and roles.

pub mod hashing;
pub mod password;
pub mod store;
pub mod username;

pub use hashing::PasswordHasher;
pub use password::Password;
pub use username::Username;

/// What a password check proved: the password was right for this account while its credentials
/// were at `version`. A session or API token family may be created from it only in a transaction
/// that finds the version still current, under the user's row lock (`store::lock_if_current`):
/// a password change, a disable and "sign out everywhere" each move the version on, so a check
/// made before them proves nothing after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedCredentials {
    pub user_id: i64,
    pub version: i64,
}

impl CheckedCredentials {
    /// An account created in the caller's transaction: its credentials are current by
    /// construction, at the column's default version (migrations/0006).
    pub fn new_account(user_id: i64) -> Self {
        CheckedCredentials {
            user_id,
            version: 0,
        }
    }
}

crate::codes::text_codes! {
    /// What an account may do. Read from its row on every request, so a demotion takes effect on
    /// the next click; a stored role no variant names fails to decode, so it never grants privilege.
    pub enum Role {
        User = "user",
        Admin = "admin",
    }
}
