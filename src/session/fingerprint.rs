//! The client fingerprint: SHA-256 over configured request parts, in a binding and a watched group.

use rocket::Request;
use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// The two digests stored with a session and recomputed on every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub bind: [u8; 32],
    pub watch: [u8; 32],
}

impl Fingerprint {
    pub fn of_request(
        request: &Request<'_>,
        bind_parts: &[String],
        watch_parts: &[String],
    ) -> Self {
        Fingerprint {
            bind: digest(request, bind_parts),
            watch: digest(request, watch_parts),
        }
    }
}

fn digest(request: &Request<'_>, parts: &[String]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        // Length-prefixed so no two different sets of values hash alike.
        let value = part_value(request, part);
        for field in [part.as_bytes(), value.as_bytes()] {
            hasher.update((field.len() as u64).to_be_bytes());
            hasher.update(field);
        }
    }
    hasher.finalize().into()
}

fn part_value(request: &Request<'_>, part: &str) -> String {
    if part.eq_ignore_ascii_case("ip") {
        return request.client_ip().map(network_prefix).unwrap_or_default();
    }
    request.headers().get(part).collect::<Vec<_>>().join("\n")
}

/// The /24 (IPv4) or /48 (IPv6) network of an address: a phone that moves between addresses
/// of one carrier network keeps its prefix more often than its address.
pub fn network_prefix(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_one_network_share_a_prefix() {
        let prefix = |s: &str| network_prefix(s.parse().unwrap());
        assert_eq!(prefix("203.0.113.7"), prefix("203.0.113.250"));
        assert_ne!(prefix("203.0.113.7"), prefix("203.0.114.7"));
        assert_eq!(prefix("2001:db8:1:2::1"), prefix("2001:db8:1:ffff::9"));
        assert_ne!(prefix("2001:db8:1::1"), prefix("2001:db8:2::1"));
        assert_eq!(prefix("::ffff:203.0.113.7"), "203.0.113.0/24");
    }
}
