//! Who is on the other end of a request: the client IP behind the trusted proxies, worked out
//! once per request and kept in its extensions. Rate-limit `ip` keys and the
//! `Sb-Forwarded-For` of Auth calls made for the client both read it here.

use std::future::{ready, Ready};
use std::net::{IpAddr, SocketAddr};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use crate::config::{parse_ip_net, Settings};
use crate::supabase::gotrue::ForClient;

/// `server.trusted_proxies`, parsed: the proxies whose `X-Forwarded-For` is believed.
/// Registered as app data by `server::serve`.
#[derive(Debug, Default)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    pub fn from_settings(settings: &Settings) -> Self {
        let nets = settings.server.trusted_proxies.iter();
        Self(nets.filter_map(|p| parse_ip_net(p)).collect())
    }
}

/// The request's client IP, once resolved.
#[derive(Clone, Copy)]
struct Resolved(Option<IpAddr>);

/// The client IP of `req` (trusted proxies honoured), resolved on first use.
pub fn of(req: &HttpRequest) -> Option<IpAddr> {
    if let Some(Resolved(ip)) = req.extensions().get::<Resolved>() {
        return *ip;
    }
    let trusted = req
        .app_data::<web::Data<TrustedProxies>>()
        .map_or(&[][..], |t| t.0.as_slice());
    let xff: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .collect();
    let ip = client_ip(req.peer_addr(), &xff.join(","), trusted);
    req.extensions_mut().insert(Resolved(ip));
    ip
}

impl ForClient {
    /// The client `req` comes from.
    pub fn of(req: &HttpRequest) -> Self {
        ForClient(of(req))
    }
}

/// An Auth call's client, taken by a handler like any other input.
impl FromRequest for ForClient {
    type Error = std::convert::Infallible;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(ForClient::of(req)))
    }
}

fn in_net(ip: IpAddr, (net, len): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's IP: the TCP peer, unless the peer is a trusted proxy; then the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy (entries further left were
/// written by the client and can be forged).
pub fn client_ip(peer: Option<SocketAddr>, xff: &str, trusted: &[(IpAddr, u8)]) -> Option<IpAddr> {
    let peer = canonical(peer?.ip());
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| in_net(ip, *net));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut client = peer;
    for entry in xff.rsplit(',') {
        let Ok(ip) = entry.trim().parse::<IpAddr>().map(canonical) else {
            // A garbled hop: stop at the last address we could trust to be real.
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<(IpAddr, u8)> {
        list.iter().filter_map(|s| parse_ip_net(s)).collect()
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 5000))
    }

    #[test]
    fn untrusted_peer_ignores_forwarded_for() {
        let ip = client_ip(peer("198.51.100.9"), "1.2.3.4", &nets(&["10.0.0.0/8"]));
        assert_eq!(ip, Some("198.51.100.9".parse().unwrap()));
    }

    #[test]
    fn trusted_peer_yields_rightmost_untrusted_hop() {
        let trusted = nets(&["10.0.0.0/8"]);
        let ip = client_ip(peer("10.0.0.2"), "6.6.6.6, 203.0.113.7, 10.0.0.5", &trusted);
        assert_eq!(ip, Some("203.0.113.7".parse().unwrap()));
        let ip = client_ip(peer("10.0.0.2"), "", &trusted);
        assert_eq!(ip, Some("10.0.0.2".parse().unwrap()));
        let ip = client_ip(peer("::ffff:10.0.0.2"), "203.0.113.8", &trusted);
        assert_eq!(ip, Some("203.0.113.8".parse().unwrap()));
    }

    #[test]
    fn an_ipv4_mapped_peer_matches_ipv4_networks_only() {
        let trusted = nets(&["10.0.0.0/8", "fd00::/8"]);
        // A mapped peer is its IPv4 address: trusted through 10/8, never through a v6 net.
        let ip = client_ip(peer("::ffff:10.0.0.2"), "203.0.113.8", &trusted);
        assert_eq!(ip, Some("203.0.113.8".parse().unwrap()));
        let ip = client_ip(peer("::ffff:198.51.100.9"), "203.0.113.8", &trusted);
        assert_eq!(ip, Some("198.51.100.9".parse().unwrap()));
        // Forwarded entries are canonicalised too, so a mapped proxy hop is skipped.
        let ip = client_ip(peer("fd00::1"), "203.0.113.9, ::ffff:10.0.0.7", &trusted);
        assert_eq!(ip, Some("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn a_network_trusts_exactly_its_prefix() {
        let trusted = nets(&["10.0.0.0/31"]);
        assert_eq!(
            client_ip(peer("10.0.0.1"), "203.0.113.7", &trusted),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            client_ip(peer("10.0.0.2"), "203.0.113.7", &trusted),
            Some("10.0.0.2".parse().unwrap()),
            "outside the /31: the peer is the client"
        );
        let all = nets(&["0.0.0.0/0"]);
        assert_eq!(
            client_ip(peer("192.0.2.5"), "203.0.113.7", &all),
            Some("203.0.113.7".parse().unwrap())
        );
    }
}
