//! `/api/auth/*`: register, login, anonymous, refresh, logout, user (read, update), recover — forwarded to Supabase
//! Auth with our validation, rate limits, the client's IP (`Sb-Forwarded-For`), Auth's error
//! table (`supabase::gotrue`) and `@supabase/ssr` cookies (`auth::cookie`).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, HttpResponseBuilder};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::common::Email;
use super::input::plain_text;
use super::input::{
    decode_body, Across, Body, FromBody, FromJson, FromParam, FromParams, Params, Problem,
};
use crate::auth::cookie::NO_STORE;
use crate::auth::extract::FromCookie;
use crate::auth::refresh::{stored_session, RefreshOutcome};
use crate::auth::{Identity, User};
use crate::error::{ApiError, ApiResult};
use crate::field_schema;
use crate::openapi::responses;
use crate::state::AppState;
use crate::supabase::gotrue::{AuthCall, AuthError, ForClient, LogoutScope};

/// `data` becomes user_metadata, which lands in every access token: keep it small.
const MAX_DATA_BYTES: usize = 4096;

#[derive(FromBody, utoipa::ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery", "data": {"full_name": "Ada Lovelace"}}))]
pub struct RegisterBody {
    #[schema(inline)]
    email: Email,
    /// Supabase Auth's password policy applies on top (422 `weak_password`).
    #[schema(inline)]
    password: AuthPassword,
    /// Becomes `user_metadata` (at most 4 KiB of JSON). Never used for authorization.
    #[schema(value_type = Option<Object>)]
    data: Option<Metadata>,
}

#[derive(FromBody, utoipa::ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery"}))]
pub struct LoginBody {
    #[schema(inline)]
    email: Email,
    #[schema(inline)]
    password: AuthPassword,
}

#[derive(FromBody, utoipa::ToSchema)]
#[schema(example = json!({"refresh_token": "v3ryr4nd0m"}))]
pub struct RefreshBody {
    /// The refresh token. To use the `@supabase/ssr` session cookie's instead, send no body.
    /// (`{}` with a session cookie also works, but is not part of the contract.)
    #[schema(inline, required = true, nullable = false)]
    refresh_token: Option<RefreshToken>,
}

#[derive(FromBody, utoipa::ToSchema)]
#[schema(example = json!({"email": "ada@example.com"}))]
pub struct RecoverBody {
    #[schema(inline)]
    email: Email,
}

/// A password as sent to Auth: 1..=[`AuthPassword::MAX_CHARS`] characters (Auth's own policy
/// decides the rest).
pub struct AuthPassword(String);

impl AuthPassword {
    const MAX_CHARS: usize = 1024;
}

impl FromJson for AuthPassword {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        let text = String::from_json(raw)?;
        if !(1..=Self::MAX_CHARS).contains(&text.chars().count()) {
            return Err(format!("must be 1 to {} characters long", Self::MAX_CHARS).into());
        }
        Ok(Self(text))
    }
}

field_schema!(AuthPassword => plain_text()
    .min_length(Some(1))
    .max_length(Some(AuthPassword::MAX_CHARS)));

/// `user_metadata` for a new account: a JSON object of at most 4 KiB, because it lands in
/// every access token.
pub struct Metadata(pub(super) Map<String, Value>);

impl FromJson for Metadata {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        if raw.get().len() > MAX_DATA_BYTES {
            return Err(format!("must be at most {MAX_DATA_BYTES} bytes of JSON").into());
        }
        serde_json::from_str(raw.get())
            .map(Self)
            .map_err(|_| "must be an object".into())
    }
}

/// A refresh token: 1..=[`RefreshToken::MAX_CHARS`] characters.
pub struct RefreshToken(String);

impl RefreshToken {
    const MAX_CHARS: usize = 4096;
}

impl FromJson for RefreshToken {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        let text = String::from_json(raw)?;
        if !(1..=Self::MAX_CHARS).contains(&text.chars().count()) {
            return Err(format!("must be 1 to {} characters long", Self::MAX_CHARS).into());
        }
        Ok(Self(text))
    }
}

field_schema!(RefreshToken => plain_text()
    .min_length(Some(1))
    .max_length(Some(RefreshToken::MAX_CHARS)));

#[derive(FromBody, utoipa::ToSchema)]
#[schema(example = json!({"data": {"theme": "dark"}}))]
pub struct AnonymousBody {
    /// Becomes `user_metadata` (at most 4 KiB of JSON). Never used for authorization.
    #[schema(value_type = Option<Object>)]
    data: Option<Metadata>,
}

#[derive(FromBody, utoipa::ToSchema)]
#[input(check = Self::changes_something)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery"}))]
pub struct UpdateUserBody {
    /// A new address (Auth mails a confirmation link). On an anonymous user this is the
    /// conversion to a permanent account.
    #[schema(inline)]
    email: Option<Email>,
    /// An anonymous user may set one only together with `email` (Auth's rule).
    #[schema(inline)]
    password: Option<AuthPassword>,
    /// Replaces keys of `user_metadata` (at most 4 KiB of JSON).
    #[schema(value_type = Option<Object>)]
    data: Option<Metadata>,
}

impl UpdateUserBody {
    fn changes_something(&self) -> Result<(), Across> {
        if self.email.is_none() && self.password.is_none() && self.data.is_none() {
            return Err(Across::Form("At least one field is required"));
        }
        Ok(())
    }
}

#[derive(FromParams, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogoutQuery {
    /// Which sessions end: `global` (every session of the user, the default, as in Auth and
    /// auth-js), `local` (this one) or `others` (all but this one; the cookies stay).
    #[param(inline, required = false)]
    #[input(default)]
    scope: LogoutScope,
}

impl FromParam for LogoutScope {
    fn from_param(text: &str) -> Result<Self, Problem> {
        match text {
            "global" => Ok(Self::Global),
            "local" => Ok(Self::Local),
            "others" => Ok(Self::Others),
            _ => Err("must be global, local or others".into()),
        }
    }
}

/// `POST /api/auth/register` → 201 `{user, session}` (`session` null until confirmed).
#[utoipa::path(
    post,
    path = "/api/auth/register",
    operation_id = "register",
    tag = "auth",
    request_body = RegisterBody,
    security(()),
    responses(
        responses::UpstreamErrors,
        responses::BodyErrors,
        (status = 201, description = "Account created; `session` is `null` while email confirmation is on", body = Registered, headers(("Location" = String, description = "Always `/api/auth/user`"))),
        (status = 400, response = responses::BadRequest),
        (status = 403, description = "`signup_disabled`, or `provider_disabled` (email sign-in is off for the project). Also 400 `captcha_failed` and `email_address_invalid`, any other Auth refusal 400 `auth_rejected`", body = crate::error::ErrorBody, example = json!({"error": "Sign-ups are disabled", "code": "signup_disabled"})),
        (status = 409, description = "`user_already_exists`", body = crate::error::ErrorBody, example = json!({"error": "An account with this email already exists", "code": "user_already_exists"})),
        (status = 422, description = "`weak_password` (`details.reasons` lists Auth's reasons when given)", body = crate::error::ErrorBody, example = json!({"error": "The password is too weak", "code": "weak_password"})),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    Body(body): Body<RegisterBody>,
) -> ApiResult<HttpResponse> {
    let mut upstream = json!({ "email": body.email.as_str(), "password": body.password.0 });
    if let Some(data) = body.data {
        upstream["data"] = Value::Object(data.0);
    }
    let answer = state
        .supabase
        .signup(&upstream, ForClient::of(&req))
        .await
        .map_err(|e| e.into_api(AuthCall::Signup))?;
    // Auto-confirm answers a session (with `user` inside); confirmation-required answers the
    // bare user. Auth says 200 either way; a created account is 201 here.
    let (user, session) = if answer.get("access_token").is_some() {
        (
            answer.get("user").cloned().unwrap_or(Value::Null),
            Some(answer),
        )
    } else {
        (answer, None)
    };
    if state.settings.jobs.user_registered.enabled() {
        crate::jobs::user_registered::enqueue(&state.supabase, &user).await;
    }
    let mut res = HttpResponse::Created();
    res.insert_header((header::LOCATION, "/api/auth/user"));
    if let Some(session) = &session {
        token_headers(&mut res);
        if let Some(stored) = stored_session(session.to_string().as_bytes()) {
            state.session_cookie.store(&req, stored.session_json);
        }
    }
    Ok(res.json(json!({ "user": user, "session": session })))
}

/// `POST /api/auth/login` → 200 session.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    operation_id = "login",
    tag = "auth",
    request_body = LoginBody,
    security(()),
    responses(
        responses::UpstreamErrors,
        responses::BodyErrors,
        (status = 200, description = "A session", body = Session, headers(("Cache-Control" = String, description = "`private, no-cache, no-store, must-revalidate, max-age=0`"), ("Set-Cookie" = String, description = "The `@supabase/ssr` session cookies, when cookie sessions are enabled"))),
        (status = 400, response = responses::BadRequest),
        (status = 401, description = "`invalid_credentials` (with `WWW-Authenticate: Bearer`)", body = crate::error::ErrorBody, example = json!({"error": "Invalid login credentials", "code": "invalid_credentials"})),
        (status = 403, description = "`email_not_confirmed`, `user_banned` or `provider_disabled`; also 400 `captcha_failed`, and 400 `auth_rejected` for any Auth refusal without a code of its own", body = crate::error::ErrorBody, example = json!({"error": "Email address is not confirmed", "code": "email_not_confirmed"})),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    Body(body): Body<LoginBody>,
) -> ApiResult<HttpResponse> {
    let session = state
        .supabase
        .token(
            "password",
            &json!({ "email": body.email.as_str(), "password": body.password.0 }),
            ForClient::of(&req),
        )
        .await
        .map_err(|e| e.into_api(AuthCall::PasswordGrant))?;
    session_answer(&req, &state, session)
}

/// 200 with Auth's session as it came, stored in the session cookie (when cookies are on).
pub(super) fn session_answer(
    req: &HttpRequest,
    state: &AppState,
    session: web::Bytes,
) -> ApiResult<HttpResponse> {
    let stored = stored_session(&session)
        .ok_or_else(|| ApiError::upstream_error("auth: answered without a session"))?;
    state.session_cookie.store(req, stored.session_json);
    let mut res = HttpResponse::Ok();
    token_headers(&mut res);
    res.content_type(header::ContentType::json());
    Ok(res.body(session))
}

/// `POST /api/auth/anonymous` → 200 session of a new anonymous user (Auth's `POST /signup`
/// without email or phone).
#[utoipa::path(
    post,
    path = "/api/auth/anonymous",
    operation_id = "signInAnonymously",
    tag = "auth",
    request_body(content = AnonymousBody, description = "Optional: send no body for an anonymous user without metadata."),
    security(()),
    responses(
        responses::UpstreamErrors,
        responses::BodyErrors,
        (status = 200, description = "A session whose access token carries `is_anonymous: true`: it reads what signed-in users read, writes answer 403 `anonymous_not_allowed` unless `business.allow_anonymous_writes`, and billing is refused", body = Session, headers(("Cache-Control" = String, description = "`private, no-cache, no-store, must-revalidate, max-age=0`"), ("Set-Cookie" = String, description = "The `@supabase/ssr` session cookies, when cookie sessions are enabled"))),
        (status = 400, response = responses::BadRequest),
        (status = 403, description = "`provider_disabled` (anonymous sign-ins are off for the project) or `signup_disabled`; also 400 `captcha_failed`", body = crate::error::ErrorBody, example = json!({"error": "This sign-in method is disabled for the project", "code": "provider_disabled"})),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn anonymous(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    // No body means no metadata; a JSON `null` is a wrong body, not an absent one.
    if body.trim_ascii() == b"null" {
        return Err(ApiError::validation(
            json!({}),
            vec!["Expected a JSON object".to_owned()],
        ));
    }
    let data = optional_body::<AnonymousBody>(&req, &state, &body)?
        .and_then(|b| b.data)
        .map_or_else(Map::new, |d| d.0);
    // auth-js `signInAnonymously`: `POST /signup` with `data` and no email or phone.
    let session = state
        .supabase
        .signup(&json!({ "data": data }), ForClient::of(&req))
        .await
        .map_err(|e| e.into_api(AuthCall::Signup))?;
    session_answer(&req, &state, session.to_string().into())
}

/// `POST /api/auth/refresh` → 200 session. The refresh token comes from the body, else from
/// the session cookie; the body may be empty.
#[utoipa::path(
    post,
    path = "/api/auth/refresh",
    operation_id = "refreshSession",
    tag = "auth",
    request_body(content = RefreshBody, description = "With cookie sessions, send no body instead: the refresh token is then read from the `@supabase/ssr` session cookie (400 `validation_failed` when there is none or it is unreadable). Requests carrying the same refresh token within `auth.refresh_reuse_secs` share one refresh and get the same new session."),
    security(()),
    responses(
        responses::UpstreamErrors,
        responses::BodyErrors,
        (status = 200, description = "A new session", body = Session, headers(("Cache-Control" = String, description = "`private, no-cache, no-store, must-revalidate, max-age=0`"), ("Set-Cookie" = String, description = "The `@supabase/ssr` session cookies, when cookie sessions are enabled"))),
        (status = 400, response = responses::BadRequest),
        (status = 401, description = "`invalid_refresh_token` (unknown, reused, expired or revoked; a session cookie it came from is cleared)", body = crate::error::ErrorBody, example = json!({"error": "The refresh token is invalid", "code": "invalid_refresh_token"})),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn refresh(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let from_body = optional_body::<RefreshBody>(&req, &state, &body)?
        .and_then(|b| b.refresh_token)
        .map(|t| t.0);
    // A cookie that is no session counts as no cookie (and is cleared).
    let (refresh_token, from_cookie) = match from_body {
        Some(token) => (token, false),
        None => match state.session_cookie.read(&req) {
            Some(Ok(Some(session))) => (session.refresh_token, true),
            unusable => {
                if matches!(unusable, Some(Err(_))) {
                    state.session_cookie.clear(&req);
                }
                return Err(ApiError::validation(
                    json!({ "refresh_token": ["is required"] }),
                    vec![],
                ));
            }
        },
    };
    // The same single-flight as the server-side refresh: a page refreshing explicitly while
    // its other requests refresh implicitly spends the token once.
    let client = ForClient::of(&req);
    let grant_body = json!({ "refresh_token": refresh_token });
    let outcome = state
        .refresher
        .refresh(&refresh_token, || async {
            RefreshOutcome::from_grant(
                state
                    .supabase
                    .token("refresh_token", &grant_body, client)
                    .await,
            )
        })
        .await;
    match outcome {
        RefreshOutcome::Refreshed(new) => {
            state.session_cookie.store(&req, new.session_json.clone());
            let mut res = HttpResponse::Ok();
            token_headers(&mut res);
            res.content_type(header::ContentType::json());
            Ok(res.body(new.session_json.to_string()))
        }
        RefreshOutcome::Ended => {
            if from_cookie {
                state.session_cookie.clear(&req);
            }
            Err(ApiError::auth_failed(
                "invalid_refresh_token",
                "The refresh token is invalid",
            ))
        }
        RefreshOutcome::Transient(t) => Err(t.to_api_error()),
    }
}

/// `POST /api/auth/logout` → 204; the Supabase session is revoked and cookies cleared.
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    operation_id = "logout",
    tag = "auth",
    params(LogoutQuery),
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        (status = 204, description = "The sessions named by `scope` are revoked and, unless `scope=others`, the session cookies (and any pending sign-in's code-verifier cookies) cleared. An expired cookie session is refreshed first so it can be revoked; a cookie session that is already over (unreadable, or its refresh refused) answers 204 with its cookies cleared. Auth's 401/403/404 (already revoked, user gone) count as success. When Auth fails (502/503/504), `scope=local` has cleared the cookies all the same (as auth-js: this browser is signed out whatever the network does); `global` and `others` keep them.", headers(("Set-Cookie" = String, description = "Deletions of the `@supabase/ssr` session cookies, when cookie sessions are enabled"))),
        (status = 400, response = responses::BadRequest),
        (status = 401, response = responses::Unauthorized),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    Params(query): Params<LogoutQuery>,
    identity: Identity,
) -> ApiResult<HttpResponse> {
    let scope = query.scope;
    let mut res = HttpResponse::NoContent();
    token_headers(&mut res);
    let user = match identity {
        Identity::User(user) => user,
        // A cookie session that is already over (unreadable, or its refresh was refused):
        // its cookies are being cleared, which is all a logout could still do.
        Identity::SignedOut { .. } => return Ok(res.finish()),
        Identity::Anonymous => return Err(ApiError::unauthorized()),
    };
    // auth-js 2.119 `_signOut`: `local` removes the session (and every pending PKCE
    // verifier) before it asks Auth, so signing this browser out never depends on the
    // network; `global` removes it only once Auth has revoked it (or says it is already
    // gone); `others` never does.
    if scope == LogoutScope::Local {
        state.session_cookie.clear(&req);
    }
    match state
        .supabase
        .logout(user.token(), scope, ForClient::of(&req))
        .await
    {
        Ok(()) => {}
        // Already revoked, expired upstream or the user is gone: the caller is logged out
        // (auth-js ignores the same three).
        Err(AuthError::Auth(f)) if matches!(f.status.as_u16(), 401 | 403 | 404) => {}
        // Not revoked: reported. For `global` and `others` the cookies stay, so the caller
        // can try again; `local` has cleared them already.
        Err(e) => return Err(e.into_api(AuthCall::Logout)),
    }
    state.forget_user(user.id);
    if scope == LogoutScope::Global {
        state.session_cookie.clear(&req);
    }
    Ok(res.finish())
}

/// `GET /api/auth/user` → 200 the Supabase user object.
#[utoipa::path(
    get,
    path = "/api/auth/user",
    operation_id = "getAuthUser",
    tag = "auth",
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        (status = 200, description = "The Supabase user object", body = SupabaseUser),
        (status = 401, response = responses::Unauthorized),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn user(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: User,
) -> ApiResult<HttpResponse> {
    let answer = match state
        .supabase
        .user(user.0.token(), ForClient::of(&req))
        .await
    {
        Ok(answer) => answer,
        Err(e) => {
            let e = e.into_api(AuthCall::User);
            // Auth says the session is gone: a cookie session ends here too, as under ssr.
            if e.code() == "session_expired" && req.extensions().get::<FromCookie>().is_some() {
                state.session_cookie.clear(&req);
            }
            return Err(e);
        }
    };
    let mut res = HttpResponse::Ok();
    res.insert_header((header::CACHE_CONTROL, NO_STORE));
    Ok(res.json(answer))
}

/// `PUT /api/auth/user` → 200 the updated Supabase user.
#[utoipa::path(
    put,
    path = "/api/auth/user",
    operation_id = "updateAuthUser",
    tag = "auth",
    request_body = UpdateUserBody,
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        responses::BodyErrors,
        (status = 200, description = "The updated Supabase user. An anonymous user given an `email` keeps its id (and so every row it owns); it stays anonymous (`is_anonymous` in the token) until the address is confirmed through the mailed link and the session refreshed", body = SupabaseUser),
        (status = 400, response = responses::BadRequest),
        (status = 401, response = responses::Unauthorized),
        (status = 409, description = "`user_already_exists`: the address belongs to another account", body = crate::error::ErrorBody, example = json!({"error": "An account with this email already exists", "code": "user_already_exists"})),
        (status = 422, description = "`weak_password` or `same_password`", body = crate::error::ErrorBody, example = json!({"error": "The password is too weak", "code": "weak_password"})),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn update_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    User(user): User,
    Body(body): Body<UpdateUserBody>,
) -> ApiResult<HttpResponse> {
    // Auth's rule, checked here so the form can say which field is missing.
    if user.is_anonymous && body.password.is_some() && body.email.is_none() {
        return Err(ApiError::validation(
            json!({ "email": ["is required to set a password on an anonymous account"] }),
            vec![],
        ));
    }
    let mut upstream = Map::new();
    if let Some(email) = &body.email {
        upstream.insert("email".into(), email.as_str().into());
    }
    let new_password = body.password.is_some();
    if let Some(password) = body.password {
        upstream.insert("password".into(), password.0.into());
    }
    if let Some(data) = body.data {
        upstream.insert("data".into(), Value::Object(data.0));
    }
    let answer = state
        .supabase
        .update_user(user.token(), &Value::Object(upstream), ForClient::of(&req))
        .await
        .map_err(|e| {
            let e = e.into_api(AuthCall::User);
            if e.code() == "session_expired" && req.extensions().get::<FromCookie>().is_some() {
                state.session_cookie.clear(&req);
            }
            e
        })?;
    // Auth ended the user's other sessions with the new password.
    if new_password {
        state.forget_user(user.id);
    }
    let mut res = HttpResponse::Ok();
    res.insert_header((header::CACHE_CONTROL, NO_STORE));
    Ok(res.json(answer))
}

/// `POST /api/auth/recover` → 202 whatever Auth says about the address, so the answer
/// cannot tell whether an account exists. Only an unreachable or failing Auth is reported.
#[utoipa::path(
    post,
    path = "/api/auth/recover",
    operation_id = "recoverPassword",
    tag = "auth",
    request_body = RecoverBody,
    security(()),
    responses(
        responses::UpstreamErrors,
        responses::BodyErrors,
        (status = 202, description = "Whether or not the account exists, and for any Auth refusal that could tell (only Auth's rate limits are passed on, as 429)", body = RecoverAccepted),
        (status = 400, response = responses::BadRequest),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn recover(
    req: HttpRequest,
    state: web::Data<AppState>,
    Body(body): Body<RecoverBody>,
) -> ApiResult<HttpResponse> {
    match state
        .supabase
        .recover(body.email.as_str(), ForClient::of(&req))
        .await
    {
        Ok(()) => {}
        // Auth's per-IP or mail quota: not hidden, or reset mails would stop silently.
        Err(AuthError::Auth(f)) if f.is_rate_limit() => {
            return Err(f.to_api_error(AuthCall::Recover))
        }
        // Anything else Auth says could tell whether the account exists.
        Err(AuthError::Auth(_)) => {}
        Err(e) => return Err(e.into_api(AuthCall::Recover)),
    }
    Ok(HttpResponse::Accepted().json(RecoverAccepted {
        message: "If an account exists for this address, a recovery email is on its way",
    }))
}

// ---- responses ----

/// Supabase Auth's user object, forwarded as Auth answers it (more fields than listed here
/// may be present).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // never built: Auth's answer is forwarded as it came; this is its shape
#[schema(example = json!({
    "id": "4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90", "aud": "authenticated", "role": "authenticated",
    "email": "ada@example.com", "app_metadata": {"provider": "email"}, "user_metadata": {}
}))]
pub(crate) struct SupabaseUser {
    id: uuid::Uuid,
    aud: Option<String>,
    role: Option<String>,
    email: Option<String>,
    app_metadata: Option<Map<String, Value>>,
    user_metadata: Option<Map<String, Value>>,
}

/// A Supabase Auth session, forwarded as Auth answers it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // never built: Auth's answer is forwarded as it came; this is its shape
#[schema(example = json!({
    "access_token": "eyJhbGciOiJFUzI1NiIsImtpZCI6Ii4uLiJ9...", "token_type": "bearer",
    "expires_in": 3600, "expires_at": 1748779200, "refresh_token": "v3ryr4nd0m",
    "user": {"id": "4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90", "email": "ada@example.com"}
}))]
pub(crate) struct Session {
    access_token: String,
    token_type: String,
    expires_in: i64,
    expires_at: Option<i64>,
    refresh_token: String,
    user: SupabaseUser,
}

/// `POST /api/auth/register`'s answer; `session` is `null` while email confirmation is pending.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // never built: Auth's answer is forwarded as it came; this is its shape
pub(crate) struct Registered {
    user: SupabaseUser,
    #[schema(required = true)]
    session: Option<Session>,
}

/// `POST /api/auth/recover`'s answer, the same whether or not the account exists.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({"message": "If an account exists for this address, a recovery email is on its way"}))]
pub(crate) struct RecoverAccepted {
    message: &'static str,
}

pub(super) fn token_headers(res: &mut HttpResponseBuilder) {
    res.insert_header((header::CACHE_CONTROL, NO_STORE))
        .insert_header((header::EXPIRES, HeaderValue::from_static("0")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
}

/// A JSON body that may also be absent (empty or `null`). A present body follows the same
/// rules as [`Body`] (415 without a JSON content type, 413, 400 `invalid_json` or
/// `validation_failed` with every problem).
fn optional_body<T: FromBody>(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> ApiResult<Option<T>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let limit = state.settings.server.body_limit_bytes;
    if body.len() > limit {
        return Err(ApiError::payload_too_large(limit));
    }
    let is_json = req.mime_type().ok().flatten().is_some_and(|m| {
        m.subtype() == actix_web::mime::JSON || m.suffix() == Some(actix_web::mime::JSON)
    });
    if !is_json {
        return Err(ApiError::unsupported_media_type());
    }
    let raw: Box<RawValue> = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_json(format!("Malformed JSON body: {e}")))?;
    // A JSON `null` body means "no body", like an empty one.
    if raw.get() == "null" {
        return Ok(None);
    }
    decode_body(&raw).map(Some)
}
