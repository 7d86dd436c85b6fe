//! `/openapi.json`, `supagate openapi` and `/docs`: the document matches the route table, is
//! pinned by a reviewed snapshot, and the docs page needs nothing from outside the binary.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::*;

fn document() -> Value {
    serde_json::from_str(supagate::openapi::document_json()).expect("the document is JSON")
}

#[test]
fn the_route_table_and_the_document_list_the_same_operations() {
    let routed: BTreeSet<(String, String)> = supagate::server::route_table().into_iter().collect();
    let documented: BTreeSet<(String, String)> = supagate::openapi::documented_operations()
        .into_iter()
        .collect();
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routed but undocumented: {missing:?}; documented but not routed: {extra:?}"
    );
    // Sanity: the comparison saw the whole API.
    assert!(routed.contains(&("PATCH".to_owned(), "/api/items/{id}".to_owned())));
    assert!(routed.len() >= 25, "{routed:?}");
}

/// Two different schemas published under one component name: the document keeps one and the
/// other's operations silently describe the wrong body. None may exist.
#[test]
fn no_two_schemas_share_a_component_name() {
    assert_eq!(
        supagate::openapi::schema_name_collisions(),
        Vec::<String>::new()
    );
    // The check itself sees a clash when there is one.
    use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
    let object = |t: Type| {
        utoipa::openapi::RefOr::T(Schema::Object(ObjectBuilder::new().schema_type(t).build()))
    };
    let clash = vec![
        ("Check".to_owned(), object(Type::String)),
        ("Check".to_owned(), object(Type::String)),
        ("Check".to_owned(), object(Type::Integer)),
        ("Other".to_owned(), object(Type::String)),
    ];
    assert_eq!(supagate::openapi::collisions(&clash), ["Check"]);
}

/// `examples/supagate-api.d.ts` is generated from the document (`scripts/api-types.sh`) and
/// ends with the SHA-256 of the document it was generated from: a change to the API that
/// did not regenerate the types fails here.
#[test]
fn the_typescript_types_are_generated_from_the_current_document() {
    use sha2::Digest;
    // What `supagate openapi` prints, byte for byte (the script hashes that output).
    let printed = format!("{}\n", supagate::openapi::document_json());
    let want = hex::encode(sha2::Sha256::digest(printed.as_bytes()));
    let types = std::fs::read_to_string(repo_path("examples/supagate-api.d.ts")).unwrap();
    let stated = types
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("// Generated from the OpenAPI document with SHA-256 "))
        .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned());
    assert_eq!(
        stated.as_deref(),
        Some(want.as_str()),
        "examples/supagate-api.d.ts is behind the OpenAPI document: run scripts/api-types.sh"
    );
}

/// A change to the document must be reviewed: `cargo insta review` (or accept the
/// `.snap.new` file) after checking the diff. CI sets `CI=true`, under which insta never
/// writes snapshots, and `.ci/run` also exports `INSTA_UPDATE=no`.
#[test]
fn the_document_matches_the_reviewed_snapshot() {
    let mut doc = document();
    // The version changes with every release; the snapshot is about the shape.
    doc["info"]["version"] = Value::from("[version]");
    insta::assert_json_snapshot!("openapi", doc);
}

#[test]
fn the_document_is_openapi_3_1_with_the_three_security_schemes() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer_jwt"]["scheme"], "bearer");
    assert_eq!(schemes["session_cookie"]["in"], "cookie");
    assert_eq!(schemes["stripe_signature"]["name"], "Stripe-Signature");
}

/// Every operation documents each status its handler can answer with a body in the error
/// shape, and lists carry their counting headers, creations their `Location`.
#[test]
fn every_error_response_uses_the_error_schema_and_headers_are_documented() {
    let doc = document();
    let components = &doc["components"]["responses"];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                let response = match response["$ref"].as_str() {
                    Some(r) => &components[r.rsplit('/').next().unwrap()],
                    None => response,
                };
                assert!(
                    response["headers"]["X-Request-Id"].is_object(),
                    "{method} {path} {status}: no X-Request-Id"
                );
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
                if status == "201" {
                    assert!(
                        response["headers"]["Location"].is_object(),
                        "{method} {path}"
                    );
                }
                if status == "429" {
                    assert!(
                        response["headers"]["Retry-After"].is_object(),
                        "{method} {path}"
                    );
                }
            }
            let list =
                op["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array";
            // Keyset lists (`before`, the audit log) page without counting.
            let keyset = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "before"));
            if list && !keyset {
                let headers = &op["responses"]["200"]["headers"];
                assert!(headers["X-Total-Count"].is_object(), "{method} {path}");
                assert!(headers["Content-Range"].is_object(), "{method} {path}");
            }
        }
    }
}

#[tokio::test]
async fn openapi_json_is_served_and_equals_the_printed_document() {
    let app = TestApp::spawn().await;
    let res = app.get("/openapi.json").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let served: Value = res.json().await.unwrap();
    assert_eq!(served, document());

    let (code, stdout, stderr) = run_binary(&["openapi"], &Default::default());
    assert_eq!(code, 0, "{stderr}");
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(printed, served);
}

#[tokio::test]
async fn the_docs_page_and_its_assets_are_same_origin_only() {
    let app = TestApp::spawn().await;
    for (path, kind) in [
        ("/docs", "text/html"),
        ("/docs/docs.js", "text/javascript"),
        ("/docs/docs.css", "text/css"),
    ] {
        let res = app.get(path).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
        let csp = res.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self'"), "{csp}");
        let body = res.text().await.unwrap();
        // Nothing absolute: every asset and the document come from this origin.
        assert!(
            !body.contains("http://") && !body.contains("https://") && !body.contains("//cdn"),
            "{path} references another origin"
        );
    }
}

/// Code generators key operations by id: a duplicate silently merges two operations' types.
#[test]
fn operation_ids_are_unique() {
    let doc = document();
    let mut seen = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let id = op["operationId"]
                .as_str()
                .expect("every operation has an id");
            assert!(seen.insert(id.to_owned()), "duplicate operationId {id}");
        }
    }
}
