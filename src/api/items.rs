//! `/api/items`: the public catalog. Reads are anonymous or as the caller; writes need the
//! owner or an admin (checked here first, RLS second); creates respect the free-plan limit,
//! which the database enforces.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use http::Method;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use super::common::{created, json_response, List, Listed, Name, Page, SearchText};
use super::idempotency::{self, IdempotencyKey, IdempotencyKeyHeader, KeyedWrite};
use super::input::{
    plain_text, Across, Body, Change, FromBody, FromJson, FromParam, FromParams, Params, Problem,
};
use crate::auth::{AuthUser, MaybeUser, Writer};
use crate::error::{ApiError, ApiResult};
use crate::field_schema;
use crate::openapi::responses;
use crate::rules::ownership::{may_modify, Actor};
use crate::rules::price::Price;
use crate::state::AppState;
use crate::supabase::postgrest::{Caller, Query, Value};

/// The Item shape of docs/api.md, category embedded through the `category_id` foreign key; the
/// test `the_select_list_is_the_item_schema` keeps it equal to [`Item`]'s fields.
pub const ITEM_COLUMNS: &str =
    "id,name,description,price,category_id,user_id,created_at,updated_at,category:categories(id,name)";

// What ITEM_COLUMNS selects.
/// An item. PostgREST sends every selected column, `null` included, so nullable fields are
/// still `required`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // never built: PostgREST's bytes pass through unparsed; this is their shape
#[schema(example = json!({
    "id": "0b6f1c2e-4a5d-4e8f-9b1a-2c3d4e5f6a7b", "name": "Desk lamp",
    "description": "Brass, 40 cm", "price": 49.9,
    "category_id": "5d3c2b1a-0f9e-4d8c-b7a6-958473625140",
    "user_id": "4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90",
    "created_at": "2025-06-01T12:00:00+00:00", "updated_at": "2025-06-01T12:00:00+00:00",
    "category": {"id": "5d3c2b1a-0f9e-4d8c-b7a6-958473625140", "name": "Lighting"}
}))]
pub struct Item {
    id: Uuid,
    name: String,
    #[schema(required = true)]
    description: Option<String>,
    /// Decimal with at most two places, 0 < price ≤ 1 000 000.
    price: f64,
    #[schema(required = true)]
    category_id: Option<Uuid>,
    user_id: Uuid,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    /// `null` when the item has no category (or the category is not visible).
    #[schema(required = true)]
    category: Option<CategoryRef>,
}

impl Listed for Item {
    const LIST_DESCRIPTION: &'static str =
        "A page of items, newest first unless `order` says otherwise";
}

/// `{id, name}` of an item's category, embedded through the `category_id` foreign key.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // never built: PostgREST's bytes pass through unparsed; this is their shape
pub(crate) struct CategoryRef {
    id: Uuid,
    name: String,
}

// ---- list ----

/// `GET /api/items` parameters, each already its type: nothing downstream re-parses text.
#[derive(FromParams, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[input(check = Self::consistent)]
pub struct ItemListQuery {
    /// Only items of this category.
    #[param(nullable = false)]
    category_id: Option<Uuid>,
    /// Only items of this owner (not together with `mine=true`).
    #[param(nullable = false)]
    user_id: Option<Uuid>,
    /// `true`: only the caller's items (needs a session; not together with `user_id`).
    #[param(required = false)]
    mine: Option<bool>,
    /// Lowest price, plain decimal text ≥ 0 (`12.5`); at most `max_price`.
    #[param(inline, nullable = false, example = "10")]
    min_price: Option<PriceBound>,
    /// Highest price, plain decimal text ≥ 0; at least `min_price`.
    #[param(inline, nullable = false, example = "100")]
    max_price: Option<PriceBound>,
    /// Case-insensitive substring of the name; `%`, `_`, `*`, `\\`, `,`, `(`, `)`, `"` match themselves.
    #[param(inline, nullable = false, example = "lamp")]
    q: Option<SearchText>,
    /// Sort column and direction (`id` breaks ties).
    #[param(inline, nullable = false)]
    order: Option<ItemOrder>,
    /// Documented by `Page` itself (the operation lists both).
    #[param(ignore)]
    #[input(flatten)]
    page: Page,
}

impl ItemListQuery {
    fn consistent(&self) -> Result<(), Across> {
        if self.mine == Some(true) && self.user_id.is_some() {
            return Err(Across::Form("Use either user_id or mine=true, not both"));
        }
        if let (Some(lo), Some(hi)) = (self.min_price, self.max_price) {
            if lo.0 > hi.0 {
                return Err(Across::Field(
                    "max_price",
                    "must be greater than or equal to min_price",
                ));
            }
        }
        Ok(())
    }
}

/// The `order` values `GET /api/items` accepts (default `created_at.desc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, utoipa::ToSchema)]
pub enum ItemOrder {
    #[schema(rename = "created_at")]
    CreatedAt,
    #[schema(rename = "created_at.asc")]
    CreatedAtAsc,
    #[schema(rename = "created_at.desc")]
    CreatedAtDesc,
    #[schema(rename = "price")]
    Price,
    #[schema(rename = "price.asc")]
    PriceAsc,
    #[schema(rename = "price.desc")]
    PriceDesc,
    #[schema(rename = "name")]
    Name,
    #[schema(rename = "name.asc")]
    NameAsc,
    #[schema(rename = "name.desc")]
    NameDesc,
}

impl ItemOrder {
    /// Every order has `id` as tiebreak so pages are stable (the indexes are built for it).
    fn clause(self) -> &'static str {
        match self {
            Self::CreatedAt | Self::CreatedAtAsc => "created_at.asc,id.asc",
            Self::CreatedAtDesc => "created_at.desc,id.desc",
            Self::Price | Self::PriceAsc => "price.asc,id.asc",
            Self::PriceDesc => "price.desc,id.desc",
            Self::Name | Self::NameAsc => "name.asc,id.asc",
            Self::NameDesc => "name.desc,id.desc",
        }
    }
}

impl FromParam for ItemOrder {
    fn from_param(text: &str) -> Result<Self, Problem> {
        Ok(match text {
            "created_at" => Self::CreatedAt,
            "created_at.asc" => Self::CreatedAtAsc,
            "created_at.desc" => Self::CreatedAtDesc,
            "price" => Self::Price,
            "price.asc" => Self::PriceAsc,
            "price.desc" => Self::PriceDesc,
            "name" => Self::Name,
            "name.asc" => Self::NameAsc,
            "name.desc" => Self::NameDesc,
            _ => return Err("must be one of created_at, price, name with .asc or .desc".into()),
        })
    }
}

/// `min_price`/`max_price`: a finite number ≥ 0 written as plain decimal text (`NaN`, `inf`,
/// `1e3` refused). Not a [`Price`]: `0` and sub-cent bounds are sensible filters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PriceBound(f64);

// The portable form to send: digits with at most one point. The parser also takes longer
// digit runs (any finite f64), which no price bound needs.
field_schema!(PriceBound => plain_text()
    .pattern(Some(r"^(?:[0-9]{1,12}(?:\.[0-9]{0,8})?|\.[0-9]{1,8})$")));

impl FromParam for PriceBound {
    fn from_param(text: &str) -> Result<Self, Problem> {
        let plain = !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && text.bytes().filter(|b| *b == b'.').count() <= 1;
        match text.parse::<f64>() {
            Ok(n) if plain && n.is_finite() && n >= 0.0 => Ok(Self(n)),
            _ => Err("must be a number greater than or equal to 0".into()),
        }
    }
}

impl ItemListQuery {
    /// The query as PostgREST filters; `mine=true` needs a caller.
    fn to_query(&self, caller: Option<&AuthUser>) -> ApiResult<Query> {
        let mut query = Query::table("items").select(ITEM_COLUMNS);
        if let Some(id) = self.category_id {
            query = query.eq("category_id", id);
        }
        if self.mine == Some(true) {
            let user = caller.ok_or_else(ApiError::unauthorized)?;
            query = query.eq("user_id", user.id);
        } else if let Some(id) = self.user_id {
            query = query.eq("user_id", id);
        }
        if let Some(lo) = self.min_price {
            query = query.gte("price", Value::Number(lo.0));
        }
        if let Some(hi) = self.max_price {
            query = query.lte("price", Value::Number(hi.0));
        }
        if let Some(q) = self.q.as_ref().filter(|q| !q.as_str().is_empty()) {
            query = query.contains_ci("name", q.as_str());
        }
        let order = self
            .order
            .map_or("created_at.desc,id.desc", ItemOrder::clause);
        let (limit, offset) = self.page.limit_offset();
        Ok(query.order(order).range(limit, offset))
    }
}

#[utoipa::path(
    get,
    path = "/api/items",
    operation_id = "listItems",
    tag = "items",
    params(ItemListQuery, Page),
    security((), ("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        responses::CallerErrors,
        List<Item>,
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    MaybeUser(user): MaybeUser,
    Params(query): Params<ItemListQuery>,
) -> ApiResult<List<Item>> {
    let query = query.to_query(user.as_ref())?;
    let listing = state
        .supabase
        .pg_list(&query, Caller::from_option(user.as_ref()))
        .await?;
    Ok(List::new(listing))
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
        responses::UpstreamErrors,
        responses::CallerErrors,
        (status = 200, description = "The item", body = Item),
        (status = 404, response = responses::NotFound),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    MaybeUser(user): MaybeUser,
    id: web::Path<Uuid>,
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
#[derive(FromBody, utoipa::ToSchema)]
#[schema(example = json!({"name": "Desk lamp", "price": 49.9, "category_id": "5d3c2b1a-0f9e-4d8c-b7a6-958473625140", "description": "Brass, 40 cm"}))]
pub struct ItemInput {
    #[schema(inline)]
    name: Name,
    #[schema(inline)]
    price: Price,
    /// An existing category, or `null`.
    category_id: Option<Uuid>,
    /// Text, or `null`.
    #[schema(inline)]
    description: Option<Description>,
}

/// PATCH body: any non-empty subset; `null` clears `category_id`/`description`.
#[derive(FromBody, utoipa::ToSchema)]
#[input(check = Self::changes_something)]
#[schema(example = json!({"price": 39.9}))]
pub struct ItemPatch {
    /// As in `ItemInput` (not `null`).
    #[schema(inline, nullable = false)]
    #[input(not_null)]
    name: Option<Name>,
    /// As in `ItemInput` (not `null`).
    #[schema(inline, nullable = false)]
    #[input(not_null)]
    price: Option<Price>,
    /// An existing category; `null` clears it.
    #[schema(value_type = Option<String>, format = Uuid)]
    category_id: Change<Uuid>,
    /// Text; `null` clears it.
    #[schema(value_type = Option<Description>, inline)]
    description: Change<Description>,
}

impl ItemPatch {
    fn changes_something(&self) -> Result<(), Across> {
        if self.row().0.is_empty() {
            return Err(Across::Form("At least one field is required"));
        }
        Ok(())
    }
}

impl FromJson for Price {
    /// Reads the JSON number's text, so `0.005` is refused rather than rounded.
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        Price::parse_json_number(raw.get()).map_err(|e| e.message().into())
    }
}

/// An item description: at most [`Description::MAX_CHARS`] characters.
pub struct Description(String);

impl Description {
    const MAX_CHARS: usize = 2000;
}

impl FromJson for Description {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        let text = String::from_json(raw)?;
        if text.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS).into());
        }
        Ok(Self(text))
    }
}

field_schema!(Description => plain_text().max_length(Some(Description::MAX_CHARS)));

field_schema!(Price => utoipa::openapi::schema::ObjectBuilder::new()
    .schema_type(utoipa::openapi::schema::Type::Number)
    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Double)))
    .description(Some(format!(
        "> 0, ≤ {}, at most two decimals.",
        crate::rules::price::MAX_CENTS / 100
    )))
    .exclusive_minimum(Some(0))
    .maximum(Some((crate::rules::price::MAX_CENTS / 100) as f64))
    .multiple_of(Some(0.01)));

/// The PostgREST row a write sends, from values that already passed.
struct Row(Map<String, Json>);

impl Row {
    fn set(&mut self, column: &str, value: Json) {
        self.0.insert(column.to_owned(), value);
    }
    fn price(&mut self, price: Price) {
        // Whole cents as f64 print back exactly (≤ 11 significant digits).
        self.set("price", Json::from(price.cents() as f64 / 100.0));
    }
    fn change<T>(&mut self, column: &str, change: &Change<T>, to_json: impl Fn(&T) -> Json) {
        match change {
            Change::Keep => {}
            Change::Clear => self.set(column, Json::Null),
            Change::Set(value) => self.set(column, to_json(value)),
        }
    }
    fn bytes(self) -> Vec<u8> {
        Json::Object(self.0).to_string().into_bytes()
    }
}

fn uuid_json(id: &Uuid) -> Json {
    Json::from(id.to_string())
}

fn description_json(d: &Description) -> Json {
    Json::from(d.0.as_str())
}

impl ItemInput {
    fn row(&self) -> Row {
        let mut row = Row(Map::new());
        row.set("name", Json::from(self.name.as_str()));
        row.price(self.price);
        row.set(
            "category_id",
            self.category_id.as_ref().map_or(Json::Null, uuid_json),
        );
        row.set(
            "description",
            self.description
                .as_ref()
                .map_or(Json::Null, description_json),
        );
        row
    }
}

impl ItemPatch {
    fn row(&self) -> Row {
        let mut row = Row(Map::new());
        if let Some(name) = &self.name {
            row.set("name", Json::from(name.as_str()));
        }
        if let Some(price) = self.price {
            row.price(price);
        }
        row.change("category_id", &self.category_id, uuid_json);
        row.change("description", &self.description, description_json);
        row
    }
}

#[utoipa::path(
    post,
    path = "/api/items",
    operation_id = "createItem",
    tag = "items",
    params(IdempotencyKeyHeader),
    request_body = ItemInput,
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        responses::CallerErrors,
        responses::BodyErrors,
        (status = 201, description = "Created; the owner is the caller", body = Item, headers(("Location" = String, description = "`/api/items/{id}` of the new item"), ("Idempotent-Replayed" = String, description = "`true` on an answer replayed for a repeated `Idempotency-Key`"))),
        (status = 403, description = "`plan_limit_reached`: no active subscription and `business.free_item_limit` items owned already (default 10); or `forbidden` by row-level security", body = crate::error::ErrorBody, example = json!({"error": "The free plan's item limit is reached; subscribe to add more", "code": "plan_limit_reached"})),
        (status = 409, response = responses::IdempotencyKeyInUse),
        (status = 422, response = responses::InvalidReferenceOrKeyReused),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Writer(user): Writer,
    IdempotencyKey(key): IdempotencyKey,
    Body(input): Body<ItemInput>,
) -> ApiResult<HttpResponse> {
    let mut row = input.row();
    // The owner is the caller, always; the body cannot name one (deny_unknown_fields).
    row.set("user_id", uuid_json(&user.id));
    if let Some(key) = &key {
        // Also one upstream call: the insert and the key record commit together.
        let row = row.bytes();
        let write = KeyedWrite {
            function: "rpc/create_item",
            method: "POST",
            path: "/api/items",
            args: &[("item", &row)],
            user: &user,
            key,
            row: &row,
        };
        return idempotency::run(&state, write).await?.respond("/api/items");
    }
    let query = Query::table("items").select(ITEM_COLUMNS);
    // One upstream call: the plan limit is checked by the database in the insert's own
    // transaction (`items_enforce_item_limit`), serialised per owner, so concurrent creates
    // cannot both pass at `limit - 1`. Its refusal maps to 403 `plan_limit_reached`.
    let body = state
        .supabase
        .pg_single(Method::POST, &query, Some(row.bytes()), Caller::User(&user))
        .await?;
    created("/api/items", body)
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
        responses::UpstreamErrors,
        responses::CallerErrors,
        responses::BodyErrors,
        (status = 200, description = "Replaced (an omitted optional field becomes `null`)", body = Item),
        (status = 404, response = responses::NotFound),
        (status = 422, response = responses::InvalidReference),
    )
)]
pub async fn replace(
    state: web::Data<AppState>,
    Writer(user): Writer,
    id: web::Path<Uuid>,
    Body(input): Body<ItemInput>,
) -> ApiResult<HttpResponse> {
    let row = input.row();
    update_with(&state, &user, *id, row).await
}

#[utoipa::path(
    patch,
    path = "/api/items/{id}",
    operation_id = "updateItem",
    tag = "items",
    params(("id" = uuid::Uuid, Path, description = "Item id"), IdempotencyKeyHeader),
    request_body = ItemPatch,
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        responses::CallerErrors,
        responses::BodyErrors,
        (status = 200, description = "Updated", body = Item, headers(("Idempotent-Replayed" = String, description = "`true` on an answer replayed for a repeated `Idempotency-Key`"))),
        (status = 404, response = responses::NotFound),
        (status = 409, response = responses::IdempotencyKeyInUse),
        (status = 422, response = responses::InvalidReferenceOrKeyReused),
    )
)]
pub async fn patch(
    state: web::Data<AppState>,
    Writer(user): Writer,
    id: web::Path<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    Body(patch): Body<ItemPatch>,
) -> ApiResult<HttpResponse> {
    let row = patch.row();
    let Some(key) = &key else {
        return update_with(&state, &user, *id, row).await;
    };
    // The owner check reads first, as without a key: a replay after the item was deleted is
    // 404, like any request about it.
    ensure_may_modify(&state, &user, *id).await?;
    let row = row.bytes();
    let item_id = serde_json::to_vec(&id.to_string()).map_err(ApiError::internal)?;
    let path = format!("/api/items/{}", *id);
    let write = KeyedWrite {
        function: "rpc/update_item",
        method: "PATCH",
        path: &path,
        args: &[("item_id", &item_id), ("changes", &row)],
        user: &user,
        key,
        row: &row,
    };
    idempotency::run(&state, write).await?.respond("/api/items")
}

#[utoipa::path(
    delete,
    path = "/api/items/{id}",
    operation_id = "deleteItem",
    tag = "items",
    params(("id" = uuid::Uuid, Path, description = "Item id")),
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        responses::CallerErrors,
        (status = 204, description = "Deleted"),
        (status = 404, response = responses::NotFound),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    Writer(user): Writer,
    id: web::Path<Uuid>,
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
            assert_eq!(
                ItemOrder::from_param(input).map(ItemOrder::clause),
                Ok(clause)
            );
        }
        for bad in [
            "id",
            "price.up",
            "name.desc,id.asc",
            "created_at.desc.nullsfirst",
            "",
        ] {
            assert!(ItemOrder::from_param(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_select_list_is_the_item_schema() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(Item::schema()).unwrap();
        let mut fields: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        // `category:categories(id,name)` is one field, `category`.
        let mut selected: Vec<&str> = ITEM_COLUMNS
            .split(',')
            .filter(|c| !c.ends_with(')'))
            .map(|c| c.split(':').next().unwrap())
            .collect();
        selected.sort_unstable();
        fields.sort_unstable();
        assert_eq!(selected, fields);
    }

    #[test]
    fn price_bounds_are_plain_non_negative_decimals() {
        assert_eq!(PriceBound::from_param("0"), Ok(PriceBound(0.0)));
        assert_eq!(PriceBound::from_param("12.5"), Ok(PriceBound(12.5)));
        for bad in ["-1", "NaN", "inf", "1e3", "1.2.3", "", " 1", "0x10"] {
            assert!(PriceBound::from_param(bad).is_err(), "{bad}");
        }
    }
}
