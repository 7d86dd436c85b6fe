//! `/api/users`: profiles (read by signed-in users, written by self or admin), account
//! creation and deletion through the Auth admin API, and per-user item statistics.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use garde::Validate;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value as Json};
use uuid::Uuid;

use super::common::{
    created, field_error, json_response, limit_range, list_response, offset_range, page, validated,
    NoParams,
};
use crate::auth::{Admin, AuthUser, User};
use crate::error::{ApiError, ApiResult};
use crate::rules::ownership::{may_modify, Actor};
use crate::rules::username::{self, Username};
use crate::state::AppState;
use crate::supabase::gotrue_admin::NewAuthUser;
use crate::supabase::postgrest::{Caller, Query};

const PROFILE_COLUMNS: &str = "id,username,full_name,avatar_url,created_at,updated_at";

// ---- list / get ----

#[derive(Deserialize, Validate, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Username prefix, case-insensitive (surrounding blanks ignored).
    #[garde(inner(custom(username_prefix)))]
    #[param(
        nullable = false,
        pattern = r"^\s*[A-Za-z0-9_]{0,30}\s*$",
        example = "ada"
    )]
    q: Option<String>,
    /// Page size.
    #[garde(inner(custom(limit_range)))]
    #[param(minimum = 1, maximum = 100, nullable = false, default = 20)]
    limit: Option<i64>,
    /// Rows to skip.
    #[garde(inner(custom(offset_range)))]
    #[param(minimum = 0, maximum = 10000, nullable = false, default = 0)]
    offset: Option<i64>,
}

/// A prefix of a username: same normalisation and alphabet, any length up to 30.
fn username_prefix(value: &str, _: &()) -> garde::Result {
    let q = value.trim().to_ascii_lowercase();
    if q.len() > 30 {
        return Err(garde::Error::new("must be at most 30 characters"));
    }
    if !q
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(garde::Error::new(
            "may contain only letters, digits and underscores",
        ));
    }
    Ok(())
}

#[utoipa::path(
    get,
    path = "/api/users",
    operation_id = "listUsers",
    tag = "users",
    params(ListQuery),
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "A page of profiles ordered by username", body = Vec<crate::openapi::schemas::Profile>,
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
    User(user): User,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    let params = validated(query.into_inner())?;
    let mut query = Query::table("profiles").select(PROFILE_COLUMNS);
    if let Some(q) = params.q.as_deref().map(|q| q.trim().to_ascii_lowercase()) {
        if !q.is_empty() {
            query = query.starts_with("username", &q);
        }
    }
    let (limit, offset) = page(params.limit, params.offset);
    let query = query
        .order("username.asc.nullslast,id.asc")
        .range(limit, offset);
    let listing = state.supabase.pg_list(&query, Caller::User(&user)).await?;
    Ok(list_response(listing))
}

#[utoipa::path(
    get,
    path = "/api/users/{id}",
    operation_id = "getUser",
    tag = "users",
    params(("id" = uuid::Uuid, Path, description = "User id")),
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "The profile", body = crate::openapi::schemas::Profile),
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
    User(user): User,
    id: web::Path<Uuid>,
    _no_params: web::Query<NoParams>,
) -> ApiResult<HttpResponse> {
    let query = Query::table("profiles")
        .select(PROFILE_COLUMNS)
        .eq("id", *id);
    let body = state
        .supabase
        .pg_single(Method::GET, &query, None, Caller::User(&user))
        .await?;
    Ok(json_response(StatusCode::OK, body))
}

// ---- admin create ----

#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery", "username": "ada_l", "full_name": "Ada Lovelace"}))]
pub struct CreateUser {
    #[garde(email, length(max = 254))]
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// 6..=72 *bytes* of UTF-8: Supabase's default minimum is 6; bcrypt reads at most 72 bytes.
    #[garde(length(bytes, min = 6, max = 72))]
    #[schema(min_length = 6, max_length = 72)]
    password: String,
    /// 3..=30 of `[a-z0-9_]` (lowercased).
    #[garde(inner(custom(username_text)))]
    #[schema(pattern = r"^[A-Za-z0-9_]{3,30}$")]
    username: Option<String>,
    #[garde(inner(custom(full_name_text)))]
    #[schema(max_length = 100)]
    full_name: Option<String>,
}

fn username_text(value: &str, _: &()) -> garde::Result {
    username::normalize(value)
        .map(drop)
        .map_err(|e| garde::Error::new(e.message()))
}

fn full_name_text(value: &str, _: &()) -> garde::Result {
    if value.chars().count() > 100 {
        Err(garde::Error::new("must be at most 100 characters"))
    } else {
        Ok(())
    }
}

fn avatar_url_text(value: &str, _: &()) -> garde::Result {
    let ok = value.len() <= 2048
        && url::Url::parse(value)
            .map(|u| u.scheme() == "https" && u.host_str().is_some())
            .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(garde::Error::new("must be an https URL"))
    }
}

fn normalized(raw: Option<&str>) -> ApiResult<Option<Username>> {
    raw.map(|u| username::normalize(u).map_err(|e| field_error("username", e.message())))
        .transpose()
}

/// Creates the auth user (secret key), then fills the profile the trigger created, as the
/// calling admin. If the profile write fails (a taken username), the new account is deleted
/// again so a failed request leaves nothing behind.
#[utoipa::path(
    post,
    path = "/api/users",
    operation_id = "createUser",
    tag = "users",
    request_body = CreateUser,
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        (status = 201, description = "The auth user was created (email confirmed) and its profile filled", body = crate::openapi::schemas::Profile, headers(("Location" = String, description = "`/api/users/{id}` of the new user"))),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 413, response = crate::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::openapi::responses::UnsupportedMediaType),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 409, description = "`user_already_exists` (the email) or `username_taken`", body = crate::error::ErrorBody, example = json!({"error": "A user with this email already exists", "code": "user_already_exists"})),
        (status = 422, description = "`weak_password`: Supabase Auth refused the password", body = crate::error::ErrorBody, example = json!({"error": "The password is too weak", "code": "weak_password"})),
        (status = 500, response = crate::openapi::responses::Internal),
        (status = 502, response = crate::openapi::responses::BadGateway),
        (status = 503, response = crate::openapi::responses::Unavailable),
        (status = 504, response = crate::openapi::responses::Timeout),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Admin(admin): Admin,
    body: web::Json<CreateUser>,
    _no_params: web::Query<NoParams>,
) -> ApiResult<HttpResponse> {
    let input = validated(body.into_inner())?;
    let username = normalized(input.username.as_deref())?;
    let mut metadata = Map::new();
    if let Some(full_name) = &input.full_name {
        metadata.insert("full_name".into(), Json::from(full_name.as_str()));
    }
    let id = state
        .supabase
        .admin_create_user(&NewAuthUser {
            email: &input.email,
            password: &input.password,
            email_confirm: true,
            user_metadata: Json::Object(metadata),
        })
        .await?;
    let query = Query::table("profiles")
        .select(PROFILE_COLUMNS)
        .eq("id", id)
        .conflict_code("username_taken");
    let mut fields = Map::new();
    if let Some(u) = &username {
        fields.insert("username".into(), Json::from(u.as_str()));
    }
    if let Some(full_name) = &input.full_name {
        fields.insert("full_name".into(), Json::from(full_name.as_str()));
    }
    let profile = if fields.is_empty() {
        state
            .supabase
            .pg_single(Method::GET, &query, None, Caller::User(&admin))
            .await
    } else {
        let body = Json::Object(fields).to_string().into_bytes();
        state
            .supabase
            .pg_single(Method::PATCH, &query, Some(body), Caller::User(&admin))
            .await
    };
    match profile {
        Ok(body) => created("/api/users", body),
        Err(e) => {
            if let Err(cleanup) = state.supabase.admin_delete_user(id).await {
                log::error!("user {id} created but profile failed and cleanup failed: {cleanup}");
            }
            Err(e)
        }
    }
}

// ---- self-or-admin ----

fn ensure_self_or_admin(user: &AuthUser, id: Uuid) -> ApiResult<()> {
    if may_modify(Actor::from(user), id) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "forbidden",
            "Only the user themselves or an admin may do this",
        ))
    }
}

/// Full replacement: an omitted field becomes `null`.
#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "ada_l", "full_name": "Ada Lovelace", "avatar_url": "https://example.com/ada.png"}))]
pub struct ProfileInput {
    /// 3..=30 of `[a-z0-9_]` (lowercased); unique.
    #[garde(inner(custom(username_text)))]
    #[schema(pattern = r"^[A-Za-z0-9_]{3,30}$")]
    username: Option<String>,
    #[garde(inner(custom(full_name_text)))]
    #[schema(max_length = 100)]
    full_name: Option<String>,
    /// An `https` URL with a host, at most 2048 characters. The pattern is the portable form
    /// to send (ASCII host name, printable ASCII after it); any other `https` URL whose host
    /// parses is accepted too.
    #[garde(inner(custom(avatar_url_text)))]
    #[schema(
        max_length = 2048,
        pattern = r"^https://(?:[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\.)*[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*(?:[/?#][\x21-\x7E]*)?$"
    )]
    avatar_url: Option<String>,
}

#[utoipa::path(
    put,
    path = "/api/users/{id}",
    operation_id = "replaceUser",
    tag = "users",
    params(("id" = uuid::Uuid, Path, description = "User id")),
    request_body = ProfileInput,
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Replaced (an omitted field becomes `null`)", body = crate::openapi::schemas::Profile),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 413, response = crate::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::openapi::responses::UnsupportedMediaType),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 409, description = "`username_taken`", body = crate::error::ErrorBody, example = json!({"error": "This username is already taken", "code": "username_taken"})),
        (status = 502, response = crate::openapi::responses::BadGateway),
        (status = 503, response = crate::openapi::responses::Unavailable),
        (status = 504, response = crate::openapi::responses::Timeout),
    )
)]
pub async fn replace(
    state: web::Data<AppState>,
    User(user): User,
    id: web::Path<Uuid>,
    body: web::Json<ProfileInput>,
    _no_params: web::Query<NoParams>,
) -> ApiResult<HttpResponse> {
    let input = validated(body.into_inner())?;
    ensure_self_or_admin(&user, *id)?;
    let row = json!({
        "username": normalized(input.username.as_deref())?,
        "full_name": input.full_name,
        "avatar_url": input.avatar_url,
    });
    let query = Query::table("profiles")
        .select(PROFILE_COLUMNS)
        .eq("id", *id)
        .conflict_code("username_taken");
    let body = state
        .supabase
        .pg_single(
            Method::PATCH,
            &query,
            Some(row.to_string().into_bytes()),
            Caller::User(&user),
        )
        .await?;
    Ok(json_response(StatusCode::OK, body))
}

/// docs/api.md routes self-deletion through the Auth admin API too: users cannot delete their
/// own auth row otherwise. The Rust check above is the only gate here (no RLS behind the
/// secret key), so it runs before anything is sent.
#[utoipa::path(
    delete,
    path = "/api/users/{id}",
    operation_id = "deleteUser",
    tag = "users",
    params(("id" = uuid::Uuid, Path, description = "User id")),
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        (status = 204, description = "The auth user (and with it the profile and items) is deleted"),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 500, response = crate::openapi::responses::Internal),
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
    ensure_self_or_admin(&user, *id)?;
    state.supabase.admin_delete_user(*id).await?;
    Ok(super::no_content())
}

#[utoipa::path(
    get,
    path = "/api/users/{id}/stats",
    operation_id = "getUserStats",
    tag = "users",
    params(("id" = uuid::Uuid, Path, description = "User id")),
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Item statistics of the user", body = crate::openapi::schemas::UserStats),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 502, response = crate::openapi::responses::BadGateway),
        (status = 503, response = crate::openapi::responses::Unavailable),
        (status = 504, response = crate::openapi::responses::Timeout),
    )
)]
pub async fn stats(
    state: web::Data<AppState>,
    User(user): User,
    id: web::Path<Uuid>,
    _no_params: web::Query<NoParams>,
) -> ApiResult<HttpResponse> {
    ensure_self_or_admin(&user, *id)?;
    let body = json!({ "user_id": *id }).to_string().into_bytes();
    let rpc_query = Query::table("rpc/get_user_stats");
    let stats = state.supabase.pg_rpc(&rpc_query, body, Caller::User(&user));
    // The RPC answers zeros for an id that has no user. An admin asking about someone else
    // gets the same 404 as `GET /api/users/{id}` instead; the profile read runs concurrently
    // (no extra latency) and only then, since the caller's own account exists.
    if *id == user.id {
        return Ok(json_response(StatusCode::OK, stats.await?));
    }
    let profile = Query::table("profiles").select("id").eq("id", *id);
    let (exists, stats) = tokio::join!(
        state
            .supabase
            .pg_single(Method::GET, &profile, None, Caller::User(&user)),
        stats,
    );
    exists?;
    Ok(json_response(StatusCode::OK, stats?))
}
