//! The client fingerprint: SHA-256 over configured request parts, in a binding and a watched group.

use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// The two digests stored with a session and recomputed on every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub bind: [u8; 32],
    pub watch: [u8; 32],
}

impl Fingerprint {
    /// The digests of a request whose client address is `ip` and whose header values `header`
    /// gives (all values of one header, one per line). The part `ip` stands for the address's
    /// network; any other part names a header.
    pub fn of(
        ip: Option<IpAddr>,
        header: impl Fn(&str) -> String,
        bind_parts: &[String],
        watch_parts: &[String],
    ) -> Self {
        let part_value = |part: &str| {
            if part.eq_ignore_ascii_case("ip") {
                ip.map(network_prefix).unwrap_or_default()
            } else {
                header(part)
            }
        };
        Fingerprint {
            bind: digest(bind_parts, part_value),
            watch: digest(watch_parts, part_value),
        }
    }
}

fn digest(parts: &[String], part_value: impl Fn(&str) -> String) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        // Length-prefixed so no two different sets of values hash alike.
        let value = part_value(part);
        for field in [part.as_bytes(), value.as_bytes()] {
            hasher.update((field.len() as u64).to_be_bytes());
            hasher.update(field);
        }
    }
    hasher.finalize().into()
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
