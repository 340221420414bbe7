//! `Username`: a name that passed the rules, built only through `parse`.

/// 3 to 32 characters: ASCII letters, digits, `.`, `_` and `-`, starting with a letter or digit.
/// Unique regardless of case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const RULES: &'static str =
        "Usernames are 3 to 32 characters: letters, digits, '.', '_' or '-', starting with a letter or digit.";

    pub fn parse(value: &str) -> Result<Username, &'static str> {
        let value = value.trim();
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        let valid = (3..=32).contains(&value.len())
            && value.chars().all(allowed)
            && value.starts_with(|c: char| c.is_ascii_alphanumeric());
        if valid { Ok(Username(value.to_owned())) } else { Err(Self::RULES) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules() {
        for good in ["bob", "alice.smith", "a_b-c", "Zed99", &"x".repeat(32)] {
            assert!(Username::parse(good).is_ok(), "{good:?} should be accepted");
        }
        for bad in ["", "ab", &"x".repeat(33), "-bob", "bob smith", "bob'; DROP TABLE users;--", "bøb", "a\u{0}b"] {
            assert!(Username::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn surrounding_spaces_are_trimmed() {
        assert_eq!(Username::parse("  bob ").unwrap().as_str(), "bob");
    }
}
