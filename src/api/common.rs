//! What the data resources share: typed fields (names, search text, paging) with messages a
//! form can show, and the responses that pass PostgREST's JSON through unchanged (lists
//! streamed with their counting headers).

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use std::collections::BTreeMap;
use std::marker::PhantomData;

use actix_web::{HttpRequest, Responder};
use utoipa::openapi::schema::{ArrayBuilder, Schema};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::openapi::{KnownFormat, SchemaFormat};

use super::input::{integer, plain_text, text, FromJson, FromParam, FromParams, Problem};
use crate::error::ApiError;
use crate::field_schema;
use crate::openapi::responses::{integer_header, string_header};
use crate::supabase::postgrest::Listing;

/// A display name (items, categories): trimmed, then 1..=[`Name::MAX_CHARS`] characters.
pub struct Name(String);

impl Name {
    pub const MAX_CHARS: usize = 100;

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
            n if n > Self::MAX_CHARS => {
                Err(format!("must be at most {} characters", Self::MAX_CHARS).into())
            }
            _ => Ok(Self(trimmed.to_owned())),
        }
    }
}

field_schema!(Name => text(format!(
        "Trimmed, 1..={} characters (the pattern: not only whitespace, U+0085 included).",
        Name::MAX_CHARS
    ))
    .min_length(Some(1))
    .max_length(Some(Name::MAX_CHARS))
    // Any character `str::trim` keeps: Rust's whitespace is Unicode's, which includes U+0085.
    .pattern(Some(r"[^\s\u0085]")));

/// An email address as garde's `email` rule accepts it, at most [`Email::MAX_BYTES`] bytes
/// (RFC 5321's limit on a path).
pub struct Email(String);

impl Email {
    pub const MAX_BYTES: usize = 254;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromJson for Email {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        let text = String::from_json(raw)?;
        if text.len() > Self::MAX_BYTES {
            return Err(format!("must be at most {} characters", Self::MAX_BYTES).into());
        }
        garde::rules::email::apply(&text, ()).map_err(|e| e.message().to_owned())?;
        Ok(Self(text))
    }
}

field_schema!(Email => plain_text()
    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Email)))
    .max_length(Some(Email::MAX_BYTES)));

/// Text a client types into a search box: at most 100 characters and no control characters
/// (PostgreSQL text cannot hold NUL, and none of them belongs in a name).
pub struct SearchText(String);

impl SearchText {
    pub const MAX_CHARS: usize = 100;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromParam for SearchText {
    fn from_param(text: &str) -> Result<Self, Problem> {
        if text.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS).into());
        }
        if text.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(text.to_owned()))
    }
}

field_schema!(SearchText => plain_text()
    .max_length(Some(SearchText::MAX_CHARS))
    // `char::is_control`: Unicode's Cc category.
    .pattern(Some(r"^[^\u0000-\u001F\u007F-\u009F]*$")));

/// `limit`: a page of 1..=[`Limit::MAX`] rows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limit(u64);

impl Limit {
    pub const MAX: u64 = 100;
    pub const DEFAULT: u64 = 20;

    /// The page size asked for, or the default.
    pub fn or_default(limit: Option<Self>) -> u64 {
        limit.map_or(Self::DEFAULT, |l| l.0)
    }
}

impl FromParam for Limit {
    fn from_param(text: &str) -> Result<Self, Problem> {
        match text.parse::<u64>() {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(Self(n)),
            _ => Err(format!("must be between 1 and {}", Self::MAX).into()),
        }
    }
}

field_schema!(Limit => integer()
    .minimum(Some(1))
    .maximum(Some(Limit::MAX as f64))
    .default(Some(Limit::DEFAULT.into())));

/// `offset`: 0..=[`Offset::MAX`] rows skipped (deeper pages cost the database more than they
/// are worth).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Offset(u64);

impl Offset {
    pub const MAX: u64 = 10_000;
}

impl FromParam for Offset {
    fn from_param(text: &str) -> Result<Self, Problem> {
        match text.parse::<u64>() {
            Ok(n) if n <= Self::MAX => Ok(Self(n)),
            _ => Err(format!("must be between 0 and {}", Self::MAX).into()),
        }
    }
}

field_schema!(Offset => integer()
    .minimum(Some(0))
    .maximum(Some(Offset::MAX as f64))
    .default(Some(0.into())));

/// `limit` and `offset`, the paging every list takes (documented once, here).
#[derive(Clone, Copy, Debug, Default, PartialEq, FromParams, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Page size.
    #[param(inline, nullable = false)]
    limit: Option<Limit>,
    /// Rows to skip; past the end answers `[]` with the true `X-Total-Count`.
    #[param(inline, nullable = false)]
    offset: Option<Offset>,
}

impl Page {
    /// `(limit, offset)` with the defaults.
    pub fn limit_offset(self) -> (u64, u64) {
        (
            Limit::or_default(self.limit),
            self.offset.map_or(0, |o| o.0),
        )
    }
}

// ---- responses ----

/// A row type that lists are made of, and what its list answer says it holds.
pub trait Listed: utoipa::ToSchema {
    const LIST_DESCRIPTION: &'static str;
}

/// A list answer of `T` rows: PostgREST's array streamed through unparsed, with
/// `X-Total-Count` and `Content-Range` (always 200: partial content is the normal page, not a
/// client concern). The same type documents the answer (`responses(List<Item>)`), so the
/// headers are written and documented here only.
pub struct List<T> {
    listing: Listing,
    rows: PhantomData<T>,
}

impl<T> List<T> {
    pub fn new(listing: Listing) -> Self {
        Self {
            listing,
            rows: PhantomData,
        }
    }
}

impl<T> Responder for List<T> {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        let listing = self.listing;
        let mut res = HttpResponse::Ok();
        res.insert_header((TOTAL_COUNT, listing.total.to_string()))
            .insert_header((header::CONTENT_RANGE, listing.content_range))
            .content_type(ContentType::json())
            .body(listing.body)
    }
}

const TOTAL_COUNT: &str = "x-total-count";

impl<T: Listed> utoipa::IntoResponses for List<T> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let rows = ArrayBuilder::new().items(Ref::from_schema_name(T::name()));
        let answer = ResponseBuilder::new()
            .description(T::LIST_DESCRIPTION)
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(rows)).build(),
            )
            .header(
                "Content-Range",
                string_header("`<first>-<last>/<total>`, or `*/<total>` past the end"),
            )
            .header("X-Total-Count", {
                let mut count = integer_header("How many rows match the filters");
                if let RefOr::T(Schema::Object(schema)) = &mut count.schema {
                    schema.format = Some(SchemaFormat::KnownFormat(KnownFormat::Int64));
                }
                count
            });
        BTreeMap::from([("200".to_owned(), RefOr::T(answer.build()))])
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
