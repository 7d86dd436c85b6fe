//! `/api/auth/mfa/*`: TOTP factors (enrol, list, unenrol), challenge and verify, forwarded to
//! Supabase Auth with the caller's token as auth-js's `mfa` API sends them. A successful
//! verify is an `aal2` session, written back as the `@supabase/ssr` cookie.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use http::Method;
use serde_json::json;
use uuid::Uuid;

use super::input::{plain_text, Body, FromBody, FromJson, Problem};
use super::session::session_answer;
use crate::auth::cookie::NO_STORE;
use crate::auth::User;
use crate::error::ApiResult;
use crate::field_schema;
use crate::openapi::responses;
use crate::state::AppState;
use crate::supabase::gotrue::AuthCall;
use crate::supabase::gotrue::ForClient;

/// A short label: 1..=[`Label::MAX_CHARS`] characters, no control characters.
pub struct Label(String);

impl Label {
    const MAX_CHARS: usize = 100;
}

field_schema!(Label => plain_text().max_length(Some(Label::MAX_CHARS)));

impl FromJson for Label {
    fn from_json(raw: &serde_json::value::RawValue) -> Result<Self, Problem> {
        let text = String::from_json(raw)?;
        if !(1..=Self::MAX_CHARS).contains(&text.chars().count())
            || text.chars().any(char::is_control)
        {
            let max = Self::MAX_CHARS;
            return Err(format!("must be 1 to {max} characters, no control characters").into());
        }
        Ok(Self(text))
    }
}

/// A TOTP code: [`TotpCode::DIGITS`] digits.
pub struct TotpCode(String);

impl TotpCode {
    const DIGITS: usize = 6;
}

field_schema!(TotpCode => plain_text().pattern(Some(format!("^[0-9]{{{}}}$", TotpCode::DIGITS))));

impl FromJson for TotpCode {
    fn from_json(raw: &serde_json::value::RawValue) -> Result<Self, Problem> {
        let text = String::from_json(raw)?;
        if text.len() != Self::DIGITS || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("must be {} digits", Self::DIGITS).into());
        }
        Ok(Self(text))
    }
}

/// `factor_type`, as auth-js's `mfa.enroll` sends it: only `totp` is enrolled here.
pub struct TotpFactorType;

impl FromJson for TotpFactorType {
    fn from_json(raw: &serde_json::value::RawValue) -> Result<Self, Problem> {
        match String::from_json(raw)?.as_str() {
            "totp" => Ok(Self),
            _ => Err("must be \"totp\": supagate enrols TOTP factors only (Supabase Auth's phone and webauthn factors are not supported)".into()),
        }
    }
}

#[derive(FromBody, utoipa::ToSchema)]
#[schema(example = json!({"factor_type": "totp", "friendly_name": "Phone app"}))]
pub struct FactorEnrollBody {
    /// Supabase's own field: `totp`, the one type supagate enrols (the default).
    #[allow(dead_code)]
    #[schema(value_type = Option<String>, pattern = "^totp$")]
    factor_type: Option<TotpFactorType>,
    /// Shown in the user's factor list; unique per user.
    #[schema(inline)]
    friendly_name: Option<Label>,
    /// The issuer the authenticator app shows (Auth's default: the Site URL's host).
    #[schema(inline)]
    issuer: Option<Label>,
}

#[derive(FromBody, utoipa::ToSchema)]
#[schema(example = json!({"factor_id": "2b306a77-21dc-4110-ba71-537cb56b9e98"}))]
pub struct FactorChallengeBody {
    #[schema(value_type = String, format = Uuid)]
    factor_id: Uuid,
}

#[derive(FromBody, utoipa::ToSchema)]
#[schema(example = json!({"factor_id": "2b306a77-21dc-4110-ba71-537cb56b9e98", "challenge_id": "b824ca10-cc13-4250-adba-20ee6e5e7dcd", "code": "123456"}))]
pub struct FactorVerifyBody {
    #[schema(value_type = String, format = Uuid)]
    factor_id: Uuid,
    #[schema(value_type = String, format = Uuid)]
    challenge_id: Uuid,
    /// The 6-digit code from the authenticator app.
    #[schema(inline)]
    code: TotpCode,
}

/// One `/factors…` call for the signed-in caller (their token, their IP). Auth refuses
/// every `/factors…` call of an anonymous user (403 `no_authorization`), so such a caller is
/// told so here, from the verified token, without asking.
async fn factors_call(
    req: &HttpRequest,
    state: &AppState,
    user: &crate::auth::AuthUser,
    method: Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> ApiResult<bytes::Bytes> {
    if user.is_anonymous {
        return Err(crate::error::ApiError::anonymous_without_factors());
    }
    state
        .supabase
        .factors(method, path, user.token(), body, ForClient::of(req))
        .await
        .map_err(|e| e.into_api(AuthCall::Mfa))
}

fn json_answer(body: bytes::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, NO_STORE))
        .content_type(header::ContentType::json())
        .body(body)
}

/// `POST /api/auth/mfa/factors` → 200 the new (unverified) TOTP factor with its QR code.
#[utoipa::path(
    post,
    path = "/api/auth/mfa/factors",
    operation_id = "enrollFactor",
    tag = "auth",
    request_body = FactorEnrollBody,
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        responses::BodyErrors,
        (status = 200, description = "Auth's answer: `{id, type: \"totp\", friendly_name, totp: {qr_code (SVG), secret, uri}}`; the factor stays `unverified` until a challenge is verified", body = Object),
        (status = 400, response = responses::BadRequest),
        (status = 401, response = responses::Unauthorized),
        (status = 403, description = "`mfa_required` (an aal1 session of a user who already has a verified factor); `anonymous_not_allowed` (an anonymous sign-in: Auth gives anonymous users no factors)", body = crate::error::ErrorBody),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn enroll(
    req: HttpRequest,
    state: web::Data<AppState>,
    User(user): User,
    Body(body): Body<FactorEnrollBody>,
) -> ApiResult<HttpResponse> {
    let mut upstream = json!({ "factor_type": "totp" });
    if let Some(name) = body.friendly_name {
        upstream["friendly_name"] = name.0.into();
    }
    if let Some(issuer) = body.issuer {
        upstream["issuer"] = issuer.0.into();
    }
    let answer = factors_call(
        &req,
        &state,
        &user,
        Method::POST,
        "/factors",
        Some(&upstream),
    )
    .await?;
    Ok(json_answer(answer))
}

/// `GET /api/auth/mfa/factors` → 200 `{factors}` (from Auth's user, as auth-js `listFactors`).
#[utoipa::path(
    get,
    path = "/api/auth/mfa/factors",
    operation_id = "listFactors",
    tag = "auth",
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        (status = 200, description = "`{factors: [{id, factor_type, friendly_name, status (verified | unverified), created_at, updated_at}]}`", body = Object),
        (status = 401, response = responses::Unauthorized),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    User(user): User,
) -> ApiResult<HttpResponse> {
    let me = state
        .supabase
        .user(user.token(), ForClient::of(&req))
        .await
        .map_err(|e| e.into_api(AuthCall::User))?;
    let factors = me.get("factors").cloned().unwrap_or_else(|| json!([]));
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, NO_STORE))
        .json(json!({ "factors": factors })))
}

/// `DELETE /api/auth/mfa/factors/{id}` → 200 `{id}`.
#[utoipa::path(
    delete,
    path = "/api/auth/mfa/factors/{id}",
    operation_id = "unenrollFactor",
    tag = "auth",
    params(("id" = uuid::Uuid, Path, description = "Factor id")),
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        (status = 200, description = "`{id}` of the removed factor", body = Object),
        (status = 400, response = responses::BadRequest),
        (status = 401, response = responses::Unauthorized),
        (status = 403, description = "`mfa_required`: removing a verified factor needs an aal2 session; `anonymous_not_allowed`: an anonymous sign-in has no factors", body = crate::error::ErrorBody),
        (status = 404, response = responses::NotFound),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn unenroll(
    req: HttpRequest,
    state: web::Data<AppState>,
    User(user): User,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let path = format!("/factors/{}", id.into_inner());
    let answer = factors_call(&req, &state, &user, Method::DELETE, &path, None).await?;
    Ok(json_answer(answer))
}

/// `POST /api/auth/mfa/challenge` → 200 `{id, type, expires_at}`.
#[utoipa::path(
    post,
    path = "/api/auth/mfa/challenge",
    operation_id = "challengeFactor",
    tag = "auth",
    request_body = FactorChallengeBody,
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        responses::BodyErrors,
        (status = 200, description = "The challenge: `{id, type, expires_at}` (valid 300 s; verify from the same client IP)", body = Object),
        (status = 400, response = responses::BadRequest),
        (status = 401, response = responses::Unauthorized),
        (status = 403, description = "`anonymous_not_allowed`: an anonymous sign-in has no factors", body = crate::error::ErrorBody),
        (status = 404, response = responses::NotFound),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn challenge(
    req: HttpRequest,
    state: web::Data<AppState>,
    User(user): User,
    Body(body): Body<FactorChallengeBody>,
) -> ApiResult<HttpResponse> {
    let path = format!("/factors/{}/challenge", body.factor_id);
    let answer = factors_call(&req, &state, &user, Method::POST, &path, Some(&json!({}))).await?;
    Ok(json_answer(answer))
}

/// `POST /api/auth/mfa/verify` → 200 the `aal2` session (cookies rewritten).
#[utoipa::path(
    post,
    path = "/api/auth/mfa/verify",
    operation_id = "verifyFactor",
    tag = "auth",
    request_body = FactorVerifyBody,
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        responses::BodyErrors,
        (status = 200, description = "A new session whose access token says `aal: aal2`; with cookie sessions the `@supabase/ssr` cookies are rewritten with it. The first verify of a factor also marks it `verified`", body = super::session::Session, headers(("Set-Cookie" = String, description = "The session cookies, when cookie sessions are enabled"))),
        (status = 400, response = responses::BadRequest),
        (status = 401, response = responses::Unauthorized),
        (status = 403, description = "`anonymous_not_allowed`: an anonymous sign-in has no factors", body = crate::error::ErrorBody),
        (status = 404, response = responses::NotFound),
        (status = 422, description = "`mfa_verification_failed` (wrong code), `mfa_challenge_expired`, `mfa_ip_address_mismatch`", body = crate::error::ErrorBody, example = json!({"error": "The code is not correct", "code": "mfa_verification_failed"})),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn verify(
    req: HttpRequest,
    state: web::Data<AppState>,
    User(user): User,
    Body(body): Body<FactorVerifyBody>,
) -> ApiResult<HttpResponse> {
    let upstream = json!({ "challenge_id": body.challenge_id, "code": body.code.0 });
    let path = format!("/factors/{}/verify", body.factor_id);
    let session = factors_call(&req, &state, &user, Method::POST, &path, Some(&upstream)).await?;
    session_answer(&req, &state, session)
}
