//! `GET /api/admin/audit`: admins only, filters as typed PostgREST filters, keyset pages by id,
//! read with the admin's own token (the table's RLS policy applies behind the Rust check).

use serde_json::json;
use wiremock::ResponseTemplate;

use crate::support::*;

fn entry(id: i64) -> serde_json::Value {
    json!({
        "id": id, "occurred_at": "2026-12-04T21:03:11.402311+00:00", "user_id": USER_A,
        "role": "authenticated", "is_anonymous": false, "table_name": "items",
        "row_id": ITEM_ID, "operation": "UPDATE", "changed_columns": ["price", "updated_at"],
        "request_id": "req-1"
    })
}

#[tokio::test]
async fn an_admin_reads_the_log_filtered_newest_first_with_the_admins_token() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "GET",
        "audit_log",
        ResponseTemplate::new(200).set_body_json(json!([entry(41), entry(40)])),
    )
    .await;
    let token = admin_token(USER_B);
    let url = format!(
        "/api/admin/audit?user_id={USER_A}&table=items&from=2026-12-01T00:00:00Z\
         &to=2026-12-05T00:00:00%2B01:00&before=42&limit=2"
    );
    let res = app.get(&url).bearer_auth(&token).send().await.unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!([entry(41), entry(40)]));

    let requests = app.upstream_requests().await;
    assert_eq!(requests.len(), 1);
    assert_sent_as_user(&requests[0], &token);
    assert_service_key_never_sent(&requests);
    let q = query_pairs(&requests[0]);
    let expected: Vec<(String, String)> = [
        (
            "select",
            "id,occurred_at,user_id,role,is_anonymous,table_name,row_id,operation,changed_columns,request_id",
        ),
        ("user_id", &format!("eq.{USER_A}")),
        ("table_name", "eq.items"),
        ("occurred_at", "gte.2026-12-01T00:00:00Z"),
        ("occurred_at", "lt.2026-12-05T00:00:00+01:00"),
        ("id", "lt.42"),
        ("order", "id.desc"),
        ("limit", "2"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(q, expected);
}

#[tokio::test]
async fn without_filters_the_newest_twenty_are_asked_for() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "GET",
        "audit_log",
        ResponseTemplate::new(200).set_body_json(json!([])),
    )
    .await;
    let res = app
        .get("/api/admin/audit")
        .bearer_auth(admin_token(USER_B))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let q = query_pairs(&app.upstream_requests().await[0]);
    let names: Vec<&str> = q.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["select", "order", "limit"]);
    assert_eq!(q[2].1, "20");
}

#[tokio::test]
async fn the_log_is_for_admins_only_and_nothing_is_read_for_others() {
    let app = TestApp::spawn().await;
    let (status, body) = json_of(
        app.get("/api/admin/audit")
            .bearer_auth(user_token(USER_A))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(error_code(&body), "forbidden");
    let res = app
        .get("/api/admin/audit")
        .bearer_auth(user_metadata_admin_token(USER_A))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "user_metadata grants nothing");
    assert_eq!(
        app.get("/api/admin/audit").send().await.unwrap().status(),
        401
    );
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn bad_filters_are_400_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let token = admin_token(USER_B);
    for (query, field) in [
        ("table=audit_log", "table"),
        ("from=yesterday", "from"),
        ("before=0", "before"),
        ("limit=101", "limit"),
        ("user_id=ann", "user_id"),
        ("from=2026-12-05T00:00:00Z&to=2026-12-01T00:00:00Z", "to"),
    ] {
        let res = app
            .get(&format!("/api/admin/audit?{query}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(res).await;
        assert_eq!(status, 400, "{query}");
        assert_field_error(&body, field);
    }
    let (status, body) = json_of(
        app.get("/api/admin/audit?offset=10")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "unknown_parameter");
    assert!(app.upstream_requests().await.is_empty());
}
