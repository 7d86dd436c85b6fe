//! Per-client-IP rate limiting for the unauthenticated Auth routes (login, register, refresh,
//! recover): the client IP rule (trusted proxies only), a small limiter trait so a shared
//! store (Redis) can back it when several instances run, and the in-process token bucket.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::Instant;

use actix_web::HttpRequest;
use parking_lot::Mutex;

use crate::config::{parse_ip_net, RateLimitSettings};
use crate::error::ApiError;

/// The limiter's answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Refused; the client may retry after this many seconds.
    Limited {
        retry_after_secs: u64,
    },
}

pub type DecisionFuture<'a> = Pin<Box<dyn Future<Output = Decision> + Send + 'a>>;

/// Counts one hit for `key` (e.g. `login:203.0.113.7`). Async so a networked store fits;
/// such a store should answer `Allowed` when it is down (fail open) and log it, since a
/// broken limiter must not lock every user out of login.
pub trait RateLimiter: Send + Sync {
    fn hit<'a>(&'a self, key: &'a str) -> DecisionFuture<'a>;
}

/// In-process token bucket: `burst` tokens, refilled at `per_minute / 60` per second.
pub struct TokenBucket {
    capacity: f64,
    per_sec: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Past this many tracked keys, full buckets (idle clients) are dropped to bound memory.
const PRUNE_ABOVE: usize = 50_000;

impl TokenBucket {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            capacity: f64::from(burst.max(1)),
            per_sec: f64::from(per_minute.max(1)) / 60.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The decision at `now` (separate from the clock so it can be tested exactly).
    pub fn hit_at(&self, key: &str, now: Instant) -> Decision {
        let mut buckets = self.buckets.lock();
        if buckets.len() > PRUNE_ABOVE {
            let (capacity, per_sec) = (self.capacity, self.per_sec);
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_sec < capacity
            });
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.capacity,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_sec).min(self.capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Decision::Allowed
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_sec;
            Decision::Limited {
                retry_after_secs: wait.ceil().max(1.0) as u64,
            }
        }
    }
}

impl RateLimiter for TokenBucket {
    fn hit<'a>(&'a self, key: &'a str) -> DecisionFuture<'a> {
        let decision = self.hit_at(key, Instant::now());
        Box::pin(async move { decision })
    }
}

/// What the Auth handlers consult: the limiter plus the trusted-proxy rule.
pub struct ClientLimiter {
    limiter: Option<Box<dyn RateLimiter>>,
    trusted: Vec<(IpAddr, u8)>,
}

impl ClientLimiter {
    pub fn new(settings: &RateLimitSettings, trusted_proxies: &[String]) -> Self {
        Self::with_limiter(
            settings
                .enabled
                .then(|| Box::new(TokenBucket::new(settings.per_minute, settings.burst)) as _),
            trusted_proxies,
        )
    }

    /// Any limiter implementation (a Redis-backed one, say); `None` disables limiting.
    pub fn with_limiter(limiter: Option<Box<dyn RateLimiter>>, trusted_proxies: &[String]) -> Self {
        Self {
            limiter,
            trusted: trusted_proxies
                .iter()
                .filter_map(|p| parse_ip_net(p))
                .collect(),
        }
    }

    /// The client IP of `req` (trusted proxies honoured): the key of every limit, and what
    /// Auth calls made for this client send as `Sb-Forwarded-For`.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        let xff: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .collect();
        client_ip(req.peer_addr(), &xff.join(","), &self.trusted)
    }

    /// Counts this request against `bucket` for its client IP; 429 with `Retry-After` when
    /// the bucket is empty.
    pub async fn check(&self, req: &HttpRequest, bucket: &str) -> Result<(), ApiError> {
        match self.decide(req, bucket).await {
            Decision::Allowed => Ok(()),
            Decision::Limited { retry_after_secs } => Err(ApiError::rate_limited(retry_after_secs)),
        }
    }

    /// [`ClientLimiter::check`] as a decision, for callers that do not answer at once (the
    /// server-side session refresh shares its outcome with concurrent requests).
    pub async fn decide(&self, req: &HttpRequest, bucket: &str) -> Decision {
        let Some(limiter) = &self.limiter else {
            return Decision::Allowed;
        };
        let ip = self.client_ip(req);
        let key = format!(
            "{bucket}:{}",
            ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string())
        );
        limiter.hit(&key).await
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

/// An IPv4 peer on a dual-stack socket shows up as `::ffff:a.b.c.d`; it is matched (and
/// keyed) as the IPv4 address it is.
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
    use std::time::Duration;

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

    #[test]
    fn bucket_allows_burst_then_limits_then_refills() {
        let bucket = TokenBucket::new(60, 2);
        let t0 = Instant::now();
        assert_eq!(bucket.hit_at("k", t0), Decision::Allowed);
        assert_eq!(bucket.hit_at("k", t0), Decision::Allowed);
        assert_eq!(
            bucket.hit_at("k", t0),
            Decision::Limited {
                retry_after_secs: 1
            }
        );
        assert_eq!(bucket.hit_at("other", t0), Decision::Allowed);
        assert_eq!(
            bucket.hit_at("k", t0 + Duration::from_secs(1)),
            Decision::Allowed
        );
    }
}
