//! What the data resources share: garde reports as `validation_failed` (zod `flatten()`
//! shape), field validators with messages a form can show, paging, and the responses that
//! pass PostgREST's JSON through unchanged (lists streamed with their counting headers).

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::error::ApiError;
use crate::supabase::postgrest::Listing;

/// Runs the garde rules; failures become `validation_failed` with per-field messages.
pub fn validated<T: garde::Validate<Context = ()>>(value: T) -> Result<T, ApiError> {
    value.validate().map_err(report_error)?;
    Ok(value)
}

pub fn report_error(report: garde::Report) -> ApiError {
    let mut fields = Map::new();
    let mut form = Vec::new();
    for (path, error) in report.iter() {
        let key = path.to_string();
        if key.is_empty() {
            form.push(error.message().to_owned());
            continue;
        }
        if let Value::Array(list) = fields.entry(key).or_insert_with(|| json!([])) {
            list.push(json!(error.message()));
        }
    }
    ApiError::validation(Value::Object(fields), form)
}

/// One field's error, for checks that span fields or happen after garde.
pub fn field_error(field: &str, message: &str) -> ApiError {
    ApiError::validation(json!({ field: [message] }), vec![])
}

pub fn form_error(message: &str) -> ApiError {
    ApiError::validation(json!({}), vec![message.to_owned()])
}

// ---- field validators (garde `custom`) and the parsers they share with the handlers ----

pub fn parse_uuid(text: &str) -> Result<Uuid, &'static str> {
    Uuid::parse_str(text).map_err(|_| "must be a valid UUID")
}

pub fn uuid_text(value: &str, _: &()) -> garde::Result {
    parse_uuid(value).map(drop).map_err(garde::Error::new)
}

pub const DEFAULT_LIMIT: i64 = 20;

pub fn limit_range(value: &i64, _: &()) -> garde::Result {
    if (1..=100).contains(value) {
        Ok(())
    } else {
        Err(garde::Error::new("must be between 1 and 100"))
    }
}

pub fn offset_range(value: &i64, _: &()) -> garde::Result {
    if (0..=10_000).contains(value) {
        Ok(())
    } else {
        Err(garde::Error::new("must be between 0 and 10000"))
    }
}

/// Validated `limit`/`offset` (garde ran first, so the casts cannot wrap).
pub fn page(limit: Option<i64>, offset: Option<i64>) -> (u64, u64) {
    (
        limit.unwrap_or(DEFAULT_LIMIT).clamp(1, 100) as u64,
        offset.unwrap_or(0).clamp(0, 10_000) as u64,
    )
}

/// Text a client types into a search box: no control characters (PostgreSQL text cannot
/// hold NUL, and none of them belongs in a name).
pub fn no_control_chars(value: &str) -> Result<(), &'static str> {
    if value.chars().any(char::is_control) {
        Err("must not contain control characters")
    } else {
        Ok(())
    }
}

/// `null` and absent are different in a PATCH body: absent is `None`, `null` is `Some(None)`.
pub fn nullable<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// No query parameters accepted at all.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

// ---- responses ----

/// A list: PostgREST's array streamed through unparsed, with `X-Total-Count` and
/// `Content-Range` (always 200: partial content is the normal page, not a client concern).
pub fn list_response(listing: Listing) -> HttpResponse {
    let mut res = HttpResponse::Ok();
    res.insert_header(("x-total-count", listing.total.to_string()))
        .insert_header((header::CONTENT_RANGE, listing.content_range))
        .content_type(ContentType::json());
    match listing.body {
        Some(upstream) => res.streaming(upstream),
        None => res.body("[]"),
    }
}

/// A JSON body from PostgREST (already checked to be JSON), passed through.
pub fn json_response(status: StatusCode, body: Bytes) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(ContentType::json())
        .body(body)
}

#[derive(Deserialize)]
struct IdOnly {
    id: Uuid,
}

/// `201 Created` with `Location: <collection>/<id>`, the id read from the returned row.
pub fn created(collection: &str, body: Bytes) -> Result<HttpResponse, ApiError> {
    let row: IdOnly = serde_json::from_slice(&body)
        .map_err(|e| ApiError::upstream_error(format!("created row without id: {e}")))?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("{collection}/{}", row.id)))
        .content_type(ContentType::json())
        .body(body))
}
