//! Turning a User-Agent header into words a person recognises ("Chrome on Linux").

/// The browser and operating system, or a plain fallback for clients no parser knows.
pub fn describe(user_agent: &str) -> String {
    if user_agent.is_empty() {
        return "Unknown device".into();
    }
    let Some(parsed) = woothee::parser::Parser::new().parse(user_agent) else {
        return "Unknown browser".into();
    };
    let known = |value: &str| !value.is_empty() && value != woothee::woothee::VALUE_UNKNOWN;
    match (known(parsed.name), known(parsed.os)) {
        (true, true) => format!("{} on {}", parsed.name, parsed.os),
        (true, false) => parsed.name.to_owned(),
        (false, true) => format!("Unknown browser on {}", parsed.os),
        (false, false) => "Unknown browser".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_browsers_are_named() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        assert_eq!(describe(chrome), "Chrome on Linux");
        let firefox =
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0";
        assert!(
            describe(firefox).starts_with("Firefox on Windows"),
            "{}",
            describe(firefox)
        );
        assert_eq!(describe(""), "Unknown device");
        assert_eq!(describe("curl/8.5.0"), "HTTP Library");
    }
}
