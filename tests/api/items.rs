//! `/api/items`: what supagate sends to PostgREST (method, path, every query parameter,
//! keys, bearer, `Prefer`, `Accept`, body) and what the client gets back.

use serde_json::{json, Value};
use wiremock::ResponseTemplate;

use crate::support::*;

const OBJECT: &str = "application/vnd.pgrst.object+json";

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn default_list_query() -> Vec<(String, String)> {
    pairs(&[
        ("select", ITEM_SELECT),
        ("order", "created_at.desc,id.desc"),
        ("limit", "20"),
        ("offset", "0"),
    ])
}

fn new_item() -> Value {
    json!({"name": "  Mug  ", "price": 12.5, "category_id": CATEGORY_ID})
}

// ---- list ----

#[tokio::test]
async fn anonymous_list_forwards_the_anon_key_and_streams_the_array_with_total_headers() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "GET",
        "items",
        pg_list(json!([item_row(ITEM_ID, USER_A)]), "0-0/1"),
    )
    .await;

    let res = app.get("/api/items").send().await.unwrap();
    assert_eq!(res.headers()["x-total-count"], "1");
    assert_eq!(res.headers()["content-range"], "0-0/1");
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let (status, body) = json_of(res).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!([item_row(ITEM_ID, USER_A)]));

    let requests = app.upstream_requests().await;
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(req.method.as_str(), "GET");
    assert_eq!(req.url.path(), "/rest/v1/items");
    assert_eq!(query_pairs(req), default_list_query());
    assert_eq!(headers_of(req, "prefer"), vec!["count=exact"]);
    assert_eq!(headers_of(req, "accept"), vec!["application/json"]);
    assert_sent_anonymously(req);
}

#[tokio::test]
async fn authenticated_list_forwards_the_callers_token() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "GET", "items", pg_list(json!([]), "*/0")).await;
    let token = user_token(USER_A);
    let res = app
        .get("/api/items")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-total-count"], "0");
    let requests = app.upstream_requests().await;
    assert_sent_as_user(&requests[0], &token);
    assert_service_key_never_sent(&requests);
}

#[tokio::test]
async fn list_filters_become_typed_postgrest_filters() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "GET", "items", pg_list(json!([]), "*/0")).await;
    let url = format!(
        "/api/items?category_id={CATEGORY_ID}&user_id={USER_B}&min_price=1.5&max_price=100&order=price.asc&limit=5&offset=10"
    );
    assert_eq!(app.get(&url).send().await.unwrap().status(), 200);
    let requests = app.upstream_requests().await;
    assert_eq!(
        query_pairs(&requests[0]),
        pairs(&[
            ("select", ITEM_SELECT),
            ("category_id", &format!("eq.{CATEGORY_ID}")),
            ("user_id", &format!("eq.{USER_B}")),
            ("price", "gte.1.5"),
            ("price", "lte.100"),
            ("order", "price.asc,id.asc"),
            ("limit", "5"),
            ("offset", "10"),
        ])
    );
}

#[tokio::test]
async fn mine_filters_by_the_token_subject() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "GET", "items", pg_list(json!([]), "*/0")).await;
    let res = app
        .get("/api/items?mine=true")
        .bearer_auth(user_token(USER_A))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let requests = app.upstream_requests().await;
    let q = query_pairs(&requests[0]);
    assert!(
        q.contains(&("user_id".to_owned(), format!("eq.{USER_A}"))),
        "{q:?}"
    );
}

#[tokio::test]
async fn mine_without_authentication_is_401() {
    let app = TestApp::spawn().await;
    let res = app.get("/api/items?mine=true").send().await.unwrap();
    assert!(res.headers().contains_key("www-authenticate"));
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (401, "unauthorized"));
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn q_with_every_reserved_character_reaches_postgrest_escaped() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "GET", "items", pg_list(json!([]), "*/0")).await;
    let q = r#"50%_off*\,(x)"y"+a&b=c#d.e:f"#;
    let res = app
        .get("/api/items")
        .query(&[("q", q)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let requests = app.upstream_requests().await;
    let req = &requests[0];
    let raw = req.url.query().unwrap();
    assert!(
        raw.contains("%2B"),
        "a literal + must be sent as %2B: {raw}"
    );
    assert!(!raw.contains('+') && !raw.contains('#'), "{raw}");
    let name_filters: Vec<_> = query_pairs(req)
        .into_iter()
        .filter(|(k, _)| k == "name")
        .collect();
    assert_eq!(
        name_filters,
        pairs(&[(
            "name",
            r#"imatch.50\%\_off\*\\\,\(x\)\"y\"\+a\&b\=c\#d\.e\:f"#
        )])
    );
    // Nothing else was added: the usual four parameters plus the one filter.
    assert_eq!(query_pairs(req).len(), 5);
}

#[tokio::test]
async fn q_longer_than_100_characters_is_rejected() {
    let app = TestApp::spawn().await;
    let res = app
        .get("/api/items")
        .query(&[("q", "x".repeat(101))])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 400);
    assert_field_error(&body, "q");
}

#[tokio::test]
async fn unknown_query_parameters_including_postgrest_syntax_are_rejected() {
    let app = TestApp::spawn().await;
    for query in [
        "or=(id.gt.0)",
        "select=*,users(*)",
        "and=(a.eq.1)",
        "name=eq.x",
        "apikey=x",
        "foo=1",
    ] {
        let res = app
            .get(&format!("/api/items?{query}"))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(res).await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "unknown_parameter"),
            "{query}"
        );
    }
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn order_injection_is_a_validation_error() {
    let app = TestApp::spawn().await;
    for order in [
        "id.desc",
        "price.desc,or(id.gt.0)",
        "created_at.desc.nullsfirst",
        "user_id",
    ] {
        let res = app
            .get("/api/items")
            .query(&[("order", order)])
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(res).await;
        assert_eq!(status, 400, "{order}");
        assert_field_error(&body, "order");
    }
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn pagination_bounds_are_enforced() {
    let app = TestApp::spawn().await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("offset=-1", "offset"),
        ("offset=10001", "offset"),
    ] {
        let res = app
            .get(&format!("/api/items?{query}"))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(res).await;
        assert_eq!(status, 400, "{query}");
        assert_field_error(&body, field);
    }
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn pagination_edges_are_accepted() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "GET", "items", pg_list(json!([]), "*/0")).await;
    for query in ["limit=1", "limit=100&offset=10000"] {
        let res = app
            .get(&format!("/api/items?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{query}");
    }
}

#[tokio::test]
async fn malformed_filters_name_their_field() {
    let app = TestApp::spawn().await;
    for (query, field) in [
        ("category_id=abc", "category_id"),
        ("user_id=1", "user_id"),
        ("min_price=-1", "min_price"),
        ("max_price=NaN", "max_price"),
        ("min_price=1e3", "min_price"),
        ("mine=yes", "mine"),
        ("min_price=10&max_price=5", "max_price"),
    ] {
        let res = app
            .get(&format!("/api/items?{query}"))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(res).await;
        assert_eq!(status, 400, "{query}");
        assert_field_error(&body, field);
    }
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn offset_past_the_end_answers_empty_array_with_the_true_total() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "GET", "items", pg_error(416, "PGRST103")).await;
    mock_rest(
        &app,
        "HEAD",
        "items",
        ResponseTemplate::new(200).insert_header("content-range", "0-136/137"),
    )
    .await;
    let res = app
        .get(&format!("/api/items?offset=500&user_id={USER_B}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-total-count"], "137");
    assert_eq!(res.headers()["content-range"], "*/137");
    assert_eq!(res.text().await.unwrap(), "[]");

    let requests = app.upstream_requests().await;
    assert_eq!(requests.len(), 2);
    let head = &requests[1];
    assert_eq!(head.method.as_str(), "HEAD");
    assert_eq!(
        query_pairs(head),
        pairs(&[
            ("select", ITEM_SELECT),
            ("user_id", &format!("eq.{USER_B}"))
        ])
    );
    assert_eq!(headers_of(head, "prefer"), vec!["count=exact"]);
    assert_sent_anonymously(head);
}

#[tokio::test]
async fn list_with_html_from_upstream_is_502() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "GET",
        "items",
        ResponseTemplate::new(200).set_body_raw("<html>oops</html>", "text/html"),
    )
    .await;
    let (status, body) = json_of(app.get("/api/items").send().await.unwrap()).await;
    assert_eq!((status, error_code(&body)), (502, "upstream_error"));
}

#[tokio::test]
async fn a_list_page_larger_than_the_upstream_read_buffer_arrives_byte_for_byte() {
    // supagate reads PostgREST in 16 KiB pieces (a fixed buffer per pooled connection); a
    // page several times that size must reach the client whole and unaltered.
    let app = TestApp::spawn().await;
    let rows: Vec<Value> = (0..100)
        .map(|i| {
            let mut row = item_row(ITEM_ID, USER_A);
            row["description"] = json!(format!("{i:03} {}", "é€ ".repeat(300)));
            row
        })
        .collect();
    let raw = serde_json::to_vec(&rows).unwrap();
    assert!(
        raw.len() > 6 * 16 * 1024,
        "the page must span several reads"
    );
    mock_rest(
        &app,
        "GET",
        "items",
        ResponseTemplate::new(200)
            .insert_header("content-range", "0-99/100")
            .set_body_raw(raw.clone(), "application/json"),
    )
    .await;

    let res = app.get("/api/items?limit=100").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-total-count"], "100");
    assert_eq!(res.bytes().await.unwrap().as_ref(), raw.as_slice());
}

#[tokio::test]
async fn an_upstream_answer_head_over_16_kib_is_502_not_a_hang() {
    // The fixed read buffer is also the largest answer head accepted (Supabase's are a
    // few hundred bytes); a larger one is a bad upstream answer, refused at once.
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "GET",
        "items",
        pg_list(json!([]), "*/0").insert_header("x-padding", "a".repeat(20 * 1024).as_str()),
    )
    .await;
    let (status, body) = json_of(app.get("/api/items").send().await.unwrap()).await;
    assert_eq!((status, error_code(&body)), (502, "upstream_error"));
}

// ---- get ----

#[tokio::test]
async fn get_reads_one_object_in_single_object_mode() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "GET",
        "items",
        ResponseTemplate::new(200).set_body_json(item_row(ITEM_ID, USER_A)),
    )
    .await;
    let (status, body) = json_of(
        app.get(&format!("/api/items/{ITEM_ID}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, item_row(ITEM_ID, USER_A));
    assert_eq!(body["category"]["name"], "Kitchen");
    let requests = app.upstream_requests().await;
    let req = &requests[0];
    assert_eq!(
        query_pairs(req),
        pairs(&[("select", ITEM_SELECT), ("id", &format!("eq.{ITEM_ID}"))])
    );
    assert_eq!(headers_of(req, "accept"), vec![OBJECT]);
    assert!(headers_of(req, "prefer").is_empty());
    assert_sent_anonymously(req);
}

#[tokio::test]
async fn get_unknown_item_is_404() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "GET", "items", pg_error(406, "PGRST116")).await;
    let (status, body) = json_of(
        app.get(&format!("/api/items/{ITEM_ID}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
}

#[tokio::test]
async fn non_uuid_ids_are_invalid_id_on_every_method() {
    let app = TestApp::spawn().await;
    let token = user_token(USER_A);
    for method in ["GET", "PUT", "PATCH", "DELETE"] {
        let req = app
            .client
            .request(method.parse().unwrap(), app.url("/api/items/not-a-uuid"))
            .bearer_auth(&token)
            .json(&new_item());
        let (status, body) = json_of(req.send().await.unwrap()).await;
        assert_eq!((status, error_code(&body)), (400, "invalid_id"), "{method}");
    }
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn a_bad_token_on_an_optional_route_is_401_not_anonymous() {
    let app = TestApp::spawn().await;
    let res = app
        .get("/api/items")
        .bearer_auth("not.a.jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let app = TestApp::spawn().await;
    let res = app.delete("/api/items").send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, POST");
}

// ---- create ----

#[tokio::test]
async fn create_is_one_insert_as_the_caller_answering_201_with_location() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "POST",
        "items",
        ResponseTemplate::new(201).set_body_json(item_row(ITEM_ID, USER_A)),
    )
    .await;
    let token = user_token(USER_A);
    let res = app
        .post("/api/items")
        .bearer_auth(&token)
        .json(&new_item())
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["location"],
        format!("/api/items/{ITEM_ID}").as_str()
    );
    let (status, body) = json_of(res).await;
    assert_eq!(status, 201);
    assert_eq!(body, item_row(ITEM_ID, USER_A));

    // No subscription read, no count: the database checks the plan limit in the insert.
    let requests = app.upstream_requests().await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    let insert = &requests[0];
    assert_sent_as_user(insert, &token);
    assert_service_key_never_sent(&requests);
    assert_eq!(insert.method.as_str(), "POST");
    assert_eq!(insert.url.path(), "/rest/v1/items");
    assert_eq!(query_pairs(insert), pairs(&[("select", ITEM_SELECT)]));
    assert_eq!(headers_of(insert, "prefer"), vec!["return=representation"]);
    assert_eq!(headers_of(insert, "accept"), vec![OBJECT]);
    assert_eq!(header_of(insert, "content-type"), Some("application/json"));
    assert_eq!(
        body_json(insert),
        json!({"name": "Mug", "price": 12.5, "category_id": CATEGORY_ID,
               "description": null, "user_id": USER_A})
    );
}

#[tokio::test]
async fn create_without_authentication_is_401() {
    let app = TestApp::spawn().await;
    let (status, body) = json_of(
        app.post("/api/items")
            .json(&new_item())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, error_code(&body)), (401, "unauthorized"));
    assert!(app.upstream_requests().await.is_empty());
}

async fn create_rejects(field: &str, item: Value) {
    let app = TestApp::spawn().await;
    let res = app
        .post("/api/items")
        .bearer_auth(user_token(USER_A))
        .json(&item)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 400, "{item}");
    assert_field_error(&body, field);
    assert!(app.upstream_requests().await.is_empty(), "{item}");
}

#[tokio::test]
async fn create_rejects_an_empty_name() {
    create_rejects("name", json!({"name": "   ", "price": 1})).await;
}

#[tokio::test]
async fn create_rejects_a_name_over_100_characters() {
    create_rejects("name", json!({"name": "x".repeat(101), "price": 1})).await;
}

#[tokio::test]
async fn create_rejects_a_missing_name() {
    create_rejects("name", json!({"price": 1})).await;
}

#[tokio::test]
async fn create_rejects_a_zero_price_with_the_documented_message() {
    let app = TestApp::spawn().await;
    let res = app
        .post("/api/items")
        .bearer_auth(user_token(USER_A))
        .json(&json!({"name": "Mug", "price": 0}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["details"],
        json!({"formErrors": [], "fieldErrors": {"price": ["must be greater than 0"]}})
    );
}

#[tokio::test]
async fn create_rejects_a_negative_price() {
    create_rejects("price", json!({"name": "Mug", "price": -1})).await;
}

#[tokio::test]
async fn create_rejects_a_price_with_three_decimals_instead_of_rounding() {
    create_rejects("price", json!({"name": "Mug", "price": 10.005})).await;
}

#[tokio::test]
async fn create_rejects_a_price_over_one_million() {
    create_rejects("price", json!({"name": "Mug", "price": 1000000.01})).await;
}

#[tokio::test]
async fn create_rejects_a_price_given_as_a_string() {
    create_rejects("price", json!({"name": "Mug", "price": "12.50"})).await;
}

#[tokio::test]
async fn create_rejects_a_description_over_2000_characters() {
    create_rejects(
        "description",
        json!({"name": "Mug", "price": 1, "description": "x".repeat(2001)}),
    )
    .await;
}

#[tokio::test]
async fn create_rejects_a_malformed_category_id() {
    create_rejects(
        "category_id",
        json!({"name": "Mug", "price": 1, "category_id": "kitchen"}),
    )
    .await;
}

#[tokio::test]
async fn create_rejects_a_user_id_in_the_body_as_an_unknown_field() {
    create_rejects(
        "user_id",
        json!({"name": "Mug", "price": 1, "user_id": USER_B}),
    )
    .await;
}

#[tokio::test]
async fn create_accepts_one_million_exactly() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "POST",
        "items",
        ResponseTemplate::new(201).set_body_json(item_row(ITEM_ID, USER_A)),
    )
    .await;
    let res = app
        .post("/api/items")
        .bearer_auth(user_token(USER_A))
        .json(&json!({"name": "Car", "price": 1000000}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let requests = app.upstream_requests().await;
    let insert = requests
        .iter()
        .find(|r| r.method.as_str() == "POST")
        .unwrap();
    assert_eq!(body_json(insert)["price"], json!(1000000.0));
}

/// What PostgREST answers when the items insert trigger refuses a row over the free plan's
/// limit: the trigger raises SQLSTATE `PGRST` with this code, message and status
/// (tests/db/item_limit.rs checks the raise), and PostgREST sends them as its error body.
fn plan_limit_refusal() -> ResponseTemplate {
    ResponseTemplate::new(403).set_body_json(json!({
        "code": "plan_limit_reached",
        "message": "The free plan allows 10 items; subscribe to add more",
        "details": null, "hint": null
    }))
}

#[tokio::test]
async fn create_refused_by_the_databases_plan_limit_is_403_plan_limit_reached() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "POST", "items", plan_limit_refusal()).await;
    let res = app
        .post("/api/items")
        .bearer_auth(user_token(USER_A))
        .json(&new_item())
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (403, "plan_limit_reached"));
    assert_eq!(
        body["error"],
        "The free plan's item limit is reached; subscribe to add more"
    );
    assert_eq!(app.upstream_requests().await.len(), 1);
}

/// Waits for the start-up write of the item limit and returns the requests made for it.
async fn item_limit_writes(app: &TestApp, at_least: usize) -> Vec<wiremock::Request> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let writes = requests_to(&app.all_upstream_requests().await, ITEM_LIMIT_RULE_PATH)
            .into_iter()
            .cloned()
            .collect::<Vec<_>>();
        if writes.len() >= at_least || std::time::Instant::now() > deadline {
            return writes;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_configured_item_limit_is_written_to_the_database_at_start_up_with_the_secret_key() {
    let app = TestApp::spawn_with(|s| s.business.free_item_limit = 2).await;
    let writes = item_limit_writes(&app, 1).await;
    assert_eq!(writes.len(), 1, "written once");
    let write = &writes[0];
    assert_eq!(write.method.as_str(), "POST");
    assert_eq!(write.url.path(), ITEM_LIMIT_RULE_PATH);
    assert_eq!(write.url.query(), None);
    assert_eq!(headers_of(write, "apikey"), vec![SERVICE_KEY]);
    assert_eq!(
        headers_of(write, "authorization"),
        vec![format!("Bearer {SERVICE_KEY}")]
    );
    assert_eq!(header_of(write, "content-type"), Some("application/json"));
    assert!(headers_of(write, "prefer").is_empty());
    assert_eq!(
        body_json(write),
        json!({"p_free_item_limit": 2, "p_subscribed_statuses": ["active", "trialing"]})
    );
    // Once it succeeded, /ready does not write it again.
    app.get("/ready").send().await.unwrap();
    assert_eq!(item_limit_writes(&app, 1).await.len(), 1);
}

#[tokio::test]
async fn a_failed_item_limit_write_is_retried_until_it_succeeds() {
    let unavailable = wiremock::Mock::given(wiremock::matchers::path(ITEM_LIMIT_RULE_PATH))
        .respond_with(pg_error(503, "PGRST001"))
        .up_to_n_times(1);
    let app = TestApp::spawn_with_mocks(vec![unavailable], |_| {}).await;
    let writes = item_limit_writes(&app, 2).await;
    assert_eq!(writes.len(), 2, "one failure, then one success");
    assert_eq!(body_json(&writes[0]), body_json(&writes[1]));
}

#[tokio::test]
async fn create_with_an_unknown_category_is_422_invalid_reference() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "POST", "items", pg_error(409, "23503")).await;
    let res = app
        .post("/api/items")
        .bearer_auth(user_token(USER_A))
        .json(&new_item())
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (422, "invalid_reference"));
}

// ---- PostgREST error mapping (through GET /api/items/{id} and PATCH) ----

async fn get_item_answering(response: ResponseTemplate, token: Option<String>) -> (u16, Value) {
    let app = TestApp::spawn().await;
    mock_rest(&app, "GET", "items", response).await;
    let mut req = app.get(&format!("/api/items/{ITEM_ID}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    json_of(req.send().await.unwrap()).await
}

#[tokio::test]
async fn postgrest_42501_for_a_user_is_403() {
    let (status, body) = get_item_answering(pg_error(403, "42501"), Some(user_token(USER_A))).await;
    assert_eq!((status, error_code(&body)), (403, "forbidden"));
}

#[tokio::test]
async fn postgrest_42501_for_anon_is_401() {
    let (status, _) = get_item_answering(pg_error(401, "42501"), None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn postgrest_jwt_errors_are_401() {
    for code in ["PGRST301", "PGRST302", "PGRST303"] {
        let (status, body) =
            get_item_answering(pg_error(401, code), Some(user_token(USER_A))).await;
        assert_eq!(
            (status, error_code(&body)),
            (401, "invalid_token"),
            "{code}"
        );
    }
}

#[tokio::test]
async fn postgrest_invalid_input_syntax_is_400() {
    let (status, body) = get_item_answering(pg_error(400, "22P02"), None).await;
    assert_eq!((status, error_code(&body)), (400, "validation_failed"));
}

#[tokio::test]
async fn unknown_postgrest_errors_are_502_without_leaking_upstream_text() {
    let (status, body) = get_item_answering(pg_error(500, "XX000"), None).await;
    assert_eq!((status, error_code(&body)), (502, "upstream_error"));
    let text = body.to_string();
    assert!(
        !text.contains("upstream says") && !text.contains("secret detail"),
        "{text}"
    );
}

#[tokio::test]
async fn postgrest_check_violation_on_update_is_400() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "GET",
        "items",
        ResponseTemplate::new(200).set_body_json(json!({"user_id": USER_A})),
    )
    .await;
    mock_rest(&app, "PATCH", "items", pg_error(400, "23514")).await;
    let res = app
        .patch(&format!("/api/items/{ITEM_ID}"))
        .bearer_auth(user_token(USER_A))
        .json(&json!({"price": 5}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (400, "validation_failed"));
}

#[tokio::test]
async fn postgrest_unique_violation_is_409_conflict() {
    let app = TestApp::spawn().await;
    mock_rest(
        &app,
        "GET",
        "items",
        ResponseTemplate::new(200).set_body_json(json!({"user_id": USER_A})),
    )
    .await;
    mock_rest(&app, "PATCH", "items", pg_error(409, "23505")).await;
    let res = app
        .patch(&format!("/api/items/{ITEM_ID}"))
        .bearer_auth(user_token(USER_A))
        .json(&json!({"name": "Dup"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (409, "conflict"));
}

// ---- update / delete ----

async fn owned_by(app: &TestApp, owner: &str) {
    mock_rest(
        app,
        "GET",
        "items",
        ResponseTemplate::new(200).set_body_json(json!({"user_id": owner})),
    )
    .await;
}

#[tokio::test]
async fn put_by_the_owner_replaces_every_field_after_checking_ownership() {
    let app = TestApp::spawn().await;
    owned_by(&app, USER_A).await;
    mock_rest(
        &app,
        "PATCH",
        "items",
        ResponseTemplate::new(200).set_body_json(item_row(ITEM_ID, USER_A)),
    )
    .await;
    let token = user_token(USER_A);
    let res = app
        .put(&format!("/api/items/{ITEM_ID}"))
        .bearer_auth(&token)
        .json(&json!({"name": "Cup", "price": 3}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 200);
    assert_eq!(body, item_row(ITEM_ID, USER_A));

    let requests = app.upstream_requests().await;
    assert_eq!(requests.len(), 2);
    let (check, write) = (&requests[0], &requests[1]);
    assert_eq!(check.method.as_str(), "GET");
    assert_eq!(
        query_pairs(check),
        pairs(&[("select", "user_id"), ("id", &format!("eq.{ITEM_ID}"))])
    );
    assert_eq!(headers_of(check, "accept"), vec![OBJECT]);
    assert_eq!(write.method.as_str(), "PATCH");
    assert_eq!(
        query_pairs(write),
        pairs(&[("select", ITEM_SELECT), ("id", &format!("eq.{ITEM_ID}"))])
    );
    assert_eq!(headers_of(write, "prefer"), vec!["return=representation"]);
    assert_eq!(headers_of(write, "accept"), vec![OBJECT]);
    assert_eq!(
        body_json(write),
        json!({"name": "Cup", "price": 3.0, "category_id": null, "description": null})
    );
    for req in &requests {
        assert_sent_as_user(req, &token);
    }
}

#[tokio::test]
async fn put_by_another_user_is_403_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    owned_by(&app, USER_A).await;
    let res = app
        .put(&format!("/api/items/{ITEM_ID}"))
        .bearer_auth(user_token(USER_B))
        .json(&new_item())
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (403, "forbidden"));
    let requests = app.upstream_requests().await;
    assert!(requests.iter().all(|r| r.method.as_str() == "GET"));
}

#[tokio::test]
async fn put_by_a_user_metadata_admin_is_still_403() {
    let app = TestApp::spawn().await;
    owned_by(&app, USER_A).await;
    let res = app
        .put(&format!("/api/items/{ITEM_ID}"))
        .bearer_auth(user_metadata_admin_token(USER_B))
        .json(&new_item())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn put_by_an_admin_on_someone_elses_item_succeeds() {
    let app = TestApp::spawn().await;
    owned_by(&app, USER_A).await;
    mock_rest(
        &app,
        "PATCH",
        "items",
        ResponseTemplate::new(200).set_body_json(item_row(ITEM_ID, USER_A)),
    )
    .await;
    let res = app
        .put(&format!("/api/items/{ITEM_ID}"))
        .bearer_auth(admin_token(USER_B))
        .json(&new_item())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn put_on_a_missing_item_is_404() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "GET", "items", pg_error(406, "PGRST116")).await;
    let res = app
        .put(&format!("/api/items/{ITEM_ID}"))
        .bearer_auth(user_token(USER_A))
        .json(&new_item())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(app.upstream_requests().await.len(), 1);
}

#[tokio::test]
async fn put_applies_the_create_rules() {
    let app = TestApp::spawn().await;
    let res = app
        .put(&format!("/api/items/{ITEM_ID}"))
        .bearer_auth(user_token(USER_A))
        .json(&json!({"name": "Cup"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 400);
    assert_field_error(&body, "price");
}

#[tokio::test]
async fn patch_sends_only_the_given_fields_and_null_clears() {
    let app = TestApp::spawn().await;
    owned_by(&app, USER_A).await;
    mock_rest(
        &app,
        "PATCH",
        "items",
        ResponseTemplate::new(200).set_body_json(item_row(ITEM_ID, USER_A)),
    )
    .await;
    let res = app
        .patch(&format!("/api/items/{ITEM_ID}"))
        .bearer_auth(user_token(USER_A))
        .json(&json!({"price": 7.25, "description": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let requests = app.upstream_requests().await;
    assert_eq!(
        body_json(&requests[1]),
        json!({"price": 7.25, "description": null})
    );
}

#[tokio::test]
async fn patch_with_an_empty_body_is_400() {
    let app = TestApp::spawn().await;
    let res = app
        .patch(&format!("/api/items/{ITEM_ID}"))
        .bearer_auth(user_token(USER_A))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (400, "validation_failed"));
    assert!(!body["details"]["formErrors"].as_array().unwrap().is_empty());
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn patch_with_a_null_name_is_400() {
    let app = TestApp::spawn().await;
    let res = app
        .patch(&format!("/api/items/{ITEM_ID}"))
        .bearer_auth(user_token(USER_A))
        .json(&json!({"name": null}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 400);
    assert_field_error(&body, "name");
}

#[tokio::test]
async fn patch_with_an_unknown_field_is_400() {
    let app = TestApp::spawn().await;
    let res = app
        .patch(&format!("/api/items/{ITEM_ID}"))
        .bearer_auth(user_token(USER_A))
        .json(&json!({"name": "x", "id": ITEM_ID}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 400);
    assert_field_error(&body, "id");
}

#[tokio::test]
async fn delete_by_the_owner_is_204_in_single_object_mode() {
    let app = TestApp::spawn().await;
    owned_by(&app, USER_A).await;
    mock_rest(
        &app,
        "DELETE",
        "items",
        ResponseTemplate::new(200).set_body_json(json!({"id": ITEM_ID})),
    )
    .await;
    let token = user_token(USER_A);
    let res = app
        .delete(&format!("/api/items/{ITEM_ID}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let requests = app.upstream_requests().await;
    let del = &requests[1];
    assert_eq!(del.method.as_str(), "DELETE");
    assert_eq!(
        query_pairs(del),
        pairs(&[("select", "id"), ("id", &format!("eq.{ITEM_ID}"))])
    );
    assert_eq!(headers_of(del, "accept"), vec![OBJECT]);
    assert_eq!(headers_of(del, "prefer"), vec!["return=representation"]);
    assert_sent_as_user(del, &token);
}

#[tokio::test]
async fn delete_by_another_user_is_403() {
    let app = TestApp::spawn().await;
    owned_by(&app, USER_A).await;
    let res = app
        .delete(&format!("/api/items/{ITEM_ID}"))
        .bearer_auth(user_token(USER_B))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(app
        .upstream_requests()
        .await
        .iter()
        .all(|r| r.method.as_str() == "GET"));
}

#[tokio::test]
async fn delete_of_a_missing_item_is_404() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "GET", "items", pg_error(406, "PGRST116")).await;
    let res = app
        .delete(&format!("/api/items/{ITEM_ID}"))
        .bearer_auth(user_token(USER_A))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn single_item_routes_reject_query_parameters_too() {
    let app = TestApp::spawn().await;
    let token = user_token(USER_A);
    let get = app
        .get(&format!("/api/items/{ITEM_ID}?select=*"))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(get).await;
    assert_eq!((status, error_code(&body)), (400, "unknown_parameter"));
    let post = app
        .post("/api/items?user_id=x")
        .bearer_auth(&token)
        .json(&new_item())
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(post).await;
    assert_eq!((status, error_code(&body)), (400, "unknown_parameter"));
    let del = app
        .delete(&format!("/api/items/{ITEM_ID}?or=(id.gt.0)"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 400);
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn q_with_control_characters_is_rejected() {
    let app = TestApp::spawn().await;
    let res = app
        .get("/api/items")
        .query(&[("q", "a\u{0}b")])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, 400);
    assert_field_error(&body, "q");
}

#[tokio::test]
async fn a_partial_upstream_page_is_a_plain_200_with_the_total() {
    let app = TestApp::spawn().await;
    let rows = json!([item_row(ITEM_ID, USER_A)]);
    mock_rest(
        &app,
        "GET",
        "items",
        ResponseTemplate::new(206)
            .insert_header("content-range", "40-40/137")
            .set_body_json(rows.clone()),
    )
    .await;
    let res = app
        .get("/api/items?limit=1&offset=40")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-total-count"], "137");
    assert_eq!(res.headers()["content-range"], "40-40/137");
    let (status, body) = json_of(res).await;
    assert_eq!((status, body), (200, rows));
}

#[tokio::test]
async fn a_list_answer_without_a_count_is_502() {
    let app = TestApp::spawn().await;
    mock_rest(&app, "GET", "items", pg_list(json!([]), "0-19/*")).await;
    let (status, body) = json_of(app.get("/api/items").send().await.unwrap()).await;
    assert_eq!((status, error_code(&body)), (502, "upstream_error"));
}
