//! The client's address. Directly connected clients are who the socket says; behind a proxy
//! listed in `trusted_proxies`, the client is the right-most address of `X-Forwarded-For` that
//! is not itself a trusted proxy. A header from anyone else is ignored, so a client cannot
//! choose its own address for the audit log or dodge a per-IP limit.

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// The address audit entries and per-IP limits use; put on every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// `10.0.0.0/8`, `fd00::/8`, or a single address (`192.0.2.7`).
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{text}` is neither a CIDR (10.0.0.0/8) nor an address"))
}

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    proxies.iter().any(|n| n.contains(&ip))
}

/// The client of a request that arrived from `peer`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    if proxies.is_empty() || !trusted(peer, proxies) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return peer;
        };
        for part in text.split(',') {
            match parse_hop(part.trim()) {
                Some(ip) => hops.push(ip),
                // A garbled chain says nothing reliable: the proxy is the client.
                None => return peer,
            }
        }
    }
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        client = hop;
        if !trusted(hop, proxies) {
            break;
        }
    }
    client
}

/// One entry: `192.0.2.1`, `[2001:db8::1]:443`, `192.0.2.1:5000` or `2001:db8::1`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(xff: &[&str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for v in xff {
            m.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        m
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_trusted_peers_are_believed() {
        let proxies = vec![parse_cidr("10.0.0.0/8").unwrap()];
        let xff = h(&["203.0.113.9"]);
        assert_eq!(client_ip(ip("10.1.2.3"), &xff, &proxies), ip("203.0.113.9"));
        assert_eq!(
            client_ip(ip("198.51.100.1"), &xff, &proxies),
            ip("198.51.100.1")
        );
        assert_eq!(client_ip(ip("10.1.2.3"), &xff, &[]), ip("10.1.2.3"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let proxies = vec![
            parse_cidr("10.0.0.0/8").unwrap(),
            parse_cidr("192.0.2.5").unwrap(),
        ];
        // The client forged the first entry; the proxies appended the rest.
        let xff = h(&["1.1.1.1, 203.0.113.9", "192.0.2.5"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &xff, &proxies), ip("203.0.113.9"));
        let garbled = h(&["203.0.113.9, not-an-ip"]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &garbled, &proxies),
            ip("10.0.0.1")
        );
        let ported = h(&["[2001:db8::1]:443"]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &ported, &proxies),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn cidrs_parse_or_say_why_not() {
        assert!(parse_cidr("10.0.0.0/8").is_ok());
        assert!(parse_cidr("::1").is_ok());
        assert!(parse_cidr("10.0.0.0/33")
            .unwrap_err()
            .contains("10.0.0.0/33"));
        assert!(parse_cidr("proxy.example").is_err());
    }
}
