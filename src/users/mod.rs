//! Accounts: usernames, passwords and roles.

pub mod password;
pub mod store;
pub mod username;

pub use password::{Password, PasswordHasher};
pub use username::Username;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Admin,
}

impl Role {
    /// Anything but `admin` is an ordinary user: an unexpected value never grants privilege.
    pub fn parse(value: &str) -> Role {
        if value == "admin" { Role::Admin } else { Role::User }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}
