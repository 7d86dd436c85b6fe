//! `/docs`: a self-contained API reference page. The HTML, script and stylesheet are compiled
//! into the binary and render `/openapi.json` from the same origin; nothing is fetched from
//! anywhere else, and the Content-Security-Policy says so to the browser.

use actix_web::http::header;
use actix_web::HttpResponse;

const PAGE: &str = include_str!("../assets/docs/index.html");
const SCRIPT: &str = include_str!("../assets/docs/docs.js");
const STYLE: &str = include_str!("../assets/docs/docs.css");

/// Only same-origin scripts, styles, images and fetches: the page works offline by design.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(body)
}

/// The human-readable API reference (this document, rendered).
#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "docs",
    tag = "service",
    security(()),
    responses(
        (status = 200, description = "An HTML page that renders `/openapi.json`; no external assets", content_type = "text/html"),
    )
)]
pub async fn page() -> HttpResponse {
    asset("text/html; charset=utf-8", PAGE)
}

/// `/docs/docs.js`.
pub async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `/docs/docs.css`.
pub async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}
