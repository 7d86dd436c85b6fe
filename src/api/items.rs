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

/// The Item shape of API.md, category embedded through the `category_id` foreign key.
pub const ITEM_COLUMNS: &str =
    "id,name,description,price,category_id,user_id,created_at,updated_at,category:categories(id,name)";

// ---- list ----

#[derive(Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[garde(inner(custom(uuid_text)))]
    category_id: Option<String>,
    #[garde(inner(custom(uuid_text)))]
    user_id: Option<String>,
    #[garde(inner(custom(boolean_text)))]
    mine: Option<String>,
    #[garde(inner(custom(price_bound)))]
    min_price: Option<String>,
    #[garde(inner(custom(price_bound)))]
    max_price: Option<String>,
    #[garde(inner(custom(search_text)))]
    q: Option<String>,
    #[garde(inner(custom(order_text)))]
    order: Option<String>,
    #[garde(inner(custom(limit_range)))]
    limit: Option<i64>,
    #[garde(inner(custom(offset_range)))]
    offset: Option<i64>,
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
#[derive(Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    #[garde(custom(item_name))]
    name: String,
    #[garde(custom(price_number))]
    price: Box<RawValue>,
    #[garde(inner(custom(uuid_text)))]
    category_id: Option<String>,
    #[garde(inner(custom(description_text)))]
    description: Option<String>,
}

/// PATCH body: any non-empty subset; `null` clears `category_id`/`description`.
#[derive(Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct ItemPatch {
    #[serde(default, deserialize_with = "nullable")]
    #[garde(inner(custom(required_name)))]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[garde(inner(custom(required_price)))]
    price: Option<Option<Box<RawValue>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[garde(inner(inner(custom(uuid_text))))]
    category_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[garde(inner(inner(custom(description_text))))]
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
