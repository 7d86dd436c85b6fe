//! Extractors: where the token comes from and what a handler receives.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::{AUTHORIZATION, COOKIE};
use actix_web::{web, FromRequest, HttpRequest};

use super::cookie::{cookie_pairs, is_session_cookie, read_session, CookieSession};
use super::verify::AuthUser;
use crate::error::ApiError;
use crate::middleware::set_logged_user;
use crate::state::AppState;

/// A signed-in caller; 401 without valid credentials.
pub struct User(pub AuthUser);

/// Anonymous allowed — but a *bad* token is still 401, never a silent downgrade.
pub struct MaybeUser(pub Option<AuthUser>);

/// A caller whose `app_metadata.role` is `admin`; 401 without credentials, 403 otherwise.
pub struct Admin(pub AuthUser);

/// The raw credential of a request: `Authorization: Bearer` (borrowed from the header),
/// else the session cookie.
fn presented_token<'r>(
    req: &'r HttpRequest,
    cookie_name: &str,
) -> Result<Option<Cow<'r, str>>, ApiError> {
    if let Some(value) = req.headers().get(AUTHORIZATION) {
        let value = value.to_str().map_err(|_| {
            ApiError::invalid_token("invalid_token", "Malformed Authorization header")
        })?;
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(ApiError::invalid_token(
                "invalid_token",
                "Authorization must be `Bearer <token>`",
            ));
        }
        return Ok(Some(Cow::Borrowed(token)));
    }
    Ok(cookie_session(req, cookie_name)?.map(|s| Cow::Owned(s.access_token)))
}

/// The `@supabase/ssr` session in the request's cookies, if any. A cookie that is present but
/// unreadable is a bad credential (401), not an anonymous request.
pub fn cookie_session(
    req: &HttpRequest,
    cookie_name: &str,
) -> Result<Option<CookieSession>, ApiError> {
    let headers: Vec<&str> = req
        .headers()
        .get_all(COOKIE)
        .filter_map(|v| v.to_str().ok())
        .collect();
    if headers.is_empty() {
        return Ok(None);
    }
    read_session(cookie_name, headers.iter().flat_map(|h| cookie_pairs(h))).map_err(|e| {
        ApiError::invalid_token("invalid_session_cookie", "The session cookie is unreadable")
            .with_internal(e)
    })
}

/// Names of the session cookies (`<name>`, `<name>.N`) the request carries, so a write can
/// expire the ones it does not replace.
pub fn present_session_cookies(req: &HttpRequest, cookie_name: &str) -> Vec<String> {
    req.headers()
        .get_all(COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie_pairs)
        .filter(|(name, _)| is_session_cookie(cookie_name, name))
        .map(|(name, _)| name.to_owned())
        .collect()
}

async fn authenticate(req: HttpRequest) -> Result<Option<AuthUser>, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("application state missing"))?;
    let Some(token) = presented_token(&req, &state.session_cookie.name)? else {
        return Ok(None);
    };
    let user = state.verifier.verify(&token).await?;
    set_logged_user(&req, user.id);
    Ok(Some(user))
}

type Fut<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

impl FromRequest for MaybeUser {
    type Error = ApiError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(req).await.map(MaybeUser) })
    }
}

impl FromRequest for User {
    type Error = ApiError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            authenticate(req)
                .await?
                .map(User)
                .ok_or_else(ApiError::unauthorized)
        })
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let user = authenticate(req)
                .await?
                .ok_or_else(ApiError::unauthorized)?;
            if user.is_admin {
                Ok(Admin(user))
            } else {
                Err(ApiError::forbidden(
                    "forbidden",
                    "Administrator role required",
                ))
            }
        })
    }
}
