//! `/api/items`: the public catalog. Reads are anonymous or as the caller; writes need the
//! owner or an admin (checked here first, RLS second) and respect the free-plan limit.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use garde::Validate;
use reqwest::Method;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use super::common::{
    created, field_error, form_error, json_response, list_response, no_control_chars, nullable,
    page, parse_uuid, uuid_text, validated, NoParams,
};
use super::common::{limit_range, offset_range};
use crate::auth::{AuthUser, MaybeUser, User};
use crate::error::{ApiError, ApiResult};
use crate::rules::ownership::{may_modify, Actor};
use crate::rules::plan::may_create_item;
use crate::rules::price::Price;
use crate::state::AppState;
use crate::supabase::postgrest::{self, Caller, Query, Value};

/// The Item shape of docs/api.md, category embedded through the `category_id` foreign key.
pub const ITEM_COLUMNS: &str =
    "id,name,description,price,category_id,user_id,created_at,updated_at,category:categories(id,name)";

// ---- list ----

#[derive(Deserialize, Validate, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only items of this category.
    #[garde(inner(custom(uuid_text)))]
    #[param(format = Uuid, nullable = false)]
    category_id: Option<String>,
    /// Only items of this owner (not together with `mine=true`).
    #[garde(inner(custom(uuid_text)))]
    #[param(format = Uuid, nullable = false)]
    user_id: Option<String>,
    /// `true`: only the caller's items (needs a session; not together with `user_id`).
    #[garde(inner(custom(boolean_text)))]
    #[param(value_type = bool, required = false)]
    mine: Option<String>,
    /// Lowest price, plain decimal text ≥ 0 (`12.5`); at most `max_price`.
    #[garde(inner(custom(price_bound)))]
    #[param(
        nullable = false,
        pattern = r"^(?:[0-9]{1,12}(?:\.[0-9]{0,8})?|\.[0-9]{1,8})$",
        example = "10"
    )]
    min_price: Option<String>,
    /// Highest price, plain decimal text ≥ 0; at least `min_price`.
    #[garde(inner(custom(price_bound)))]
    #[param(
        nullable = false,
        pattern = r"^(?:[0-9]{1,12}(?:\.[0-9]{0,8})?|\.[0-9]{1,8})$",
        example = "100"
    )]
    max_price: Option<String>,
    /// Case-insensitive substring of the name; `%`, `_`, `*`, `\\`, `,`, `(`, `)`, `"` match themselves.
    #[garde(inner(custom(search_text)))]
    #[param(
        nullable = false,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$",
        example = "lamp"
    )]
    q: Option<String>,
    /// Sort column and direction (`id` breaks ties).
    #[garde(inner(custom(order_text)))]
    #[param(value_type = Option<ItemOrder>, inline, nullable = false)]
    order: Option<String>,
    /// Page size.
    #[garde(inner(custom(limit_range)))]
    #[param(minimum = 1, maximum = 100, nullable = false, default = 20)]
    limit: Option<i64>,
    /// Rows to skip; past the end answers `[]` with the true `X-Total-Count`.
    #[garde(inner(custom(offset_range)))]
    #[param(minimum = 0, maximum = 10000, nullable = false, default = 0)]
    offset: Option<i64>,
}

/// The `order` values `GET /api/items` accepts (default `created_at.desc`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, non_camel_case_types)] // a documentation enum; the parser is `order_clause`
enum ItemOrder {
    #[schema(rename = "created_at")]
    created_at,
    #[schema(rename = "created_at.asc")]
    created_at_asc,
    #[schema(rename = "created_at.desc")]
    created_at_desc,
    #[schema(rename = "price")]
    price,
    #[schema(rename = "price.asc")]
    price_asc,
    #[schema(rename = "price.desc")]
    price_desc,
    #[schema(rename = "name")]
    name,
    #[schema(rename = "name.asc")]
    name_asc,
    #[schema(rename = "name.desc")]
    name_desc,
}

fn boolean_text(value: &str, _: &()) -> garde::Result {
    parse_bool(value).map(drop).map_err(garde::Error::new)
}

fn parse_bool(value: &str) -> Result<bool, &'static str> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be true or false"),
    }
}

fn price_bound(value: &str, _: &()) -> garde::Result {
    parse_bound(value).map(drop).map_err(garde::Error::new)
}

/// `min_price`/`max_price`: a finite number ≥ 0 (plain decimal text; `NaN`, `inf` refused).
fn parse_bound(value: &str) -> Result<f64, &'static str> {
    let ok_chars = !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && value.bytes().filter(|b| *b == b'.').count() <= 1;
    match value.parse::<f64>() {
        Ok(n) if ok_chars && n.is_finite() && n >= 0.0 => Ok(n),
        _ => Err("must be a number greater than or equal to 0"),
    }
}

fn search_text(value: &str, _: &()) -> garde::Result {
    if value.chars().count() > 100 {
        return Err(garde::Error::new("must be at most 100 characters"));
    }
    no_control_chars(value).map_err(garde::Error::new)
}

fn order_text(value: &str, _: &()) -> garde::Result {
    order_clause(value).map(drop).ok_or_else(|| {
        garde::Error::new("must be one of created_at, price, name with .asc or .desc")
    })
}

/// Every order has `id` as tiebreak so pages are stable (the indexes are built for it).
fn order_clause(value: &str) -> Option<&'static str> {
    Some(match value {
        "created_at" | "created_at.asc" => "created_at.asc,id.asc",
        "created_at.desc" => "created_at.desc,id.desc",
        "price" | "price.asc" => "price.asc,id.asc",
        "price.desc" => "price.desc,id.desc",
        "name" | "name.asc" => "name.asc,id.asc",
        "name.desc" => "name.desc,id.desc",
        _ => return None,
    })
}

impl ListQuery {
    /// The validated query as PostgREST filters; `mine=true` needs a caller.
    fn to_query(&self, caller: Option<&AuthUser>) -> ApiResult<Query> {
        let mut query = Query::table("items").select(ITEM_COLUMNS);
        let uuid = |field: &str, v: &str| parse_uuid(v).map_err(|m| field_error(field, m));
        if let Some(v) = &self.category_id {
            query = query.eq("category_id", uuid("category_id", v)?);
        }
        let mine = match &self.mine {
            Some(v) => parse_bool(v).map_err(|m| field_error("mine", m))?,
            None => false,
        };
        if mine && self.user_id.is_some() {
            return Err(form_error("Use either user_id or mine=true, not both"));
        }
        if mine {
            let user = caller.ok_or_else(ApiError::unauthorized)?;
            query = query.eq("user_id", user.id);
        } else if let Some(v) = &self.user_id {
            query = query.eq("user_id", uuid("user_id", v)?);
        }
        let bound = |field: &str, v: &str| parse_bound(v).map_err(|m| field_error(field, m));
        let min = self
            .min_price
            .as_deref()
            .map(|v| bound("min_price", v))
            .transpose()?;
        let max = self
            .max_price
            .as_deref()
            .map(|v| bound("max_price", v))
            .transpose()?;
        if let (Some(lo), Some(hi)) = (min, max) {
            if lo > hi {
                return Err(field_error(
                    "max_price",
                    "must be greater than or equal to min_price",
                ));
            }
        }
        if let Some(lo) = min {
            query = query.gte("price", Value::Number(lo));
        }
        if let Some(hi) = max {
            query = query.lte("price", Value::Number(hi));
        }
        if let Some(q) = self.q.as_deref().filter(|q| !q.is_empty()) {
            query = query.contains_ci("name", q);
        }
        let order = match &self.order {
            Some(v) => order_clause(v).ok_or_else(|| field_error("order", "is not allowed"))?,
            None => "created_at.desc,id.desc",
        };
        let (limit, offset) = page(self.limit, self.offset);
        Ok(query.order(order).range(limit, offset))
    }
}

#[utoipa::path(
    get,
    path = "/api/items",
    operation_id = "listItems",
    tag = "items",
    params(ListQuery),
    security((), ("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "A page of items, newest first unless `order` says otherwise", body = Vec<crate::openapi::schemas::Item>,
         headers(
            ("X-Total-Count" = u64, description = "How many rows match the filters"),
            ("Content-Range" = String, description = "`<first>-<last>/<total>`, or `*/<total>` past the end"),
        )),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 502, response = crate::openapi::responses::BadGateway),
        (status = 503, response = crate::openapi::responses::Unavailable),
        (status = 504, response = crate::openapi::responses::Timeout),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    MaybeUser(user): MaybeUser,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    let query = validated(query.into_inner())?.to_query(user.as_ref())?;
    let listing = state
        .supabase
        .pg_list(&query, Caller::from_option(user.as_ref()))
        .await?;
    Ok(list_response(listing))
}

// ---- single item ----

#[utoipa::path(
    get,
    path = "/api/items/{id}",
    operation_id = "getItem",
    tag = "items",
    params(("id" = uuid::Uuid, Path, description = "Item id")),
    security((), ("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The item", body = crate::openapi::schemas::Item),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
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
    let query = Query::table("items").select(ITEM_COLUMNS).eq("id", *id);
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

// ---- writes ----

/// POST and PUT body: every mutable field; an omitted optional one is `null`.
#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Desk lamp", "price": 49.9, "category_id": "5d3c2b1a-0f9e-4d8c-b7a6-958473625140", "description": "Brass, 40 cm"}))]
pub struct ItemInput {
    /// Trimmed, 1..=100 characters (the pattern: not only whitespace, U+0085 included).
    #[garde(custom(item_name))]
    #[schema(min_length = 1, max_length = 100, pattern = r"[^\s\u0085]")]
    name: String,
    /// > 0, ≤ 1 000 000, at most two decimals.
    #[garde(custom(price_number))]
    #[schema(value_type = f64, exclusive_minimum = 0, maximum = 1000000, multiple_of = 0.01)]
    price: Box<RawValue>,
    /// An existing category, or `null`.
    #[garde(inner(custom(uuid_text)))]
    #[schema(format = Uuid)]
    category_id: Option<String>,
    /// At most 2000 characters, or `null`.
    #[garde(inner(custom(description_text)))]
    #[schema(max_length = 2000)]
    description: Option<String>,
}

/// PATCH body: any non-empty subset; `null` clears `category_id`/`description`.
#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"price": 39.9}))]
pub struct ItemPatch {
    /// Trimmed, 1..=100 characters (not `null`).
    #[serde(default, deserialize_with = "nullable")]
    #[garde(inner(custom(required_name)))]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 100, pattern = r"[^\s\u0085]")]
    name: Option<Option<String>>,
    /// > 0, ≤ 1 000 000, at most two decimals (not `null`).
    #[serde(default, deserialize_with = "nullable")]
    #[garde(inner(custom(required_price)))]
    #[schema(value_type = f64, required = false, exclusive_minimum = 0, maximum = 1000000, multiple_of = 0.01)]
    price: Option<Option<Box<RawValue>>>,
    /// An existing category; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[garde(inner(inner(custom(uuid_text))))]
    #[schema(value_type = Option<String>, format = Uuid)]
    category_id: Option<Option<String>>,
    /// At most 2000 characters; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[garde(inner(inner(custom(description_text))))]
    #[schema(value_type = Option<String>, max_length = 2000)]
    description: Option<Option<String>>,
}

fn item_name(value: &str, _: &()) -> garde::Result {
    match value.trim().chars().count() {
        0 => Err(garde::Error::new("must not be empty")),
        n if n > 100 => Err(garde::Error::new("must be at most 100 characters")),
        _ => Ok(()),
    }
}

fn required_name(value: &Option<String>, ctx: &()) -> garde::Result {
    match value {
        Some(v) => item_name(v, ctx),
        None => Err(garde::Error::new("must not be null")),
    }
}

fn price_number(value: &RawValue, _: &()) -> garde::Result {
    Price::parse_json_number(value.get())
        .map(drop)
        .map_err(|e| garde::Error::new(e.message()))
}

fn required_price(value: &Option<Box<RawValue>>, ctx: &()) -> garde::Result {
    match value {
        Some(v) => price_number(v, ctx),
        None => Err(garde::Error::new("must not be null")),
    }
}

fn description_text(value: &str, _: &()) -> garde::Result {
    if value.chars().count() > 2000 {
        Err(garde::Error::new("must be at most 2000 characters"))
    } else {
        Ok(())
    }
}

/// Builds the PostgREST row from validated parts (garde ran, so parsing cannot fail; if it
/// somehow did, it is still a validation error, not a panic).
struct Row(Map<String, Json>);

impl Row {
    fn new() -> Self {
        Row(Map::new())
    }
    fn name(mut self, v: &str) -> Self {
        self.0.insert("name".into(), Json::from(v.trim()));
        self
    }
    fn price(mut self, raw: &RawValue) -> ApiResult<Self> {
        let price =
            Price::parse_json_number(raw.get()).map_err(|e| field_error("price", e.message()))?;
        // Whole cents as f64 print back exactly (≤ 11 significant digits).
        let value = price.cents() as f64 / 100.0;
        self.0.insert("price".into(), Json::from(value));
        Ok(self)
    }
    fn category(mut self, v: Option<&str>) -> ApiResult<Self> {
        let id = v
            .map(|s| parse_uuid(s).map_err(|m| field_error("category_id", m)))
            .transpose()?;
        self.0.insert(
            "category_id".into(),
            id.map_or(Json::Null, |u| Json::from(u.to_string())),
        );
        Ok(self)
    }
    fn description(mut self, v: Option<&str>) -> Self {
        self.0
            .insert("description".into(), v.map_or(Json::Null, Json::from));
        self
    }
    fn bytes(self) -> Vec<u8> {
        Json::Object(self.0).to_string().into_bytes()
    }
}

impl ItemInput {
    fn row(&self) -> ApiResult<Row> {
        Ok(Row::new()
            .name(&self.name)
            .price(&self.price)?
            .category(self.category_id.as_deref())?
            .description(self.description.as_deref()))
    }
}

impl ItemPatch {
    fn row(&self) -> ApiResult<Row> {
        let mut row = Row::new();
        if let Some(Some(name)) = &self.name {
            row = row.name(name);
        }
        if let Some(Some(price)) = &self.price {
            row = row.price(price)?;
        }
        if let Some(category) = &self.category_id {
            row = row.category(category.as_deref())?;
        }
        if let Some(description) = &self.description {
            row = row.description(description.as_deref());
        }
        if row.0.is_empty() {
            return Err(form_error("At least one field is required"));
        }
        Ok(row)
    }
}

#[utoipa::path(
    post,
    path = "/api/items",
    operation_id = "createItem",
    tag = "items",
    request_body = ItemInput,
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        (status = 201, description = "Created; the owner is the caller", body = crate::openapi::schemas::Item, headers(("Location" = String, description = "`/api/items/{id}` of the new item"))),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 413, response = crate::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::openapi::responses::UnsupportedMediaType),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, description = "`plan_limit_reached`: no active subscription and `business.free_item_limit` items owned already (default 10); or `forbidden` by row-level security", body = crate::error::ErrorBody, example = json!({"error": "The free plan's item limit is reached; subscribe to add more", "code": "plan_limit_reached"})),
        (status = 422, response = crate::openapi::responses::InvalidReference),
        (status = 502, response = crate::openapi::responses::BadGateway),
        (status = 503, response = crate::openapi::responses::Unavailable),
        (status = 504, response = crate::openapi::responses::Timeout),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    User(user): User,
    body: web::Json<ItemInput>,
    _no_params: web::Query<NoParams>,
) -> ApiResult<HttpResponse> {
    let mut row = validated(body.into_inner())?.row()?;
    enforce_plan_limit(&state, &user).await?;
    // The owner is the caller, always; the body cannot name one (deny_unknown_fields).
    row.0
        .insert("user_id".into(), Json::from(user.id.to_string()));
    let query = Query::table("items").select(ITEM_COLUMNS);
    let body = state
        .supabase
        .pg_single(Method::POST, &query, Some(row.bytes()), Caller::User(&user))
        .await?;
    created("/api/items", body)
}

/// The subscription and the item count are fetched concurrently (one round trip of
/// latency); the count is ignored for subscribers. Two concurrent creates can both pass at
/// `limit - 1`: only a database-side check could close that window.
async fn enforce_plan_limit(state: &AppState, user: &AuthUser) -> ApiResult<()> {
    let owned = Query::table("items").select("id").eq("user_id", user.id);
    let (subscription, count) = tokio::join!(
        state.supabase.subscription_of(user),
        state.supabase.pg_count(&owned, Caller::User(user)),
    );
    let active = subscription
        .map_err(|e| postgrest::from_upstream(e, false))?
        .is_some_and(|s| s.is_active());
    let owned = if active { 0 } else { count? };
    if may_create_item(owned, state.settings.business.free_item_limit, active) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "plan_limit_reached",
            "The free plan's item limit is reached; subscribe to add more",
        ))
    }
}

#[derive(Deserialize)]
struct Owner {
    user_id: Uuid,
}

/// Reads the owner (404 if the caller cannot see the item) and refuses non-owners.
async fn ensure_may_modify(state: &AppState, user: &AuthUser, id: Uuid) -> ApiResult<()> {
    let query = Query::table("items").select("user_id").eq("id", id);
    let body = state
        .supabase
        .pg_single(Method::GET, &query, None, Caller::User(user))
        .await?;
    let owner: Owner = serde_json::from_slice(&body)
        .map_err(|e| ApiError::upstream_error(format!("item owner unreadable: {e}")))?;
    if may_modify(Actor::from(user), owner.user_id) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "forbidden",
            "Only the owner or an admin may change this item",
        ))
    }
}

async fn update_with(
    state: &AppState,
    user: &AuthUser,
    id: Uuid,
    row: Row,
) -> ApiResult<HttpResponse> {
    ensure_may_modify(state, user, id).await?;
    let query = Query::table("items").select(ITEM_COLUMNS).eq("id", id);
    let body = state
        .supabase
        .pg_single(Method::PATCH, &query, Some(row.bytes()), Caller::User(user))
        .await?;
    Ok(json_response(StatusCode::OK, body))
}

#[utoipa::path(
    put,
    path = "/api/items/{id}",
    operation_id = "replaceItem",
    tag = "items",
    params(("id" = uuid::Uuid, Path, description = "Item id")),
    request_body = ItemInput,
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Replaced (an omitted optional field becomes `null`)", body = crate::openapi::schemas::Item),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 413, response = crate::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::openapi::responses::UnsupportedMediaType),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::InvalidReference),
        (status = 502, response = crate::openapi::responses::BadGateway),
        (status = 503, response = crate::openapi::responses::Unavailable),
        (status = 504, response = crate::openapi::responses::Timeout),
    )
)]
pub async fn replace(
    state: web::Data<AppState>,
    User(user): User,
    id: web::Path<Uuid>,
    body: web::Json<ItemInput>,
    _no_params: web::Query<NoParams>,
) -> ApiResult<HttpResponse> {
    let row = validated(body.into_inner())?.row()?;
    update_with(&state, &user, *id, row).await
}

#[utoipa::path(
    patch,
    path = "/api/items/{id}",
    operation_id = "updateItem",
    tag = "items",
    params(("id" = uuid::Uuid, Path, description = "Item id")),
    request_body = ItemPatch,
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Updated", body = crate::openapi::schemas::Item),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 413, response = crate::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::openapi::responses::UnsupportedMediaType),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::InvalidReference),
        (status = 502, response = crate::openapi::responses::BadGateway),
        (status = 503, response = crate::openapi::responses::Unavailable),
        (status = 504, response = crate::openapi::responses::Timeout),
    )
)]
pub async fn patch(
    state: web::Data<AppState>,
    User(user): User,
    id: web::Path<Uuid>,
    body: web::Json<ItemPatch>,
    _no_params: web::Query<NoParams>,
) -> ApiResult<HttpResponse> {
    let row = validated(body.into_inner())?.row()?;
    update_with(&state, &user, *id, row).await
}

#[utoipa::path(
    delete,
    path = "/api/items/{id}",
    operation_id = "deleteItem",
    tag = "items",
    params(("id" = uuid::Uuid, Path, description = "Item id")),
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 502, response = crate::openapi::responses::BadGateway),
        (status = 503, response = crate::openapi::responses::Unavailable),
        (status = 504, response = crate::openapi::responses::Timeout),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    User(user): User,
    id: web::Path<Uuid>,
    _no_params: web::Query<NoParams>,
) -> ApiResult<HttpResponse> {
    ensure_may_modify(&state, &user, *id).await?;
    let query = Query::table("items").select("id").eq("id", *id);
    state
        .supabase
        .pg_single(Method::DELETE, &query, None, Caller::User(&user))
        .await?;
    Ok(super::no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_order_has_an_id_tiebreak_in_the_same_direction() {
        for (input, clause) in [
            ("created_at.desc", "created_at.desc,id.desc"),
            ("created_at", "created_at.asc,id.asc"),
            ("price.asc", "price.asc,id.asc"),
            ("name.desc", "name.desc,id.desc"),
        ] {
            assert_eq!(order_clause(input), Some(clause));
        }
        for bad in [
            "id",
            "price.up",
            "name.desc,id.asc",
            "created_at.desc.nullsfirst",
            "",
        ] {
            assert_eq!(order_clause(bad), None, "{bad}");
        }
    }

    #[test]
    fn price_bounds_are_plain_non_negative_decimals() {
        assert_eq!(parse_bound("0"), Ok(0.0));
        assert_eq!(parse_bound("12.5"), Ok(12.5));
        for bad in ["-1", "NaN", "inf", "1e3", "1.2.3", "", " 1", "0x10"] {
            assert!(parse_bound(bad).is_err(), "{bad}");
        }
    }
}
