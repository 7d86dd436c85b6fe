//! Server-side refresh of cookie sessions, as `@supabase/ssr` does it on the server: one
//! `refresh_token` grant per refresh token however many requests carry it (single-flight),
//! and its outcome kept for a short window so requests that arrive just after it get the
//! same new session instead of spending the token again (Auth's reuse interval is 10 s on
//! the hosted platform).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;

use super::cache::{digest, TokenDigest};
use crate::error::ApiError;
use crate::http_client::UpstreamError;
use crate::supabase::gotrue::AuthError;

/// A new session from Auth.
pub struct Refreshed {
    /// Auth's session object as `@supabase/ssr` stores it (see [`stored_session`]).
    pub session_json: Arc<str>,
    pub access_token: String,
}

/// Why a refresh did not produce a session although the session may still be alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transient {
    /// Auth refused, failed or answered 5xx: 503.
    Unavailable,
    /// Auth did not answer in time: 504.
    Timeout,
    /// Auth (or our own limiter) rate-limited the refresh: 429, with `Retry-After` when the
    /// wait is known.
    RateLimited(Option<u64>),
    /// Auth answered 2xx with something that is not a session: 502.
    BadAnswer,
}

impl Transient {
    pub fn to_api_error(self) -> ApiError {
        match self {
            Self::Unavailable => ApiError::upstream_unavailable("auth: session refresh failed"),
            Self::Timeout => ApiError::upstream_timeout("auth: session refresh timed out"),
            Self::RateLimited(secs) => ApiError::rate_limited_after(secs),
            Self::BadAnswer => ApiError::upstream_error("auth: refresh answered without a session"),
        }
    }
}

/// What a refresh came to; shared by every request of the flight.
#[derive(Clone)]
pub enum RefreshOutcome {
    Refreshed(Arc<Refreshed>),
    /// Auth refused the refresh token (`refresh_token_not_found`, `..._already_used`,
    /// `session_not_found`, `session_expired`, ...): the session is over.
    Ended,
    /// Nothing was decided; the session stays as it is.
    Transient(Transient),
}

impl RefreshOutcome {
    /// Classifies the answer of `POST /token?grant_type=refresh_token`.
    pub fn from_grant(result: Result<bytes::Bytes, AuthError>) -> Self {
        match result {
            Ok(session) => match stored_session(&session) {
                Some(refreshed) => Self::Refreshed(Arc::new(refreshed)),
                None => Self::Transient(Transient::BadAnswer),
            },
            Err(AuthError::Auth(f)) if f.is_rate_limit() => {
                Self::Transient(Transient::RateLimited(f.retry_after))
            }
            Err(AuthError::Auth(f)) => {
                tracing::debug!(
                    "session refresh refused: {} `{}`",
                    f.status.as_u16(),
                    f.code()
                );
                Self::Ended
            }
            Err(AuthError::Upstream(e)) => {
                tracing::warn!("session refresh failed: {e}");
                Self::Transient(match e {
                    UpstreamError::Timeout { .. } => Transient::Timeout,
                    UpstreamError::Status { status, .. }
                        if status == http::StatusCode::GATEWAY_TIMEOUT =>
                    {
                        Transient::Timeout
                    }
                    UpstreamError::InvalidBody { .. } | UpstreamError::TooLarge { .. } => {
                        Transient::BadAnswer
                    }
                    _ => Transient::Unavailable,
                })
            }
        }
    }
}

/// auth-js's first back-off (`_refreshAccessToken`): 200 ms, doubling after each attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Whether auth-js retries a refresh that ended so (`isAuthRetryableFetchError`): no answer
/// at all, or 500–504 and 520–530 (gateways' "origin unreachable" family).
fn is_retryable(result: &Result<bytes::Bytes, AuthError>) -> bool {
    match result {
        Err(AuthError::Upstream(UpstreamError::Unavailable { .. })) => true,
        Err(AuthError::Upstream(UpstreamError::Status { status, .. })) => {
            matches!(status.as_u16(), 500..=504 | 520..=530)
        }
        _ => false,
    }
}

/// Runs `grant` as auth-js retries a refresh: a failure it counts as transient is tried
/// again after 200 ms, 400 ms, 800 ms, … as long as the next attempt still starts within
/// `budget` (auth-js: 30 s; here one upstream timeout, so a page waits no longer than one
/// slow call would make it). The whole run is bounded by `budget` too: past it, 504. A
/// zero budget is one attempt, bounded by the call's own timeout only.
pub async fn with_retries<F, Fut>(budget: Duration, mut grant: F) -> RefreshOutcome
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bytes::Bytes, AuthError>>,
{
    if budget.is_zero() {
        return RefreshOutcome::from_grant(grant().await);
    }
    let started = tokio::time::Instant::now();
    let attempts = async {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let result = grant().await;
            if !is_retryable(&result) || started.elapsed() + backoff >= budget {
                return RefreshOutcome::from_grant(result);
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    };
    tokio::time::timeout(budget, attempts)
        .await
        .unwrap_or(RefreshOutcome::Transient(Transient::Timeout))
}

/// Auth's session answer as auth-js stores it (`_saveSession` of `_sessionResponse`):
/// `JSON.stringify` of the body, so Auth's own text when it already has `expires_at` and no
/// `weak_password` (the usual case: the cookie is then byte-identical to ssr's); otherwise
/// `expires_at` is filled in from `expires_in` and `weak_password` dropped. `None` when the
/// body is not a session.
pub fn stored_session(body: &[u8]) -> Option<Refreshed> {
    let mut session: Value = serde_json::from_slice(body).ok()?;
    let obj = session.as_object_mut()?;
    let access_token = obj.get("access_token")?.as_str()?.to_owned();
    if obj.contains_key("expires_at") && !obj.contains_key("weak_password") {
        let text = std::str::from_utf8(body).ok()?.trim();
        return Some(Refreshed {
            session_json: text.into(),
            access_token,
        });
    }
    obj.remove("weak_password");
    if !obj.contains_key("expires_at") {
        if let Some(expires_in) = obj.get("expires_in").and_then(Value::as_i64) {
            let now = jsonwebtoken::get_current_timestamp() as i64;
            obj.insert("expires_at".into(), Value::from(now + expires_in));
        }
    }
    Some(Refreshed {
        session_json: session.to_string().into(),
        access_token,
    })
}

struct Flight {
    started: Instant,
    outcome: tokio::sync::OnceCell<RefreshOutcome>,
}

/// The in-flight and recent refreshes, keyed by the SHA-256 of the refresh token (the token
/// itself is never kept). Entries live for `keep` after they start; a transient failure is
/// dropped as soon as its flight ends, so the next request tries again.
pub struct Refresher {
    flights: Mutex<HashMap<TokenDigest, Arc<Flight>>>,
    keep: Duration,
}

impl Refresher {
    pub fn new(keep: Duration) -> Self {
        Self {
            flights: Mutex::new(HashMap::new()),
            keep,
        }
    }

    /// The outcome of refreshing `refresh_token`: `grant` runs at most once per token and
    /// window, every concurrent or later caller in the window gets its outcome.
    pub async fn refresh<F, Fut>(&self, refresh_token: &str, grant: F) -> RefreshOutcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = RefreshOutcome>,
    {
        let key = digest(refresh_token);
        let flight = {
            let mut flights = self.flights.lock();
            let now = Instant::now();
            flights.retain(|_, f| {
                !f.outcome.initialized() || now.duration_since(f.started) < self.keep
            });
            Arc::clone(flights.entry(key).or_insert_with(|| {
                Arc::new(Flight {
                    started: now,
                    outcome: tokio::sync::OnceCell::new(),
                })
            }))
        };
        let outcome = flight.outcome.get_or_init(grant).await.clone();
        if matches!(outcome, RefreshOutcome::Transient(_)) {
            let mut flights = self.flights.lock();
            if flights.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                flights.remove(&key);
            }
        }
        outcome
    }

    /// Flights currently remembered (for tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.flights.lock().len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn refreshed(token: &str) -> RefreshOutcome {
        RefreshOutcome::Refreshed(Arc::new(Refreshed {
            session_json: "{}".into(),
            access_token: token.to_owned(),
        }))
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_grant_and_late_ones_reuse_it() {
        let refresher = Arc::new(Refresher::new(Duration::from_secs(10)));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (refresher, calls) = (Arc::clone(&refresher), Arc::clone(&calls));
            tasks.push(tokio::spawn(async move {
                refresher
                    .refresh("rt", || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        refreshed("new")
                    })
                    .await
            }));
        }
        for task in tasks {
            let RefreshOutcome::Refreshed(r) = task.await.unwrap() else {
                panic!("every caller gets the session");
            };
            assert_eq!(r.access_token, "new");
        }
        let late = refresher
            .refresh("rt", || async { refreshed("other") })
            .await;
        assert!(matches!(late, RefreshOutcome::Refreshed(r) if r.access_token == "new"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    fn failed(status: u16) -> Result<bytes::Bytes, AuthError> {
        Err(AuthError::Upstream(UpstreamError::Status {
            upstream: "auth",
            status: http::StatusCode::from_u16(status).unwrap(),
            body: bytes::Bytes::new(),
        }))
    }

    /// The attempts' start times (ms, on tokio's paused clock) for a grant that answers with
    /// each of `answers` in turn.
    async fn attempts(budget_ms: u64, answers: Vec<u16>) -> (Vec<u64>, RefreshOutcome) {
        let start = tokio::time::Instant::now();
        let times = std::sync::Mutex::new(Vec::new());
        let answers = std::sync::Mutex::new(answers.into_iter());
        let outcome = with_retries(Duration::from_millis(budget_ms), || {
            times
                .lock()
                .unwrap()
                .push(start.elapsed().as_millis() as u64);
            let next = answers.lock().unwrap().next().unwrap_or(503);
            async move {
                if next == 200 {
                    Ok(bytes::Bytes::from_static(
                        br#"{"access_token":"a","expires_at":1}"#,
                    ))
                } else {
                    failed(next)
                }
            }
        })
        .await;
        (times.into_inner().unwrap(), outcome)
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_refresh_is_retried_on_auth_js_schedule_within_the_budget() {
        // 200, 400, 800, 1600, 3200 ms apart while the next start is inside 10 s.
        let (times, outcome) = attempts(10_000, vec![]).await;
        assert_eq!(times, [0, 200, 600, 1400, 3000, 6200]);
        assert!(matches!(
            outcome,
            RefreshOutcome::Transient(Transient::Unavailable)
        ));
        // One blip, then Auth answers: the session comes through.
        let (times, outcome) = attempts(10_000, vec![502, 200]).await;
        assert_eq!(times, [0, 200]);
        assert!(matches!(outcome, RefreshOutcome::Refreshed(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn only_what_auth_js_counts_as_transient_is_retried() {
        for status in [400, 429, 505, 519] {
            let (times, _) = attempts(10_000, vec![status]).await;
            assert_eq!(times, [0], "{status}");
        }
        for status in [500, 504, 520, 530] {
            let (times, _) = attempts(10_000, vec![status, 200]).await;
            assert_eq!(times, [0, 200], "{status}");
        }
    }

    #[tokio::test]
    async fn a_transient_failure_is_not_remembered() {
        let refresher = Refresher::new(Duration::from_secs(10));
        let first = refresher
            .refresh("rt", || async {
                RefreshOutcome::Transient(Transient::Unavailable)
            })
            .await;
        assert!(matches!(first, RefreshOutcome::Transient(_)));
        assert!(refresher.is_empty());
        let second = refresher.refresh("rt", || async { refreshed("new") }).await;
        assert!(matches!(second, RefreshOutcome::Refreshed(_)));
    }

    #[tokio::test]
    async fn an_outcome_is_kept_only_for_the_window() {
        let refresher = Refresher::new(Duration::from_secs(10));
        refresher
            .refresh("rt", || async { RefreshOutcome::Ended })
            .await;
        // `Instant` is the std clock: a short window, waited for real.
        let short = Refresher::new(Duration::from_millis(20));
        short
            .refresh("rt", || async { RefreshOutcome::Ended })
            .await;
        std::thread::sleep(Duration::from_millis(30));
        let again = short.refresh("rt", || async { refreshed("new") }).await;
        assert!(matches!(again, RefreshOutcome::Refreshed(_)));
        let cached = refresher.refresh("rt", || async { refreshed("new") }).await;
        assert!(matches!(cached, RefreshOutcome::Ended));
    }
}
