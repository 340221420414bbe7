//! Fetch Metadata: where the browser says a request comes from, the second layer against
//! cross-site request forgery beside the form's token (`csrf`).
//!
//! Browsers set `Sec-Fetch-Site` themselves, and no page can set or change it; a browser too old
//! to send it still sends `Origin` with a POST. So a state-changing request the browser says came
//! from another site, or a sibling subdomain, is refused before any work: before the session is
//! looked up and before the body is read. A request with neither header (an older browser, a
//! client that is not a browser) proves nothing either way and keeps today's checks: the token.

use rocket::Request;
use rocket::http::Method;

/// Who started a request, as the browser tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initiator {
    /// `Sec-Fetch-Site: same-origin`, or without it an `Origin` naming this request's own host:
    /// one of this site's pages.
    SameOrigin,
    /// `Sec-Fetch-Site: none`: the person, from the address bar or a bookmark.
    Person,
    /// Any other `Sec-Fetch-Site` (`cross-site`, `same-site`), or without it an `Origin` of
    /// another host (`null` included): a page of another site or subdomain.
    Elsewhere,
    /// Neither header.
    Unknown,
}

impl Initiator {
    pub fn of(request: &Request<'_>) -> Initiator {
        let headers = request.headers();
        if let Some(site) = headers.get_one("Sec-Fetch-Site") {
            return match site {
                "same-origin" => Initiator::SameOrigin,
                "none" => Initiator::Person,
                _ => Initiator::Elsewhere,
            };
        }
        match headers.get_one("Origin") {
            None => Initiator::Unknown,
            Some(origin) => {
                let host = headers.get_one("Host");
                if host.is_some_and(|host| origin_names_host(origin, host)) {
                    Initiator::SameOrigin
                } else {
                    Initiator::Elsewhere
                }
            }
        }
    }
}

/// Whether a request that changes state must be refused unread: the browser says another site or
/// subdomain sent it. Reading pages (GET, HEAD) is never refused: links from elsewhere are fine.
pub fn refuses(request: &Request<'_>) -> bool {
    !matches!(request.method(), Method::Get | Method::Head)
        && Initiator::of(request) == Initiator::Elsewhere
}

/// `scheme://host[:port]` names `host[:port]` (the `Host` header), letter case aside.
fn origin_names_host(origin: &str, host: &str) -> bool {
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_names_its_host_and_port_exactly() {
        assert!(origin_names_host("https://example.com", "example.com"));
        assert!(origin_names_host("http://127.0.0.1:8000", "127.0.0.1:8000"));
        assert!(origin_names_host("https://Example.COM", "example.com"));
        assert!(!origin_names_host(
            "http://127.0.0.1:8001",
            "127.0.0.1:8000"
        ));
        assert!(!origin_names_host(
            "https://evil.example.com",
            "example.com"
        ));
        assert!(!origin_names_host(
            "https://example.com.evil",
            "example.com"
        ));
        assert!(!origin_names_host("null", "example.com"));
    }
}
