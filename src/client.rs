//! What the app records about the client behind a request: address, browser and fingerprint.

use rocket::Request;

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
    pub fn of(request: &Request<'_>, config: &SessionConfig) -> Self {
        let user_agent = request.headers().get_one("User-Agent").unwrap_or_default();
        ClientInfo {
            ip: request
                .client_ip()
                .map(|ip| ip.to_canonical().to_string())
                .unwrap_or_default(),
            user_agent: user_agent.chars().take(MAX_USER_AGENT_CHARS).collect(),
            fingerprint: Fingerprint::of_request(
                request,
                &config.fingerprint_bind,
                &config.fingerprint_watch,
            ),
        }
    }
}
