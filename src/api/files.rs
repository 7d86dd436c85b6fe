//! `/api/uploads` and `/api/downloads`: short-lived Supabase Storage URLs, signed after the
//! bucket's rules (`[[storage.buckets]]`, `rules::files`) passed. Storage is asked with the
//! caller's own token, so its RLS on `storage.objects` decides too; file bytes never pass
//! through supagate.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::input::{plain_text, Body, FromBody, FromJson, Problem};
use crate::auth::{User, Writer};
use crate::error::{ApiError, ApiResult};
use crate::field_schema;
use crate::openapi::responses;
use crate::rules::files::{
    allowed_content_type, extension, own_path, BucketRule, PathProblem, PathTemplate,
};
use crate::state::AppState;
use crate::supabase::storage::Signed;

/// A bucket name as the body gives it; whether supagate serves it is checked against
/// `[[storage.buckets]]`.
pub struct BucketName(String);

field_schema!(BucketName => plain_text().min_length(Some(1)).max_length(Some(100)));

impl FromJson for BucketName {
    fn from_json(raw: &serde_json::value::RawValue) -> Result<Self, Problem> {
        let text = String::from_json(raw)?;
        if text.is_empty() || text.len() > 100 {
            return Err("must be 1 to 100 characters".into());
        }
        Ok(Self(text))
    }
}

/// Free text of at most `MAX` bytes, checked for what it means by the handler (so a path
/// problem gets `invalid_path`, not a generic validation error).
pub struct Text<const MAX: usize>(String);

impl<const MAX: usize> utoipa::PartialSchema for Text<MAX> {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(
            plain_text()
                .min_length(Some(1))
                .max_length(Some(MAX))
                .build(),
        ))
    }
}

impl<const MAX: usize> utoipa::ToSchema for Text<MAX> {}

impl<const MAX: usize> FromJson for Text<MAX> {
    fn from_json(raw: &serde_json::value::RawValue) -> Result<Self, Problem> {
        let text = String::from_json(raw)?;
        if text.is_empty() || text.len() > MAX {
            return Err(format!("must be 1 to {MAX} bytes").into());
        }
        Ok(Self(text))
    }
}

/// A declared file size in bytes: a whole number from 1 to `i64::MAX` (`int64`).
pub struct FileSize(u64);

field_schema!(FileSize => utoipa::openapi::schema::ObjectBuilder::new()
    .schema_type(utoipa::openapi::schema::Type::Integer)
    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
    .minimum(Some(1)));

impl FromJson for FileSize {
    fn from_json(raw: &serde_json::value::RawValue) -> Result<Self, Problem> {
        // An `int64`, as the document states it.
        match serde_json::from_str::<i64>(raw.get()) {
            Ok(n) if n > 0 => Ok(Self(n.unsigned_abs())),
            _ => Err("must be a whole number of bytes from 1 to 9223372036854775807".into()),
        }
    }
}

/// `POST /api/uploads`.
#[derive(FromBody, utoipa::ToSchema)]
#[schema(example = json!({"bucket": "avatars", "name": "me.png", "content_type": "image/png", "size": 48213}))]
pub struct UploadRequest {
    /// One of the buckets `[[storage.buckets]]` lists.
    #[schema(inline)]
    bucket: BucketName,
    /// The file's own name. Only its extension is used (`{ext}`); the bucket's path template
    /// decides the folder and the name. A name with `/`, `\`, `%`, `..` or control
    /// characters is refused (`invalid_path`).
    #[schema(inline)]
    name: Text<255>,
    /// The MIME type the file will be uploaded with (`Content-Type` of the `PUT`).
    #[schema(inline)]
    content_type: Text<255>,
    /// The file's size in bytes.
    #[schema(inline)]
    size: FileSize,
}

/// `POST /api/downloads`.
#[derive(FromBody, utoipa::ToSchema)]
#[schema(example = json!({"bucket": "avatars", "path": "4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90/0b6f1c2e-4a5d-4e8f-9b1a-2c3d4e5f6a7b.png"}))]
pub struct DownloadRequest {
    /// One of the buckets `[[storage.buckets]]` lists.
    #[schema(inline)]
    bucket: BucketName,
    /// The object's path in the bucket, as `POST /api/uploads` returned it: under the
    /// caller's own folder (`<user id>/...`), segments of letters, digits, `-`, `_`, `.`.
    #[schema(inline)]
    path: Text<1024>,
}

/// A signed upload URL: `PUT` the file's bytes to `url` with the declared `Content-Type`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "url": "https://abc.supabase.co/storage/v1/object/upload/sign/avatars/4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90/0b6f1c2e-4a5d-4e8f-9b1a-2c3d4e5f6a7b.png?token=eyJhbGciOiJIUzI1NiJ9...",
    "bucket": "avatars",
    "path": "4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90/0b6f1c2e-4a5d-4e8f-9b1a-2c3d4e5f6a7b.png",
    "token": "eyJhbGciOiJIUzI1NiJ9...",
    "content_type": "image/png",
    "expires_at": 1748779200
}))]
pub struct SignedUpload {
    /// Storage's signed upload URL (absolute).
    url: String,
    bucket: String,
    /// Where the file will be, in the bucket: the path template's choice.
    path: String,
    /// The token inside `url`, for storage-js `uploadToSignedUrl(path, token, file)`.
    token: String,
    /// The `Content-Type` to upload with: the bucket's spelling of the declared type
    /// (Storage checks it against the bucket's allowed types).
    content_type: String,
    /// When the URL stops working (Unix seconds; Storage's own setting).
    expires_at: i64,
}

/// A signed download URL: `GET` it until `expires_at`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "url": "https://abc.supabase.co/storage/v1/object/sign/avatars/4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90/0b6f1c2e-4a5d-4e8f-9b1a-2c3d4e5f6a7b.png?token=eyJhbGciOiJIUzI1NiJ9...",
    "bucket": "avatars",
    "path": "4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90/0b6f1c2e-4a5d-4e8f-9b1a-2c3d4e5f6a7b.png",
    "expires_at": 1748779200
}))]
pub struct SignedDownload {
    url: String,
    bucket: String,
    path: String,
    /// When the URL stops working (Unix seconds; `storage.download_ttl_secs` after signing).
    expires_at: i64,
}

fn bucket_rule<'a>(state: &'a AppState, name: &BucketName) -> ApiResult<&'a BucketRule> {
    state.settings.storage.bucket(&name.0).ok_or_else(|| {
        ApiError::validation(
            json!({ "bucket": ["is not a bucket this API serves"] }),
            Vec::new(),
        )
    })
}

fn path_error(field: &'static str, problem: PathProblem) -> ApiError {
    match problem {
        PathProblem::Unsafe(reason) => ApiError::invalid_path(format!("`{field}` {reason}"))
            .with_details(json!({ "field": field })),
        PathProblem::NotYours => ApiError::forbidden(
            "path_forbidden",
            "Files can only be read under your own folder",
        ),
    }
}

/// Storage's relative URL made absolute where browsers reach Supabase.
fn absolute(state: &AppState, signed: &Signed) -> String {
    format!(
        "{}/storage/v1{}",
        state.settings.supabase_public_base(),
        signed.relative_url
    )
}

fn expiry(signed: &Signed) -> ApiResult<i64> {
    signed
        .expires_at
        .ok_or_else(|| ApiError::upstream_error("storage: the signed URL's token has no exp"))
}

#[utoipa::path(
    post,
    path = "/api/uploads",
    operation_id = "createUpload",
    tag = "files",
    request_body = UploadRequest,
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        responses::CallerErrors,
        (status = 200, description = "A signed upload URL for the path the bucket's template chose", body = SignedUpload),
        (status = 400, description = "`validation_failed` (an unknown `bucket` among them) or `invalid_path` (a `name` with `/`, `\\`, `%`, `..`, control characters or no extension)", body = crate::error::ErrorBody, example = json!({"error": "`name` must be a file name, not a path (contains `/`)", "code": "invalid_path", "details": {"field": "name"}})),
        (status = 403, description = "`anonymous_not_allowed`, or `forbidden`: Storage's row-level security refused the upload", body = crate::error::ErrorBody),
        (status = 409, description = "`conflict`: an object already exists at the path (a template without `{uuid}` and `upsert = false`)", body = crate::error::ErrorBody),
        (status = 413, description = "`file_too_large` (`size` over the bucket's `max_size_bytes`, in `details.max_bytes`) or `payload_too_large` (the JSON body)", body = crate::error::ErrorBody, example = json!({"error": "The file is larger than 5242880 bytes", "code": "file_too_large", "details": {"max_bytes": 5_242_880}})),
        (status = 415, description = "`content_type_not_allowed` (`details.allowed` lists the bucket's types) or `unsupported_media_type` (the JSON body)", body = crate::error::ErrorBody, example = json!({"error": "This bucket does not take image/gif files", "code": "content_type_not_allowed", "details": {"allowed": ["image/png", "image/jpeg"]}})),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn upload(
    state: web::Data<AppState>,
    Writer(user): Writer,
    Body(input): Body<UploadRequest>,
) -> ApiResult<HttpResponse> {
    let bucket = bucket_rule(&state, &input.bucket)?;
    let Some(content_type) = allowed_content_type(bucket, &input.content_type.0) else {
        return Err(ApiError::content_type_not_allowed(format!(
            "This bucket does not take {} files",
            input
                .content_type
                .0
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
        ))
        .with_details(json!({ "allowed": bucket.allowed_content_types })));
    };
    if input.size.0 > bucket.max_size_bytes {
        return Err(ApiError::file_too_large(format!(
            "The file is larger than {} bytes",
            bucket.max_size_bytes
        ))
        .with_details(json!({ "max_bytes": bucket.max_size_bytes })));
    }
    let ext = extension(&input.name.0).map_err(|p| path_error("name", p))?;
    let template = PathTemplate::parse(&bucket.path_template).map_err(ApiError::internal)?;
    let path = template.render(user.id, Uuid::new_v4(), &ext);
    let signed = state
        .supabase
        .sign_upload(&bucket.name, &path, bucket.upsert, &user)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(SignedUpload {
            url: absolute(&state, &signed),
            bucket: bucket.name.clone(),
            path,
            content_type: content_type.to_owned(),
            expires_at: expiry(&signed)?,
            token: signed.token,
        }))
}

#[utoipa::path(
    post,
    path = "/api/downloads",
    operation_id = "createDownload",
    tag = "files",
    request_body = DownloadRequest,
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        responses::CallerErrors,
        responses::BodyErrors,
        (status = 200, description = "A signed download URL, valid `storage.download_ttl_secs`", body = SignedDownload),
        (status = 400, description = "`validation_failed` (an unknown `bucket` among them) or `invalid_path` (`..`, `.` or empty segments, `%`, `\\`, control or other characters outside letters, digits, `-`, `_`, `.`, `/`)", body = crate::error::ErrorBody, example = json!({"error": "`path` has a `.` or `..` segment", "code": "invalid_path", "details": {"field": "path"}})),
        (status = 403, description = "`path_forbidden`: the path is not under the caller's own folder; `forbidden`: Storage's row-level security refused", body = crate::error::ErrorBody, example = json!({"error": "Files can only be read under your own folder", "code": "path_forbidden"})),
        (status = 404, description = "`not_found`: no such file, or the caller may not see it", body = crate::error::ErrorBody),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn download(
    state: web::Data<AppState>,
    User(user): User,
    Body(input): Body<DownloadRequest>,
) -> ApiResult<HttpResponse> {
    let bucket = bucket_rule(&state, &input.bucket)?;
    let path = own_path(&input.path.0, user.id).map_err(|p| path_error("path", p))?;
    let signed = state
        .supabase
        .sign_download(
            &bucket.name,
            path,
            state.settings.storage.download_ttl_secs,
            &user,
        )
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(SignedDownload {
            url: absolute(&state, &signed),
            bucket: bucket.name.clone(),
            path: path.to_owned(),
            expires_at: expiry(&signed)?,
        }))
}
