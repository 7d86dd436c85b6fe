//! Input is parsed at the edge and every problem is reported at once, each under its field
//! (zod `flatten()` parity): missing fields, wrong JSON types and rule failures together.
//! Nothing reaches Supabase until the whole input is valid.

use serde_json::{json, Value};

use crate::support::*;

const USER: &str = "4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90";

async fn problems(app: &TestApp, res: reqwest::Response) -> Value {
    let (status, body) = json_of(res).await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "validation_failed"),
        "{body}"
    );
    assert!(
        app.upstream_requests().await.is_empty(),
        "nothing may be sent upstream"
    );
    body["details"].clone()
}

fn fields(details: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = details["fieldErrors"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn a_missing_a_wrong_typed_and_a_too_long_field_are_reported_in_one_answer() {
    let app = TestApp::spawn().await;
    let res = app
        .post("/api/items")
        .bearer_auth(user_token(USER))
        .json(&json!({"price": "12", "description": "x".repeat(2001)}))
        .send()
        .await
        .unwrap();
    let details = problems(&app, res).await;
    assert_eq!(fields(&details), ["description", "name", "price"]);
    assert_eq!(details["fieldErrors"]["name"], json!(["is required"]));
    assert_eq!(details["fieldErrors"]["price"], json!(["must be a number"]));
    assert_eq!(
        details["fieldErrors"]["description"],
        json!(["must be at most 2000 characters"])
    );
    assert_eq!(details["formErrors"], json!([]));
}

#[tokio::test]
async fn wrong_json_types_and_unknown_fields_are_named_each_under_their_field() {
    let app = TestApp::spawn().await;
    let res = app
        .post("/api/items")
        .bearer_auth(user_token(USER))
        .json(&json!({"name": 123, "price": 1, "category_id": ["x"], "owner": USER}))
        .send()
        .await
        .unwrap();
    let details = problems(&app, res).await;
    assert_eq!(fields(&details), ["category_id", "name", "owner"]);
    assert_eq!(details["fieldErrors"]["name"], json!(["must be a string"]));
    assert_eq!(
        details["fieldErrors"]["owner"],
        json!(["is not an allowed field"])
    );
}

#[tokio::test]
async fn a_body_that_is_not_an_object_is_a_form_error() {
    let app = TestApp::spawn().await;
    let res = app
        .post("/api/items")
        .bearer_auth(user_token(USER))
        .json(&json!(["name", "price"]))
        .send()
        .await
        .unwrap();
    let details = problems(&app, res).await;
    assert_eq!(details["formErrors"], json!(["Expected a JSON object"]));
    assert_eq!(details["fieldErrors"], json!({}));
}

#[tokio::test]
async fn a_patch_reports_a_null_name_beside_a_bad_price() {
    let app = TestApp::spawn().await;
    let res = app
        .patch("/api/items/0b6f1c2e-4a5d-4e8f-9b1a-2c3d4e5f6a7b")
        .bearer_auth(user_token(USER))
        .json(&json!({"name": null, "price": 1.005}))
        .send()
        .await
        .unwrap();
    let details = problems(&app, res).await;
    assert_eq!(details["fieldErrors"]["name"], json!(["must not be null"]));
    assert_eq!(
        details["fieldErrors"]["price"],
        json!(["must have at most 2 decimal places"])
    );
}

#[tokio::test]
async fn an_admin_created_user_with_three_bad_fields_hears_of_all_three() {
    let app = TestApp::spawn().await;
    let res = app
        .post("/api/users")
        .bearer_auth(admin_token(USER))
        .json(&json!({"email": "not-an-email", "password": "123", "username": "A!"}))
        .send()
        .await
        .unwrap();
    let details = problems(&app, res).await;
    assert_eq!(fields(&details), ["email", "password", "username"]);
}

#[tokio::test]
async fn every_bad_query_parameter_is_reported_at_once() {
    let app = TestApp::spawn().await;
    let res = app
        .get("/api/items?limit=0&order=up&min_price=-1&category_id=nope")
        .send()
        .await
        .unwrap();
    let details = problems(&app, res).await;
    assert_eq!(
        fields(&details),
        ["category_id", "limit", "min_price", "order"]
    );
}

#[tokio::test]
async fn a_repeated_query_parameter_is_refused_rather_than_guessed() {
    let app = TestApp::spawn().await;
    let res = app.get("/api/items?limit=5&limit=50").send().await.unwrap();
    let details = problems(&app, res).await;
    assert_eq!(
        details["fieldErrors"]["limit"],
        json!(["must be given once"])
    );
}

/// Refusing unknown query parameters is the route table's default, not something each handler
/// opts into: the auth, MFA and webhook routes, whose handlers read no query string, refuse
/// one too, before anything reaches Supabase or Stripe's handler.
#[tokio::test]
async fn a_route_that_documents_no_query_parameter_refuses_any_before_its_handler() {
    let app = TestApp::spawn().await;
    for (method, path) in [
        ("POST", "/api/auth/login?select=*"),
        ("POST", "/api/auth/refresh?x=1"),
        ("GET", "/api/auth/user?or=(id.gt.0)"),
        ("POST", "/api/auth/mfa/challenge?a"),
        ("POST", "/api/webhooks/stripe?debug=1"),
    ] {
        let req = match method {
            "GET" => app.get(path),
            _ => app
                .post(path)
                .header("content-type", "application/json")
                .body("{}"),
        };
        let (status, body) = json_of(req.send().await.unwrap()).await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "unknown_parameter"),
            "{method} {path}"
        );
    }
    assert!(app.upstream_requests().await.is_empty());
}
