//! The query-string types of the list endpoints, decoded as the extractor decodes them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use supagate::api::input::parse_query;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_query::<supagate::api::items::ItemListQuery>(text);
    let _ = parse_query::<supagate::api::users::UserListQuery>(text);
});
