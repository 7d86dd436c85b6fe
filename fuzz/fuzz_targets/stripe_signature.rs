//! The `Stripe-Signature` header parser and verifier over arbitrary header and payload bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use supagate::stripe;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let (header, payload) = rest.split_at((cut as usize).min(rest.len()));
    let secrets: [&[u8]; 2] = [b"whsec_fuzz_one", b"whsec_fuzz_two"];
    let _ = stripe::verify(payload, header, &secrets, 1_700_000_000, 300);
    let _ = stripe::verify(payload, header, &secrets, i64::MIN, u64::MAX);
});
