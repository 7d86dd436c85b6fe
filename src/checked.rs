//! What the settings that name operations come to once checked against the route table:
//! compiled where the application is built (`server::check`) and handed to whoever needs them,
//! so configuration itself stays data.

use actix_web::http::Method;

use crate::config::ConfigError;
use crate::rate_limit::LimitRules;
use crate::read_cache::CacheRoutes;

/// What the settings come to against the route table: the settings that name operations,
/// checked and compiled once, where the application is built (configuration itself is
/// data and knows no routes).
pub struct Checked {
    pub rules: LimitRules,
    pub aal2_routes: Aal2Routes,
    pub cache_routes: CacheRoutes,
    /// `auth.check_session_routes`.
    pub session_routes: RouteSet,
}

/// `sign_in.aal2_routes`.
pub type Aal2Routes = RouteSet;

/// A setting that lists operations (`sign_in.aal2_routes`, `auth.check_session_routes`) as
/// `(method, route template)` pairs, checked against the route table once where the app is
/// built.
#[derive(Debug, Default)]
pub struct RouteSet(Vec<(Method, String)>);

impl RouteSet {
    /// `sign_in.aal2_routes`.
    pub fn compile(specs: &[String], served: &[(Method, String)]) -> Result<Self, ConfigError> {
        Self::compile_setting("sign_in.aal2_routes", specs, served)
    }

    /// Each spec (`"METHOD /template"`, as /openapi.json lists it) must name one of `served`;
    /// a problem names `setting`.
    pub fn compile_setting(
        setting: &str,
        specs: &[String],
        served: &[(Method, String)],
    ) -> Result<Self, ConfigError> {
        let mut routes = Vec::with_capacity(specs.len());
        for spec in specs {
            let found = spec.trim().split_once(' ').and_then(|(m, p)| {
                served
                    .iter()
                    .find(|(sm, sp)| sm.as_str() == m && sp == p.trim())
                    .cloned()
            });
            let Some(route) = found else {
                return Err(ConfigError::invalid(
                    setting,
                    format!("`{spec}` is no route supagate serves (write \"METHOD /path/{{param}}\" as /openapi.json lists it)"),
                ));
            };
            routes.push(route);
        }
        Ok(Self(routes))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, method: &Method, template: &str) -> bool {
        self.0.iter().any(|(m, p)| m == method && p == template)
    }
}
