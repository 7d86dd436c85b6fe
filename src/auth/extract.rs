//! Extractors: where the credentials come from, what they come to, and what a handler
//! receives. A bearer token is strict (any failure is 401). A cookie session behaves as under
//! `@supabase/ssr`: refreshed on the server when its access token is expired or about to
//! expire, and "signed out" (cookies cleared) when it is unreadable, fails verification or
//! its refresh is refused.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use super::cookie::SessionTokens;
use super::refresh::RefreshOutcome;
use super::verify::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;
use crate::supabase::gotrue::ForClient;

/// Who a request is from, as its credentials came out (not `postgrest::Caller`, which says
/// whose rights a PostgREST call uses).
#[derive(Clone)]
pub enum Identity {
    /// No credentials at all.
    Anonymous,
    /// A session cookie was sent but is no session: unreadable, its access token failed
    /// verification (`ended: false`), or Auth refused to refresh it (`ended: true`). Its
    /// cookies are cleared on the response.
    SignedOut {
        ended: bool,
    },
    User(AuthUser),
}

/// A signed-in caller; 401 without valid credentials (`session_expired` when a cookie
/// session's refresh was refused).
pub struct User(pub AuthUser);

/// Anonymous allowed. A *bad bearer token* is still 401, never a silent downgrade; a cookie
/// session that is no session is anonymous, as under `@supabase/ssr`.
pub struct MaybeUser(pub Option<AuthUser>);

/// A caller whose `app_metadata.role` is `admin`; 401 without credentials, 403 otherwise.
pub struct Admin(pub AuthUser);

/// A signed-in caller who may change data: as [`User`], plus 403 `anonymous_not_allowed`
/// for an anonymous sign-in unless `business.allow_anonymous_writes` is on.
pub struct Writer(pub AuthUser);

/// A signed-in caller with a permanent account (billing): as [`User`], plus 403
/// `anonymous_not_allowed` for every anonymous sign-in, whatever the write setting.
pub struct Permanent(pub AuthUser);

/// Marks a request whose user came from the session cookie (so a route that learns from
/// Auth that the session is gone can clear the cookies).
#[derive(Clone, Copy)]
pub struct FromCookie;

/// `Authorization: Bearer <token>`, when the header is present.
fn bearer_token(req: &HttpRequest) -> Option<Result<&str, ApiError>> {
    let value = req.headers().get(AUTHORIZATION)?;
    Some((|| {
        // UTF-8 validation is vectorised where `to_str`'s visible-ASCII check goes byte by
        // byte over a ~1 KB token; a non-ASCII token can never verify (nor match a cached
        // one, which was verified), so nothing more is accepted.
        let value = std::str::from_utf8(value.as_bytes()).map_err(|_| {
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
        Ok(token)
    })())
}

fn unix_now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

/// Works out who is calling; schedules cookie writes and deletions on the request. Worked
/// out once per request: the read cache asks before the handler's extractor does, and a
/// cookie session must not be refreshed twice.
pub async fn authenticate(req: &HttpRequest) -> Result<Identity, ApiError> {
    if let Some(Known(identity)) = req.extensions().get::<Known>() {
        return Ok(identity.clone());
    }
    let identity = identify(req).await?;
    req.extensions_mut().insert(Known(identity.clone()));
    Ok(identity)
}

/// The identity [`authenticate`] found for this request.
struct Known(Identity);

async fn identify(req: &HttpRequest) -> Result<Identity, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("application state missing"))?;
    if let Some(token) = bearer_token(req) {
        let user = state.verifier.verify_bearer(token?).await?;
        crate::telemetry::set_request_user(user.id);
        admit(req, state, &user).await?;
        return Ok(Identity::User(user));
    }
    let cookie = &state.session_cookie;
    let Some(presented) = cookie.read(req) else {
        return Ok(Identity::Anonymous);
    };
    let session = match presented {
        Ok(Some(session)) => session,
        Ok(None) => return Ok(Identity::Anonymous),
        Err(e) => {
            tracing::debug!("session cookie is no session: {e}");
            cookie.clear(req);
            return Ok(Identity::SignedOut { ended: false });
        }
    };
    let caller = cookie_caller(req, state, session).await?;
    if let Identity::User(user) = &caller {
        crate::telemetry::set_request_user(user.id);
        req.extensions_mut().insert(FromCookie);
        if let Err(e) = admit(req, state, user).await {
            // Auth no longer has the session: signed out, as a refused refresh would be.
            if e.code() == "session_expired" {
                cookie.clear(req);
            }
            return Err(e);
        }
    }
    Ok(caller)
}

/// The checks a verified caller passes on this operation, by kind: an API key's scope, a
/// third-party issuer's limits, or a Supabase session's `aal2` and session checks.
async fn admit(req: &HttpRequest, state: &AppState, user: &AuthUser) -> Result<(), ApiError> {
    if let Some(grant) = &user.api_key {
        return admit_api_key(req, state, grant);
    }
    if user.third_party {
        return admit_third_party(req, state);
    }
    require_aal2_where_configured(req, state, user).await?;
    check_session_where_configured(req, state, user).await
}

/// An API key may call an operation only with the scope it needs (403 `missing_scope`,
/// naming it), never one no scope grants (403 `api_key_not_allowed`: key management,
/// sessions, billing), and never an `aal2` route (a key is no second factor). Counted per
/// key in the metrics.
fn admit_api_key(
    req: &HttpRequest,
    state: &AppState,
    grant: &super::api_key::KeyGrant,
) -> Result<(), ApiError> {
    grant.requests.inc();
    let pattern = crate::route_template::of(req).unwrap_or_default();
    let Some(scope) = super::api_key::required_scope(req.method(), &pattern) else {
        return Err(ApiError::forbidden(
            "api_key_not_allowed",
            "API keys cannot call this operation; use a user session",
        ));
    };
    if !grant.allows(scope) {
        return Err(ApiError::forbidden(
            "missing_scope",
            format!("This API key lacks the `{scope}` scope"),
        )
        .with_details(serde_json::json!({ "scope": scope })));
    }
    if state.aal2_routes.contains(req.method(), &pattern) {
        return Err(mfa_required());
    }
    Ok(())
}

/// A third-party issuer's token: Auth knows neither its sessions nor its factors, so
/// `auth.check_session_routes` cannot confirm it (its issuer's revocation shows at `exp`) and
/// an `aal2` route is 403 `mfa_required`.
fn admit_third_party(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let pattern = crate::route_template::of(req).unwrap_or_default();
    if state.aal2_routes.contains(req.method(), &pattern) {
        return Err(mfa_required());
    }
    Ok(())
}

/// `auth.check_session_routes`: the token's session must still exist at Auth (asked at most
/// once per `auth.session_check_secs` per session; see `session_check`). A session (or user)
/// that is gone is 401 `session_expired`; Auth unreachable is 502/503/504, never a pass.
async fn check_session_where_configured(
    req: &HttpRequest,
    state: &AppState,
    user: &AuthUser,
) -> Result<(), ApiError> {
    if state.session_routes.is_empty() {
        return Ok(());
    }
    let Some(pattern) = crate::route_template::of(req) else {
        return Ok(());
    };
    if !state.session_routes.contains(req.method(), &pattern) {
        return Ok(());
    }
    let now = unix_now();
    if state.session_checks.fresh(user, now) {
        return Ok(());
    }
    // Boxed: the Auth call inline would make every request's future larger.
    Box::pin(confirm_session(req, state, user, now)).await
}

/// Asks Auth whether `user`'s session still exists; remembers a yes.
async fn confirm_session(
    req: &HttpRequest,
    state: &AppState,
    user: &AuthUser,
    now: i64,
) -> Result<(), ApiError> {
    let client = ForClient(crate::client_ip::of(req));
    match state.supabase.user(user.token(), client).await {
        Ok(_) => {
            state.session_checks.confirm(user, now);
            Ok(())
        }
        Err(crate::supabase::gotrue::AuthError::Auth(f))
            if matches!(f.status.as_u16(), 401 | 403 | 404) =>
        {
            tracing::debug!("session check: Auth answered {}", f.code());
            Err(ApiError::session_expired())
        }
        Err(e) => Err(e.into_api(crate::supabase::gotrue::AuthCall::User)),
    }
}

/// `sign_in.aal2_routes`: an `aal1` caller there is 403 `mfa_required`, unless they have no
/// verified factor to step up with and `aal2_requires_factor` is off (Auth's `GET /user`
/// says which; asked only for `aal1` callers on those routes). `aal` comes from the verified
/// token only.
async fn require_aal2_where_configured(
    req: &HttpRequest,
    state: &AppState,
    user: &AuthUser,
) -> Result<(), ApiError> {
    let sign_in = &state.settings.sign_in;
    if user.aal2 || state.aal2_routes.is_empty() {
        return Ok(());
    }
    let Some(pattern) = crate::route_template::of(req) else {
        return Ok(());
    };
    if !state.aal2_routes.contains(req.method(), &pattern) {
        return Ok(());
    }
    if !sign_in.aal2_requires_factor {
        let client = ForClient(crate::client_ip::of(req));
        let me = state
            .supabase
            .user(user.token(), client)
            .await
            .map_err(|e| e.into_api(crate::supabase::gotrue::AuthCall::User))?;
        let has_verified_factor = me
            .get("factors")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|factors| {
                factors.iter().any(|f| {
                    f.get("status").and_then(serde_json::Value::as_str) == Some("verified")
                })
            });
        if !has_verified_factor {
            return Ok(());
        }
    }
    Err(mfa_required())
}

fn mfa_required() -> ApiError {
    ApiError::forbidden(
        "mfa_required",
        "This action needs a multi-factor authenticated session",
    )
    .with_details(serde_json::json!({
        "hint": "Verify a second factor (Supabase Auth MFA challenge and verify) to get an aal2 session, then retry"
    }))
}

async fn cookie_caller(
    req: &HttpRequest,
    state: &AppState,
    session: SessionTokens,
) -> Result<Identity, ApiError> {
    let cookie = &state.session_cookie;
    let margin = i64::try_from(state.settings.auth.refresh_margin_secs).unwrap_or(i64::MAX);
    match state.verifier.verify(&session.access_token).await {
        // Still valid but close to expiry: refresh ahead, as auth-js does. If that does not
        // work out the current token serves (auth-js keeps such a session too).
        Ok(user) if cookie.write && user.expires_at.saturating_sub(unix_now()) < margin => {
            match refresh(req, state, &session.refresh_token, Retries::No).await {
                RefreshOutcome::Refreshed(new) => {
                    match state.verifier.verify(&new.access_token).await {
                        Ok(new_user) => {
                            cookie.store(req, new.session_json.clone());
                            Ok(Identity::User(new_user))
                        }
                        Err(e) => {
                            // The new refresh token is live: the browser must get it anyway.
                            cookie.store(req, new.session_json.clone());
                            tracing::warn!(
                                "refreshed access token failed verification: {}",
                                e.code()
                            );
                            Ok(Identity::User(user))
                        }
                    }
                }
                RefreshOutcome::Ended | RefreshOutcome::Transient(_) => Ok(Identity::User(user)),
            }
        }
        Ok(user) => Ok(Identity::User(user)),
        // JWKS not loaded yet, or its fetch failing: nothing is known about the session, and
        // the cookies stay.
        Err(e) if e.status().is_server_error() => Err(e),
        // ssr and auth-js decide on `expires_at` and refresh; a token we cannot check for a
        // reason of *our* keys (a rotated-out or revoked signing key, an HS256 token while no
        // secret is configured) is no reason to sign a user with a live refresh token out.
        Err(e)
            if (e.code() == "token_expired" || is_key_problem(state, &e, &session))
                && cookie.write =>
        {
            match refresh(req, state, &session.refresh_token, Retries::AsAuthJs).await {
                RefreshOutcome::Refreshed(new) => {
                    cookie.store(req, new.session_json.clone());
                    match state.verifier.verify(&new.access_token).await {
                        Ok(user) => Ok(Identity::User(user)),
                        Err(e) if e.status().is_server_error() => Err(e),
                        Err(e) => Err(ApiError::upstream_error(format!(
                            "auth: refreshed access token failed verification: {}",
                            e.code()
                        ))),
                    }
                }
                RefreshOutcome::Ended => {
                    cookie.clear(req);
                    Ok(Identity::SignedOut { ended: true })
                }
                // Auth did not decide: the cookies stay as they are.
                RefreshOutcome::Transient(t) => Err(t.to_api_error()),
            }
        }
        Err(e) => {
            tracing::debug!("session cookie's access token rejected: {}", e.code());
            cookie.clear(req);
            Ok(Identity::SignedOut { ended: false })
        }
    }
}

/// The access token failed for a reason of the keys we hold, not of the token: its key is
/// not (or no longer) in the project's JWKS, or it is HS256 and no legacy secret is
/// configured here. A refresh can mend that (Auth signs the new token with its current key).
fn is_key_problem(state: &AppState, e: &ApiError, session: &SessionTokens) -> bool {
    match e.code() {
        "unknown_key" => true,
        "invalid_algorithm" => {
            !state.verifier.accepts_hs256()
                && super::verify::token_alg(&session.access_token).as_deref() == Some("HS256")
        }
        _ => false,
    }
}

/// Refreshes through the single-flight (one grant per refresh token and window); the
/// caller starting a flight is counted against the rules naming `"server-side refresh"`
/// (not those of `POST /api/auth/refresh`, the client's own call).
pub async fn refresh(
    req: &HttpRequest,
    state: &AppState,
    refresh_token: &str,
    retries: Retries,
) -> RefreshOutcome {
    let client = ForClient(crate::client_ip::of(req));
    state
        .refresher
        .refresh(refresh_token, || async {
            use crate::rate_limit::Decision;
            let route = crate::rate_limit::SERVER_REFRESH;
            match state
                .limiter
                .decide_as(req, &actix_web::http::Method::POST, route)
                .await
            {
                Decision::Allowed => {}
                Decision::Limited { retry_after_secs } => {
                    return RefreshOutcome::Transient(super::refresh::Transient::RateLimited(Some(
                        retry_after_secs,
                    )))
                }
                Decision::StoreUnavailable => {
                    return RefreshOutcome::Transient(super::refresh::Transient::Unavailable)
                }
            }
            let body = serde_json::json!({ "refresh_token": refresh_token });
            let budget = match retries {
                Retries::AsAuthJs => {
                    std::time::Duration::from_millis(state.settings.upstream.request_timeout_ms)
                }
                Retries::No => std::time::Duration::ZERO,
            };
            super::refresh::with_retries(budget, || {
                state.supabase.token("refresh_token", &body, client)
            })
            .await
        })
        .await
}

/// Whether a refresh retries a transient failure (see `refresh::with_retries`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Retries {
    /// The access token has expired: the page needs the refresh, so retry as auth-js does.
    AsAuthJs,
    /// Refreshing ahead of expiry: the current token still serves, so one attempt.
    No,
}

type Fut<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

impl FromRequest for Identity {
    type Error = ApiError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await })
    }
}

impl Identity {
    fn required(self) -> Result<AuthUser, ApiError> {
        match self {
            Identity::User(user) => Ok(user),
            Identity::SignedOut { ended: true } => Err(ApiError::session_expired()),
            Identity::SignedOut { ended: false } | Identity::Anonymous => {
                Err(ApiError::unauthorized())
            }
        }
    }
}

impl FromRequest for MaybeUser {
    type Error = ApiError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            Ok(MaybeUser(match authenticate(&req).await? {
                Identity::User(user) => Some(user),
                Identity::Anonymous | Identity::SignedOut { .. } => None,
            }))
        })
    }
}

/// A signed-in caller (401 otherwise) that `admit` then accepts or refuses (403).
fn signed_in<T: 'static>(
    req: &HttpRequest,
    admit: fn(&HttpRequest, AuthUser) -> Result<T, ApiError>,
) -> Fut<T> {
    let req = req.clone();
    Box::pin(async move {
        let user = authenticate(&req).await?.required()?;
        admit(&req, user)
    })
}

impl FromRequest for User {
    type Error = ApiError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        signed_in(req, |_, user| Ok(User(user)))
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        signed_in(req, |_, user| {
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

impl FromRequest for Writer {
    type Error = ApiError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        signed_in(req, |req, user| {
            let allowed = req
                .app_data::<web::Data<AppState>>()
                .is_some_and(|s| s.settings.business.allow_anonymous_writes);
            if user.is_anonymous && !allowed {
                return Err(ApiError::forbidden(
                    "anonymous_not_allowed",
                    "Anonymous users cannot change data; sign up to keep your work",
                ));
            }
            Ok(Writer(user))
        })
    }
}

impl FromRequest for Permanent {
    type Error = ApiError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        signed_in(req, |_, user| {
            if user.is_anonymous {
                return Err(ApiError::forbidden(
                    "anonymous_not_allowed",
                    "Anonymous users have no billing; sign up first",
                ));
            }
            Ok(Permanent(user))
        })
    }
}
