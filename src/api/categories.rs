//! `/api/categories`: the public category list, created by admins.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use garde::Validate;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::common::{created, json_response, list_response, validated, NoParams};
use crate::auth::{Admin, MaybeUser};
use crate::error::ApiResult;
use crate::state::AppState;
use crate::supabase::postgrest::{Caller, Query};

const CATEGORY_COLUMNS: &str = "id,name,slug";

/// All categories (tens of rows), ordered by name; `id` breaks ties between equal names.
#[utoipa::path(
    get,
    path = "/api/categories",
    operation_id = "listCategories",
    tag = "categories",
    security((), ("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Every category, ordered by name", body = Vec<crate::openapi::schemas::Category>,
         headers(
            ("X-Total-Count" = u64, description = "How many rows match the filters"),
            ("Content-Range" = String, description = "`<first>-<last>/<total>`, or `*/<total>` past the end"),
        )),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 502, response = crate::openapi::responses::BadGateway),
        (status = 503, response = crate::openapi::responses::Unavailable),
        (status = 504, response = crate::openapi::responses::Timeout),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    MaybeUser(user): MaybeUser,
    _no_params: web::Query<NoParams>,
) -> ApiResult<HttpResponse> {
    let query = Query::table("categories")
        .select(CATEGORY_COLUMNS)
        .order("name.asc,id.asc");
    let listing = state
        .supabase
        .pg_list(&query, Caller::from_option(user.as_ref()))
        .await?;
    Ok(list_response(listing))
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
        (status = 200, description = "The category", body = crate::openapi::schemas::Category),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 502, response = crate::openapi::responses::BadGateway),
        (status = 503, response = crate::openapi::responses::Unavailable),
        (status = 504, response = crate::openapi::responses::Timeout),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    MaybeUser(user): MaybeUser,
    id: web::Path<Uuid>,
    _no_params: web::Query<NoParams>,
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

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Lighting", "slug": "lighting"}))]
pub struct CategoryInput {
    /// Trimmed, 1..=100 characters (the pattern: not only whitespace, U+0085 included).
    #[garde(custom(category_name))]
    #[schema(min_length = 1, max_length = 100, pattern = r"[^\s\u0085]")]
    name: String,
    /// Lowercase letters and digits in words joined by single hyphens; unique.
    #[garde(custom(slug_text))]
    #[schema(max_length = 100, pattern = r"^[a-z0-9]+(?:-[a-z0-9]+)*$")]
    slug: String,
}

fn category_name(value: &str, _: &()) -> garde::Result {
    match value.trim().chars().count() {
        0 => Err(garde::Error::new("must not be empty")),
        n if n > 100 => Err(garde::Error::new("must be at most 100 characters")),
        _ => Ok(()),
    }
}

/// The database's `categories_slug_format`: lowercase words joined by single hyphens.
fn slug_text(value: &str, _: &()) -> garde::Result {
    let words_ok = value.split('-').all(|w| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if value.is_empty() || value.len() > 100 || !words_ok {
        return Err(garde::Error::new(
            "must be lowercase letters and digits separated by single hyphens, at most 100 characters",
        ));
    }
    Ok(())
}

#[utoipa::path(
    post,
    path = "/api/categories",
    operation_id = "createCategory",
    tag = "categories",
    request_body = CategoryInput,
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        (status = 201, description = "Created", body = crate::openapi::schemas::Category, headers(("Location" = String, description = "`/api/categories/{id}` of the new category"))),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 413, response = crate::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::openapi::responses::UnsupportedMediaType),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 409, response = crate::openapi::responses::Conflict),
        (status = 502, response = crate::openapi::responses::BadGateway),
        (status = 503, response = crate::openapi::responses::Unavailable),
        (status = 504, response = crate::openapi::responses::Timeout),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Admin(admin): Admin,
    body: web::Json<CategoryInput>,
    _no_params: web::Query<NoParams>,
) -> ApiResult<HttpResponse> {
    let input = validated(body.into_inner())?;
    let row = json!({"name": input.name.trim(), "slug": input.slug});
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
