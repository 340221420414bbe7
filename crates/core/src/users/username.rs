//! [`Username`]: a name that passed the rules, built only through [`Username::parse`].
//!
//! ```
//! use secure_sessions_core::users::Username;
//!
//! let alice = Username::parse("  Alice ").expect("a valid name");
//! assert_eq!(alice.as_str(), "Alice");
//! assert_eq!(alice.canonical(), "alice");
//! // A name that only looks like an existing one cannot be registered beside it.
//! let impostor = Username::parse("a1ice").expect("valid on its own");
//! assert_eq!(impostor.look_alike_key(), Username::parse("alice").unwrap().look_alike_key());
//! // Text that fails the rules names no account, even at sign-in.
//! assert!(Username::parse("аlice").is_err()); // a Cyrillic 'а'
//! ```

/// 3 to 32 characters: ASCII letters, digits, `.`, `_` and `-`, starting with a letter or digit.
/// Unique regardless of case.
///
/// Whatever is typed at sign-in goes through `parse` too, and text that fails it names no
/// account. So a look-alike (`İ` for `i`, fullwidth letters, a zero-width space) can never reach
/// an account by way of some Unicode case folding, nor get a sign-in budget of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const RULES: &'static str = "Usernames are 3 to 32 characters: letters, digits, '.', '_' or '-', starting with a letter or digit.";

    /// The name, trimmed, or what is wrong with it, said specifically ("spaces are not allowed"),
    /// not the whole rule.
    pub fn parse(value: &str) -> Result<Username, &'static str> {
        let value = value.trim();
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if value.is_empty() {
            Err("Enter a username.")
        } else if value.chars().any(char::is_whitespace) {
            Err("Spaces are not allowed in a username.")
        } else if !value.chars().all(allowed) {
            Err(
                "Only the letters a to z (without accents), digits, '.', '_' and '-' are allowed in a username.",
            )
        } else if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            Err("A username starts with a letter or a digit.")
        } else if value.len() < 3 {
            Err("That username is too short: use at least 3 characters.")
        } else if value.len() > 32 {
            Err("That username is too long: use at most 32 characters.")
        } else {
            Ok(Username(value.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The one form in which names are compared: ASCII lower case. The account lookup and the
    /// sign-in throttle both use it; on ASCII it is what the unique index's `lower()` computes.
    pub fn canonical(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// What the name looks like, in the one form in which look-alikes are compared: no two
    /// accounts may share it, so `aIice` (capital I), `a1ice` and `alice.` cannot sit beside
    /// `alice`. It is the name's Unicode TR39 confusable skeleton, which on the characters a
    /// name may hold maps `I` and `1` to `l`, `0` to `O` and `m` to `rn`; then lower-cased,
    /// since names differing only in case are one account; and without `.`, `_` and `-`, which
    /// the skeleton keeps but a reader easily misses or mistakes for one another.
    ///
    /// Names are compared as they are shown, in the spelling their owners registered, so the
    /// skeleton is taken before lower-casing: `I` looks like `l` but `i` does not. `ALICE`
    /// therefore reads as `allce` here, and `AL1CE` is refused beside `ALICE` but not beside
    /// `alice`, which it does not look like. Names equal in lower case are one account anyway
    /// (`canonical`).
    ///
    /// migrations/0019 computed this in SQL for the accounts that existed then; a change here
    /// needs a migration that computes the new key for every account.
    pub fn look_alike_key(&self) -> String {
        unicode_security::skeleton(&self.0)
            .filter(|c| !matches!(c, '.' | '_' | '-'))
            .flat_map(char::to_lowercase)
            .collect()
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
        for bad in [
            "",
            "ab",
            &"x".repeat(33),
            "-bob",
            "bob smith",
            "bob'; DROP TABLE users;--",
            "bøb",
            "a\u{0}b",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn a_refused_name_is_told_what_is_wrong_with_it() {
        let cases = [
            ("bob smith", "Spaces are not allowed"),
            ("ab", "too short"),
            (&"x".repeat(33), "too long"),
            ("-bob", "starts with a letter or a digit"),
            ("bøb", "without accents"),
            ("  ", "Enter a username"),
        ];
        for (name, problem) in cases {
            let said = Username::parse(name).expect_err(name);
            assert!(said.contains(problem), "{name:?}: {said}");
        }
    }

    #[test]
    fn surrounding_spaces_are_trimmed() {
        assert_eq!(Username::parse("  bob ").unwrap().as_str(), "bob");
    }

    #[test]
    fn the_canonical_form_is_ascii_lower_case() {
        assert_eq!(
            Username::parse(" Bob.SMITH_2 ").unwrap().canonical(),
            "bob.smith_2"
        );
    }

    #[test]
    fn names_that_look_alike_share_one_key() {
        let key = |name: &str| Username::parse(name).unwrap().look_alike_key();
        let look_alikes = [
            ("alice", "aIice"), // capital I for l
            ("alice", "a1ice"), // digit 1 for l
            ("alice", "alice."),
            ("alice", "a.l_i-ce"),
            ("bob", "b0b"),     // digit 0 for o
            ("bob", "BOB"),     // only case differs
            ("emma", "ernrna"), // rn for m
            ("bill", "bi1I"),
            ("ALICE", "AL1CE"),
            ("lolly", "I0lly"),
        ];
        for (name, look_alike) in look_alikes {
            assert_eq!(key(name), key(look_alike), "{name:?} and {look_alike:?}");
        }
        let distinct = [
            ("alice", "alise"),
            ("alice", "AL1CE"), // as shown, capitals look like capitals: see ("ALICE", "AL1CE")
            ("alice", "aiice"), // a lower-case i has its dot
            ("bob", "bobb"),
            ("alice", "alice2"),
        ];
        for (name, other) in distinct {
            assert_ne!(key(name), key(other), "{name:?} and {other:?}");
        }
    }

    #[test]
    fn look_alikes_are_not_usernames() {
        let look_alikes = [
            "al\u{130}ce",  // capital I with a dot: PostgreSQL's lower() makes it "i"
            "al\u{131}ce",  // dotless i
            "ali\u{307}ce", // i and a combining dot above
            "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}", // fullwidth letters
            "ali\u{200b}ce", // zero-width space
            "alice\u{feff}", // zero-width no-break space (not whitespace, so not trimmed)
            "\u{212a}elvin", // Kelvin sign: Unicode lower-cases it to "k"
            "\u{430}lice",  // Cyrillic a
            "alice\u{0}",
            "ali\u{202e}ce", // right-to-left override
        ];
        for look_alike in look_alikes {
            assert!(
                Username::parse(look_alike).is_err(),
                "{look_alike:?} should be refused"
            );
        }
    }
}
