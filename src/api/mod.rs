//! HTTP resources: one file per resource with its request/response types and short handlers,
//! plus the input-handling rules every resource shares (JSON, query and path errors).

pub mod categories;
pub mod common;
pub mod health;
pub mod items;
pub mod users;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::ApiError;

/// JSON bodies: size limit (413), `Content-Type` required (415), syntax errors (400
/// `invalid_json`) and shape errors such as unknown fields (400 `validation_failed`).
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(true)
        .content_type(|mime| {
            mime.subtype() == actix_web::mime::JSON || mime.suffix() == Some(actix_web::mime::JSON)
        })
        .error_handler(move |err, _req| json_error(err, limit).into())
}

fn json_error(err: JsonPayloadError, limit: usize) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::payload_too_large(limit)
        }
        JsonPayloadError::ContentType => ApiError::unsupported_media_type(),
        JsonPayloadError::Deserialize(e) if e.is_data() => shape_error(&e.to_string()),
        JsonPayloadError::Deserialize(e) => {
            ApiError::invalid_json(format!("Malformed JSON body: {e}"))
        }
        JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => {
            ApiError::payload_too_large(limit)
        }
        other => ApiError::invalid_json(format!("Unreadable JSON body: {other}")),
    }
}

/// A well-formed body of the wrong shape, in the `validation_failed` shape so frontends show
/// it next to the field when serde names one.
fn shape_error(message: &str) -> ApiError {
    if let Some(field) = backticked_after(message, "unknown field `") {
        return ApiError::validation(
            serde_json::json!({ field: ["is not an allowed field"] }),
            vec![],
        );
    }
    if let Some(field) = backticked_after(message, "missing field `") {
        return ApiError::validation(serde_json::json!({ field: ["is required"] }), vec![]);
    }
    ApiError::validation(serde_json::json!({}), vec![message.to_owned()])
}

fn backticked_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    rest.split('`').next()
}

/// Query strings deserialize into typed structs with `deny_unknown_fields`; an unknown name
/// is `unknown_parameter`, anything else `validation_failed`.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| query_error(err).into())
}

fn query_error(err: QueryPayloadError) -> ApiError {
    let message = match &err {
        QueryPayloadError::Deserialize(e) => e.to_string(),
        other => other.to_string(),
    };
    match backticked_after(&message, "unknown field `") {
        Some(name) => ApiError::unknown_parameter(name),
        None => match backticked_after(&message, "missing field `") {
            Some(name) => {
                ApiError::validation(serde_json::json!({ name: ["is required"] }), vec![])
            }
            None => ApiError::validation(serde_json::json!({}), vec![message]),
        },
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

/// A resource that remembers its methods so a wrong method answers 405 with `Allow`.
pub struct Endpoint {
    path: &'static str,
    resource: actix_web::Resource,
    methods: Vec<Method>,
}

pub fn endpoint(path: &'static str) -> Endpoint {
    Endpoint {
        path,
        resource: web::resource(path),
        methods: Vec::new(),
    }
}

macro_rules! verb {
    ($name:ident, $method:expr) => {
        pub fn $name<F, Args>(self, handler: F) -> Self
        where
            F: actix_web::Handler<Args>,
            Args: actix_web::FromRequest + 'static,
            F::Output: actix_web::Responder + 'static,
        {
            self.route($method, handler)
        }
    };
}

impl Endpoint {
    pub fn route<F, Args>(mut self, method: Method, handler: F) -> Self
    where
        F: actix_web::Handler<Args>,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        self.resource = self.resource.route(web::method(method.clone()).to(handler));
        self.methods.push(method);
        self
    }

    verb!(get, Method::GET);
    verb!(post, Method::POST);
    verb!(put, Method::PUT);
    verb!(patch, Method::PATCH);
    verb!(delete, Method::DELETE);

    /// Applies a resource-level tweak (a different body limit, say).
    pub fn configure(mut self, f: impl FnOnce(actix_web::Resource) -> actix_web::Resource) -> Self {
        self.resource = f(self.resource);
        self
    }

    pub fn path(&self) -> &'static str {
        self.path
    }

    pub fn methods(&self) -> &[Method] {
        &self.methods
    }
}

impl actix_web::dev::HttpServiceFactory for Endpoint {
    fn register(self, config: &mut actix_web::dev::AppService) {
        let allow = self.methods;
        self.resource
            .default_service(web::to(move || {
                let allow = allow.clone();
                async move { Err::<HttpResponse, _>(ApiError::method_not_allowed(&allow)) }
            }))
            .register(config)
    }
}

/// `204 No Content`.
pub fn no_content() -> HttpResponse {
    HttpResponse::NoContent().finish()
}
