//! `/api/users`: profiles (read by signed-in users, written by self or admin), account
//! creation and deletion through the Auth admin API, and per-user item statistics.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use http::Method;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value as Json};
use uuid::Uuid;

use super::common::{created, json_response, Email, List, Listed, Page};
use super::input::{plain_text, text};
use super::input::{Body, FromBody, FromJson, FromParam, FromParams, Params, Problem};
use crate::auth::{Admin, AuthUser, User, Writer};
use crate::error::{ApiError, ApiResult};
use crate::field_schema;
use crate::openapi::responses;
use crate::rules::ownership::{may_modify, Actor};
use crate::rules::username::{self, Username};
use crate::state::AppState;
use crate::supabase::error::OnConflict;
use crate::supabase::gotrue_admin::NewAuthUser;
use crate::supabase::postgrest::{Caller, Query};

const PROFILE_COLUMNS: &str = "id,username,full_name,avatar_url,created_at,updated_at";

// What PROFILE_COLUMNS selects.
/// A profile (one per Supabase user, created by a database trigger).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // never built: PostgREST's bytes pass through unparsed; this is their shape
#[schema(example = json!({
    "id": "4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90", "username": "ada_l", "full_name": "Ada Lovelace",
    "avatar_url": "https://example.com/ada.png",
    "created_at": "2025-06-01T12:00:00+00:00", "updated_at": "2025-06-01T12:00:00+00:00"
}))]
pub struct Profile {
    id: Uuid,
    #[schema(required = true)]
    username: Option<String>,
    #[schema(required = true)]
    full_name: Option<String>,
    #[schema(required = true)]
    avatar_url: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl Listed for Profile {
    const LIST_DESCRIPTION: &'static str = "A page of profiles ordered by username";
}

/// The `get_user_stats(user_id)` RPC's answer, one object.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // never built: the RPC's bytes pass through unparsed; this is their shape
#[schema(example = json!({"item_count": 3, "total_value": 149.7, "avg_price": 49.9, "last_item_at": "2025-06-01T12:00:00+00:00"}))]
pub(crate) struct UserStats {
    #[schema(minimum = 0)]
    item_count: i64,
    total_value: f64,
    /// `null` when the user owns no items.
    #[schema(required = true)]
    avg_price: Option<f64>,
    /// `null` when the user owns no items.
    #[schema(required = true, format = DateTime)]
    last_item_at: Option<String>,
}

// ---- list / get ----

#[derive(FromParams, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// Username prefix, case-insensitive (surrounding blanks ignored).
    #[param(
        value_type = String,
        required = false,
        nullable = false,
        pattern = r"^\s*[A-Za-z0-9_]{0,30}\s*$",
        example = "ada"
    )]
    q: Option<UsernamePrefix>,
    /// Documented by `Page` itself (the operation lists both).
    #[param(ignore)]
    #[input(flatten)]
    page: Page,
}

/// A prefix of a username: same normalisation and alphabet, any length up to 30.
pub struct UsernamePrefix(String);

impl FromParam for UsernamePrefix {
    fn from_param(text: &str) -> Result<Self, Problem> {
        let q = text.trim().to_ascii_lowercase();
        if q.len() > 30 {
            return Err("must be at most 30 characters".into());
        }
        if !q
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err("may contain only letters, digits and underscores".into());
        }
        Ok(Self(q))
    }
}

#[utoipa::path(
    get,
    path = "/api/users",
    operation_id = "listUsers",
    tag = "users",
    params(UserListQuery, Page),
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        responses::CallerErrors,
        List<Profile>,
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    User(user): User,
    Params(params): Params<UserListQuery>,
) -> ApiResult<List<Profile>> {
    let mut query = Query::table("profiles").select(PROFILE_COLUMNS);
    if let Some(UsernamePrefix(q)) = params.q.as_ref().filter(|q| !q.0.is_empty()) {
        query = query.starts_with("username", q);
    }
    let (limit, offset) = params.page.limit_offset();
    let query = query
        .order("username.asc.nullslast,id.asc")
        .range(limit, offset);
    let listing = state.supabase.pg_list(&query, Caller::User(&user)).await?;
    Ok(List::new(listing))
}

#[utoipa::path(
    get,
    path = "/api/users/{id}",
    operation_id = "getUser",
    tag = "users",
    params(("id" = uuid::Uuid, Path, description = "User id")),
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        responses::CallerErrors,
        (status = 200, description = "The profile", body = Profile),
        (status = 404, response = responses::NotFound),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    User(user): User,
    id: web::Path<Uuid>,
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

#[derive(FromBody, utoipa::ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery", "username": "ada_l", "full_name": "Ada Lovelace"}))]
pub struct CreateUser {
    #[schema(inline)]
    email: Email,
    #[schema(inline)]
    password: Password,
    /// Letters, digits and `_` (lowercased).
    #[schema(inline)]
    username: Option<Username>,
    #[schema(inline)]
    full_name: Option<FullName>,
}

/// [`Password::MIN_BYTES`]..=[`Password::MAX_BYTES`] bytes: Supabase's default minimum,
/// bcrypt's maximum. Never printed.
pub struct Password(String);

impl Password {
    const MIN_BYTES: usize = 6;
    const MAX_BYTES: usize = 72;
}

impl FromJson for Password {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        let text = String::from_json(raw)?;
        if !(Self::MIN_BYTES..=Self::MAX_BYTES).contains(&text.len()) {
            let (min, max) = (Self::MIN_BYTES, Self::MAX_BYTES);
            return Err(format!("must be {min} to {max} bytes long").into());
        }
        Ok(Self(text))
    }
}

// A byte bound documented as a length: exact for ASCII, generous for the rest.
field_schema!(Password => text(format!(
        "{}..={} *bytes* of UTF-8: Supabase's default minimum is {0}; bcrypt reads at most {1} bytes.",
        Password::MIN_BYTES, Password::MAX_BYTES
    ))
    .min_length(Some(Password::MIN_BYTES))
    .max_length(Some(Password::MAX_BYTES)));

field_schema!(Username => plain_text().pattern(Some(format!(
    "^[A-Za-z0-9_]{{{},{}}}$",
    Username::MIN_LEN,
    Username::MAX_LEN
))));

impl FromJson for Username {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        username::normalize(&String::from_json(raw)?).map_err(|e| e.message().into())
    }
}

/// At most [`FullName::MAX_CHARS`] characters.
pub struct FullName(String);

impl FullName {
    const MAX_CHARS: usize = 100;
}

impl FromJson for FullName {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        let text = String::from_json(raw)?;
        if text.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS).into());
        }
        Ok(Self(text))
    }
}

field_schema!(FullName => plain_text().max_length(Some(FullName::MAX_CHARS)));

/// An `https` URL with a host, at most 2048 bytes.
pub struct AvatarUrl(String);

impl FromJson for AvatarUrl {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        let text = String::from_json(raw)?;
        let ok = text.len() <= 2048
            && url::Url::parse(&text)
                .map(|u| u.scheme() == "https" && u.host_str().is_some())
                .unwrap_or(false);
        if ok {
            Ok(Self(text))
        } else {
            Err("must be an https URL".into())
        }
    }
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
        responses::UpstreamErrors,
        responses::CallerErrors,
        responses::BodyErrors,
        (status = 201, description = "The auth user was created (email confirmed) and its profile filled", body = Profile, headers(("Location" = String, description = "`/api/users/{id}` of the new user"))),
        (status = 409, description = "`user_already_exists` (the email) or `username_taken`", body = crate::error::ErrorBody, example = json!({"error": "A user with this email already exists", "code": "user_already_exists"})),
        (status = 422, description = "`weak_password`: Supabase Auth refused the password", body = crate::error::ErrorBody, example = json!({"error": "The password is too weak", "code": "weak_password"})),
        (status = 500, response = responses::Internal),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    Admin(admin): Admin,
    Body(input): Body<CreateUser>,
) -> ApiResult<HttpResponse> {
    let mut metadata = Map::new();
    if let Some(full_name) = &input.full_name {
        metadata.insert("full_name".into(), Json::from(full_name.0.as_str()));
    }
    let id = state
        .supabase
        .admin_create_user(&NewAuthUser {
            email: input.email.as_str(),
            password: &input.password.0,
            email_confirm: true,
            user_metadata: Json::Object(metadata),
        })
        .await?;
    let query = Query::table("profiles")
        .select(PROFILE_COLUMNS)
        .eq("id", id);
    let mut fields = Map::new();
    if let Some(u) = &input.username {
        fields.insert("username".into(), Json::from(u.as_str()));
    }
    if let Some(full_name) = &input.full_name {
        fields.insert("full_name".into(), Json::from(full_name.0.as_str()));
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
    }
    .on_conflict(username_taken);
    match profile {
        Ok(body) => created("/api/users", body),
        Err(e) => {
            if let Err(cleanup) = state.supabase.admin_delete_user(id).await {
                tracing::error!(
                    "user {id} created but profile failed and cleanup failed: {cleanup}"
                );
            }
            Err(e)
        }
    }
}

fn username_taken() -> ApiError {
    ApiError::conflict("username_taken", "This username is already taken")
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
#[derive(FromBody, utoipa::ToSchema)]
#[schema(example = json!({"username": "ada_l", "full_name": "Ada Lovelace", "avatar_url": "https://example.com/ada.png"}))]
pub struct ProfileInput {
    /// Letters, digits and `_` (lowercased); unique.
    #[schema(inline)]
    username: Option<Username>,
    #[schema(inline)]
    full_name: Option<FullName>,
    /// An `https` URL with a host, at most 2048 characters. The pattern is the portable form
    /// to send (ASCII host name, printable ASCII after it); any other `https` URL whose host
    /// parses is accepted too.
    #[schema(
        value_type = Option<String>,
        max_length = 2048,
        pattern = r"^https://(?:[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\.)*[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*(?:[/?#][\x21-\x7E]*)?$"
    )]
    avatar_url: Option<AvatarUrl>,
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
        responses::UpstreamErrors,
        responses::CallerErrors,
        responses::BodyErrors,
        (status = 200, description = "Replaced (an omitted field becomes `null`)", body = Profile),
        (status = 404, response = responses::NotFound),
        (status = 409, description = "`username_taken`", body = crate::error::ErrorBody, example = json!({"error": "This username is already taken", "code": "username_taken"})),
    )
)]
pub async fn replace(
    state: web::Data<AppState>,
    Writer(user): Writer,
    id: web::Path<Uuid>,
    Body(input): Body<ProfileInput>,
) -> ApiResult<HttpResponse> {
    ensure_self_or_admin(&user, *id)?;
    let row = json!({
        "username": input.username,
        "full_name": input.full_name.map(|n| n.0),
        "avatar_url": input.avatar_url.map(|u| u.0),
    });
    let query = Query::table("profiles")
        .select(PROFILE_COLUMNS)
        .eq("id", *id);
    let body = state
        .supabase
        .pg_single(
            Method::PATCH,
            &query,
            Some(row.to_string().into_bytes()),
            Caller::User(&user),
        )
        .await
        .on_conflict(username_taken)?;
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
        responses::UpstreamErrors,
        responses::CallerErrors,
        (status = 204, description = "The auth user (and with it the profile and items) is deleted"),
        (status = 404, response = responses::NotFound),
        (status = 500, response = responses::Internal),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    Writer(user): Writer,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    ensure_self_or_admin(&user, *id)?;
    state.supabase.admin_delete_user(*id).await?;
    state.forget_user(*id);
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
        responses::UpstreamErrors,
        responses::CallerErrors,
        (status = 200, description = "Item statistics of the user", body = UserStats),
        (status = 404, response = responses::NotFound),
    )
)]
pub async fn stats(
    state: web::Data<AppState>,
    User(user): User,
    id: web::Path<Uuid>,
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
