//! Stripe's `Stripe-Signature` scheme (as `stripe-node` 23 verifies it): HMAC-SHA256 keyed with
//! the whole `whsec_…` string over `"{t}.{raw body}"`, lower-case hex, any `v1` may match.
//!
//! One deliberate deviation from the SDK: a timestamp more than `tolerance` seconds in the
//! *future* is rejected too (the SDK accepts any future `t`), so a leaked header cannot be
//! replayed for longer than the window by pre-dating a clock.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The only scheme Stripe signs live events with; `v0` (test-mode legacy) and anything else is
/// ignored, as the SDK does.
const SCHEME: &[u8] = b"v1";

/// Why a delivery was refused. Logged at debug level only: the HTTP answer never says which
/// check failed, so a forger learns nothing from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    MissingHeader,
    /// Not `key=value` pairs, not UTF-8, a `t` that is not a plain integer, or two `t`s.
    Malformed,
    NoTimestamp,
    /// No `v1` entry at all (for instance `v0` only).
    NoSignature,
    /// Older than the tolerance.
    Stale,
    /// Further in the future than the tolerance (stricter than the SDK).
    Future,
    /// No configured secret produced any of the `v1` values.
    Mismatch,
    /// Nothing to verify with: a configuration problem, not the sender's.
    NoSecrets,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingHeader => "no Stripe-Signature header",
            Self::Malformed => "malformed Stripe-Signature header",
            Self::NoTimestamp => "no timestamp in Stripe-Signature",
            Self::NoSignature => "no v1 signature in Stripe-Signature",
            Self::Stale => "timestamp older than the tolerance",
            Self::Future => "timestamp further in the future than the tolerance",
            Self::Mismatch => "no v1 signature matches a configured secret",
            Self::NoSecrets => "no webhook secret configured",
        })
    }
}

impl std::error::Error for SignatureError {}

/// A parsed header: the timestamp and every `v1` value (borrowed from the header).
#[derive(Debug, PartialEq, Eq)]
struct Parsed<'h> {
    timestamp: i64,
    signatures: Vec<&'h [u8]>,
}

fn parse(header: &[u8]) -> Result<Parsed<'_>, SignatureError> {
    if header.is_empty() {
        return Err(SignatureError::MissingHeader);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(|&b| b == b',') {
        let eq = item
            .iter()
            .position(|&b| b == b'=')
            .ok_or(SignatureError::Malformed)?;
        let (key, value) = (&item[..eq], &item[eq + 1..]);
        match key {
            b"t" => {
                // A second `t` is ambiguous (the SDK silently takes the last one): refuse it.
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed);
                }
                timestamp = Some(parse_timestamp(value)?);
            }
            SCHEME => signatures.push(value),
            _ => {} // v0 and schemes Stripe may add later
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::NoTimestamp)?;
    if signatures.is_empty() {
        return Err(SignatureError::NoSignature);
    }
    Ok(Parsed {
        timestamp,
        signatures,
    })
}

/// Plain ASCII digits only (no sign, no spaces): `parseInt`'s leniency buys nothing here.
fn parse_timestamp(value: &[u8]) -> Result<i64, SignatureError> {
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return Err(SignatureError::Malformed);
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(SignatureError::Malformed)
}

/// The lower-case hex `v1` signature of `payload` at `timestamp` under `secret`. The signed
/// string uses the timestamp as a decimal integer, exactly as the SDK formats it.
pub fn sign(payload: &[u8], secret: &[u8], timestamp: i64) -> String {
    hex::encode(mac(payload, secret, timestamp))
}

fn mac(payload: &[u8], secret: &[u8], timestamp: i64) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail; the fallback keeps it panic-free.
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return [0; 32];
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac.finalize().into_bytes().into()
}

/// Verifies a delivery. `header` is the raw `Stripe-Signature` value (empty when absent),
/// `secrets` the configured signing secrets (several during a rotation), `now` Unix seconds.
/// Returns the signed timestamp when some `v1` matches some secret in constant time and the
/// timestamp is within `tolerance` seconds of `now` in either direction.
pub fn verify<S: AsRef<[u8]>>(
    payload: &[u8],
    header: &[u8],
    secrets: &[S],
    now: i64,
    tolerance: u64,
) -> Result<i64, SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecrets);
    }
    let parsed = parse(header)?;
    let tolerance = i64::try_from(tolerance).unwrap_or(i64::MAX);
    let age = now.saturating_sub(parsed.timestamp);
    if age > tolerance {
        return Err(SignatureError::Stale);
    }
    if age < tolerance.saturating_neg() {
        return Err(SignatureError::Future);
    }
    for secret in secrets {
        // Compare hex strings, not decoded bytes: the SDK compares the exact lower-case string,
        // so upper-case hex is refused here too.
        let expected = sign(payload, secret.as_ref(), parsed.timestamp);
        let matched = parsed
            .signatures
            .iter()
            .any(|given| bool::from(given.ct_eq(expected.as_bytes())));
        if matched {
            return Ok(parsed.timestamp);
        }
    }
    Err(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn fixture() -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/stripe.json");
        let text = std::fs::read_to_string(path).expect("stripe fixture");
        serde_json::from_str(&text).expect("stripe fixture is JSON")
    }

    fn s(v: &Value) -> &str {
        v.as_str().expect("string field")
    }

    #[test]
    fn every_sdk_verification_case_gets_the_sdks_answer_except_future_timestamps() {
        let fx = fixture();
        let cases = fx["verification_cases"].as_array().expect("cases");
        assert!(cases.len() >= 10);
        for case in cases {
            let name = s(&case["name"]);
            let result = verify(
                s(&case["payload"]).as_bytes(),
                s(&case["header"]).as_bytes(),
                &[s(&case["secret"])],
                case["now"].as_i64().expect("now"),
                case["tolerance"].as_u64().expect("tolerance"),
            );
            let sdk_accepts = case["sdk_accepts"].as_bool().expect("sdk_accepts");
            if name == "future_t" {
                // The documented deviation: one hour ahead is refused here, accepted by the SDK.
                assert!(sdk_accepts);
                assert_eq!(result, Err(SignatureError::Future), "{name}");
            } else {
                assert_eq!(result.is_ok(), sdk_accepts, "{name}: {result:?}");
            }
        }
    }

    #[test]
    fn every_fixture_event_verifies_with_its_secret_and_not_with_the_other() {
        let fx = fixture();
        for event in fx["events"].as_array().expect("events") {
            let (payload, header) = (s(&event["payload"]), s(&event["header"]));
            let t = event["timestamp"].as_i64().expect("t");
            let secret = s(&event["secret"]);
            assert_eq!(
                verify(payload.as_bytes(), header.as_bytes(), &[secret], t, 300),
                Ok(t)
            );
            let other = if secret == s(&fx["secrets"]["primary"]) {
                s(&fx["secrets"]["rotated"])
            } else {
                s(&fx["secrets"]["primary"])
            };
            assert_eq!(
                verify(payload.as_bytes(), header.as_bytes(), &[other], t, 300),
                Err(SignatureError::Mismatch)
            );
            // Both secrets configured, as during a rotation: accepted whichever signed.
            assert_eq!(
                verify(
                    payload.as_bytes(),
                    header.as_bytes(),
                    &[other, secret],
                    t,
                    300
                ),
                Ok(t)
            );
            assert_eq!(
                format!(
                    "t={t},v1={}",
                    sign(payload.as_bytes(), secret.as_bytes(), t)
                ),
                header
            );
        }
    }

    #[test]
    fn a_header_with_two_v1_values_verifies_with_either_secret_in_any_order() {
        let fx = fixture();
        let multi = &fx["multi_signature"];
        let payload = s(&multi["payload"]).as_bytes();
        let t = multi["timestamp"].as_i64().expect("t");
        for header in [&multi["header"], &multi["header_rotated_first_with_v0"]] {
            for secret in ["primary", "rotated"] {
                let secret = s(&fx["secrets"][secret]);
                assert_eq!(
                    verify(payload, s(header).as_bytes(), &[secret], t, 300),
                    Ok(t)
                );
            }
        }
    }

    const SECRET: &str = "whsec_unit";

    fn header_at(payload: &[u8], t: i64) -> String {
        format!("t={t},v1={}", sign(payload, SECRET.as_bytes(), t))
    }

    #[test]
    fn the_tolerance_window_is_inclusive_on_both_sides() {
        let h = header_at(b"{}", 1_000);
        let check = |now| verify(b"{}", h.as_bytes(), &[SECRET], now, 300);
        assert_eq!(check(1_300), Ok(1_000));
        assert_eq!(check(1_301), Err(SignatureError::Stale));
        assert_eq!(check(700), Ok(1_000));
        assert_eq!(check(699), Err(SignatureError::Future));
    }

    #[test]
    fn malformed_headers_are_refused_with_a_reason() {
        let sig = sign(b"{}", SECRET.as_bytes(), 1_000);
        let cases: &[(&str, SignatureError)] = &[
            ("", SignatureError::MissingHeader),
            ("garbage", SignatureError::Malformed),
            ("t=1000;v1=abc", SignatureError::Malformed),
            ("t=,v1=abc", SignatureError::Malformed),
            ("t=-1000,v1=abc", SignatureError::Malformed),
            ("t=+1000,v1=abc", SignatureError::Malformed),
            ("t= 1000,v1=abc", SignatureError::Malformed),
            ("t=1e3,v1=abc", SignatureError::Malformed),
            ("t=99999999999999999999,v1=abc", SignatureError::Malformed),
            ("t=1000,t=1000,v1=abc", SignatureError::Malformed),
            ("t=1000,", SignatureError::Malformed),
            ("t=1000", SignatureError::NoSignature),
            ("t=1000,v0=abc,v2=abc", SignatureError::NoSignature),
            ("v1=abc", SignatureError::NoTimestamp),
            ("T=1000,V1=abc", SignatureError::NoTimestamp),
        ];
        for (header, expected) in cases {
            assert_eq!(
                verify(b"{}", header.as_bytes(), &[SECRET], 1_000, 300),
                Err(*expected),
                "{header:?}"
            );
        }
        let ok = format!("t=1000,v1={sig}");
        assert_eq!(
            verify(b"{}", ok.as_bytes(), &[SECRET], 1_000, 300),
            Ok(1_000)
        );
        // Stripe's header has no spaces; the SDK does not trim, so neither do we.
        let spaced = format!("t=1000, v1={sig}");
        assert_eq!(
            verify(b"{}", spaced.as_bytes(), &[SECRET], 1_000, 300),
            Err(SignatureError::NoSignature)
        );
    }

    #[test]
    fn unknown_schemes_and_wrong_v1_values_next_to_a_good_one_do_not_matter() {
        let sig = sign(b"{}", SECRET.as_bytes(), 1_000);
        let header = format!("t=1000,v0=zz,v1=00,v9=x=y,v1={sig},v1=");
        assert_eq!(
            verify(b"{}", header.as_bytes(), &[SECRET], 1_000, 300),
            Ok(1_000)
        );
    }

    #[test]
    fn truncated_or_upper_case_signatures_fail() {
        let sig = sign(b"{}", SECRET.as_bytes(), 1_000);
        for bad in [&sig[..63], &sig.to_uppercase(), &format!("{sig}0")] {
            let header = format!("t=1000,v1={bad}");
            assert_eq!(
                verify(b"{}", header.as_bytes(), &[SECRET], 1_000, 300),
                Err(SignatureError::Mismatch)
            );
        }
    }

    #[test]
    fn no_configured_secret_refuses_everything() {
        let header = header_at(b"{}", 1_000);
        let none: [&str; 0] = [];
        assert_eq!(
            verify(b"{}", header.as_bytes(), &none, 1_000, 300),
            Err(SignatureError::NoSecrets)
        );
    }

    #[test]
    fn extreme_clocks_do_not_overflow() {
        let header = header_at(b"{}", 0);
        assert_eq!(
            verify(b"{}", header.as_bytes(), &[SECRET], i64::MIN + 1, u64::MAX),
            Ok(0)
        );
        assert_eq!(
            verify(b"{}", header.as_bytes(), &[SECRET], i64::MAX, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(b"{}", header.as_bytes(), &[SECRET], i64::MIN, 300),
            Err(SignatureError::Future)
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_header_and_body(
            header in proptest::collection::vec(any::<u8>(), 0..300),
            body in proptest::collection::vec(any::<u8>(), 0..300),
            now in any::<i64>(),
            tolerance in any::<u64>(),
        ) {
            let _ = verify(&body, &header, &[SECRET], now, tolerance);
        }

        #[test]
        fn never_panics_on_header_like_strings(
            header in "(t=[0-9]{0,20}|v[01]=[0-9a-f]{0,64}|[a-z]{0,3}=?[^,]{0,5})(,(t=-?[0-9]{0,20}|v1=[0-9a-fA-F]{0,66}|[^,]{0,8})){0,6}",
            now in any::<i64>(),
        ) {
            let _ = verify(b"{}", header.as_bytes(), &[SECRET], now, 300);
        }

        #[test]
        fn a_correct_signature_over_any_bytes_verifies(
            body in proptest::collection::vec(any::<u8>(), 0..2048),
            t in 0i64..4_000_000_000,
            skew in -300i64..=300,
        ) {
            let header = header_at(&body, t);
            prop_assert_eq!(verify(&body, header.as_bytes(), &[SECRET], t + skew, 300), Ok(t));
        }

        #[test]
        fn any_single_byte_change_to_the_body_fails(
            body in proptest::collection::vec(any::<u8>(), 1..512),
            index in any::<proptest::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let header = header_at(&body, 1_000);
            let mut tampered = body.clone();
            let i = index.index(tampered.len());
            tampered[i] ^= flip;
            prop_assert_eq!(
                verify(&tampered, header.as_bytes(), &[SECRET], 1_000, 300),
                Err(SignatureError::Mismatch)
            );
        }

        #[test]
        fn any_single_byte_change_to_the_signature_fails(
            index in 0usize..64,
            replacement in any::<u8>(),
        ) {
            let sig = sign(b"{}", SECRET.as_bytes(), 1_000);
            let mut bytes = sig.into_bytes();
            prop_assume!(bytes[index] != replacement);
            bytes[index] = replacement;
            let mut header = b"t=1000,v1=".to_vec();
            header.extend_from_slice(&bytes);
            let result = verify(b"{}", &header, &[SECRET], 1_000, 300);
            prop_assert!(result.is_err(), "accepted a changed signature");
        }
    }
}
