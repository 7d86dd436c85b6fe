//! The `@supabase/ssr` session cookie reader: a raw `Cookie` header, split into pairs, the
//! session (whole or chunked, `base64-` or raw JSON) read out of it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use supagate::auth::cookie;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let pairs: Vec<(&str, &str)> = cookie::cookie_pairs(header).collect();
    let _ = cookie::read_session("sb-127-auth-token", pairs.iter().copied());
    let _ = cookie::decode_value(header);
});
