//! The query-string structs of the list endpoints, parsed as actix parses them, then validated.
#![no_main]
use actix_web::web::Query;
use garde::Validate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(q) = Query::<supagate::api::items::ListQuery>::from_query(text) {
        let _ = q.validate();
    }
    if let Ok(q) = Query::<supagate::api::users::ListQuery>::from_query(text) {
        let _ = q.validate();
    }
});
