//! How supagate talks to Supabase: the PostgREST and Auth endpoints, their keys and their
//! error bodies. No business rules live here.

pub(crate) mod api_keys;
pub mod error;
pub mod functions;
pub mod gotrue;
pub(crate) mod gotrue_admin;
pub mod item_limit;
pub mod postgrest;
pub mod queues;
pub mod storage;
pub(crate) mod stripe_data;

use crate::auth::AuthUser;
use crate::config::{ClientIpForwarding, Secret, Settings};
use crate::http_client::{build_client, Call, HttpClient, JsonApi, UpstreamError};

/// Clients for each Supabase surface, all sharing one pooled [`HttpClient`].
#[derive(Clone, Debug)]
pub struct Supabase {
    /// `{url}/rest/v1` with the publishable/anon key: every call made for a user.
    pub rest: JsonApi,
    /// `{url}/auth/v1` with the publishable/anon key: the signing keys and the probe.
    pub gotrue: JsonApi,
    /// `{url}/auth/v1` for calls made for a client (sign-in flows, refresh, user, MFA): with
    /// the secret key when that is how `Sb-Forwarded-For` is honoured, else as `gotrue`.
    pub(crate) gotrue_client: JsonApi,
    /// Whether client calls carry `Sb-Forwarded-For` (`Settings::client_ip_forwarding`).
    pub(crate) forward_client_ip: bool,
    /// The bearer of a client call made without a user token: `gotrue_client`'s own key, as
    /// supabase-js's Auth client sends it.
    client_key: Secret,
    /// `{url}/rest/v1` with the secret/service-role key: server-side paths only (webhooks).
    pub rest_service: Option<JsonApi>,
    /// `{url}/auth/v1` with the secret/service-role key: the Auth admin API only.
    pub gotrue_admin: Option<JsonApi>,
    /// `{url}/storage/v1` with the publishable/anon key: signed URLs, always as the caller.
    pub storage: JsonApi,
    /// `{url}/functions/v1` with the publishable/anon key: Edge Functions, as the caller.
    pub functions: JsonApi,
    anon_key: Secret,
    service_key: Option<Secret>,
    /// The shared client itself, for a call to something other than Supabase (a job's
    /// external API), so it is pooled and bounded with the rest.
    http: HttpClient,
}

/// Outcome of one readiness probe.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ReadyCheck {
    pub ok: bool,
    /// The HTTP status the probe got, when it got one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 100, maximum = 599)]
    pub status: Option<u16>,
    /// Why the probe failed (connection error, timeout), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Supabase {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let client = build_client(&settings.upstream)?;
        let base = settings.supabase_base();
        let cap = settings.upstream.max_body_bytes;
        let anon = &settings.supabase.anon_key;
        let service = settings.supabase.service_role_key.as_ref();
        let rest = format!("{base}/rest/v1");
        let auth = format!("{base}/auth/v1");
        let forwarding = settings.client_ip_forwarding();
        let client_key = match (forwarding, service) {
            (ClientIpForwarding::WithSecretKey, Some(secret)) => secret,
            _ => anon,
        };
        Ok(Self {
            rest: JsonApi::new("rest", client.clone(), &rest, Some(anon), cap)?,
            gotrue: JsonApi::new("auth", client.clone(), &auth, Some(anon), cap)?,
            gotrue_client: JsonApi::new("auth", client.clone(), &auth, Some(client_key), cap)?,
            forward_client_ip: forwarding.is_on(),
            client_key: client_key.clone(),
            rest_service: service
                .map(|k| JsonApi::new("rest", client.clone(), &rest, Some(k), cap))
                .transpose()?,
            gotrue_admin: service
                .map(|k| JsonApi::new("auth", client.clone(), &auth, Some(k), cap))
                .transpose()?,
            storage: JsonApi::new(
                "storage",
                client.clone(),
                format!("{base}/storage/v1"),
                Some(anon),
                cap,
            )?,
            functions: JsonApi::new(
                "functions",
                client.clone(),
                format!("{base}/functions/v1"),
                Some(anon),
                cap,
            )?,
            anon_key: anon.clone(),
            service_key: service.cloned(),
            http: client,
        })
    }

    /// The pooled client every upstream call goes through.
    pub fn http_client(&self) -> &HttpClient {
        &self.http
    }

    /// The bearer for a call made without a user: the anon key itself, as supabase-js does
    /// (the gateway accepts `Bearer <same key>` for legacy and `sb_publishable_` keys alike).
    pub fn anon_bearer(&self, request: Call) -> Call {
        request.bearer(self.anon_key.expose())
    }

    /// The caller's verified token as the bearer, so the upstream applies RLS as that user.
    pub fn as_user(&self, request: Call, user: &AuthUser) -> Call {
        match user.bearer_header() {
            Some(value) => request.header(http::header::AUTHORIZATION, value),
            None => request.bearer(user.token()),
        }
    }

    /// The bearer of a client Auth call made without a user token (`gotrue_client`'s key).
    pub(crate) fn client_bearer(&self, request: Call) -> Call {
        request.bearer(self.client_key.expose())
    }

    /// The bearer for service-role calls (`Authorization` equal to `apikey`).
    pub fn service_bearer(&self, request: Call) -> Call {
        match &self.service_key {
            Some(key) => request.bearer(key.expose()),
            None => request,
        }
    }

    /// Probes Auth `/health` and the PostgREST root concurrently. Any non-5xx answer from
    /// PostgREST counts as up: newer platforms restrict the root document to the secret key.
    pub async fn readiness(&self) -> (ReadyCheck, ReadyCheck) {
        let auth = async {
            let req = self.anon_bearer(self.gotrue.request(http::Method::GET, "/health"));
            probe(&self.gotrue, req, |s| s.is_success()).await
        };
        let rest = async {
            let req = self.anon_bearer(self.rest.request(http::Method::GET, "/"));
            probe(&self.rest, req, |s| !s.is_server_error()).await
        };
        tokio::join!(auth, rest)
    }
}

async fn probe(
    api: &JsonApi,
    request: Call,
    healthy: impl Fn(http::StatusCode) -> bool,
) -> ReadyCheck {
    match api.send(request).await {
        Ok(res) => {
            let status = res.status();
            ReadyCheck {
                ok: healthy(status),
                status: Some(status.as_u16()),
                error: (!healthy(status)).then(|| format!("answered {status}")),
            }
        }
        Err(e) => ReadyCheck {
            ok: false,
            status: None,
            error: Some(match e {
                UpstreamError::Timeout { .. } => "timed out".to_owned(),
                _ => "unreachable".to_owned(),
            }),
        },
    }
}
