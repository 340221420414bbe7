//! `LocalPath`: a `next=` target that can only lead back into this app (no open redirect).

use rocket::http::uri::Origin;

const MAX_CHARS: usize = 2048;

/// A path on this origin: starts with one `/`, no scheme, no `//`, no backslash, no control or
/// space characters (browsers strip some of those and would read `/\t/evil` as `//evil`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPath(String);

impl LocalPath {
    pub fn parse(value: &str) -> Option<LocalPath> {
        let safe = value.len() <= MAX_CHARS
            && value.starts_with('/')
            && !value.starts_with("//")
            && !value.contains('\\')
            && !value.chars().any(|c| c.is_control() || c.is_whitespace())
            && Origin::parse(value).is_ok();
        safe.then(|| LocalPath(value.to_owned()))
    }

    /// Where a signed-in user goes when no (acceptable) target was given.
    pub fn account() -> LocalPath {
        LocalPath("/account".into())
    }

    /// The target if it is local, else the account page.
    pub fn or_account(value: Option<&str>) -> LocalPath {
        value
            .and_then(LocalPath::parse)
            .unwrap_or_else(LocalPath::account)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_accepted() {
        for good in ["/", "/account", "/account/password?x=1", "/a/b/c"] {
            assert_eq!(
                LocalPath::parse(good).map(|p| p.0),
                Some(good.to_owned()),
                "{good}"
            );
        }
        for bad in [
            "",
            "account",
            "//evil.example",
            "///evil.example",
            "https://evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "javascript:alert(1)",
            " /account",
        ] {
            assert_eq!(LocalPath::parse(bad), None, "{bad:?} must be refused");
        }
        assert_eq!(LocalPath::parse(&format!("/{}", "a".repeat(3000))), None);
    }

    #[test]
    fn anything_else_falls_back_to_the_account_page() {
        assert_eq!(
            LocalPath::or_account(Some("//evil.example")).as_str(),
            "/account"
        );
        assert_eq!(LocalPath::or_account(None).as_str(), "/account");
        assert_eq!(LocalPath::or_account(Some("/admin")).as_str(), "/admin");
    }
}
