//! Sign-in without a password: one-time codes and magic links (`/api/auth/otp`,
//! `/api/auth/verify`, and `/api/auth/confirm`, the link in the email), forwarded to Supabase
//! Auth as auth-js sends them; a session that results is written as the `@supabase/ssr` cookie.
//! Every `next` a browser is sent to passes `rules::redirect` (same-origin paths only).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::common::Email;
use super::input::{
    plain_text, Across, Body, FromBody, FromJson, FromParam, FromParams, Params, Problem,
};
use super::session::{session_answer, token_headers, Metadata};
use crate::auth::cookie::SessionCookie;
use crate::auth::pkce;
use crate::error::{ApiError, ApiResult};
use crate::field_schema;
use crate::openapi::responses;
use crate::rules::redirect::same_origin_path;
use crate::state::AppState;
use crate::supabase::gotrue::{AuthCall, AuthError, ForClient};

/// A phone number as Auth takes it: E.164 digits, `+` optional (Auth strips it).
pub struct Phone(String);

impl FromJson for Phone {
    /// Normalised as Auth does (`formatPhoneNumber`: one leading `+` and every space
    /// dropped) and checked with Auth's E.164 pattern `^[1-9][0-9]{1,14}$`, so what is
    /// refused here is what Auth would refuse, and one number has one spelling.
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        let text = String::from_json(raw)?;
        let digits = text.strip_prefix('+').unwrap_or(&text).replace(' ', "");
        let e164 = (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !e164 {
            return Err("must be a phone number in E.164 form, e.g. +14155550123".into());
        }
        // Sent in E.164 form; Auth drops the `+` again.
        Ok(Self(format!("+{digits}")))
    }
}

/// Where Auth sends a phone code.
#[derive(Clone, Copy, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Whatsapp,
}

impl FromJson for Channel {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        match String::from_json(raw)?.as_str() {
            "sms" => Ok(Self::Sms),
            "whatsapp" => Ok(Self::Whatsapp),
            _ => Err("must be sms or whatsapp".into()),
        }
    }
}

impl Channel {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Whatsapp => "whatsapp",
        }
    }
}

/// Auth's verification types (`VerifyParams.type`): the email ones, then the phone ones.
#[derive(Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum OtpType {
    Email,
    Signup,
    Invite,
    Magiclink,
    Recovery,
    EmailChange,
    Sms,
    PhoneChange,
}

impl OtpType {
    const ALL: [Self; 8] = [
        Self::Email,
        Self::Signup,
        Self::Invite,
        Self::Magiclink,
        Self::Recovery,
        Self::EmailChange,
        Self::Sms,
        Self::PhoneChange,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Signup => "signup",
            Self::Invite => "invite",
            Self::Magiclink => "magiclink",
            Self::Recovery => "recovery",
            Self::EmailChange => "email_change",
            Self::Sms => "sms",
            Self::PhoneChange => "phone_change",
        }
    }

    fn is_phone(self) -> bool {
        matches!(self, Self::Sms | Self::PhoneChange)
    }

    fn parse(text: &str) -> Result<Self, Problem> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == text)
            .ok_or_else(|| {
                "must be one of email, signup, invite, magiclink, recovery, email_change, sms, phone_change".into()
            })
    }
}

impl FromJson for OtpType {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        Self::parse(&String::from_json(raw)?)
    }
}

impl FromParam for OtpType {
    fn from_param(text: &str) -> Result<Self, Problem> {
        Self::parse(text)
    }
}

/// A code the user typed or a link's `token_hash`: 1..=[`OtpToken::MAX_LEN`] visible ASCII
/// characters.
pub struct OtpToken(String);

impl OtpToken {
    const MAX_LEN: usize = 256;
}

field_schema!(OtpToken => plain_text().max_length(Some(OtpToken::MAX_LEN)));

fn otp_token(text: &str) -> Result<OtpToken, Problem> {
    if !(1..=OtpToken::MAX_LEN).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_graphic())
    {
        let max = OtpToken::MAX_LEN;
        return Err(format!("must be 1 to {max} visible ASCII characters").into());
    }
    Ok(OtpToken(text.to_owned()))
}

impl FromJson for OtpToken {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        otp_token(&String::from_json(raw)?)
    }
}

impl FromParam for OtpToken {
    fn from_param(text: &str) -> Result<Self, Problem> {
        otp_token(text)
    }
}

/// A same-origin path to send the browser to afterwards (`rules::redirect`).
pub struct NextPath(String);

impl FromParam for NextPath {
    fn from_param(text: &str) -> Result<Self, Problem> {
        same_origin_path(text)
            .map(|p| Self(p.to_owned()))
            .ok_or_else(|| "must be a path on this site (starting with a single /)".into())
    }
}

#[derive(FromBody, utoipa::ToSchema)]
#[input(check = Self::one_recipient)]
#[schema(example = json!({"email": "ada@example.com"}))]
pub struct OtpBody {
    /// Mails a magic link and code. Exactly one of `email` and `phone`.
    #[schema(inline)]
    email: Option<Email>,
    /// Texts a code (needs a phone provider in Auth).
    #[schema(value_type = Option<String>, example = "+14155550123")]
    phone: Option<Phone>,
    /// Create the account when there is none (default `true`, as in Auth and auth-js).
    create_user: Option<bool>,
    /// `user_metadata` for an account this creates (at most 4 KiB of JSON).
    #[schema(value_type = Option<Object>)]
    data: Option<Metadata>,
    /// Phone only: `sms` (default) or `whatsapp`.
    #[schema(inline)]
    channel: Option<Channel>,
}

impl OtpBody {
    fn one_recipient(&self) -> Result<(), Across> {
        match (&self.email, &self.phone) {
            (Some(_), Some(_)) | (None, None) => {
                Err(Across::Form("Exactly one of email and phone is required"))
            }
            (Some(_), None) if self.channel.is_some() => {
                Err(Across::Form("channel applies to phone codes only"))
            }
            _ => Ok(()),
        }
    }
}

#[derive(FromBody, utoipa::ToSchema)]
#[input(check = Self::one_proof)]
#[schema(example = json!({"type": "email", "email": "ada@example.com", "token": "123456"}))]
pub struct VerifyBody {
    /// `email` for an emailed code; `sms` / `phone_change` with `phone`; `signup`, `invite`,
    /// `magiclink`, `recovery`, `email_change` for a link's `token_hash`.
    #[schema(inline)]
    r#type: OtpType,
    /// The typed code; with `email` or `phone`.
    #[schema(inline)]
    token: Option<OtpToken>,
    /// From the link in the email (`{{ .TokenHash }}`); alone, without `email`/`phone`.
    #[schema(inline)]
    token_hash: Option<OtpToken>,
    #[schema(inline)]
    email: Option<Email>,
    #[schema(value_type = Option<String>)]
    phone: Option<Phone>,
}

impl VerifyBody {
    fn one_proof(&self) -> Result<(), Across> {
        let who = (self.email.is_some(), self.phone.is_some());
        let problem = match (&self.token, &self.token_hash) {
            (Some(_), None) => match who {
                (true, false) if !self.r#type.is_phone() => return Ok(()),
                (false, true) if self.r#type.is_phone() => return Ok(()),
                (false, false) | (true, true) => "A token needs exactly one of email and phone",
                _ => "type does not match email or phone",
            },
            (None, Some(_)) if who == (false, false) => return Ok(()),
            (None, Some(_)) => "token_hash goes alone, without email or phone",
            _ => "Exactly one of token and token_hash is required",
        };
        Err(Across::Form(problem))
    }
}

impl VerifyBody {
    /// What auth-js `verifyOtp` sends.
    fn to_auth(&self) -> Value {
        let mut out = Map::new();
        out.insert("type".into(), self.r#type.as_str().into());
        if let Some(hash) = &self.token_hash {
            out.insert("token_hash".into(), hash.0.clone().into());
        }
        if let Some(token) = &self.token {
            out.insert("token".into(), token.0.clone().into());
        }
        if let Some(email) = &self.email {
            out.insert("email".into(), email.as_str().into());
        }
        if let Some(phone) = &self.phone {
            out.insert("phone".into(), phone.0.clone().into());
        }
        Value::Object(out)
    }
}

#[derive(FromParams, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConfirmQuery {
    /// `{{ .TokenHash }}` from the email template.
    #[param(inline, required = true)]
    token_hash: OtpToken,
    /// `{{ .Type }}`: `signup`, `invite`, `magiclink`, `recovery`, `email_change` or `email`.
    #[param(inline, required = true)]
    r#type: OtpType,
    /// Where to go afterwards: a path on this site (default `/`). Absolute URLs, `//host`,
    /// `/\host`, their encoded forms and control characters are refused (400).
    #[param(value_type = Option<String>, example = "/account")]
    next: Option<NextPath>,
}

/// `POST /api/auth/otp` → 200: Auth mailed the link/code or texted the code.
#[utoipa::path(
    post,
    path = "/api/auth/otp",
    operation_id = "sendOtp",
    tag = "auth",
    request_body = OtpBody,
    security(()),
    responses(
        responses::UpstreamErrors,
        responses::BodyErrors,
        (status = 200, description = "Sent. `message_id` when Auth's SMS provider returned one", body = Object, example = json!({})),
        (status = 400, response = responses::BadRequest),
        (status = 403, description = "`signup_disabled` (sign-ups off and `create_user` true) or `provider_disabled` (email or phone sign-in off). With `create_user: false` an address without an account is answered 200 `{}` like one with an account (no account enumeration)", body = crate::error::ErrorBody, example = json!({"error": "Sign-ups are disabled", "code": "signup_disabled"})),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn otp(
    req: HttpRequest,
    state: web::Data<AppState>,
    Body(body): Body<OtpBody>,
) -> ApiResult<HttpResponse> {
    // auth-js `signInWithOtp`: `create_user` defaults to true; `data` always sent.
    let create_user = body.create_user.unwrap_or(true);
    let mut upstream = json!({
        "create_user": create_user,
        "data": body.data.map_or_else(Map::new, |d| d.0),
    });
    if let Some(email) = &body.email {
        upstream["email"] = email.as_str().into();
    }
    if let Some(phone) = &body.phone {
        upstream["phone"] = phone.0.clone().into();
        upstream["channel"] = body.channel.unwrap_or(Channel::Sms).as_str().into();
    }
    let answer = match state.supabase.otp(&upstream, ForClient::of(&req)).await {
        Ok(answer) => answer,
        // With `create_user: false` Auth answers an address it has no user for with 422
        // `otp_disabled` and a known one with `{}`: passing that on would tell anyone which
        // addresses have accounts. Answered as a known address is (as `recover` does).
        Err(AuthError::Auth(f)) if !create_user && f.code() == "otp_disabled" => {
            tracing::debug!("otp: no user for the address (create_user false)");
            json!({})
        }
        Err(e) => return Err(e.into_api(AuthCall::Otp)),
    };
    Ok(HttpResponse::Ok().json(answer))
}

/// `POST /api/auth/verify` → 200 session (cookie written).
#[utoipa::path(
    post,
    path = "/api/auth/verify",
    operation_id = "verifyOtp",
    tag = "auth",
    request_body = VerifyBody,
    security(()),
    responses(
        responses::UpstreamErrors,
        responses::BodyErrors,
        (status = 200, description = "A session (for `email_change` with secure email change on, Auth's `{msg}` until the second address confirms too)", body = super::session::Session, headers(("Cache-Control" = String, description = "`private, no-cache, no-store, must-revalidate, max-age=0`"), ("Set-Cookie" = String, description = "The `@supabase/ssr` session cookies, when cookie sessions are enabled"))),
        (status = 400, response = responses::BadRequest),
        (status = 401, description = "`otp_expired`: the code or link is wrong, used or expired (with `WWW-Authenticate: Bearer`)", body = crate::error::ErrorBody, example = json!({"error": "The code or link is invalid or has expired", "code": "otp_expired"})),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn verify(
    req: HttpRequest,
    state: web::Data<AppState>,
    Body(body): Body<VerifyBody>,
) -> ApiResult<HttpResponse> {
    let answer = state
        .supabase
        .verify(&body.to_auth(), ForClient::of(&req))
        .await
        .map_err(|e| e.into_api(AuthCall::Verify))?;
    if body.r#type == OtpType::EmailChange && !has_session(&answer) {
        // Secure email change: the first of two links was accepted; no session yet.
        let mut res = HttpResponse::Ok();
        token_headers(&mut res);
        res.content_type(header::ContentType::json());
        return Ok(res.body(answer));
    }
    session_answer(&req, &state, answer)
}

fn has_session(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| v.get("access_token").is_some())
}

/// `GET /api/auth/confirm?token_hash=&type=&next=` → 303 to `next` with the cookie session.
#[utoipa::path(
    get,
    path = "/api/auth/confirm",
    operation_id = "confirmEmailLink",
    tag = "auth",
    params(ConfirmQuery),
    security(()),
    responses(
        responses::UpstreamErrors,
        (status = 303, description = "Verified: the session is in the `@supabase/ssr` cookies (`cookies.enabled` must be on) and the browser goes to `next`", headers(("Location" = String, description = "`next`, a path on this site"), ("Set-Cookie" = String, description = "The session cookies"))),
        (status = 400, response = responses::BadRequest),
        (status = 401, description = "`otp_expired`: the link is wrong, used or expired", body = crate::error::ErrorBody, example = json!({"error": "The code or link is invalid or has expired", "code": "otp_expired"})),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn confirm(
    req: HttpRequest,
    state: web::Data<AppState>,
    Params(query): Params<ConfirmQuery>,
) -> ApiResult<HttpResponse> {
    if query.r#type.is_phone() {
        return Err(ApiError::validation(
            json!({ "type": ["must be an email link type"] }),
            vec![],
        ));
    }
    let body = json!({ "type": query.r#type.as_str(), "token_hash": query.token_hash.0 });
    let answer = state
        .supabase
        .verify(&body, ForClient::of(&req))
        .await
        .map_err(|e| e.into_api(AuthCall::Verify))?;
    let next = query.next.map_or_else(|| "/".to_owned(), |n| n.0);
    let mut res = HttpResponse::SeeOther();
    token_headers(&mut res);
    res.insert_header((header::LOCATION, next));
    if has_session(&answer) {
        if let Some(stored) = crate::auth::refresh::stored_session(&answer) {
            state.session_cookie.store(&req, stored.session_json);
        }
    }
    Ok(res.finish())
}

/// The provider a sign-in starts with (`/api/auth/oauth/{provider}`).
#[derive(FromParams, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OAuthQuery {
    /// Where to go after signing in: a path on this site (default `/`).
    #[param(value_type = Option<String>, example = "/account")]
    next: Option<NextPath>,
}

/// `GET /api/auth/oauth/{provider}?next=` → 302 to Auth's `/authorize` with a fresh PKCE
/// challenge; the verifier waits in the `...-code-verifier` cookie.
#[utoipa::path(
    get,
    path = "/api/auth/oauth/{provider}",
    operation_id = "startOAuth",
    tag = "auth",
    params(("provider" = String, Path, description = "One of `sign_in.oauth_providers` (Auth's names: `github`, `google`, ...)"), OAuthQuery),
    security(()),
    responses(
        (status = 302, description = "To `{supabase}/auth/v1/authorize?provider=…&redirect_to={public_url}/api/auth/callback?next=…%26sb_flow_id=…&code_challenge=…&code_challenge_method=s256`", headers(("Location" = String, description = "Auth's authorize URL"), ("Set-Cookie" = String, description = "The verifier as current auth-js keeps it: `sb-<ref>-auth-token-flow-<id>-code-verifier`, the index `sb-<ref>-auth-token-flows-code-verifier` and `sb-<ref>-auth-token-code-verifier` (HttpOnly, `sign_in.code_verifier_max_age_secs`)"))),
        (status = 400, response = responses::BadRequest),
        (status = 404, description = "`not_found`: the provider is not in `sign_in.oauth_providers`", body = crate::error::ErrorBody, example = json!({"error": "Unknown sign-in provider", "code": "not_found"})),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn oauth(
    req: HttpRequest,
    state: web::Data<AppState>,
    provider: web::Path<String>,
    Params(query): Params<OAuthQuery>,
) -> ApiResult<HttpResponse> {
    let settings = &state.settings;
    let provider = provider.into_inner();
    if !settings.sign_in.oauth_providers.contains(&provider) {
        return Err(ApiError::not_found("Unknown sign-in provider"));
    }
    let next = query.next.map_or_else(|| "/".to_owned(), |n| n.0);
    let random_failed = || ApiError::internal("the OS random generator failed");
    let verifier = pkce::new_verifier().ok_or_else(random_failed)?;
    let flow_id = pkce::new_flow_id().ok_or_else(random_failed)?;
    let mut callback = url::Url::parse(settings.sign_in.public_url.trim_end_matches('/'))
        .map_err(|e| ApiError::internal(format!("sign_in.public_url: {e}")))?;
    callback.set_path("/api/auth/callback");
    // The flow id comes back on the callback (auth-js's `appendPkceFlowIdToRedirects`), so
    // two sign-ins started in two tabs each find their own verifier.
    callback
        .query_pairs_mut()
        .append_pair("next", &next)
        .append_pair(pkce::FLOW_ID_PARAM, &flow_id);
    let mut authorize = url::Url::parse(&format!(
        "{}/auth/v1/authorize",
        settings.supabase_public_base()
    ))
    .map_err(|e| ApiError::internal(format!("supabase URL: {e}")))?;
    // auth-js `_getUrlForProvider`, in its order.
    authorize
        .query_pairs_mut()
        .append_pair("provider", &provider)
        .append_pair("redirect_to", callback.as_str())
        .append_pair("code_challenge", &crate::auth::pkce::challenge(&verifier))
        .append_pair("code_challenge_method", "s256");
    let max_age = i64::try_from(settings.sign_in.code_verifier_max_age_secs).unwrap_or(i64::MAX);
    let mut res = HttpResponse::Found();
    token_headers(&mut res);
    res.insert_header((header::LOCATION, authorize.as_str()));
    let present = SessionCookie::present(&req);
    for cookie in state
        .session_cookie
        .start_flow_cookies(&present, &flow_id, &verifier, max_age)
    {
        res.cookie(cookie);
    }
    Ok(res.finish())
}

/// What Auth sends the browser back with: `code` on success, `error*` on failure.
#[derive(FromParams, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The auth code (a UUID) for the pkce grant.
    #[param(inline)]
    code: Option<OtpToken>,
    /// Set by `/api/auth/oauth/{provider}`: a path on this site.
    #[param(value_type = Option<String>)]
    next: Option<NextPath>,
    /// The provider or Auth refused (`access_denied`, `server_error`, ...).
    #[param(value_type = Option<String>)]
    error: Option<String>,
    #[param(value_type = Option<String>)]
    error_code: Option<String>,
    #[param(value_type = Option<String>)]
    error_description: Option<String>,
    /// The sign-in flow this callback ends (`/api/auth/oauth/{provider}` adds it, as does a
    /// browser client with auth-js's `appendPkceFlowIdToRedirects`); without it the most
    /// recent flow's verifier is used, as older clients expect.
    #[param(value_type = Option<String>, pattern = "^[a-zA-Z0-9_-]{8,64}$")]
    sb_flow_id: Option<String>,
    /// A marker Auth adds to its error redirects: accepted, not documented, not used.
    #[param(ignore)]
    #[allow(dead_code)]
    sb: Option<String>,
}

impl FromParam for String {
    fn from_param(text: &str) -> Result<Self, Problem> {
        if text.chars().count() > 1000 || text.chars().any(char::is_control) {
            return Err("must be at most 1000 characters, none of them control characters".into());
        }
        Ok(text.to_owned())
    }
}

/// `GET /api/auth/callback?code=&next=` → 303 to `next` with the cookie session.
#[utoipa::path(
    get,
    path = "/api/auth/callback",
    operation_id = "oauthCallback",
    tag = "auth",
    params(CallbackQuery),
    security(()),
    responses(
        responses::UpstreamErrors,
        (status = 303, description = "Signed in: the session is in the `@supabase/ssr` cookies, the flow's code-verifier cookies are cleared as auth-js clears them", headers(("Location" = String, description = "`next`"), ("Set-Cookie" = String, description = "The session cookies and the verifier's deletion"))),
        (status = 400, description = "`oauth_failed` (the provider or Auth refused: `details` has Auth's `error`, `error_code`, `error_description`), `code_verifier_missing` (no sign-in was started in this browser, or its cookie expired), `code_verifier_mismatch`, `oauth_code_invalid` (unknown or already used code), `oauth_code_expired`, `validation_failed`. The verifier cookie is cleared in every case", body = crate::error::ErrorBody, example = json!({"error": "This sign-in link was already used or is unknown; start the sign-in again", "code": "oauth_code_invalid"})),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    Params(query): Params<CallbackQuery>,
) -> ApiResult<HttpResponse> {
    let flow = RequestedFlow::of(query.sb_flow_id.clone());
    let present = SessionCookie::present(&req);
    let outcome = exchange(&req, &state, &present, &flow, query).await;
    // auth-js drops the flow's verifier after every exchange, success or not: a code is
    // single-use.
    let max_age =
        i64::try_from(state.settings.sign_in.code_verifier_max_age_secs).unwrap_or(i64::MAX);
    let deletions = match &flow {
        RequestedFlow::Malformed => Vec::new(),
        RequestedFlow::Latest => state
            .session_cookie
            .exchange_cleanup(&present, None, max_age),
        RequestedFlow::Flow(id) => {
            state
                .session_cookie
                .exchange_cleanup(&present, Some(id), max_age)
        }
    };
    match outcome {
        Ok(mut res) => {
            for cookie in deletions {
                res.add_cookie(&cookie)
                    .map_err(|e| ApiError::internal(format!("cookie: {e}")))?;
            }
            Ok(res)
        }
        Err(e) => {
            let mut res = actix_web::ResponseError::error_response(&e);
            for cookie in deletions {
                let _ = res.add_cookie(&cookie);
            }
            Ok(res)
        }
    }
}

/// Which pending sign-in a callback ends, as auth-js's `exchangeCodeForSession` reads
/// `sb_flow_id`.
enum RequestedFlow {
    /// No flow named: the single verifier (the most recent flow's).
    Latest,
    /// That flow's slot only, never another flow's verifier (it would burn the code).
    Flow(String),
    /// An id not of auth-js's shape: it finds no verifier at all.
    Malformed,
}

impl RequestedFlow {
    fn of(sb_flow_id: Option<String>) -> Self {
        match sb_flow_id {
            None => Self::Latest,
            Some(id) if pkce::valid_flow_id(&id) => Self::Flow(id),
            Some(_) => Self::Malformed,
        }
    }
}

async fn exchange(
    req: &HttpRequest,
    state: &AppState,
    present: &[(String, String)],
    flow: &RequestedFlow,
    query: CallbackQuery,
) -> ApiResult<HttpResponse> {
    if query.error.is_some() || query.error_code.is_some() {
        return Err(ApiError::bad_request(
            "oauth_failed",
            "Sign-in was refused by the provider or Supabase Auth",
        )
        .with_details(json!({
            "error": query.error,
            "error_code": query.error_code,
            "error_description": query.error_description,
        })));
    }
    let Some(code) = query.code else {
        return Err(ApiError::validation(
            json!({ "code": ["is required"] }),
            vec![],
        ));
    };
    let verifier = match flow {
        RequestedFlow::Malformed => None,
        RequestedFlow::Latest => state.session_cookie.code_verifier(present, None),
        RequestedFlow::Flow(id) => state.session_cookie.code_verifier(present, Some(id)),
    };
    let verifier = verifier.ok_or_else(|| {
        ApiError::bad_request(
            "code_verifier_missing",
            "No sign-in was started in this browser (or it expired); start it again",
        )
    })?;
    let session = state
        .supabase
        .token(
            "pkce",
            &json!({ "auth_code": code.0, "code_verifier": verifier }),
            ForClient::of(req),
        )
        .await
        .map_err(|e| e.into_api(AuthCall::Pkce))?;
    let stored = crate::auth::refresh::stored_session(&session)
        .ok_or_else(|| ApiError::upstream_error("auth: pkce grant without a session"))?;
    state.session_cookie.store(req, stored.session_json);
    let next = query.next.map_or_else(|| "/".to_owned(), |n| n.0);
    let mut res = HttpResponse::SeeOther();
    token_headers(&mut res);
    res.insert_header((header::LOCATION, next));
    Ok(res.finish())
}
