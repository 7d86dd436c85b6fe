//! The `q` escaping of `supabase::postgrest` checked against PostgreSQL's own regex engine:
//! `name ~* <escaped q>` (PostgREST `imatch`) must be a literal, case-insensitive substring
//! match, and `username ~ ^<escaped prefix>` (`match`) a literal prefix match.

use proptest::prelude::*;
use supagate::supabase::postgrest::regex_literal;

use super::cluster::fresh_db;

fn imatch(db: &mut postgres::Client, text: &str, q: &str) -> bool {
    db.query_one("select $1::text ~* $2::text", &[&text, &regex_literal(q)])
        .expect("regex accepted")
        .get(0)
}

#[test]
fn wildcard_and_grammar_characters_match_only_themselves() {
    let mut db = fresh_db();
    let reserved = [
        "%", "_", "*", "\\", ",", "(", ")", "\"", ".", "[", "]", "^", "$", "|", "?", "+", "{", "}",
        ":", "'",
    ];
    for c in reserved {
        assert!(
            imatch(&mut db, &format!("a{c}b"), c),
            "{c} should match itself"
        );
        assert!(
            !imatch(&mut db, "plain text", c),
            "{c} must not act as a wildcard"
        );
    }
    assert!(imatch(&mut db, "50% OFF", "50% off"));
    assert!(!imatch(&mut db, "50x off", "50% off"));
    assert!(!imatch(&mut db, "ab", "a_b"));
    assert!(!imatch(&mut db, "axxb", "a*b"));
    assert!(imatch(&mut db, "Grüße", "GRÜ"));
}

#[test]
fn prefix_match_is_literal_and_anchored() {
    let mut db = fresh_db();
    let prefix = |db: &mut postgres::Client, text: &str, p: &str| -> bool {
        db.query_one(
            "select $1::text ~ $2::text",
            &[&text, &format!("^{}", regex_literal(p))],
        )
        .expect("regex accepted")
        .get(0)
    };
    assert!(prefix(&mut db, "ann_smith", "ann_"));
    assert!(!prefix(&mut db, "annxsmith", "ann_"));
    assert!(!prefix(&mut db, "joann_", "ann_"));
}

/// For printable ASCII, PostgreSQL agrees with a plain case-insensitive `contains`; one
/// database serves every case (the runner's closure is `Fn`, hence the `RefCell`).
#[test]
fn postgres_imatch_agrees_with_literal_contains() {
    let db = std::cell::RefCell::new(fresh_db());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(256));
    runner
        .run(&("[ -~]{0,20}", "[ -~]{1,6}"), |(text, q)| {
            let mut db = db.borrow_mut();
            let expected = text.to_ascii_lowercase().contains(&q.to_ascii_lowercase());
            prop_assert_eq!(imatch(&mut db, &text, &q), expected);
            // And q always matches a text that embeds it.
            let embedded = format!("x{q}y");
            prop_assert!(imatch(&mut db, &embedded, &q));
            Ok(())
        })
        .unwrap();
}
