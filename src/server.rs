//! Builds the application: middleware order, the route table (one readable list), and the
//! HTTP server with its limits and graceful shutdown.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::http::{header, Method};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::api::{
    self, billing, categories, health, items, keys, mfa, session, signin, users, webhooks, Route,
};
use crate::checked::{Aal2Routes, Checked};
use crate::config::{ConfigError, Settings};
use crate::middleware::{request_context, REQUEST_ID};
use crate::rate_limit::LimitRules;
use crate::read_cache::CacheRoutes;
use crate::state::AppState;
use crate::trace_context::{TRACEPARENT, TRACESTATE};
use crate::{docs, openapi, route};

/// A bound, not yet running server. Tests build it on port 0 and read the port back.
pub struct Application {
    port: u16,
    server: Server,
    /// The separate `/metrics` listener, when `metrics.listen` names one.
    metrics: Option<(u16, Server)>,
    state: AppState,
}

impl Application {
    /// Checks the settings against the route table ([`check`]) and builds.
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let checked = check(&settings)?;
        Self::build_checked(settings, checked)
    }

    /// Builds with settings [`check`] has already made into `checked`.
    pub fn build_checked(settings: Settings, checked: Checked) -> anyhow::Result<Self> {
        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {}:{}: {e}",
                    settings.server.host,
                    settings.server.port
                )
            })?;
        let port = listener.local_addr()?.port();
        let metrics = match settings.metrics.listen.trim() {
            "" => None,
            addr if settings.metrics.enabled => {
                let listener = TcpListener::bind(addr)
                    .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {addr}: {e}"))?;
                let port = listener.local_addr()?.port();
                let server = HttpServer::new(|| {
                    App::new().route("/metrics", web::get().to(crate::metrics::handler))
                })
                .workers(1)
                .listen(listener)?
                .run();
                Some((port, server))
            }
            _ => None,
        };
        let state = AppState::new(settings, checked)?;
        let server = serve(listener, state.clone())?;
        Ok(Self {
            port,
            server,
            metrics,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate metrics listener, if configured.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Runs until SIGINT/SIGTERM, then lets in-flight requests finish (up to the drain
    /// timeout) and returns.
    pub async fn run(self) -> std::io::Result<()> {
        match self.metrics {
            Some((_, metrics)) => {
                // Both servers must be polled to run; when the main one has drained, the
                // metrics listener has nothing left to report and is stopped too.
                let handle = metrics.handle();
                let main = async {
                    let result = self.server.await;
                    handle.stop(true).await;
                    result
                };
                let (result, _) = futures_util::future::join(main, metrics).await;
                result
            }
            None => self.server.await,
        }
    }
}

fn serve(listener: TcpListener, state: AppState) -> anyhow::Result<Server> {
    let settings = state.settings.clone();
    // The limiter is its own app data: its middleware needs nothing else of the state.
    let limiter = web::Data::from(Arc::clone(&state.limiter));
    let trusted = web::Data::new(crate::client_ip::TrustedProxies::from_settings(
        &state.settings,
    ));
    let read_cache = web::Data::from(Arc::clone(&state.read_cache));
    let data = web::Data::new(state);
    let server_settings = &settings.server;
    let mut server = HttpServer::new({
        let settings = settings.clone();
        move || {
            App::new()
                .app_data(data.clone())
                .app_data(limiter.clone())
                .app_data(trusted.clone())
                .app_data(read_cache.clone())
                .app_data(api::json_config(settings.server.body_limit_bytes))
                .app_data(api::path_config())
                .configure(|cfg| configure(cfg, &settings))
                .default_service(web::to(api::not_found))
                // Innermost: a refused request never reaches the body deadline or the
                // handler, and its 429 still gets CORS, the request id and the log line.
                .wrap(from_fn(crate::rate_limit::enforce))
                .wrap(from_fn(crate::body_timeout::body_deadline))
                // Registered last so it runs first: every response, errors included, gets a
                // request id, the security headers and an access log line.
                .wrap(cors(&settings))
                .wrap(from_fn(request_context))
        }
    })
    .backlog(server_settings.backlog)
    .max_connections(server_settings.max_connections)
    .client_request_timeout(Duration::from_millis(
        server_settings.client_request_timeout_ms,
    ))
    .keep_alive(Duration::from_secs(server_settings.keep_alive_secs))
    .shutdown_timeout(server_settings.shutdown_timeout_secs);
    if server_settings.workers > 0 {
        server = server.workers(server_settings.workers);
    }
    Ok(server.listen(listener)?.run())
}

/// The route table: every operation supagate serves, in one list. Each `route!` names a
/// handler whose `#[utoipa::path]` annotation declares its path and method; the router and the
/// OpenAPI document are both built from this list.
pub fn routes() -> Vec<Route> {
    // On lines of their own: the grouped import above is the context the extending guide's
    // patch keeps.
    use crate::api::admin;
    use crate::api::{files, functions};
    vec![
        route!(health::health),
        route!(health::ready),
        route!(openapi::handler),
        route!(docs::page),
        Route::undocumented("/docs/docs.js", Method::GET, docs::script),
        Route::undocumented("/docs/docs.css", Method::GET, docs::style),
        route!(items::list),
        route!(items::create),
        route!(items::get),
        route!(items::replace),
        route!(items::patch),
        route!(items::delete),
        route!(categories::list),
        route!(categories::create),
        route!(categories::get),
        route!(users::list),
        route!(users::create),
        route!(users::get),
        route!(users::replace),
        route!(users::delete),
        route!(users::stats),
        route!(session::register),
        route!(session::login),
        route!(session::refresh),
        route!(session::logout),
        route!(session::user),
        route!(session::recover),
        route!(session::anonymous),
        route!(session::update_user),
        route!(signin::otp),
        route!(signin::verify),
        route!(signin::confirm),
        route!(signin::oauth),
        route!(signin::callback),
        route!(mfa::enroll),
        route!(mfa::list),
        route!(mfa::unenroll),
        route!(mfa::challenge),
        route!(mfa::verify),
        route!(billing::subscription),
        route!(admin::audit),
        route!(keys::create),
        route!(keys::list),
        route!(keys::get),
        route!(keys::revoke),
        Route::undocumented("/.well-known/jwks.json", Method::GET, keys::jwks),
        Route::undocumented(
            "/.well-known/openid-configuration",
            Method::GET,
            keys::discovery,
        ),
        route!(files::upload),
        route!(files::download),
        route!(functions::invoke).with_resource(|resource, settings| {
            resource.app_data(functions::payload_config(
                settings.functions.body_limit_bytes,
            ))
        }),
        // Stripe signs the raw bytes, so this resource reads them itself under its own limit.
        route!(webhooks::stripe).with_resource(|resource, settings| {
            resource.app_data(webhooks::payload_config(
                settings.server.webhook_body_limit_bytes,
            ))
        }),
    ]
}

/// `(method, route template)` of every operation [`routes`] serves.
pub fn served_operations() -> Vec<(Method, String)> {
    routes()
        .iter()
        .flat_map(|r| r.methods().iter().map(|m| (m.clone(), r.path().to_owned())))
        .collect()
}

/// Checks every setting that names an operation (`[[rate_limit.rules]]`,
/// `sign_in.aal2_routes`, `auth.check_session_routes`); the first problem is one line naming
/// the setting.
pub fn check(settings: &Settings) -> Result<Checked, ConfigError> {
    let served = served_operations();
    Ok(Checked {
        rules: LimitRules::compile(&settings.rate_limit, &served)?,
        aal2_routes: Aal2Routes::compile(&settings.sign_in.aal2_routes, &served)?,
        cache_routes: CacheRoutes::compile(&settings.cache, &served)?,
        session_routes: crate::checked::RouteSet::compile_setting(
            "auth.check_session_routes",
            &settings.auth.check_session_routes,
            &served,
        )?,
    })
}

/// Registers [`routes`] on the app, plus `/metrics` when it is served on the main listener.
pub fn configure(cfg: &mut web::ServiceConfig, settings: &Settings) {
    let mut all = routes();
    if settings.metrics.enabled && settings.metrics.listen.trim().is_empty() {
        all.push(Route::undocumented(
            "/metrics",
            Method::GET,
            crate::metrics::handler,
        ));
    }
    api::register(cfg, all, settings);
}

/// `(METHOD, path)` of every documented operation, read from the same list [`configure`]
/// serves, so the OpenAPI document can be checked against what is really routed.
pub fn route_table() -> Vec<(String, String)> {
    routes()
        .iter()
        .filter(|r| r.is_documented())
        .flat_map(|r| {
            r.methods()
                .iter()
                .map(|m| (m.to_string(), r.path().to_owned()))
        })
        .collect()
}

fn cors(settings: &Settings) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            REQUEST_ID,
            // A browser app with tracing of its own may continue its trace through us.
            TRACEPARENT,
            TRACESTATE,
            api::idempotency::IDEMPOTENCY_KEY,
        ])
        .expose_headers([
            header::CONTENT_RANGE,
            header::HeaderName::from_static("x-total-count"),
            REQUEST_ID,
            header::RETRY_AFTER,
            crate::rate_limit::RATELIMIT,
            crate::rate_limit::RATELIMIT_POLICY,
            api::idempotency::IDEMPOTENT_REPLAYED,
        ])
        .supports_credentials()
        .max_age(settings.cors.max_age_secs);
    for origin in &settings.cors.allowed_origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}
