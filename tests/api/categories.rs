//! `/api/categories`: public list, admin-only creation.

use serde_json::json;
use wiremock::ResponseTemplate;

use crate::support::*;

fn category() -> serde_json::Value {
    json!({"id": CATEGORY_ID, "name": "Kitchen", "slug": "kitchen"})
}

#[tokio::test]
async fn list_is_public_ordered_by_name_and_streamed() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "GET",
        "categories",
        pg_list(json!([category()]), "0-0/1"),
    )
    .await;
    let res = app.get("/api/categories").send().await.unwrap();
    assert_eq!(res.headers()["x-total-count"], "1");
    let (status, body) = json_of(res).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!([category()]));
    let requests = app.upstream_requests().await;
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(
        (req.method.as_str(), req.url.path()),
        ("GET", "/rest/v1/categories")
    );
    assert_eq!(
        query_pairs(req),
        vec![
            ("select".to_owned(), "id,name,slug".to_owned()),
            ("order".to_owned(), "name.asc,id.asc".to_owned())
        ]
    );
    assert_sent_anonymously(req);
}

#[tokio::test]
async fn list_rejects_any_query_parameter() {
    let app = TestApp::spawn().await;
    for q in ["order=slug.desc", "select=*", "or=(id.gt.0)"] {
        let (status, body) = json_of(
            app.get(&format!("/api/categories?{q}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "unknown_parameter"),
            "{q}"
        );
    }
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn admin_creates_a_category_with_their_own_token() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "POST",
        "categories",
        ResponseTemplate::new(201).set_body_json(category()),
    )
    .await;
    let token = admin_token(USER_A);
    let res = app
        .post("/api/categories")
        .bearer_auth(&token)
        .json(&json!({"name": " Kitchen ", "slug": "kitchen"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["location"],
        format!("/api/categories/{CATEGORY_ID}").as_str()
    );
    let (status, body) = json_of(res).await;
    assert_eq!((status, body), (201, category()));
    let requests = app.upstream_requests().await;
    let req = &requests[0];
    assert_eq!(req.method.as_str(), "POST");
    assert_eq!(
        body_json(req),
        json!({"name": "Kitchen", "slug": "kitchen"})
    );
    assert_eq!(headers_of(req, "prefer"), vec!["return=representation"]);
    assert_eq!(
        headers_of(req, "accept"),
        vec!["application/vnd.pgrst.object+json"]
    );
    assert_sent_as_user(req, &token);
    assert_service_key_never_sent(&requests);
}

#[tokio::test]
async fn a_regular_user_cannot_create_a_category() {
    let app = TestApp::spawn().await;
    let res = app
        .post("/api/categories")
        .bearer_auth(user_token(USER_A))
        .json(&json!({"name": "Kitchen", "slug": "kitchen"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (403, "forbidden"));
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn a_user_metadata_admin_cannot_create_a_category() {
    let app = TestApp::spawn().await;
    let res = app
        .post("/api/categories")
        .bearer_auth(user_metadata_admin_token(USER_A))
        .json(&json!({"name": "Kitchen", "slug": "kitchen"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn anonymous_create_is_401() {
    let app = TestApp::spawn().await;
    let res = app
        .post("/api/categories")
        .json(&json!({"name": "K", "slug": "k"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn duplicate_slug_is_409_conflict() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "POST", "categories", pg_error(409, "23505")).await;
    let res = app
        .post("/api/categories")
        .bearer_auth(admin_token(USER_A))
        .json(&json!({"name": "Kitchen", "slug": "kitchen"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (409, "conflict"));
}

#[tokio::test]
async fn create_rejects_a_malformed_slug() {
    let app = TestApp::spawn().await;
    for slug in ["Kitchen", "a--b", "-a", "a b", ""] {
        let res = app
            .post("/api/categories")
            .bearer_auth(admin_token(USER_A))
            .json(&json!({"name": "Kitchen", "slug": slug}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(res).await;
        assert_eq!(status, 400, "{slug}");
        assert_field_error(&body, "slug");
    }
}

#[tokio::test]
async fn create_rejects_an_empty_name() {
    let app = TestApp::spawn().await;
    let res = app
        .post("/api/categories")
        .bearer_auth(admin_token(USER_A))
        .json(&json!({"name": " ", "slug": "k"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 400);
    assert_field_error(&body, "name");
}

#[tokio::test]
async fn create_rejects_an_unknown_field() {
    let app = TestApp::spawn().await;
    let res = app
        .post("/api/categories")
        .bearer_auth(admin_token(USER_A))
        .json(&json!({"name": "K", "slug": "k", "id": CATEGORY_ID}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 400);
    assert_field_error(&body, "id");
}

#[tokio::test]
async fn the_created_location_resolves() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "GET",
        "categories",
        ResponseTemplate::new(200).set_body_json(category()),
    )
    .await;
    let (status, body) = json_of(
        app.get(&format!("/api/categories/{CATEGORY_ID}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (200, category()));
}
