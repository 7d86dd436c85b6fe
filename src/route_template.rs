//! The route template a request falls under (`/api/items/{id}`), found once per request
//! without regexes and kept in its extensions: the log context, the metrics label and the
//! rate limiter all need it before actix routes the request.

use std::sync::Arc;

use foldhash::HashMap;

use actix_web::{web, HttpMessage, HttpRequest};

/// The templates of the route table, in the order actix tries them. Registered as app data
/// by `api::register`.
pub struct RouteTemplates {
    /// `None` when some template has a segment this matcher does not read (a regex or tail
    /// parameter): then actix's own resource map answers.
    simple: Option<Simple>,
}

struct Simple {
    /// Templates without parameters, found by one hash lookup. `api::register` registers
    /// them before any templated route, so an exact match wins as it does in actix.
    exact: HashMap<Box<str>, Arc<str>>,
    /// The templated ones, tried in order.
    templated: Vec<(Vec<Segment>, Arc<str>)>,
}

enum Segment {
    Literal(Box<str>),
    /// `{name}`: one non-empty segment, as actix's default `[^/]+`.
    Param,
}

impl RouteTemplates {
    pub fn new<'a>(templates: impl IntoIterator<Item = &'a str>) -> Self {
        let parsed: Option<Vec<(Vec<Segment>, Arc<str>)>> = templates
            .into_iter()
            .map(|template| {
                let segments = template
                    .split('/')
                    .map(
                        |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                            Some(name) if !name.is_empty() && name.bytes().all(is_name_byte) => {
                                Some(Segment::Param)
                            }
                            _ if s.contains(['{', '}', '*']) => None,
                            _ => Some(Segment::Literal(s.into())),
                        },
                    )
                    .collect::<Option<Vec<_>>>()?;
                Some((segments, Arc::from(template)))
            })
            .collect();
        let simple = parsed.map(|all| {
            // Only a leading run of static templates may be looked up out of order: a static
            // one registered after a template that also covers it must lose, as in actix.
            let leading = all
                .iter()
                .take_while(|(segments, _)| {
                    segments.iter().all(|s| matches!(s, Segment::Literal(_)))
                })
                .count();
            let mut all = all.into_iter();
            let exact = all
                .by_ref()
                .take(leading)
                .map(|(_, template)| (Box::from(&*template), template))
                .collect();
            Simple {
                exact,
                templated: all.collect(),
            }
        });
        Self { simple }
    }

    /// The first template `path` matches, as actix would route it; `Err` when this matcher
    /// cannot tell (see `simple`).
    fn find(&self, path: &str) -> Result<Option<&Arc<str>>, ()> {
        let simple = self.simple.as_ref().ok_or(())?;
        if let Some(template) = simple.exact.get(path) {
            return Ok(Some(template));
        }
        Ok(simple
            .templated
            .iter()
            .find(|(segments, _)| {
                let mut parts = path.split('/');
                segments
                    .iter()
                    .all(|segment| match (segment, parts.next()) {
                        (Segment::Literal(text), Some(part)) => **text == *part,
                        (Segment::Param, Some(part)) => !part.is_empty(),
                        (_, None) => false,
                    })
                    && parts.next().is_none()
            })
            .map(|(_, template)| template))
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The request's template, once found.
#[derive(Clone)]
struct Found(Option<Arc<str>>);

/// The template of `req`'s route (`None`: no route matches). Served requests have it in
/// their log context, where the request middleware put it ([`find`]); elsewhere (a request
/// built in a test) it is found on first use and kept in the request's extensions.
pub fn of(req: &HttpRequest) -> Option<Arc<str>> {
    if let Some(found) = crate::telemetry::request_route() {
        return found;
    }
    if let Some(Found(template)) = req.extensions().get::<Found>() {
        return template.clone();
    }
    let found = find(req);
    req.extensions_mut().insert(Found(found.clone()));
    found
}

/// Finds the template of `req`'s route. Matched against the path actix routes on:
/// percent-escapes of ordinary characters decoded (`/api/%69tems` is `/api/items`), so an
/// encoded path cannot slip past a rule that names its route.
pub fn find(req: &HttpRequest) -> Option<Arc<str>> {
    let path = req.match_info().as_str();
    match req
        .app_data::<web::Data<RouteTemplates>>()
        .map(|t| t.find(path))
    {
        Some(Ok(template)) => template.cloned(),
        _ => req.resource_map().match_name(path).map(Arc::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_finds_the_first_template_it_matches_segment_by_segment() {
        let t = RouteTemplates::new([
            "/api/items",
            "/api/items/{id}",
            "/api/users/{id}/stats",
            "/api/users/me",
            "/api/users/{id}",
        ]);
        let find = |p| t.find(p).unwrap().map(|s| s.to_string());
        assert_eq!(find("/api/items").as_deref(), Some("/api/items"));
        assert_eq!(find("/api/items/42").as_deref(), Some("/api/items/{id}"));
        assert_eq!(
            find("/api/users/7/stats").as_deref(),
            Some("/api/users/{id}/stats")
        );
        // Registration order decides, as in actix: `me` is listed before `{id}`.
        assert_eq!(find("/api/users/me").as_deref(), Some("/api/users/me"));
        assert_eq!(find("/api/items/"), None, "an empty segment is no id");
        assert_eq!(find("/api/items/1/2"), None);
        assert_eq!(find("/api/item"), None);
        assert_eq!(find("/api/items/42/"), None);
    }

    #[test]
    fn a_static_template_after_a_template_that_covers_it_loses_as_in_actix() {
        let t = RouteTemplates::new(["/health", "/api/users/{id}", "/api/users/me"]);
        let find = |p| t.find(p).unwrap().map(|s| s.to_string());
        assert_eq!(find("/health").as_deref(), Some("/health"));
        assert_eq!(find("/api/users/me").as_deref(), Some("/api/users/{id}"));
    }

    #[test]
    fn a_template_this_matcher_cannot_read_leaves_the_answer_to_actix() {
        assert!(RouteTemplates::new(["/a/{id:\\d+}"]).find("/a/1").is_err());
        assert!(RouteTemplates::new(["/files/{tail}*"])
            .find("/files/x")
            .is_err());
        assert!(RouteTemplates::new(["/a/{x}.json"])
            .find("/a/1.json")
            .is_err());
    }
}
