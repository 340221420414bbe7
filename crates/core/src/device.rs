//! Turning a User-Agent header and an address into words a person recognises ("Chrome on
//! Linux", "192.168.1.20 (a private network)").
//!
//! ```
//! use secure_sessions_core::device::describe;
//!
//! let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
//!               Chrome/120.0.0.0 Safari/537.36";
//! assert_eq!(describe(chrome), "Chrome on Linux");
//! assert_eq!(describe(""), "Unknown device");
//! ```

use std::net::IpAddr;

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

/// An address as pages show it, with the kind of network it belongs to where the address alone
/// says so (no location database: a public address is shown as it is).
pub fn describe_ip(ip: &str) -> String {
    let Ok(address) = ip.parse::<IpAddr>() else {
        return ip.to_owned();
    };
    let network = match address.to_canonical() {
        address if address.is_loopback() => "the server's own machine",
        IpAddr::V4(v4) if v4.is_private() => "a private network",
        IpAddr::V4(v4) if v4.is_link_local() => "a local network",
        IpAddr::V6(v6) if v6.is_unique_local() => "a private network",
        IpAddr::V6(v6) if v6.is_unicast_link_local() => "a local network",
        _ => return ip.to_owned(),
    };
    format!("{ip} ({network})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_say_their_network_where_the_address_alone_tells() {
        let cases = [
            ("127.0.0.1", "127.0.0.1 (the server's own machine)"),
            ("::1", "::1 (the server's own machine)"),
            (
                "::ffff:127.0.0.1",
                "::ffff:127.0.0.1 (the server's own machine)",
            ),
            ("10.1.2.3", "10.1.2.3 (a private network)"),
            ("172.16.0.9", "172.16.0.9 (a private network)"),
            ("192.168.1.20", "192.168.1.20 (a private network)"),
            ("fd12:3456::1", "fd12:3456::1 (a private network)"),
            ("169.254.1.1", "169.254.1.1 (a local network)"),
            ("fe80::1", "fe80::1 (a local network)"),
            ("203.0.113.9", "203.0.113.9"),
            ("2001:db8::1", "2001:db8::1"),
            ("", ""),
            ("not an address", "not an address"),
        ];
        for (ip, shown) in cases {
            assert_eq!(describe_ip(ip), shown);
        }
    }

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
