//! A small typed PostgREST client: queries whose columns are compile-time names and whose
//! filter values come from typed, validated values, escaped and percent-encoded per
//! docs/supabase-wire.md (PostgREST). Errors are [`SupabaseError`]s, mapped in `supabase::error`.
//!
//! Nothing a client sends reaches the query string except through a typed value rendered
//! here, so `or=`, `select=` or `order=` cannot be smuggled in and `q` matches literally.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use http::{Method, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use uuid::Uuid;

use super::error::SupabaseError;
use super::Supabase;
use crate::auth::AuthUser;
use crate::http_client::{Answer, Call, UpstreamError};

/// Everything but RFC 3986 unreserved characters is percent-encoded. PostgREST decodes the
/// query string before parsing its grammar, so encoding `,().*` is harmless, and encoding
/// `+` as `%2B` is required (a raw `+` decodes to a space).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const SINGLE_OBJECT: &str = "application/vnd.pgrst.object+json";

/// On whose behalf a call runs: PostgREST picks the Postgres role (and RLS) from the bearer.
#[derive(Clone, Copy)]
pub enum Caller<'a> {
    /// The anon key as bearer: RLS `TO anon`.
    Anon,
    /// The caller's verified token: RLS as that user.
    User(&'a AuthUser),
}

impl<'a> Caller<'a> {
    pub fn from_option(user: Option<&'a AuthUser>) -> Self {
        user.map_or(Caller::Anon, Caller::User)
    }
}

/// A filter operand. Only typed values can become one, never raw client text.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Uuid(Uuid),
    /// A finite decimal, rendered without exponent (`f64`'s `Display` never uses one).
    Number(f64),
    Integer(i64),
    /// An instant, rendered in RFC 3339.
    Timestamp(time::OffsetDateTime),
    /// A constant from a fixed list the handler maps its enum to (a table name, say).
    Name(&'static str),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Uuid(u) => write!(f, "{u}"),
            Value::Number(n) => write!(f, "{n}"),
            Value::Integer(n) => write!(f, "{n}"),
            Value::Timestamp(t) => {
                let text = t
                    .format(&time::format_description::well_known::Rfc3339)
                    .map_err(|_| std::fmt::Error)?;
                f.write_str(&text)
            }
            Value::Name(name) => f.write_str(name),
        }
    }
}

impl From<Uuid> for Value {
    fn from(u: Uuid) -> Self {
        Value::Uuid(u)
    }
}

/// Escapes `text` for a POSIX regular expression (PostgreSQL ARE) so that it matches itself:
/// every ASCII character that is not a letter or digit gets a backslash, which in an ARE
/// always means "this character, literally". Letters and digits must stay bare (`\d`, `\m`
/// are escapes) and non-ASCII characters are never metacharacters.
pub fn regex_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_alphanumeric() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One PostgREST read or write target with its filters.
#[derive(Clone, Debug)]
pub struct Query {
    path: &'static str,
    select: Option<&'static str>,
    filters: Vec<(&'static str, String)>,
    order: Option<&'static str>,
    limit: Option<u64>,
    offset: Option<u64>,
}

impl Query {
    /// `table` is a table name or `rpc/<function>`: a constant, never client input.
    pub fn table(path: &'static str) -> Self {
        Self {
            path,
            select: None,
            filters: Vec::new(),
            order: None,
            limit: None,
            offset: None,
        }
    }

    pub fn select(mut self, columns: &'static str) -> Self {
        self.select = Some(columns);
        self
    }

    fn filter(mut self, column: &'static str, op: &str, operand: String) -> Self {
        self.filters.push((column, format!("{op}.{operand}")));
        self
    }

    pub fn eq(self, column: &'static str, value: impl Into<Value>) -> Self {
        let v = value.into().to_string();
        self.filter(column, "eq", v)
    }

    pub fn gte(self, column: &'static str, value: Value) -> Self {
        self.filter(column, "gte", value.to_string())
    }

    pub fn lte(self, column: &'static str, value: Value) -> Self {
        self.filter(column, "lte", value.to_string())
    }

    pub fn lt(self, column: &'static str, value: Value) -> Self {
        self.filter(column, "lt", value.to_string())
    }

    /// Case-insensitive literal substring: `imatch` (`~*`) with an escaped pattern. `ilike`
    /// cannot do this, since PostgREST turns every `*` into `%`.
    pub fn contains_ci(self, column: &'static str, text: &str) -> Self {
        self.filter(column, "imatch", regex_literal(text))
    }

    /// Case-sensitive literal prefix: `match` (`~`) with `^` and an escaped pattern; a
    /// left-anchored literal regex can use a `text_pattern_ops` index like `LIKE 'x%'`.
    pub fn starts_with(self, column: &'static str, text: &str) -> Self {
        let pattern = format!("^{}", regex_literal(text));
        self.filter(column, "match", pattern)
    }

    /// An order clause from a fixed list (the handler maps its enum to one of these).
    pub fn order(mut self, clause: &'static str) -> Self {
        self.order = Some(clause);
        self
    }

    /// At most `n` rows, from the first.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    pub fn range(mut self, limit: u64, offset: u64) -> Self {
        self.limit = Some(limit);
        self.offset = Some(offset);
        self
    }

    /// The same filters without ordering or range: what a count needs.
    pub fn count_only(&self) -> Self {
        Self {
            order: None,
            limit: None,
            offset: None,
            ..self.clone()
        }
    }

    /// `/<path>?<percent-encoded params>`, written into one buffer (no per-parameter strings).
    /// Pieces are appended directly: through `write!` the formatting machinery cost about as
    /// much again as the encoding (callgrind: 4.9k of a list's instructions).
    pub fn to_path(&self) -> String {
        let mut out = String::with_capacity(
            1 + self.path.len()
                + self.select.map_or(0, |s| s.len() * 2 + 8)
                + self
                    .filters
                    .iter()
                    .map(|(_, v)| v.len() + 24)
                    .sum::<usize>()
                + self.order.map_or(0, |o| o.len() + 8)
                + 32,
        );
        out.push('/');
        out.push_str(self.path);
        let mut sep = '?';
        let mut param = |out: &mut String, name: &str, value: &str| {
            out.push(sep);
            sep = '&';
            out.extend(utf8_percent_encode(name, COMPONENT));
            out.push('=');
            out.extend(utf8_percent_encode(value, COMPONENT));
        };
        if let Some(s) = self.select {
            param(&mut out, "select", s);
        }
        for (column, filter) in &self.filters {
            param(&mut out, column, filter);
        }
        if let Some(o) = self.order {
            param(&mut out, "order", o);
        }
        let mut digits = itoa::Buffer::new();
        if let Some(l) = self.limit {
            param(&mut out, "limit", digits.format(l));
        }
        if let Some(o) = self.offset {
            param(&mut out, "offset", digits.format(o));
        }
        out
    }
}

/// A list answer: the total and the upstream body still to be streamed.
pub struct Listing {
    pub total: u64,
    /// PostgREST's `Content-Range` (`0-19/137`, `*/0`), or `*/<total>` past the end.
    pub content_range: String,
    /// PostgREST's JSON array, read whole (capped at `upstream.max_body_bytes`): the answer's
    /// `ETag` is a hash of it, and a fault mid-body is a clean 502/504, not a cut stream.
    /// `[]` when the offset was past the end.
    pub body: Bytes,
}

/// `<range>/<total>` → total; `None` when absent or not counted (`*`).
pub fn total_of(content_range: &str) -> Option<u64> {
    content_range.rsplit_once('/')?.1.trim().parse().ok()
}

fn invalid_body(cause: impl Into<String>) -> SupabaseError {
    SupabaseError::Transport(UpstreamError::InvalidBody {
        upstream: "rest",
        cause: cause.into(),
    })
}

fn is_json(res: &Answer) -> bool {
    res.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("application/json") || ct.starts_with(SINGLE_OBJECT)
        })
        .unwrap_or(false)
}

fn headers(pairs: &[(HeaderName, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(name.clone(), HeaderValue::from_static(value));
    }
    map
}

fn prefer() -> HeaderName {
    HeaderName::from_static("prefer")
}

impl Supabase {
    fn pg_request(&self, method: Method, query: &Query, caller: Caller<'_>) -> Call {
        let request = self.rest.request(method, &query.to_path());
        match caller {
            Caller::Anon => self.anon_bearer(request),
            Caller::User(user) => self.as_user(request, user),
        }
    }

    /// Reads an error answer (its body, or `Proxy-Status` when a HEAD has none).
    ///
    /// Boxed here, once: rustc lays a function's awaited futures side by side rather than
    /// over one another, so this error path (another body read) inline made every call's
    /// future larger, and a request waiting for an upstream slot holds its whole future.
    fn pg_failure(
        &self,
        res: Answer,
        caller: Caller<'_>,
    ) -> futures_util::future::BoxFuture<'_, SupabaseError> {
        let anon = matches!(caller, Caller::Anon);
        Box::pin(async move {
            let status = res.status();
            let headers = res.headers().clone();
            let body = self.rest.read_body(res).await.unwrap_or_default();
            SupabaseError::rest(status, &headers, &body, anon)
        })
    }

    /// A counted list whose body is left unread, for streaming. An offset past the end
    /// (PostgREST: 416 PGRST103) becomes an empty list with the true total from a count.
    pub async fn pg_list(
        &self,
        query: &Query,
        caller: Caller<'_>,
    ) -> Result<Listing, SupabaseError> {
        let request = self
            .pg_request(Method::GET, query, caller)
            .headers(headers(&[(prefer(), "count=exact")]));
        let res = self.rest.send(request).await?;
        if res.status() == StatusCode::RANGE_NOT_SATISFIABLE {
            // Boxed like `pg_failure`: a second call chain inline cost ~870 bytes in every
            // list's future (size_of_val).
            let total = Box::pin(self.pg_count(&query.count_only(), caller)).await?;
            return Ok(Listing {
                total,
                content_range: format!("*/{total}"),
                body: Bytes::from_static(b"[]"),
            });
        }
        if !res.status().is_success() {
            return Err(self.pg_failure(res, caller).await);
        }
        if !is_json(&res) {
            return Err(invalid_body("list answer is not JSON"));
        }
        let content_range = res
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| invalid_body("list answer without Content-Range"))?;
        let total = total_of(&content_range)
            .ok_or_else(|| invalid_body("list answer with an uncounted Content-Range"))?;
        let body = self.rest.read_body(res).await?;
        Ok(Listing {
            total,
            content_range,
            body,
        })
    }

    /// How many rows match: `HEAD` with `Prefer: count=exact` (no rows are transferred).
    pub async fn pg_count(&self, query: &Query, caller: Caller<'_>) -> Result<u64, SupabaseError> {
        let request = self
            .pg_request(Method::HEAD, query, caller)
            .headers(headers(&[(prefer(), "count=exact")]));
        let res = self.rest.send(request).await?;
        if !res.status().is_success() {
            return Err(self.pg_failure(res, caller).await);
        }
        res.headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .and_then(total_of)
            .ok_or_else(|| invalid_body("count answer without a counted Content-Range"))
    }

    /// One row in single-object mode: `GET` reads it; `POST`/`PATCH`/`DELETE` write and return
    /// it (`Prefer: return=representation`). Zero rows is PGRST116, i.e. 404, and PostgREST
    /// rolls a write back when it would touch more than one.
    pub async fn pg_single(
        &self,
        method: Method,
        query: &Query,
        body: Option<Vec<u8>>,
        caller: Caller<'_>,
    ) -> Result<Bytes, SupabaseError> {
        let mut pairs = vec![(ACCEPT, SINGLE_OBJECT)];
        if method != Method::GET {
            pairs.push((prefer(), "return=representation"));
        }
        let mut request = self
            .pg_request(method, query, caller)
            .headers(headers(&pairs));
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        self.pg_body(request, caller).await
    }

    /// A plain read answering PostgREST's JSON array, for rows supagate itself decodes.
    pub async fn pg_read(&self, query: &Query, caller: Caller<'_>) -> Result<Bytes, SupabaseError> {
        let request = self.pg_request(Method::GET, query, caller);
        self.pg_body(request, caller).await
    }

    /// `POST /rpc/<fn>` with a JSON body, answering the function's JSON.
    pub async fn pg_rpc(
        &self,
        query: &Query,
        body: Vec<u8>,
        caller: Caller<'_>,
    ) -> Result<Bytes, SupabaseError> {
        let request = self
            .pg_request(Method::POST, query, caller)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        self.pg_body(request, caller).await
    }

    async fn pg_body(&self, request: Call, caller: Caller<'_>) -> Result<Bytes, SupabaseError> {
        let res = self.rest.send(request).await?;
        if !res.status().is_success() {
            return Err(self.pg_failure(res, caller).await);
        }
        if !is_json(&res) {
            return Err(invalid_body("answer is not JSON"));
        }
        let body = self.rest.read_body(res).await?;
        // A 2xx body that is not JSON (a proxy's page, a truncated answer) is not forwarded.
        serde_json::from_slice::<serde::de::IgnoredAny>(&body)
            .map_err(|e| invalid_body(format!("invalid JSON: {e}")))?;
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decoded(query: &Query) -> Vec<(String, String)> {
        let path = query.to_path();
        let qs = path.split_once('?').map(|(_, q)| q).unwrap_or("");
        // PostgREST decodes like a form (`+` → space) before parsing; decode the same way.
        url::form_urlencoded::parse(qs.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// Reads an ARE pattern made only of literal characters and `\`-escaped non-alphanumeric
    /// ASCII; `None` if any character would be a metacharacter or an escape sequence.
    fn are_literal(pattern: &str) -> Option<String> {
        let mut out = String::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                let next = chars.next()?;
                if next.is_ascii_alphanumeric() || !next.is_ascii() {
                    return None;
                }
                out.push(next);
            } else if c.is_ascii() && !c.is_ascii_alphanumeric() {
                return None;
            } else {
                out.push(c);
            }
        }
        Some(out)
    }

    #[test]
    fn plus_and_reserved_characters_are_percent_encoded() {
        let q = Query::table("items").contains_ci("name", "a+b c&d=e#f%g,h(i)j\"k*l");
        let path = q.to_path();
        assert!(path.contains("%2B"), "{path}");
        assert!(!path[path.find('?').unwrap()..].contains(['+', ' ', '#', ',', '(', '"', '*']));
        assert_eq!(path.matches('&').count(), 0, "{path}");
    }

    #[test]
    fn substring_filter_escapes_regex_metacharacters() {
        let q = Query::table("items").contains_ci("name", "50%_off*(x),\"y\"\\.");
        assert_eq!(
            decoded(&q),
            vec![(
                "name".to_owned(),
                r#"imatch.50\%\_off\*\(x\)\,\"y\"\\\."#.to_owned()
            )]
        );
    }

    #[test]
    fn prefix_filter_is_anchored_and_escaped() {
        let q = Query::table("profiles").starts_with("username", "ann_");
        assert_eq!(
            decoded(&q),
            vec![("username".into(), r"match.^ann\_".into())]
        );
    }

    #[test]
    fn count_only_drops_order_and_range() {
        let q = Query::table("items")
            .select("id")
            .eq("user_id", Uuid::nil())
            .order("created_at.desc,id.desc")
            .range(20, 40);
        let names: Vec<String> = decoded(&q.count_only()).into_iter().map(|p| p.0).collect();
        assert_eq!(names, vec!["select", "user_id"]);
    }

    #[test]
    fn totals_are_read_from_content_range() {
        assert_eq!(total_of("0-19/137"), Some(137));
        assert_eq!(total_of("*/0"), Some(0));
        assert_eq!(total_of("0-19/*"), None);
        assert_eq!(total_of("garbage"), None);
    }

    proptest! {
        /// For any `q`, the query holds exactly one filter on `name`, an `imatch` whose pattern
        /// is nothing but escaped literal characters spelling `q`; nothing else is added.
        #[test]
        fn any_q_becomes_exactly_one_literal_name_filter(q in "(?s).{0,100}|[\\\\%_*,()\".&=+#:;! a-zA-Z0-9-]{0,40}") {
            let query = Query::table("items")
                .select("id,name")
                .contains_ci("name", &q)
                .order("created_at.desc,id.desc")
                .range(20, 0);
            let pairs = decoded(&query);
            let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
            prop_assert_eq!(names, vec!["select", "name", "order", "limit", "offset"]);
            let value = &pairs[1].1;
            let pattern = value.strip_prefix("imatch.").expect("imatch operator");
            prop_assert_eq!(are_literal(pattern), Some(q.clone()));
            prop_assert_eq!(&pairs[0].1, "id,name");
        }
    }
}
