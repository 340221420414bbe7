//! What the app records about the client behind a request: address, browser and fingerprint.

use std::net::IpAddr;

use crate::config::SessionConfig;
use crate::session::fingerprint::Fingerprint;

/// Longest User-Agent kept: enough for any real browser, bounded for the table.
const MAX_USER_AGENT_CHARS: usize = 512;

pub struct ClientInfo {
    /// The socket's peer address. Rocket's `ip_header` is off (Rocket.toml): a forwarded
    /// header is trusted only when a proxy is configured to set it.
    pub ip: String,
    pub user_agent: String,
    pub fingerprint: Fingerprint,
}

impl ClientInfo {
    /// What a request says of its client: `ip` is the address the web layer trusts (the
    /// socket's peer, or a configured proxy header), `header` gives a header's values, one per
    /// line (empty when absent).
    pub fn new(
        ip: Option<IpAddr>,
        header: impl Fn(&str) -> String,
        config: &SessionConfig,
    ) -> Self {
        let user_agents = header("User-Agent");
        let user_agent = user_agents.lines().next().unwrap_or_default();
        ClientInfo {
            ip: ip
                .map(|ip| ip.to_canonical().to_string())
                .unwrap_or_default(),
            user_agent: first_chars(user_agent, MAX_USER_AGENT_CHARS).to_owned(),
            fingerprint: Fingerprint::of(
                ip,
                header,
                &config.fingerprint_bind,
                &config.fingerprint_watch,
            ),
        }
    }
}

/// The first `max` characters of `text`, cut on a character boundary.
fn first_chars(text: &str, max: usize) -> &str {
    text.char_indices()
        .nth(max)
        .map_or(text, |(end, _)| &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_user_agent_keeps_its_first_characters_whole() {
        assert_eq!(first_chars("abc", 5), "abc");
        assert_eq!(first_chars("abc", 3), "abc");
        assert_eq!(first_chars("abcdef", 3), "abc");
        assert_eq!(first_chars("héllo wörld", 7), "héllo w");
        assert_eq!(first_chars("ééé", 2), "éé");
        assert_eq!(first_chars("", 2), "");
    }
}
