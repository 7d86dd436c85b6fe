//! `/api/categories`: the public category list, created by admins.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use http::Method;
use serde_json::json;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::common::{created, json_response, List, Listed, Name};
use super::idempotency::{self, IdempotencyKey, IdempotencyKeyHeader, KeyedWrite};
use super::input::{plain_text, Body, FromBody, FromJson, Problem};
use crate::auth::{Admin, MaybeUser};
use crate::error::ApiResult;
use crate::field_schema;
use crate::openapi::responses;
use crate::state::AppState;
use crate::supabase::postgrest::{Caller, Query};

const CATEGORY_COLUMNS: &str = "id,name,slug";

// What CATEGORY_COLUMNS selects.
/// A category (`id,name,slug`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // never built: PostgREST's bytes pass through unparsed; this is their shape
#[schema(example = json!({"id": "5d3c2b1a-0f9e-4d8c-b7a6-958473625140", "name": "Lighting", "slug": "lighting"}))]
pub(crate) struct Category {
    id: Uuid,
    name: String,
    slug: String,
}

impl Listed for Category {
    const LIST_DESCRIPTION: &'static str = "Every category, ordered by name";
}

/// All categories (tens of rows), ordered by name; `id` breaks ties between equal names.
#[utoipa::path(
    get,
    path = "/api/categories",
    operation_id = "listCategories",
    tag = "categories",
    security((), ("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        responses::CallerErrors,
        List<Category>,
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    MaybeUser(user): MaybeUser,
) -> ApiResult<List<Category>> {
    let query = Query::table("categories")
        .select(CATEGORY_COLUMNS)
        .order("name.asc,id.asc");
    let listing = state
        .supabase
        .pg_list(&query, Caller::from_option(user.as_ref()))
        .await?;
    Ok(List::new(listing))
}

/// One category: `POST` answers a `Location`, and it should resolve.
#[utoipa::path(
    get,
    path = "/api/categories/{id}",
    operation_id = "getCategory",
    tag = "categories",
    params(("id" = uuid::Uuid, Path, description = "Category id")),
    security((), ("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        responses::CallerErrors,
        (status = 200, description = "The category", body = Category),
        (status = 404, response = responses::NotFound),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    MaybeUser(user): MaybeUser,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let query = Query::table("categories")
        .select(CATEGORY_COLUMNS)
        .eq("id", *id);
    let body = state
        .supabase
        .pg_single(
            Method::GET,
            &query,
            None,
            Caller::from_option(user.as_ref()),
        )
        .await?;
    Ok(json_response(StatusCode::OK, body))
}

#[derive(FromBody, utoipa::ToSchema)]
#[schema(example = json!({"name": "Lighting", "slug": "lighting"}))]
pub struct CategoryInput {
    #[schema(inline)]
    name: Name,
    /// Lowercase letters and digits in words joined by single hyphens; unique.
    #[schema(inline)]
    slug: Slug,
}

/// The database's `categories_slug_format`: lowercase words joined by single hyphens.
pub struct Slug(String);

impl FromJson for Slug {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        let value = String::from_json(raw)?;
        let words_ok = value.split('-').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
        if value.is_empty() || value.len() > Self::MAX_LEN || !words_ok {
            return Err(format!(
                "must be lowercase letters and digits separated by single hyphens, at most {} characters",
                Self::MAX_LEN
            )
            .into());
        }
        Ok(Self(value))
    }
}

impl Slug {
    const MAX_LEN: usize = 100;
}

field_schema!(Slug => plain_text()
    .max_length(Some(Slug::MAX_LEN))
    .pattern(Some(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")));

#[utoipa::path(
    post,
    path = "/api/categories",
    operation_id = "createCategory",
    tag = "categories",
    params(IdempotencyKeyHeader),
    request_body = CategoryInput,
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        responses::CallerErrors,
        responses::BodyErrors,
        (status = 201, description = "Created", body = Category, headers(("Location" = String, description = "`/api/categories/{id}` of the new category"), ("Idempotent-Replayed" = String, description = "`true` on an answer replayed for a repeated `Idempotency-Key`"))),
        (status = 409, response = responses::ConflictOrKeyInUse),
        (status = 422, response = responses::IdempotencyKeyReused),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Admin(admin): Admin,
    IdempotencyKey(key): IdempotencyKey,
    Body(input): Body<CategoryInput>,
) -> ApiResult<HttpResponse> {
    let row = json!({"name": input.name.as_str(), "slug": input.slug.0});
    if let Some(key) = &key {
        let row = row.to_string().into_bytes();
        let write = KeyedWrite {
            function: "rpc/create_category",
            method: "POST",
            path: "/api/categories",
            args: &[("category", &row)],
            user: &admin,
            key,
            row: &row,
        };
        return idempotency::run(&state, write)
            .await?
            .respond("/api/categories");
    }
    let query = Query::table("categories").select(CATEGORY_COLUMNS);
    let body = state
        .supabase
        .pg_single(
            Method::POST,
            &query,
            Some(row.to_string().into_bytes()),
            Caller::User(&admin),
        )
        .await?;
    created("/api/categories", body)
}
