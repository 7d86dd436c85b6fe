//! `POST /api/uploads` and `POST /api/downloads`: Storage's signing endpoints called as the
//! caller, after each bucket's rules; every refusal happens before any call to Storage.

use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, ResponseTemplate};

use crate::support::*;

/// A token as Storage signs them, with `exp` = 1 900 000 000 (only the payload is read).
/// Payload: `{"url":"avatars/x","exp":1900000000}`.
const STORAGE_TOKEN: &str =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1cmwiOiJhdmF0YXJzL3giLCJleHAiOjE5MDAwMDAwMDB9.c2ln";
const EXP: i64 = 1_900_000_000;

fn upload_body() -> Value {
    json!({"bucket": "avatars", "name": "Me.PNG", "content_type": "image/png", "size": 1024})
}

async fn storage_signs_uploads(app: &TestApp) {
    Mock::given(method("POST"))
        .and(path_regex(r"^/storage/v1/object/upload/sign/avatars/.+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "url": format!("/object/upload/sign/avatars/some/path.png?token={STORAGE_TOKEN}"),
            "token": STORAGE_TOKEN,
        })))
        .mount(&app.upstream)
        .await;
}

async fn post(app: &TestApp, route: &str, token: &str, body: &Value) -> (u16, Value) {
    json_of(
        app.post(route)
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn is_uuid_png(file: &str) -> bool {
    file.strip_suffix(".png")
        .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok() && id.len() == 36)
}

#[tokio::test]
async fn an_upload_is_signed_by_storage_as_the_caller_under_their_own_folder() {
    let app = TestApp::spawn().await;
    storage_signs_uploads(&app).await;
    let token = user_token(USER_A);
    let (status, body) = post(&app, "/api/uploads", &token, &upload_body()).await;
    assert_eq!(status, 200, "{body}");

    // The path is the template's: the caller's folder, a fresh UUID, the lowercased extension.
    let object = body["path"].as_str().unwrap();
    let (folder, file) = object.split_once('/').unwrap();
    assert_eq!(folder, USER_A);
    assert!(is_uuid_png(file), "{object}");
    assert_eq!(body["bucket"], "avatars");
    assert_eq!(body["content_type"], "image/png");
    assert_eq!(body["token"], STORAGE_TOKEN);
    assert_eq!(body["expires_at"], EXP);
    assert_eq!(
        body["url"],
        format!(
            "{}/storage/v1/object/upload/sign/avatars/some/path.png?token={STORAGE_TOKEN}",
            app.upstream.uri()
        )
    );

    let requests = app.upstream_requests().await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    let sign = &requests[0];
    assert_eq!(sign.method.as_str(), "POST");
    assert_eq!(
        sign.url.path(),
        format!("/storage/v1/object/upload/sign/avatars/{object}")
    );
    assert_eq!(sign.url.query(), None);
    assert_sent_as_user(sign, &token);
    // A fresh UUID per upload: nothing to replace, so no `x-upsert`.
    assert!(headers_of(sign, "x-upsert").is_empty());
    assert_eq!(header_of(sign, "content-type"), Some("application/json"));
    assert_eq!(body_json(sign), json!({}));
    assert_service_key_never_sent(&requests);
}

#[tokio::test]
async fn a_bucket_that_replaces_files_sends_x_upsert_and_its_templates_fixed_name() {
    let app = TestApp::spawn_with(|s| {
        s.storage.buckets[0].path_template = "{user_id}/profile/avatar.{ext}".into();
        s.storage.buckets[0].upsert = true;
    })
    .await;
    storage_signs_uploads(&app).await;
    let (status, body) = post(&app, "/api/uploads", &user_token(USER_A), &upload_body()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["path"], format!("{USER_A}/profile/avatar.png"));
    let requests = app.upstream_requests().await;
    assert_eq!(
        requests[0].url.path(),
        format!("/storage/v1/object/upload/sign/avatars/{USER_A}/profile/avatar.png")
    );
    assert_eq!(headers_of(&requests[0], "x-upsert"), vec!["true"]);
}

#[tokio::test]
async fn each_upload_rule_refuses_with_its_own_code_before_any_call_to_storage() {
    let app = TestApp::spawn().await;
    storage_signs_uploads(&app).await;
    let token = user_token(USER_A);
    let with = |key: &str, value: Value| {
        let mut body = upload_body();
        body[key] = value;
        body
    };
    let cases = [
        (
            with("content_type", json!("image/gif")),
            415,
            "content_type_not_allowed",
        ),
        (
            with("content_type", json!("image/png-evil")),
            415,
            "content_type_not_allowed",
        ),
        (with("size", json!(5_242_881)), 413, "file_too_large"),
        (with("size", json!(0)), 400, "validation_failed"),
        (
            with("size", json!(9_223_372_036_854_775_808_u64)),
            400,
            "validation_failed",
        ),
        (with("size", json!(1.5)), 400, "validation_failed"),
        (with("bucket", json!("secrets")), 400, "validation_failed"),
        (
            with("name", json!("../../other/x.png")),
            400,
            "invalid_path",
        ),
        (
            with("name", json!(format!("{USER_B}/x.png"))),
            400,
            "invalid_path",
        ),
        (with("name", json!("..%2F..%2Fx.png")), 400, "invalid_path"),
        (with("name", json!("a\\..\\x.png")), 400, "invalid_path"),
        (with("name", json!("x\u{0}.png")), 400, "invalid_path"),
        (with("name", json!("noextension")), 400, "invalid_path"),
        (with("name", json!("..")), 400, "invalid_path"),
    ];
    for (body, want_status, want_code) in cases {
        let (status, answer) = post(&app, "/api/uploads", &token, &body).await;
        assert_eq!(
            (status, error_code(&answer)),
            (want_status, want_code),
            "{body}: {answer}"
        );
    }
    let (_, answer) = post(
        &app,
        "/api/uploads",
        &token,
        &with("size", json!(5_242_881)),
    )
    .await;
    assert_eq!(answer["details"], json!({"max_bytes": 5_242_880}));
    let (_, answer) = post(
        &app,
        "/api/uploads",
        &token,
        &with("content_type", json!("text/html")),
    )
    .await;
    assert_eq!(
        answer["details"],
        json!({"allowed": ["image/png", "image/jpeg", "image/webp"]})
    );
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn uploads_need_a_session_and_anonymous_sign_ins_may_not_upload() {
    let app = TestApp::spawn().await;
    storage_signs_uploads(&app).await;
    let res = app
        .post("/api/uploads")
        .json(&upload_body())
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!((status, error_code(&body)), (401, "unauthorized"));
    let mut claims = user_claims(USER_A);
    claims["is_anonymous"] = json!(true);
    let (status, body) = post(&app, "/api/uploads", &mint_hs256(&claims), &upload_body()).await;
    assert_eq!((status, error_code(&body)), (403, "anonymous_not_allowed"));
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn a_download_is_signed_for_the_callers_own_file_with_the_configured_expiry() {
    let app = TestApp::spawn_with(|s| s.storage.download_ttl_secs = 120).await;
    let object = format!("{USER_A}/0b6f1c2e-4a5d-4e8f-9b1a-2c3d4e5f6a7b.png");
    Mock::given(method("POST"))
        .and(path(format!("/storage/v1/object/sign/avatars/{object}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "signedURL": format!("/object/sign/avatars/{object}?token={STORAGE_TOKEN}")
        })))
        .mount(&app.upstream)
        .await;
    let token = user_token(USER_A);
    let (status, body) = post(
        &app,
        "/api/downloads",
        &token,
        &json!({"bucket": "avatars", "path": object}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "url": format!("{}/storage/v1/object/sign/avatars/{object}?token={STORAGE_TOKEN}", app.upstream.uri()),
            "bucket": "avatars",
            "path": object,
            "expires_at": EXP,
        })
    );
    let requests = app.upstream_requests().await;
    assert_eq!(requests.len(), 1);
    assert_sent_as_user(&requests[0], &token);
    assert_eq!(body_json(&requests[0]), json!({"expiresIn": 120}));
}

#[tokio::test]
async fn a_download_outside_the_callers_folder_or_with_traversal_is_refused_before_storage() {
    let app = TestApp::spawn().await;
    let token = user_token(USER_A);
    let cases = [
        (format!("{USER_B}/x.png"), 403, "path_forbidden"),
        (format!("{USER_A}/../{USER_B}/x.png"), 400, "invalid_path"),
        (
            format!("{USER_A}%2F..%2F{USER_B}%2Fx.png"),
            400,
            "invalid_path",
        ),
        (format!("{USER_A}/..%2f{USER_B}/x.png"), 400, "invalid_path"),
        (format!("{USER_A}/a\\..\\x.png"), 400, "invalid_path"),
        (format!("{USER_A}//x.png"), 400, "invalid_path"),
        (format!("/{USER_A}/x.png"), 400, "invalid_path"),
        (format!("{USER_A}/./x.png"), 400, "invalid_path"),
        (format!("{USER_A}/x\r\n.png"), 400, "invalid_path"),
        (format!("{USER_A}/x.png?download"), 400, "invalid_path"),
        (USER_A.to_owned(), 403, "path_forbidden"),
    ];
    for (object, want_status, want_code) in cases {
        let (status, body) = post(
            &app,
            "/api/downloads",
            &token,
            &json!({"bucket": "avatars", "path": object}),
        )
        .await;
        assert_eq!(
            (status, error_code(&body)),
            (want_status, want_code),
            "{object:?}: {body}"
        );
    }
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn storages_own_errors_are_mapped_to_our_codes_without_its_text() {
    let err = |status: u16, meant: &str, code: &str, error: &str| {
        ResponseTemplate::new(status).set_body_json(json!({
            "statusCode": meant, "code": code, "error": error, "message": "storage internals"
        }))
    };
    let cases = [
        (err(400, "404", "NoSuchKey", "not_found"), 404, "not_found"),
        (
            err(400, "404", "NoSuchBucket", "Bucket not found"),
            404,
            "not_found",
        ),
        (
            err(400, "403", "AccessDenied", "Unauthorized"),
            403,
            "forbidden",
        ),
        (
            err(400, "409", "ResourceAlreadyExists", "Duplicate"),
            409,
            "conflict",
        ),
        (
            err(400, "413", "EntityTooLarge", "Payload too large"),
            413,
            "file_too_large",
        ),
        (
            err(400, "415", "InvalidMimeType", "invalid_mime_type"),
            415,
            "content_type_not_allowed",
        ),
        (
            err(400, "400", "InvalidJWT", "InvalidJWT"),
            401,
            "invalid_token",
        ),
        (
            err(400, "400", "InvalidRequest", "InvalidRequest"),
            502,
            "upstream_error",
        ),
        (
            err(500, "500", "InternalError", "internal"),
            502,
            "upstream_error",
        ),
        (
            // Older Storage: the real status, `statusCode` as a number.
            ResponseTemplate::new(404).set_body_json(
                json!({"statusCode": 404, "error": "not_found", "message": "storage internals"}),
            ),
            404,
            "not_found",
        ),
        (
            ResponseTemplate::new(503).set_body_string("storage internals"),
            503,
            "upstream_unavailable",
        ),
        (
            ResponseTemplate::new(502).set_body_string("<html>storage internals"),
            502,
            "upstream_error",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"url": "/object/upload/sign/a"})),
            502,
            "upstream_error",
        ),
        (
            ResponseTemplate::new(200).set_body_string("storage internals"),
            502,
            "upstream_error",
        ),
    ];
    for (i, (template, want_status, want_code)) in cases.into_iter().enumerate() {
        let app = TestApp::spawn().await;
        Mock::given(method("POST"))
            .respond_with(template)
            .mount(&app.upstream)
            .await;
        let (status, body) = post(&app, "/api/uploads", &user_token(USER_A), &upload_body()).await;
        assert_eq!(
            (status, error_code(&body)),
            (want_status, want_code),
            "case {i}: {body}"
        );
        assert!(!body.to_string().contains("storage internals"), "{body}");
    }
}

#[test]
fn start_up_fails_naming_a_bucket_template_outside_the_users_folder_or_a_function_name_that_is_not_a_slug(
) {
    let dir = tempfile::tempdir().unwrap();
    for file in ["default.toml", "test.toml"] {
        std::fs::copy(repo_path(&format!("config/{file}")), dir.path().join(file)).unwrap();
    }
    let overlay = dir.path().join("test.toml");
    let mut text = std::fs::read_to_string(&overlay).unwrap();
    text.push_str(
        "\n[[storage.buckets]]\nname = \"shared\"\nallowed_content_types = [\"image/png\"]\n\
         max_size_bytes = 10\npath_template = \"shared/{uuid}.{ext}\"\n",
    );
    std::fs::write(&overlay, text).unwrap();
    let e = supagate::config::Settings::load(dir.path(), &test_env("http://127.0.0.1:9"))
        .expect_err("a template outside {user_id}/ is refused at start-up");
    assert!(e.setting.starts_with("storage.buckets["), "{e}");
    assert!(e.setting.ends_with("].path_template"), "{e}");
    assert!(e.problem.contains("{user_id}"), "{e}");

    let mut env = test_env("http://127.0.0.1:9");
    env.insert(
        "SUPAGATE_FUNCTIONS__ALLOWED".into(),
        "hello-world, ../rest".into(),
    );
    let (code, _, err) = run_binary(&["check-config"], &env);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("functions.allowed"), "{err}");
    assert!(err.contains("`../rest` is not a function name"), "{err}");
}
