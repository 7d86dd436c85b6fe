//! The floor of a proxied `GET /api/items`: the client's request forwarded to the stand-in
//! with the headers supagate sends, the answer streamed back, and nothing else (no token
//! check, no validation, no log, no metrics, no middleware). One binary, two server stacks
//! over the same upstream client supagate uses (hyper-util's pooled client):
//!
//!     supagate-floor actix PORT UPSTREAM_PORT UPSTREAM_PATH APIKEY   # actix-web, 1 worker
//!     supagate-floor hyper PORT UPSTREAM_PORT UPSTREAM_PATH APIKEY   # hyper's server, 1 thread
//!
//! CPU per request of each, beside the nginx hop's in the same run (bench/floor.py), is what
//! a stack costs before any of supagate's own work.
//!
//! With `FLOOR_STATIC_BODY=<file>`, the actix stack also answers `GET /api/categories` with
//! that file's bytes as JSON and a fixed `ETag`, from memory: the floor of a cached read
//! (bench/cache.py).

use std::rc::Rc;

use bytes::Bytes;
use http_body_util::{BodyDataStream, Empty};
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_RANGE, CONTENT_TYPE};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Upstream = Client<HttpConnector, Empty<Bytes>>;

/// What every forwarded request shares: the pooled client, the upstream URI, the key.
struct Forward {
    client: Upstream,
    uri: http::Uri,
    apikey: HeaderValue,
}

impl Forward {
    fn new(upstream_port: u16, path: &str, apikey: &str) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .http1_read_buf_exact_size(16 * 1024)
            .build(http);
        let uri = format!("http://127.0.0.1:{upstream_port}{path}")
            .parse()
            .expect("upstream URI");
        let apikey = HeaderValue::from_str(apikey).expect("apikey");
        Self {
            client,
            uri,
            apikey,
        }
    }

    /// The upstream request supagate sends for a list (minus its trace and user-agent).
    fn request(&self, authorization: Option<&[u8]>) -> http::Request<Empty<Bytes>> {
        let mut req = http::Request::new(Empty::new());
        *req.uri_mut() = self.uri.clone();
        let headers = req.headers_mut();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert("apikey", self.apikey.clone());
        headers.insert("prefer", HeaderValue::from_static("count=exact"));
        if let Some(value) = authorization.and_then(|v| HeaderValue::from_bytes(v).ok()) {
            headers.insert(AUTHORIZATION, value);
        }
        req
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: supagate-floor actix|hyper PORT UPSTREAM_PORT UPSTREAM_PATH APIKEY");
        std::process::exit(2);
    }
    let port: u16 = args[2].parse().expect("PORT");
    let upstream_port: u16 = args[3].parse().expect("UPSTREAM_PORT");
    let (path, apikey) = (args[4].clone(), args[5].clone());
    match args[1].as_str() {
        "actix" => actix(port, upstream_port, path, apikey),
        "hyper" => hyper_server(port, upstream_port, path, apikey),
        other => {
            eprintln!("unknown stack {other}");
            std::process::exit(2);
        }
    }
}

fn actix(port: u16, upstream_port: u16, path: String, apikey: String) {
    use actix_web::{body::SizedStream, web, App, HttpRequest, HttpResponse, HttpServer};

    async fn items(req: HttpRequest, forward: web::Data<Forward>) -> HttpResponse {
        let auth = req.headers().get("authorization").map(|v| v.as_bytes());
        let res = match forward.client.request(forward.request(auth)).await {
            Ok(res) => res,
            Err(_) => return HttpResponse::BadGateway().finish(),
        };
        let (parts, body) = res.into_parts();
        let mut out = HttpResponse::build(
            actix_web::http::StatusCode::from_u16(parts.status.as_u16())
                .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY),
        );
        for name in [CONTENT_TYPE, CONTENT_RANGE] {
            if let Some(value) = parts.headers.get(&name) {
                out.insert_header((name.as_str(), value.as_bytes()));
            }
        }
        let length = hyper::body::Body::size_hint(&body).exact();
        let stream = BodyDataStream::new(body);
        match length {
            Some(length) => out.body(SizedStream::new(length, stream)),
            None => out.streaming(stream),
        }
    }

    async fn from_memory(body: web::Data<Bytes>) -> HttpResponse {
        HttpResponse::Ok()
            .content_type("application/json")
            .insert_header(("etag", "\"0123456789abcdef0123456789abcdef\""))
            .body(body.get_ref().clone())
    }

    let static_body = std::env::var_os("FLOOR_STATIC_BODY")
        .map(|file| Bytes::from(std::fs::read(file).expect("FLOOR_STATIC_BODY")));
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            let app = App::new()
                .app_data(web::Data::new(Forward::new(upstream_port, &path, &apikey)))
                .route("/api/items", web::get().to(items));
            match &static_body {
                Some(body) => app
                    .app_data(web::Data::new(body.clone()))
                    .route("/api/categories", web::get().to(from_memory)),
                None => app,
            }
        })
        .workers(1)
        .bind(("127.0.0.1", port))
        .expect("bind")
        .run()
        .await
        .expect("server");
    });
}

fn hyper_server(port: u16, upstream_port: u16, path: String, apikey: String) {
    use hyper::{server::conn::http1, service::service_fn, Response, StatusCode};
    use hyper_util::rt::TokioIo;

    type Body = http_body_util::Either<hyper::body::Incoming, Empty<Bytes>>;
    fn status_only(status: StatusCode) -> Response<Body> {
        let mut res = Response::new(http_body_util::Either::Right(Empty::new()));
        *res.status_mut() = status;
        res
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let forward = Rc::new(Forward::new(upstream_port, &path, &apikey));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let forward = forward.clone();
            tokio::task::spawn_local(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let forward = forward.clone();
                    async move {
                        if req.uri().path() != "/api/items" {
                            return Ok::<_, hyper::Error>(status_only(StatusCode::NOT_FOUND));
                        }
                        let auth = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
                        let upstream = forward.client.request(forward.request(auth)).await;
                        let Ok(upstream) = upstream else {
                            return Ok(status_only(StatusCode::BAD_GATEWAY));
                        };
                        let (parts, body) = upstream.into_parts();
                        let mut res = Response::new(http_body_util::Either::Left(body));
                        *res.status_mut() = parts.status;
                        for name in [CONTENT_TYPE, CONTENT_RANGE] {
                            if let Some(value) = parts.headers.get(&name) {
                                res.headers_mut().insert(name, value.clone());
                            }
                        }
                        Ok(res)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
