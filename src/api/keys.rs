//! `/api/keys`: API keys a user creates for their own servers (create, list, revoke), and the
//! issuer documents (`/.well-known/jwks.json`, `/.well-known/openid-configuration`) a project
//! reads when it trusts supagate as a third-party-auth issuer (docs/api-keys.md).

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use http::Method;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::common::{json_response, List, Listed, Name};
use super::input::{plain_text, Body, FromBody, FromJson, Problem};
use crate::auth::api_key::{self, ApiKeys, Minter, SCOPES};
use crate::auth::cookie::NO_STORE;
use crate::auth::{AuthUser, Permanent};
use crate::error::{ApiError, ApiResult};
use crate::field_schema;
use crate::openapi::responses;
use crate::state::AppState;
use crate::supabase::postgrest::{Caller, Query};

/// What a key's owner reads back (never the key, never its hash).
pub const KEY_COLUMNS: &str = "id,name,prefix,scopes,expires_at,created_at";

/// An API key as listed: the key itself is shown only once, when it is created.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // never built: PostgREST's bytes pass through unparsed; this is their shape
#[schema(example = json!({
    "id": "5d3c2b1a-0f9e-4d8c-b7a6-958473625140", "name": "nightly export",
    "prefix": "sgk_Xq3v9LmA", "scopes": ["items:read"],
    "expires_at": null, "created_at": "2025-06-01T12:00:00+00:00"
}))]
pub struct ApiKey {
    id: Uuid,
    name: String,
    /// `sgk_` and the key's next 8 characters, to tell keys apart.
    prefix: String,
    scopes: Vec<String>,
    #[schema(required = true, format = DateTime)]
    expires_at: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
}

impl Listed for ApiKey {
    const LIST_DESCRIPTION: &'static str = "The caller's API keys, newest first";
}

/// A key just created: the listed fields and, this once, the key.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // never built: the created row plus `key`; this is its shape
#[schema(example = json!({
    "id": "5d3c2b1a-0f9e-4d8c-b7a6-958473625140", "name": "nightly export",
    "prefix": "sgk_Xq3v9LmA", "scopes": ["items:read"],
    "expires_at": null, "created_at": "2025-06-01T12:00:00+00:00",
    "key": "sgk_Xq3v9LmA0b1c2d3e4f5g6h7i8j9k0l1m2n3o4p5q6r"
}))]
pub struct NewApiKey {
    #[serde(flatten)]
    listed: ApiKey,
    /// The key: send it as `Authorization: Bearer <key>`. Shown only in this answer.
    key: String,
}

/// What a new key may do: 1 to 5 distinct scopes of [`SCOPES`].
pub struct Scopes(Vec<String>);

impl utoipa::PartialSchema for Scopes {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, Schema};
        let item = plain_text().enum_values(Some(SCOPES));
        utoipa::openapi::RefOr::T(Schema::Array(
            ArrayBuilder::new()
                .items(item)
                .min_items(Some(1))
                .max_items(Some(SCOPES.len()))
                .unique_items(true)
                .description(Some(
                    "`<resource>:read` allows the resource's GET operations, `<resource>:write` the others",
                ))
                .build(),
        ))
    }
}
impl utoipa::ToSchema for Scopes {}

impl FromJson for Scopes {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        let scopes: Vec<String> = serde_json::from_str(raw.get())
            .map_err(|_| Problem::from("must be an array of scope names"))?;
        if scopes.is_empty() || scopes.len() > SCOPES.len() {
            return Err(format!("must name 1 to {} scopes", SCOPES.len()).into());
        }
        for (i, scope) in scopes.iter().enumerate() {
            if !SCOPES.contains(&scope.as_str()) {
                return Err(format!("must each be one of {}", SCOPES.join(", ")).into());
            }
            if scopes[..i].contains(scope) {
                return Err("must not repeat a scope".into());
            }
        }
        Ok(Self(scopes))
    }
}

/// An expiry in the future, RFC 3339 with an offset.
pub struct Expiry(time::OffsetDateTime);

field_schema!(Expiry => plain_text().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
    utoipa::openapi::KnownFormat::DateTime,
))));

impl FromJson for Expiry {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        let text = String::from_json(raw)?;
        let at = time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
            .map_err(|_| Problem::from("must be an RFC 3339 date-time with an offset"))?;
        if at <= time::OffsetDateTime::now_utc() {
            return Err("must be in the future".into());
        }
        Ok(Self(at))
    }
}

/// `POST /api/keys`.
#[derive(FromBody, utoipa::ToSchema)]
#[schema(example = json!({"name": "nightly export", "scopes": ["items:read"], "expires_at": "2030-01-01T00:00:00Z"}))]
pub struct KeyInput {
    #[schema(inline)]
    name: Name,
    #[schema(inline)]
    scopes: Scopes,
    /// After this the key is refused (401 `api_key_expired`); absent or `null`: it never
    /// expires.
    #[schema(inline, nullable = true)]
    expires_at: Option<Expiry>,
}

/// The key store, when keys are on (404 otherwise), for a caller who may own keys: a
/// Supabase user (a third-party issuer's user has no `auth.users` row to own one: 403).
fn keys_of<'a>(state: &'a AppState, user: &AuthUser) -> ApiResult<&'a ApiKeys> {
    let keys = store(state)?;
    if user.third_party {
        return Err(ApiError::forbidden(
            "forbidden",
            "API keys belong to Supabase Auth users",
        ));
    }
    Ok(keys)
}

fn store(state: &AppState) -> ApiResult<&ApiKeys> {
    state
        .verifier
        .api_keys()
        .ok_or_else(|| ApiError::not_found("API keys are not enabled on this deployment"))
}

/// One of the caller's keys, read or deleted as them (RLS: another user's key is not there
/// for this caller, 404).
async fn one_key(
    state: &AppState,
    user: &AuthUser,
    method: Method,
    id: Uuid,
) -> ApiResult<bytes::Bytes> {
    let query = Query::table("api_keys").select(KEY_COLUMNS).eq("id", id);
    Ok(state
        .supabase
        .pg_single(method, &query, None, Caller::User(user))
        .await?)
}

#[utoipa::path(
    post,
    path = "/api/keys",
    operation_id = "createApiKey",
    tag = "keys",
    request_body = KeyInput,
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        responses::CallerErrors,
        responses::BodyErrors,
        (status = 201, description = "The key, shown this once (`Cache-Control: no-store`); only its SHA-256 is stored", body = NewApiKey, headers(("Location" = String, description = "`/api/keys/{id}` of the new key"))),
        (status = 404, response = responses::NotFound),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Permanent(user): Permanent,
    Body(input): Body<KeyInput>,
) -> ApiResult<HttpResponse> {
    keys_of(&state, &user)?;
    let new = api_key::generate()?;
    let expires_at = input
        .expires_at
        .map(|e| e.0.format(&time::format_description::well_known::Rfc3339))
        .transpose()
        .map_err(|e| ApiError::internal(format!("formatting an expiry: {e}")))?;
    let row = json!({
        "name": input.name.as_str(),
        "prefix": new.prefix,
        "secret_hash": new.hash_hex,
        "scopes": input.scopes.0,
        "expires_at": expires_at,
    });
    let query = Query::table("api_keys").select(KEY_COLUMNS);
    let body = state
        .supabase
        .pg_single(
            Method::POST,
            &query,
            Some(row.to_string().into_bytes()),
            Caller::User(&user),
        )
        .await?;
    let mut created: Map<String, Value> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::upstream_error(format!("created key row: {e}")))?;
    let id = created
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::upstream_error("created key row without id"))?;
    created.insert("key".into(), Value::String(new.key.expose().to_owned()));
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, NO_STORE))
        .insert_header((header::LOCATION, format!("/api/keys/{id}")))
        .json(created))
}

#[utoipa::path(
    get,
    path = "/api/keys",
    operation_id = "listApiKeys",
    tag = "keys",
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        responses::CallerErrors,
        List<ApiKey>,
        (status = 404, response = responses::NotFound),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    Permanent(user): Permanent,
) -> ApiResult<List<ApiKey>> {
    keys_of(&state, &user)?;
    let query = Query::table("api_keys")
        .select(KEY_COLUMNS)
        .order("created_at.desc,id.desc");
    let listing = state.supabase.pg_list(&query, Caller::User(&user)).await?;
    Ok(List::new(listing))
}

#[utoipa::path(
    get,
    path = "/api/keys/{id}",
    operation_id = "getApiKey",
    tag = "keys",
    params(("id" = uuid::Uuid, Path, description = "Key id")),
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        responses::CallerErrors,
        (status = 200, description = "One of the caller's keys (never the key itself)", body = ApiKey),
        (status = 404, response = responses::NotFound),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    Permanent(user): Permanent,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    keys_of(&state, &user)?;
    let body = one_key(&state, &user, Method::GET, *id).await?;
    Ok(json_response(actix_web::http::StatusCode::OK, body))
}

#[utoipa::path(
    delete,
    path = "/api/keys/{id}",
    operation_id = "revokeApiKey",
    tag = "keys",
    params(("id" = uuid::Uuid, Path, description = "Key id")),
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        responses::CallerErrors,
        (status = 204, description = "Revoked: refused at once on this instance, on every instance within `auth.api_keys.cache_secs`"),
        (status = 404, response = responses::NotFound),
    )
)]
pub async fn revoke(
    state: web::Data<AppState>,
    Permanent(user): Permanent,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let keys = keys_of(&state, &user)?;
    one_key(&state, &user, Method::DELETE, *id).await?;
    keys.evict_key(*id);
    Ok(super::no_content())
}

fn issuer_document(state: &AppState, doc: fn(&Minter) -> Option<Value>) -> ApiResult<HttpResponse> {
    let doc = doc(store(state)?.minter()).ok_or_else(|| {
        ApiError::not_found("supagate signs as no issuer here (auth.api_keys.signing)")
    })?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(doc))
}

/// `GET /.well-known/jwks.json`: supagate's public signing key.
pub async fn jwks(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    issuer_document(&state, Minter::jwks)
}

/// `GET /.well-known/openid-configuration`: where third-party auth finds that key.
pub async fn discovery(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    issuer_document(&state, Minter::discovery)
}
