//! W3C Trace Context for the calls supagate makes to Supabase: every request continues the
//! client's trace (a valid `traceparent`) or starts one, and every upstream call made while
//! serving it carries that trace id with supagate's own span id as the parent.

use std::fmt;
use std::future::Future;

use actix_web::http::header::HeaderMap;
use actix_web::http::header::HeaderName;
use uuid::Uuid;

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// `00-` + 32 + `-` + 16 + `-` + 2: the length of a version-00 `traceparent`.
const TRACEPARENT_LEN: usize = 55;
/// The spec's limit on `tracestate` (32 members of at most 256 bytes are allowed, but a
/// vendor may truncate past 512); anything longer is dropped rather than forwarded.
const TRACESTATE_MAX: usize = 512;
const SAMPLED: u8 = 0x01;

/// The trace a request belongs to and supagate's span in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: u128,
    /// The parent id supagate sends upstream: new for every request, never the client's.
    span_id: u64,
    flags: u8,
    /// The client's `tracestate`, forwarded unchanged with a continued trace.
    state: Option<String>,
}

/// The parts of a valid `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub parent_id: u64,
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value (W3C Trace Context, version 00, and later versions by
    /// their version-00 prefix as the spec asks). `None` for anything invalid: a version of
    /// `ff`, upper-case or non-hex digits, an all-zero trace or parent id, a wrong length.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        if raw.len() < TRACEPARENT_LEN || raw[2] != b'-' || raw[35] != b'-' || raw[52] != b'-' {
            return None;
        }
        let version = lower_hex(&raw[0..2])? as u8;
        let exact = version == 0;
        if version == 0xff
            || (exact && raw.len() != TRACEPARENT_LEN)
            || (!exact && raw.len() > TRACEPARENT_LEN && raw[TRACEPARENT_LEN] != b'-')
        {
            return None;
        }
        let trace_id = lower_hex(&raw[3..35])?;
        let parent_id = lower_hex(&raw[36..52])? as u64;
        let flags = lower_hex(&raw[53..55])? as u8;
        (trace_id != 0 && parent_id != 0).then_some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }
}

/// Up to 32 lower-case hex digits as a number; `None` on anything else (the spec forbids
/// upper case).
fn lower_hex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |acc, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some((acc << 4) | u128::from(v))
    })
}

impl TraceContext {
    /// Continues the client's trace when it sent exactly one valid `traceparent`, else starts
    /// a new one (not sampled: supagate records no spans of its own to export). Either way
    /// supagate gets a new span id.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut sent = headers.get_all(TRACEPARENT);
        let parent = match (sent.next(), sent.next()) {
            (Some(value), None) => TraceParent::parse(value.as_bytes()),
            _ => None,
        };
        match parent {
            Some(parent) => Self {
                trace_id: parent.trace_id,
                span_id: new_span_id(),
                // Only the sampled flag is defined for version 00; the others are dropped.
                flags: parent.flags & SAMPLED,
                state: tracestate(headers),
            },
            None => Self::start(),
        }
    }

    /// A new trace.
    pub fn start() -> Self {
        Self {
            // A version-4 UUID: 122 random bits, never zero (the version nibble is set).
            trace_id: Uuid::new_v4().as_u128(),
            span_id: new_span_id(),
            flags: 0,
            state: None,
        }
    }

    pub fn trace_id(&self) -> TraceId {
        TraceId(self.trace_id)
    }

    /// The `traceparent` to send upstream: this trace, supagate's span as the parent.
    pub fn traceparent(&self) -> [u8; TRACEPARENT_LEN] {
        let mut out = [0u8; TRACEPARENT_LEN];
        out[..3].copy_from_slice(b"00-");
        // The slice lengths are fixed, so encoding cannot fail.
        let _ = hex::encode_to_slice(self.trace_id.to_be_bytes(), &mut out[3..35]);
        out[35] = b'-';
        let _ = hex::encode_to_slice(self.span_id.to_be_bytes(), &mut out[36..52]);
        out[52] = b'-';
        let _ = hex::encode_to_slice([self.flags], &mut out[53..55]);
        out
    }

    /// The client's `tracestate`, when the trace was continued.
    pub fn tracestate(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// Runs `fut` with this context as the current one (see [`current`]).
    pub fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, fut)
    }
}

/// A span id: the low half of a version-4 UUID, whose variant bits make it never zero.
fn new_span_id() -> u64 {
    Uuid::new_v4().as_u64_pair().1
}

/// A `tracestate` worth forwarding: one header, at most 512 bytes of visible ASCII.
fn tracestate(headers: &HeaderMap) -> Option<String> {
    let mut sent = headers.get_all(TRACESTATE);
    let (Some(value), None) = (sent.next(), sent.next()) else {
        return None;
    };
    let raw = value.as_bytes();
    let visible = |b: &u8| b.is_ascii_graphic() || *b == b' ';
    (!raw.is_empty() && raw.len() <= TRACESTATE_MAX && raw.iter().all(visible))
        .then(|| String::from_utf8_lossy(raw).into_owned())
}

/// A trace id as 32 lower-case hex digits.
#[derive(Clone, Copy, Debug)]
pub struct TraceId(u128);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

tokio::task_local! {
    /// The trace of the request whose future is being polled. A task-local rather than a
    /// span field: the outbound client reads it on every call, and a task-local read is a
    /// thread-local lookup, where a span field would need a subscriber round trip.
    static CURRENT: TraceContext;
}

/// Calls `f` with the trace of the request being served, if any (none for background work
/// such as the periodic JWKS refresh).
pub fn with_current<R>(f: impl FnOnce(&TraceContext) -> R) -> Option<R> {
    CURRENT.try_with(f).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_parses_into_its_ids() {
        let parent = TraceParent::parse(VALID.as_bytes()).unwrap();
        assert_eq!(parent.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(parent.parent_id, 0x00f067aa0ba902b7);
        assert_eq!(parent.flags, 1);
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert_eq!(TraceParent::parse(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn later_versions_are_read_by_their_version_00_prefix() {
        let newer = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-whatever";
        let parent = TraceParent::parse(newer.as_bytes()).unwrap();
        assert_eq!(parent.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
    }

    #[test]
    fn a_continued_trace_keeps_the_trace_id_and_gets_a_new_parent_id() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, VALID.parse().unwrap());
        headers.insert(TRACESTATE, "congo=t61rcWkgMzE".parse().unwrap());
        let ctx = TraceContext::from_headers(&headers);
        let sent = ctx.traceparent();
        let sent = std::str::from_utf8(&sent).unwrap();
        let parsed = TraceParent::parse(sent.as_bytes()).unwrap();
        assert_eq!(&sent[..36], &VALID[..36]);
        assert_ne!(parsed.parent_id, 0x00f067aa0ba902b7);
        assert_eq!(parsed.flags, 1);
        assert_eq!(ctx.tracestate(), Some("congo=t61rcWkgMzE"));
    }

    #[test]
    fn without_a_valid_traceparent_a_new_trace_starts() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, "00-junk".parse().unwrap());
        headers.insert(TRACESTATE, "congo=t61rcWkgMzE".parse().unwrap());
        let a = TraceContext::from_headers(&headers);
        let b = TraceContext::from_headers(&HeaderMap::new());
        let sent = a.traceparent();
        let parsed = TraceParent::parse(&sent).unwrap();
        assert_ne!(a.trace_id, b.trace_id);
        assert_eq!(parsed.flags, 0);
        assert_eq!(
            a.tracestate(),
            None,
            "a tracestate without its trace is meaningless"
        );
    }
}
