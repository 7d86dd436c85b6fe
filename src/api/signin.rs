//! Sign-in without a password (issue 14): one-time codes and magic links (`/api/auth/otp`,
//! `/api/auth/verify`, and `/api/auth/confirm`, the link in the email), forwarded to Supabase
//! Auth as auth-js sends them; a session that results is written as the `@supabase/ssr` cookie.
//! Every `next` a browser is sent to passes `rules::redirect` (same-origin paths only).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::common::Email;
use super::input::{
    Body, FromBody, FromJson, FromParam, FromParams, JsonFields, Params, Problem, QueryFields,
};
use super::session::{for_client, session_answer, token_headers, Metadata};
use crate::error::{ApiError, ApiResult};
use crate::openapi::responses;
use crate::rules::redirect::same_origin_path;
use crate::state::AppState;
use crate::supabase::gotrue::AuthCall;

/// A phone number as Auth takes it: E.164 digits, `+` optional (Auth strips it).
pub struct Phone(String);

impl FromJson for Phone {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        let text = String::from_json(raw)?;
        let digits = text.strip_prefix('+').unwrap_or(&text);
        if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must be a phone number in E.164 form, e.g. +14155550123".into());
        }
        Ok(Self(text))
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

/// A code the user typed or a link's `token_hash`: 1..=256 visible ASCII characters.
pub struct OtpToken(String);

fn otp_token(text: &str) -> Result<OtpToken, Problem> {
    if !(1..=256).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be 1 to 256 visible ASCII characters".into());
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

#[derive(utoipa::ToSchema)]
#[schema(example = json!({"email": "ada@example.com"}))]
pub struct OtpBody {
    /// Mails a magic link and code. Exactly one of `email` and `phone`.
    #[schema(value_type = Option<String>, format = Email, max_length = 254)]
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

impl FromBody for OtpBody {
    fn from_body(f: &mut JsonFields) -> Option<Self> {
        let email = f.optional("email");
        let phone = f.optional("phone");
        let create_user = f.optional("create_user");
        let data = f.optional("data");
        let channel = f.optional("channel");
        let body = Self {
            email: email?,
            phone: phone?,
            create_user: create_user?,
            data: data?,
            channel: channel?,
        };
        match (&body.email, &body.phone) {
            (Some(_), Some(_)) | (None, None) => {
                f.form_problem("Exactly one of email and phone is required")
            }
            (Some(_), None) if body.channel.is_some() => {
                f.form_problem("channel applies to phone codes only")
            }
            _ => {}
        }
        Some(body)
    }
}

#[derive(utoipa::ToSchema)]
#[schema(example = json!({"type": "email", "email": "ada@example.com", "token": "123456"}))]
pub struct VerifyBody {
    /// `email` for an emailed code; `sms` / `phone_change` with `phone`; `signup`, `invite`,
    /// `magiclink`, `recovery`, `email_change` for a link's `token_hash`.
    #[schema(inline)]
    r#type: OtpType,
    /// The typed code; with `email` or `phone`.
    #[schema(value_type = Option<String>, max_length = 256)]
    token: Option<OtpToken>,
    /// From the link in the email (`{{ .TokenHash }}`); alone, without `email`/`phone`.
    #[schema(value_type = Option<String>, max_length = 256)]
    token_hash: Option<OtpToken>,
    #[schema(value_type = Option<String>, format = Email, max_length = 254)]
    email: Option<Email>,
    #[schema(value_type = Option<String>)]
    phone: Option<Phone>,
}

impl FromBody for VerifyBody {
    fn from_body(f: &mut JsonFields) -> Option<Self> {
        let kind = f.required("type");
        let token = f.optional("token");
        let token_hash = f.optional("token_hash");
        let email = f.optional("email");
        let phone = f.optional("phone");
        let body = Self {
            r#type: kind?,
            token: token?,
            token_hash: token_hash?,
            email: email?,
            phone: phone?,
        };
        let who = (body.email.is_some(), body.phone.is_some());
        match (&body.token, &body.token_hash) {
            (Some(_), None) => match who {
                (true, false) if !body.r#type.is_phone() => {}
                (false, true) if body.r#type.is_phone() => {}
                (false, false) | (true, true) => {
                    f.form_problem("A token needs exactly one of email and phone")
                }
                _ => f.form_problem("type does not match email or phone"),
            },
            (None, Some(_)) if who == (false, false) => {}
            (None, Some(_)) => f.form_problem("token_hash goes alone, without email or phone"),
            _ => f.form_problem("Exactly one of token and token_hash is required"),
        }
        Some(body)
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

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConfirmQuery {
    /// `{{ .TokenHash }}` from the email template.
    #[param(value_type = String, required = true)]
    token_hash: OtpToken,
    /// `{{ .Type }}`: `signup`, `invite`, `magiclink`, `recovery`, `email_change` or `email`.
    #[param(inline, required = true)]
    r#type: OtpType,
    /// Where to go afterwards: a path on this site (default `/`). Absolute URLs, `//host`,
    /// `/\host`, their encoded forms and control characters are refused (400).
    #[param(value_type = Option<String>, example = "/account")]
    next: Option<NextPath>,
}

impl FromParams for ConfirmQuery {
    fn from_params(p: &mut QueryFields) -> Option<Self> {
        let token_hash = p.optional("token_hash");
        let kind = p.optional("type");
        let next = p.optional("next");
        let (token_hash, kind) = (token_hash?, kind?);
        if token_hash.is_none() {
            p.field_problem("token_hash", "is required");
        }
        if kind.is_none() {
            p.field_problem("type", "is required");
        }
        Some(Self {
            token_hash: token_hash?,
            r#type: kind?,
            next: next?,
        })
    }
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
        (status = 403, description = "`signup_disabled` (no account and `create_user` false, or sign-ups off) or `provider_disabled` (email or phone sign-in off)", body = crate::error::ErrorBody, example = json!({"error": "Sign-ups are disabled", "code": "signup_disabled"})),
        (status = 429, response = responses::RateLimited),
    )
)]
pub async fn otp(
    req: HttpRequest,
    state: web::Data<AppState>,
    Body(body): Body<OtpBody>,
) -> ApiResult<HttpResponse> {
    // auth-js `signInWithOtp`: `create_user` defaults to true; `data` always sent.
    let mut upstream = json!({
        "create_user": body.create_user.unwrap_or(true),
        "data": body.data.map_or_else(Map::new, |d| d.0),
    });
    if let Some(email) = &body.email {
        upstream["email"] = email.as_str().into();
    }
    if let Some(phone) = &body.phone {
        upstream["phone"] = phone.0.clone().into();
        upstream["channel"] = body.channel.unwrap_or(Channel::Sms).as_str().into();
    }
    let answer = state
        .supabase
        .otp(&upstream, for_client(&req, &state))
        .await
        .map_err(|e| e.into_api(AuthCall::Otp))?;
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
        .verify(&body.to_auth(), for_client(&req, &state))
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
        .verify(&body, for_client(&req, &state))
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
