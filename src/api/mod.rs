//! HTTP resources: one file per resource with its request/response types and short handlers,
//! plus the input-handling rules every resource shares (JSON, query and path errors).

pub(crate) mod admin;
pub(crate) mod billing;
pub(crate) mod categories;
pub(crate) mod common;
pub(crate) mod files;
pub(crate) mod functions;
pub(crate) mod health;
pub mod idempotency;
pub mod input;
pub mod items;
pub(crate) mod keys;
pub(crate) mod mfa;
pub(crate) mod session;
pub(crate) mod signin;
pub mod users;
pub(crate) mod webhooks;

use actix_web::error::{JsonPayloadError, PathError};
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::config::Settings;
use crate::error::ApiError;

/// JSON bodies: size limit (413), `Content-Type` required (415) and syntax errors (400
/// `invalid_json`); the shape is `input::Body`'s to check.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(true)
        .content_type(|mime| {
            mime.subtype() == actix_web::mime::JSON || mime.suffix() == Some(actix_web::mime::JSON)
        })
        .error_handler(move |err, _req| json_error(err, limit).into())
}

pub(crate) fn json_error(err: JsonPayloadError, limit: usize) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::payload_too_large(limit)
        }
        JsonPayloadError::ContentType => ApiError::unsupported_media_type(),
        // Bodies are read as any JSON value first (`input::Body`), so only syntax fails here.
        JsonPayloadError::Deserialize(e) => {
            ApiError::invalid_json(format!("Malformed JSON body: {e}"))
        }
        JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => {
            ApiError::payload_too_large(limit)
        }
        other => ApiError::invalid_json(format!("Unreadable JSON body: {other}")),
    }
}

/// Every `{id}` segment is a UUID; anything else is `invalid_id`.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_err: PathError, _req| ApiError::invalid_id().into())
}

/// Unknown routes answer the JSON 404.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "No route for {} {}",
        req.method(),
        req.path()
    )))
}

/// A component schema and the name it is published under.
pub type NamedSchema = (
    String,
    utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
);

/// One operation: where it is served, by which handler, and (when documented) its OpenAPI
/// operation. Declared once with [`route!`](crate::route), whose `#[utoipa::path]` annotation
/// is the only place a path and method are written: the router and the document both read it.
pub struct Route {
    path: String,
    methods: Vec<Method>,
    /// Adds the handler to its resource; `true`: its `GET` goes through the read cache.
    add: Box<dyn FnOnce(actix_web::Resource, bool) -> actix_web::Resource>,
    document: Option<fn(&mut utoipa::openapi::OpenApi)>,
    schemas: Option<fn(&mut Vec<NamedSchema>)>,
    resource_config: Option<fn(actix_web::Resource, &Settings) -> actix_web::Resource>,
}

/// `route!(items::list)`: the handler `items::list` with the operation its `#[utoipa::path]`
/// annotation declares (path, method, documentation).
#[macro_export]
macro_rules! route {
    ($module:ident :: $handler:ident) => {
        pastey::paste! {
            $crate::api::Route::documented::<$module::[<__path_ $handler>], _, _>($module::$handler)
        }
    };
}

impl Route {
    pub fn documented<P, F, Args>(handler: F) -> Self
    where
        P: utoipa::Path + utoipa::__dev::SchemaReferences + utoipa::__dev::Tags<'static>,
        F: actix_web::Handler<Args> + Clone,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        let methods: Vec<Method> = P::methods().iter().map(actix_method).collect();
        let takes_query = P::operation()
            .parameters
            .iter()
            .flatten()
            .any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Query);
        let mut route = Self::new(P::path(), methods, handler, !takes_query);
        route.document = Some(document::<P>);
        route.schemas = Some(P::schemas);
        route
    }

    /// Served but left out of the document (the docs page's assets, `/metrics`).
    pub fn undocumented<F, Args>(path: &str, method: Method, handler: F) -> Self
    where
        F: actix_web::Handler<Args> + Clone,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        Self::new(path.to_owned(), vec![method], handler, false)
    }

    /// `refuse_query`: the operation documents no query parameter, so any is refused before
    /// the handler runs (an operation with parameters refuses unknown ones in `Params<T>`).
    /// Refusing is the default: a handler cannot forget it.
    fn new<F, Args>(path: String, methods: Vec<Method>, handler: F, refuse_query: bool) -> Self
    where
        F: actix_web::Handler<Args> + Clone,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        let on = methods.clone();
        let template: std::sync::Arc<str> = path.as_str().into();
        Self {
            path,
            methods,
            add: Box::new(move |mut resource, cached| {
                use actix_web::middleware::from_fn;
                for method in on {
                    let get = method == Method::GET;
                    let mut route = web::method(method).to(handler.clone());
                    if cached && get {
                        // The template is known here: looking it up per request would walk
                        // the route map again (regex matching, ~4 k instructions).
                        let template = std::sync::Arc::clone(&template);
                        route = route.wrap(from_fn(move |req, next| {
                            crate::read_cache::serve(std::sync::Arc::clone(&template), req, next)
                        }));
                    }
                    // Outermost: a refused query string never reaches the cache.
                    if refuse_query {
                        route = route.wrap(from_fn(no_query));
                    }
                    resource = resource.route(route);
                }
                resource
            }),
            document: None,
            schemas: None,
            resource_config: None,
        }
    }

    /// A setting for the whole resource (a different body limit, say), read from `Settings`
    /// when the app is built.
    pub fn with_resource(
        mut self,
        config: fn(actix_web::Resource, &Settings) -> actix_web::Resource,
    ) -> Self {
        self.resource_config = Some(config);
        self
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn methods(&self) -> &[Method] {
        &self.methods
    }

    pub fn is_documented(&self) -> bool {
        self.document.is_some()
    }

    /// The schemas this operation names, each under its component name, before they are
    /// merged into the document (where a second schema of the same name would replace the
    /// first unseen).
    pub fn schemas_into(&self, out: &mut Vec<NamedSchema>) {
        if let Some(schemas) = self.schemas {
            schemas(out);
        }
    }

    /// Adds this operation (and the schemas it names) to `doc`.
    pub fn document_into(&self, doc: &mut utoipa::openapi::OpenApi) {
        if let Some(document) = self.document {
            document(doc);
        }
    }
}

fn document<P>(doc: &mut utoipa::openapi::OpenApi)
where
    P: utoipa::Path + utoipa::__dev::SchemaReferences + utoipa::__dev::Tags<'static>,
{
    let mut operation = P::operation();
    let tags = operation.tags.get_or_insert_with(Vec::new);
    tags.extend(P::tags().into_iter().map(str::to_owned));
    doc.paths
        .add_path_operation(P::path(), P::methods(), operation);
    let mut schemas = Vec::new();
    P::schemas(&mut schemas);
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.extend(schemas);
}

/// The query string of an operation that takes none must be empty: a parameter may be an
/// attempt to reach PostgREST's own grammar (`select=`, `or=`), and is refused by name.
async fn no_query(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    input::parse_query::<()>(req.query_string())?;
    next.call(req).await
}

fn actix_method(method: &utoipa::openapi::HttpMethod) -> Method {
    use utoipa::openapi::HttpMethod as H;
    match method {
        H::Get => Method::GET,
        H::Post => Method::POST,
        H::Put => Method::PUT,
        H::Delete => Method::DELETE,
        H::Options => Method::OPTIONS,
        H::Head => Method::HEAD,
        H::Patch => Method::PATCH,
        H::Trace => Method::TRACE,
    }
}

/// Registers `routes` on the app: one resource per path (named after its template, so the
/// metrics middleware reads it without allocating), answering a method it does not serve with
/// the JSON 405 and `Allow`.
pub fn register(cfg: &mut web::ServiceConfig, routes: Vec<Route>, settings: &Settings) {
    let mut by_path: Vec<(String, actix_web::Resource, Vec<Method>)> = Vec::new();
    for route in routes {
        let index = match by_path.iter().position(|(p, _, _)| *p == route.path) {
            Some(i) => i,
            None => {
                let resource = web::resource(route.path.as_str()).name(&route.path);
                by_path.push((route.path.clone(), resource, Vec::new()));
                by_path.len() - 1
            }
        };
        let (_, resource, allow) = &mut by_path[index];
        let mut r = std::mem::replace(resource, web::resource(""));
        if let Some(config) = route.resource_config {
            r = config(r, settings);
        }
        let cached = settings
            .cache
            .routes
            .iter()
            .any(|c| c.route.trim() == route.path);
        *resource = (route.add)(r, cached);
        allow.extend(route.methods);
    }
    // Static paths first: actix tries resources in order and a `{param}` pattern is a regex
    // match (~3 k instructions) that every later request would pay for before reaching its
    // own. Only a static path a template also covers could change hands, and the static one
    // is then the one meant. Among the static paths, the API's own come before the probes
    // and docs: every path tried before the one that matches costs ~200 instructions, and
    // the data routes are asked for far more often. `route_template` sees the same order.
    by_path.sort_by_key(|(path, _, _)| (path.contains('{'), !path.starts_with("/api/")));
    cfg.app_data(web::Data::new(crate::route_template::RouteTemplates::new(
        by_path.iter().map(|(path, _, _)| path.as_str()),
    )));
    for (_, resource, allow) in by_path {
        cfg.service(resource.default_service(web::to(move || {
            let allow = allow.clone();
            async move { Err::<HttpResponse, _>(ApiError::method_not_allowed(&allow)) }
        })));
    }
}

/// `204 No Content`.
pub fn no_content() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

#[cfg(test)]
mod tests {
    use actix_web::{test, web, App, HttpResponse};

    use super::input::{Body, FromBody, JsonFields};
    use super::*;

    struct Named;

    impl FromBody for Named {
        fn from_body(f: &mut JsonFields) -> Option<Self> {
            f.required::<String>("name").map(|_| Named)
        }
    }

    async fn echo(_: Body<Named>) -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    async fn call(req: test::TestRequest) -> (u16, serde_json::Value) {
        let app = test::init_service(
            App::new()
                .app_data(json_config(32))
                .route("/", web::post().to(echo)),
        )
        .await;
        let res = test::call_service(&app, req.uri("/").method(Method::POST).to_request()).await;
        let status = res.status().as_u16();
        let body = test::read_body(res).await;
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }

    fn json_req(body: &'static str) -> test::TestRequest {
        test::TestRequest::default()
            .insert_header(("content-type", "application/json"))
            .set_payload(body)
    }

    #[actix_web::test]
    async fn a_body_over_the_limit_is_413() {
        let (status, body) = call(json_req(
            r#"{"name":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#,
        ))
        .await;
        assert_eq!(status, 413);
        assert_eq!(body["code"], "payload_too_large");
    }

    #[actix_web::test]
    async fn a_non_json_content_type_is_415() {
        let req = test::TestRequest::default()
            .insert_header(("content-type", "text/plain"))
            .set_payload(r#"{"name":"a"}"#);
        let (status, body) = call(req).await;
        assert_eq!(status, 415);
        assert_eq!(body["code"], "unsupported_media_type");
    }

    #[actix_web::test]
    async fn malformed_json_is_400_invalid_json() {
        let (status, body) = call(json_req(r#"{"name":"#)).await;
        assert_eq!(status, 400);
        assert_eq!(body["code"], "invalid_json");
    }

    #[actix_web::test]
    async fn an_unknown_field_is_a_validation_error_naming_the_field() {
        let (status, body) = call(json_req(r#"{"name":"a","x":1}"#)).await;
        assert_eq!(status, 400);
        assert_eq!(body["code"], "validation_failed");
        assert!(body["details"]["fieldErrors"]["x"].is_array(), "{body}");
    }

    #[actix_web::test]
    async fn a_missing_field_is_a_validation_error_naming_the_field() {
        let (status, body) = call(json_req(r#"{}"#)).await;
        assert_eq!(status, 400);
        assert_eq!(body["details"]["fieldErrors"]["name"][0], "is required");
    }
}
