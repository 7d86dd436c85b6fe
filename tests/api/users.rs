//! `/api/users`: profiles through PostgREST as the caller; account creation and deletion
//! through the Auth admin API with the service key (and nowhere else).

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::*;

const NEW_USER: &str = "55555555-5555-4555-8555-555555555555";

async fn mock_auth_admin(app: &TestApp, http_method: &str, at: &str, response: ResponseTemplate) {
    Mock::given(method(http_method))
        .and(path(format!("/auth/v1{at}")))
        .respond_with(response)
        .mount(&app.upstream)
        .await;
}

fn auth_user() -> Value {
    json!({"id": NEW_USER, "aud": "authenticated", "role": "authenticated", "email": "bob@example.com"})
}

fn assert_sent_with_service_key(req: &wiremock::Request) {
    assert_eq!(headers_of(req, "apikey"), vec![SERVICE_KEY.to_owned()]);
    assert_eq!(
        headers_of(req, "authorization"),
        vec![format!("Bearer {SERVICE_KEY}")]
    );
}

// ---- list / get ----

#[tokio::test]
async fn list_requires_authentication() {
    let app = TestApp::spawn().await;
    let (status, body) = json_of(app.get("/api/users").send().await.unwrap()).await;
    assert_eq!((status, error_code(&body)), (401, "unauthorized"));
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn list_searches_a_normalised_username_prefix_literally() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "GET",
        "profiles",
        pg_list(json!([profile_row(USER_A)]), "0-0/1"),
    )
    .await;
    let token = user_token(USER_A);
    let res = app
        .get("/api/users?q=Ann_&limit=10&offset=5")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-total-count"], "1");
    assert_eq!(res.headers()["content-range"], "0-0/1");
    let (status, body) = json_of(res).await;
    assert_eq!((status, body), (200, json!([profile_row(USER_A)])));
    let requests = app.upstream_requests().await;
    let req = &requests[0];
    assert_eq!(req.url.path(), "/rest/v1/profiles");
    assert_eq!(
        query_pairs(req),
        vec![
            (
                "select".to_owned(),
                "id,username,full_name,avatar_url,created_at,updated_at".to_owned()
            ),
            ("username".to_owned(), r"match.^ann\_".to_owned()),
            (
                "order".to_owned(),
                "username.asc.nullslast,id.asc".to_owned()
            ),
            ("limit".to_owned(), "10".to_owned()),
            ("offset".to_owned(), "5".to_owned()),
        ]
    );
    assert_eq!(headers_of(req, "prefer"), vec!["count=exact"]);
    assert_sent_as_user(req, &token);
}

#[tokio::test]
async fn list_rejects_a_prefix_with_other_characters() {
    let app = TestApp::spawn().await;
    for q in ["a*", "a%", "a,b", "a.b"] {
        let res = app
            .get("/api/users")
            .query(&[("q", q)])
            .bearer_auth(user_token(USER_A))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(res).await;
        assert_eq!(status, 400, "{q}");
        assert_field_error(&body, "q");
    }
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn list_rejects_unknown_parameters_and_bad_bounds() {
    let app = TestApp::spawn().await;
    let token = user_token(USER_A);
    let (status, body) = json_of(
        app.get("/api/users?order=email")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, error_code(&body)), (400, "unknown_parameter"));
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("offset=-1", "offset"),
    ] {
        let (status, body) = json_of(
            app.get(&format!("/api/users?{q}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400, "{q}");
        assert_field_error(&body, field);
    }
}

#[tokio::test]
async fn get_reads_one_profile() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "GET",
        "profiles",
        ResponseTemplate::new(200).set_body_json(profile_row(USER_B)),
    )
    .await;
    let token = user_token(USER_A);
    let res = app
        .get(&format!("/api/users/{USER_B}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, body), (200, profile_row(USER_B)));
    let requests = app.upstream_requests().await;
    assert_eq!(
        headers_of(&requests[0], "accept"),
        vec!["application/vnd.pgrst.object+json"]
    );
    assert_sent_as_user(&requests[0], &token);
}

#[tokio::test]
async fn get_unknown_profile_is_404() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "GET", "profiles", pg_error(406, "PGRST116")).await;
    let res = app
        .get(&format!("/api/users/{USER_B}"))
        .bearer_auth(user_token(USER_A))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn non_uuid_user_ids_are_invalid_id() {
    let app = TestApp::spawn().await;
    for p in ["/api/users/abc", "/api/users/abc/stats"] {
        let (status, body) = json_of(
            app.get(p)
                .bearer_auth(user_token(USER_A))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((status, error_code(&body)), (400, "invalid_id"), "{p}");
    }
}

// ---- admin create ----

#[tokio::test]
async fn admin_creates_a_user_through_the_auth_admin_api_then_fills_the_profile() {
    let app = TestApp::spawn().await;
    mock_auth_admin(
        &app,
        "POST",
        "/admin/users",
        ResponseTemplate::new(200).set_body_json(auth_user()),
    )
    .await;
    mock_rest(
        &app,
        "PATCH",
        "profiles",
        ResponseTemplate::new(200).set_body_json(profile_row(NEW_USER)),
    )
    .await;
    let token = admin_token(USER_A);
    let res = app.post("/api/users").bearer_auth(&token)
        .json(&json!({"email": "bob@example.com", "password": "hunter22", "username": " Bob_1 ", "full_name": "Bob"}))
        .send().await.unwrap();
    assert_eq!(
        res.headers()["location"],
        format!("/api/users/{NEW_USER}").as_str()
    );
    let (status, body) = json_of(res).await;
    assert_eq!((status, body), (201, profile_row(NEW_USER)));

    let requests = app.upstream_requests().await;
    assert_eq!(requests.len(), 2);
    let create = &requests[0];
    assert_eq!(
        (create.method.as_str(), create.url.path()),
        ("POST", "/auth/v1/admin/users")
    );
    assert_sent_with_service_key(create);
    assert_eq!(
        body_json(create),
        json!({"email": "bob@example.com", "password": "hunter22", "email_confirm": true,
               "user_metadata": {"full_name": "Bob"}})
    );
    let fill = &requests[1];
    assert_eq!(
        (fill.method.as_str(), fill.url.path()),
        ("PATCH", "/rest/v1/profiles")
    );
    assert_eq!(
        query_pairs(fill),
        vec![
            (
                "select".to_owned(),
                "id,username,full_name,avatar_url,created_at,updated_at".to_owned()
            ),
            ("id".to_owned(), format!("eq.{NEW_USER}")),
        ]
    );
    assert_eq!(
        body_json(fill),
        json!({"username": "bob_1", "full_name": "Bob"})
    );
    // The profile write is made as the admin, never with the service key.
    assert_sent_as_user(fill, &token);
    assert_service_key_never_sent(&requests[1..]);
}

#[tokio::test]
async fn create_with_a_taken_username_is_409_and_the_new_account_is_removed() {
    let app = TestApp::spawn().await;
    mock_auth_admin(
        &app,
        "POST",
        "/admin/users",
        ResponseTemplate::new(200).set_body_json(auth_user()),
    )
    .await;
    mock_auth_admin(
        &app,
        "DELETE",
        &format!("/admin/users/{NEW_USER}"),
        ResponseTemplate::new(200).set_body_json(json!({})),
    )
    .await;
    mock_rest(&app, "PATCH", "profiles", pg_error(409, "23505")).await;
    let res = app
        .post("/api/users")
        .bearer_auth(admin_token(USER_A))
        .json(&json!({"email": "bob@example.com", "password": "hunter22", "username": "taken"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (409, "username_taken"));
    let requests = app.upstream_requests().await;
    let cleanup = requests.last().unwrap();
    assert_eq!(cleanup.method.as_str(), "DELETE");
    assert_sent_with_service_key(cleanup);
}

#[tokio::test]
async fn create_with_an_existing_email_is_409() {
    let app = TestApp::spawn().await;
    mock_auth_admin(
        &app,
        "POST",
        "/admin/users",
        ResponseTemplate::new(422)
            .set_body_json(json!({"code": 422, "error_code": "email_exists", "msg": "exists"})),
    )
    .await;
    let res = app
        .post("/api/users")
        .bearer_auth(admin_token(USER_A))
        .json(&json!({"email": "bob@example.com", "password": "hunter22"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (409, "user_already_exists"));
}

#[tokio::test]
async fn create_is_refused_to_regular_users_and_user_metadata_admins() {
    let app = TestApp::spawn().await;
    for token in [user_token(USER_A), user_metadata_admin_token(USER_A)] {
        let res = app
            .post("/api/users")
            .bearer_auth(&token)
            .json(&json!({"email": "bob@example.com", "password": "hunter22"}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(res).await;
        assert_eq!((status, error_code(&body)), (403, "forbidden"));
    }
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn create_validates_each_field() {
    let app = TestApp::spawn().await;
    for (body, field) in [
        (json!({"email": "nope", "password": "hunter22"}), "email"),
        (
            json!({"email": "bob@example.com", "password": "short"}),
            "password",
        ),
        (
            json!({"email": "bob@example.com", "password": "hunter22", "username": "b!"}),
            "username",
        ),
        (
            json!({"email": "bob@example.com", "password": "hunter22", "role": "admin"}),
            "role",
        ),
    ] {
        let res = app
            .post("/api/users")
            .bearer_auth(admin_token(USER_A))
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, got) = json_of(res).await;
        assert_eq!(status, 400, "{body}");
        assert_field_error(&got, field);
    }
    assert!(app.upstream_requests().await.is_empty());
}

// ---- update ----

#[tokio::test]
async fn put_by_self_replaces_the_profile_and_omitted_fields_become_null() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "PATCH",
        "profiles",
        ResponseTemplate::new(200).set_body_json(profile_row(USER_A)),
    )
    .await;
    let token = user_token(USER_A);
    let res = app
        .put(&format!("/api/users/{USER_A}"))
        .bearer_auth(&token)
        .json(&json!({"username": "Ann"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let requests = app.upstream_requests().await;
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(req.method.as_str(), "PATCH");
    assert_eq!(
        body_json(req),
        json!({"username": "ann", "full_name": null, "avatar_url": null})
    );
    assert_eq!(headers_of(req, "prefer"), vec!["return=representation"]);
    assert_eq!(
        headers_of(req, "accept"),
        vec!["application/vnd.pgrst.object+json"]
    );
    assert_sent_as_user(req, &token);
}

#[tokio::test]
async fn put_on_someone_else_is_403_before_any_call() {
    let app = TestApp::spawn().await;
    let res = app
        .put(&format!("/api/users/{USER_B}"))
        .bearer_auth(user_token(USER_A))
        .json(&json!({"username": "ann"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (403, "forbidden"));
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn put_by_an_admin_updates_another_profile() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "PATCH",
        "profiles",
        ResponseTemplate::new(200).set_body_json(profile_row(USER_B)),
    )
    .await;
    let res = app
        .put(&format!("/api/users/{USER_B}"))
        .bearer_auth(admin_token(USER_A))
        .json(&json!({"full_name": "Bee"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn put_with_a_taken_username_is_409_username_taken() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "PATCH", "profiles", pg_error(409, "23505")).await;
    let res = app
        .put(&format!("/api/users/{USER_A}"))
        .bearer_auth(user_token(USER_A))
        .json(&json!({"username": "taken"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (409, "username_taken"));
}

#[tokio::test]
async fn put_validates_each_field() {
    let app = TestApp::spawn().await;
    for (body, field) in [
        (json!({"username": "ab"}), "username"),
        (json!({"username": "a".repeat(31)}), "username"),
        (json!({"username": "ann-smith"}), "username"),
        (
            json!({"avatar_url": "http://example.com/a.png"}),
            "avatar_url",
        ),
        (json!({"avatar_url": "javascript:alert(1)"}), "avatar_url"),
        (json!({"full_name": "x".repeat(101)}), "full_name"),
        (json!({"email": "x@example.com"}), "email"),
    ] {
        let res = app
            .put(&format!("/api/users/{USER_A}"))
            .bearer_auth(user_token(USER_A))
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, got) = json_of(res).await;
        assert_eq!(status, 400, "{body}");
        assert_field_error(&got, field);
    }
    assert!(app.upstream_requests().await.is_empty());
}

// ---- delete ----

#[tokio::test]
async fn delete_self_goes_through_the_auth_admin_api() {
    let app = TestApp::spawn().await;
    mock_auth_admin(
        &app,
        "DELETE",
        &format!("/admin/users/{USER_A}"),
        ResponseTemplate::new(200).set_body_json(json!({})),
    )
    .await;
    let res = app
        .delete(&format!("/api/users/{USER_A}"))
        .bearer_auth(user_token(USER_A))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let requests = app.upstream_requests().await;
    assert_eq!(requests.len(), 1);
    assert_sent_with_service_key(&requests[0]);
}

#[tokio::test]
async fn delete_of_someone_else_is_403_and_no_admin_call_is_made() {
    let app = TestApp::spawn().await;
    for token in [user_token(USER_A), user_metadata_admin_token(USER_A)] {
        let res = app
            .delete(&format!("/api/users/{USER_B}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
    }
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn admin_deletes_another_user_and_unknown_users_are_404() {
    let app = TestApp::spawn().await;
    mock_auth_admin(
        &app,
        "DELETE",
        &format!("/admin/users/{USER_B}"),
        ResponseTemplate::new(200).set_body_json(json!({})),
    )
    .await;
    mock_auth_admin(
        &app,
        "DELETE",
        &format!("/admin/users/{NEW_USER}"),
        ResponseTemplate::new(404).set_body_json(
            json!({"code": 404, "error_code": "user_not_found", "msg": "User not found"}),
        ),
    )
    .await;
    let token = admin_token(USER_A);
    assert_eq!(
        app.delete(&format!("/api/users/{USER_B}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let (status, body) = json_of(
        app.delete(&format!("/api/users/{NEW_USER}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
}

// ---- stats ----

#[tokio::test]
async fn stats_call_the_rpc_as_the_caller_and_answer_one_object() {
    let app = TestApp::spawn().await;
    let stats = json!({"item_count": 2, "total_value": 30.5, "avg_price": 15.25, "last_item_at": "2026-01-05T10:00:00+00:00"});
    mock_rest(
        &app,
        "POST",
        "rpc/get_user_stats",
        ResponseTemplate::new(200).set_body_json(stats.clone()),
    )
    .await;
    let token = user_token(USER_A);
    let (status, body) = json_of(
        app.get(&format!("/api/users/{USER_A}/stats"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (200, stats));
    let requests = app.upstream_requests().await;
    let req = &requests[0];
    assert_eq!(
        (req.method.as_str(), req.url.path()),
        ("POST", "/rest/v1/rpc/get_user_stats")
    );
    assert!(query_pairs(req).is_empty());
    assert_eq!(body_json(req), json!({"user_id": USER_A}));
    assert_sent_as_user(req, &token);
}

#[tokio::test]
async fn stats_of_someone_else_are_403_unless_admin() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "POST",
        "rpc/get_user_stats",
        ResponseTemplate::new(200).set_body_json(json!({"item_count": 0})),
    )
    .await;
    let res = app
        .get(&format!("/api/users/{USER_B}/stats"))
        .bearer_auth(user_token(USER_A))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(app.upstream_requests().await.is_empty());
    mock_rest(
        &app,
        "GET",
        "profiles",
        ResponseTemplate::new(200)
            .insert_header("content-type", "application/vnd.pgrst.object+json")
            .set_body_json(profile_row(USER_B)),
    )
    .await;
    let res = app
        .get(&format!("/api/users/{USER_B}/stats"))
        .bearer_auth(admin_token(USER_A))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn an_admin_asking_for_stats_of_a_missing_user_gets_404() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "POST",
        "rpc/get_user_stats",
        ResponseTemplate::new(200).set_body_json(json!({"item_count": 0})),
    )
    .await;
    mock_rest(&app, "GET", "profiles", pg_error(406, "PGRST116")).await;
    let res = app
        .get(&format!("/api/users/{USER_B}/stats"))
        .bearer_auth(admin_token(USER_A))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (404, "not_found"), "{body}");
}

#[tokio::test]
async fn stats_refused_by_the_database_are_403() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "POST", "rpc/get_user_stats", pg_error(403, "42501")).await;
    let res = app
        .get(&format!("/api/users/{USER_A}/stats"))
        .bearer_auth(user_token(USER_A))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

// ---- keys ----

#[tokio::test]
async fn the_service_key_is_never_sent_on_calls_made_for_a_user() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "GET", "profiles", pg_list(json!([]), "*/0")).await;
    mock_rest(
        &app,
        "PATCH",
        "profiles",
        ResponseTemplate::new(200).set_body_json(profile_row(USER_A)),
    )
    .await;
    mock_rest(
        &app,
        "POST",
        "rpc/get_user_stats",
        ResponseTemplate::new(200).set_body_json(json!({})),
    )
    .await;
    mock_rest(&app, "GET", "items", pg_list(json!([]), "*/0")).await;
    mock_rest(&app, "GET", "categories", pg_list(json!([]), "*/0")).await;
    let token = user_token(USER_A);
    app.get("/api/users")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    app.put(&format!("/api/users/{USER_A}"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    app.get(&format!("/api/users/{USER_A}/stats"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    app.get("/api/items").send().await.unwrap();
    app.get("/api/items?mine=true")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    app.get("/api/categories").send().await.unwrap();
    let requests = app.upstream_requests().await;
    assert_eq!(requests.len(), 6);
    assert_service_key_never_sent(&requests);
}

#[tokio::test]
async fn stats_reject_query_parameters() {
    let app = TestApp::spawn().await;
    let res = app
        .get(&format!("/api/users/{USER_A}/stats?user_id={USER_B}"))
        .bearer_auth(user_token(USER_A))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (400, "unknown_parameter"));
    assert!(app.upstream_requests().await.is_empty());
}
