//! What the data resources share: typed fields (names, search text, paging) with messages a
//! form can show, and the responses that pass PostgREST's JSON through unchanged (lists
//! streamed with their counting headers).

use actix_web::body::SizedStream;
use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::input::{FromJson, FromParam, Problem};
use crate::error::ApiError;
use crate::supabase::postgrest::Listing;

/// A display name (items, categories): trimmed, then 1..=100 characters.
pub struct Name(String);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromJson for Name {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        let text = String::from_json(raw)?;
        let trimmed = text.trim();
        match trimmed.chars().count() {
            0 => Err("must not be empty".into()),
            n if n > 100 => Err("must be at most 100 characters".into()),
            _ => Ok(Self(trimmed.to_owned())),
        }
    }
}

/// An email address as garde's `email` rule accepts it, at most 254 bytes (RFC 5321's limit
/// on a path).
pub struct Email(String);

impl Email {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromJson for Email {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        let text = String::from_json(raw)?;
        if text.len() > 254 {
            return Err("must be at most 254 characters".into());
        }
        garde::rules::email::apply(&text, ()).map_err(|e| e.message().to_owned())?;
        Ok(Self(text))
    }
}

/// Text a client types into a search box: at most 100 characters and no control characters
/// (PostgreSQL text cannot hold NUL, and none of them belongs in a name).
pub struct SearchText(String);

impl SearchText {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromParam for SearchText {
    fn from_param(text: &str) -> Result<Self, Problem> {
        if text.chars().count() > 100 {
            return Err("must be at most 100 characters".into());
        }
        if text.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(text.to_owned()))
    }
}

/// `limit`: a page of 1..=100 rows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limit(u64);

impl FromParam for Limit {
    fn from_param(text: &str) -> Result<Self, Problem> {
        match text.parse::<u64>() {
            Ok(n) if (1..=100).contains(&n) => Ok(Self(n)),
            _ => Err("must be between 1 and 100".into()),
        }
    }
}

/// `offset`: 0..=10000 rows skipped (deeper pages cost the database more than they are worth).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Offset(u64);

impl FromParam for Offset {
    fn from_param(text: &str) -> Result<Self, Problem> {
        match text.parse::<u64>() {
            Ok(n) if n <= 10_000 => Ok(Self(n)),
            _ => Err("must be between 0 and 10000".into()),
        }
    }
}

pub const DEFAULT_LIMIT: u64 = 20;

/// `(limit, offset)` with the defaults.
pub fn page(limit: Option<Limit>, offset: Option<Offset>) -> (u64, u64) {
    (
        limit.map_or(DEFAULT_LIMIT, |l| l.0),
        offset.map_or(0, |o| o.0),
    )
}

// ---- responses ----

/// A list: PostgREST's array streamed through unparsed, with `X-Total-Count` and
/// `Content-Range` (always 200: partial content is the normal page, not a client concern).
pub fn list_response(listing: Listing) -> HttpResponse {
    let mut res = HttpResponse::Ok();
    res.insert_header(("x-total-count", listing.total.to_string()))
        .insert_header((header::CONTENT_RANGE, listing.content_range))
        .content_type(ContentType::json());
    match (listing.body, listing.length) {
        (Some(upstream), Some(length)) => res.body(SizedStream::new(length, upstream)),
        (Some(upstream), None) => res.streaming(upstream),
        (None, _) => res.body("[]"),
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
