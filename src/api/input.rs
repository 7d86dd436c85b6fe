//! Request input read at the edge: a JSON body or a query string is decoded field by field
//! into typed values, and every problem is reported at once, each under its field, in the zod
//! `flatten()` shape (`validation_failed`). Handlers receive only values that passed.
//!
//! A body or query type derives its reader: `#[derive(FromBody)]` / `#[derive(FromParams)]`
//! (the `supagate-derive` crate) read each field by its type, through [`BodyField`] and
//! [`ParamField`]: `T` is required, `Option<T>` optional, `Change<T>` a PATCH field.
//!
//! Why not serde's derive plus garde: serde stops at the first missing or wrong-typed field,
//! and garde can only check a struct serde managed to build, so one wrong type would hide
//! every other problem. Here each field is parsed on its own; garde's rules (email, lengths)
//! are still what checks the values.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::{ready, Future, Ready};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use uuid::Uuid;

pub use supagate_derive::{FromBody, FromParams};

use crate::error::{ApiError, ApiResult};

/// What is wrong with one value, as a form shows it next to the field.
pub type Problem = Cow<'static, str>;

/// Problems found so far: by field, in the order found, and for the input as a whole.
#[derive(Default)]
pub struct Problems {
    fields: Map<String, Value>,
    form: Vec<String>,
}

impl Problems {
    pub fn field(&mut self, name: &str, problem: impl Into<String>) {
        let list = self
            .fields
            .entry(name)
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = list {
            list.push(Value::String(problem.into()));
        }
    }

    pub fn form(&mut self, problem: impl Into<String>) {
        self.form.push(problem.into());
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.form.is_empty()
    }

    pub fn into_error(self) -> ApiError {
        ApiError::validation(Value::Object(self.fields), self.form)
    }

    /// `Ok(value)` when nothing was found wrong, else one error naming every problem.
    fn result<T>(self, value: Option<T>) -> ApiResult<T> {
        if !self.is_empty() {
            return Err(self.into_error());
        }
        // Every field reader records a problem whenever it yields nothing, so a value is
        // always there when no problem is.
        value.ok_or_else(|| ApiError::internal("input decoded without problems or a value"))
    }
}

/// A problem across fields, found by a type's `#[input(check = ..)]` once each field parsed.
pub enum Across {
    /// About the input as a whole (`formErrors`).
    Form(&'static str),
    /// Shown against one field (`fieldErrors`).
    Field(&'static str, &'static str),
}

impl Problems {
    fn across(&mut self, problem: Across) {
        match problem {
            Across::Form(problem) => self.form(problem),
            Across::Field(name, problem) => self.field(name, problem),
        }
    }
}

// ---- JSON bodies ----

/// A value read from one JSON field's raw text.
pub trait FromJson: Sized {
    fn from_json(raw: &RawValue) -> Result<Self, Problem>;
}

impl FromJson for String {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        serde_json::from_str(raw.get()).map_err(|_| "must be a string".into())
    }
}

impl FromJson for bool {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        serde_json::from_str(raw.get()).map_err(|_| "must be true or false".into())
    }
}

impl FromJson for Uuid {
    fn from_json(raw: &RawValue) -> Result<Self, Problem> {
        Uuid::parse_str(&String::from_json(raw)?).map_err(|_| "must be a valid UUID".into())
    }
}

fn is_null(raw: &RawValue) -> bool {
    raw.get().trim() == "null"
}

/// A PATCH field: left alone (absent), cleared (`null`), or set.
#[derive(Debug, PartialEq)]
pub enum Change<T> {
    Keep,
    Clear,
    Set(T),
}

/// The fields of a JSON object body, taken one by one by a [`FromBody`] implementation.
/// Each reader records its problem and yields `None` on failure, so the implementation reads
/// every field before it gives up.
pub struct JsonFields {
    fields: BTreeMap<String, Box<RawValue>>,
    problems: Problems,
}

impl JsonFields {
    fn read<T: FromJson>(&mut self, name: &str, raw: &RawValue) -> Option<T> {
        T::from_json(raw)
            .map_err(|problem| self.problems.field(name, problem))
            .ok()
    }

    /// Must be present and not `null`.
    pub fn required<T: FromJson>(&mut self, name: &str) -> Option<T> {
        match self.fields.remove(name) {
            Some(raw) if !is_null(&raw) => self.read(name, &raw),
            _ => {
                self.problems.field(name, "is required");
                None
            }
        }
    }

    /// May be absent or `null` (both `None`).
    pub fn optional<T: FromJson>(&mut self, name: &str) -> Option<Option<T>> {
        match self.fields.remove(name) {
            Some(raw) if !is_null(&raw) => self.read(name, &raw).map(Some),
            _ => Some(None),
        }
    }

    /// A PATCH field that `null` clears.
    pub fn change<T: FromJson>(&mut self, name: &str) -> Option<Change<T>> {
        match self.fields.remove(name) {
            None => Some(Change::Keep),
            Some(raw) if is_null(&raw) => Some(Change::Clear),
            Some(raw) => self.read(name, &raw).map(Change::Set),
        }
    }

    /// A PATCH field that may be absent but not `null`.
    pub fn change_non_null<T: FromJson>(&mut self, name: &str) -> Option<Option<T>> {
        match self.change(name)? {
            Change::Keep => Some(None),
            Change::Set(value) => Some(Some(value)),
            Change::Clear => {
                self.problems.field(name, "must not be null");
                None
            }
        }
    }

    /// Records what a rule across fields found (the derived reader calls it).
    pub fn across(&mut self, problem: Across) {
        self.problems.across(problem);
    }

    fn finish<T>(mut self, value: Option<T>) -> ApiResult<T> {
        for name in std::mem::take(&mut self.fields).into_keys() {
            self.problems.field(&name, "is not an allowed field");
        }
        self.problems.result(value)
    }
}

/// A request body type: reads its fields from [`JsonFields`] (every one of them, so all
/// problems are reported together) and returns `None` if any failed. Derived.
pub trait FromBody: Sized {
    fn from_body(fields: &mut JsonFields) -> Option<Self>;
}

/// How a body field of this type is read: what its type says about absence and `null`.
pub trait BodyField: Sized {
    fn take(fields: &mut JsonFields, name: &'static str) -> Option<Self>;
}

/// Required: present and not `null`.
impl<T: FromJson> BodyField for T {
    fn take(fields: &mut JsonFields, name: &'static str) -> Option<Self> {
        fields.required(name)
    }
}

/// Optional: absent and `null` both `None`.
impl<T: FromJson> BodyField for Option<T> {
    fn take(fields: &mut JsonFields, name: &'static str) -> Option<Self> {
        fields.optional(name)
    }
}

/// A PATCH field: absent keeps, `null` clears.
impl<T: FromJson> BodyField for Change<T> {
    fn take(fields: &mut JsonFields, name: &'static str) -> Option<Self> {
        fields.change(name)
    }
}

/// Decodes a body already known to be well-formed JSON.
pub fn decode_body<T: FromBody>(raw: &RawValue) -> ApiResult<T> {
    let Ok(fields) = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(raw.get()) else {
        let mut problems = Problems::default();
        problems.form("Expected a JSON object");
        return Err(problems.into_error());
    };
    let mut fields = JsonFields {
        fields,
        problems: Problems::default(),
    };
    let value = T::from_body(&mut fields);
    fields.finish(value)
}

/// A JSON body decoded into `T`. Size (413), `Content-Type` (415) and syntax (400
/// `invalid_json`) are checked first by actix's JSON reader (`api::json_config`).
pub struct Body<T>(pub T);

impl<T: FromBody + 'static> FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = web::Json::<Box<RawValue>>::from_request(req, payload);
        Box::pin(async move {
            let raw = json.await?.into_inner();
            Ok(Body(decode_body(&raw)?))
        })
    }
}

// ---- query strings ----

/// A value read from one query parameter's decoded text.
pub trait FromParam: Sized {
    fn from_param(text: &str) -> Result<Self, Problem>;
}

impl FromParam for Uuid {
    fn from_param(text: &str) -> Result<Self, Problem> {
        Uuid::parse_str(text).map_err(|_| "must be a valid UUID".into())
    }
}

impl FromParam for bool {
    fn from_param(text: &str) -> Result<Self, Problem> {
        match text {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("must be true or false".into()),
        }
    }
}

/// The parameters of a query string, taken one by one by a [`FromParams`] implementation.
pub struct QueryFields {
    pairs: Vec<(String, String)>,
    problems: Problems,
}

impl QueryFields {
    /// Must be given (once).
    pub fn required<T: FromParam>(&mut self, name: &str) -> Option<T> {
        match self.optional(name)? {
            Some(value) => Some(value),
            None => {
                self.problems.field(name, "is required");
                None
            }
        }
    }

    /// May be absent; given more than once is a problem (which one would win is not obvious).
    pub fn optional<T: FromParam>(&mut self, name: &str) -> Option<Option<T>> {
        let mut values = Vec::new();
        self.pairs.retain(|(k, v)| {
            let hit = k == name;
            if hit {
                values.push(v.clone());
            }
            !hit
        });
        match values.as_slice() {
            [] => Some(None),
            [one] => T::from_param(one)
                .map(Some)
                .map_err(|p| self.problems.field(name, p))
                .ok(),
            _ => {
                self.problems.field(name, "must be given once");
                None
            }
        }
    }

    /// Records what a rule across parameters found (the derived reader calls it).
    pub fn across(&mut self, problem: Across) {
        self.problems.across(problem);
    }

    fn finish<T>(self, value: Option<T>) -> ApiResult<T> {
        // A parameter this operation does not know is refused by name: it may be an attempt
        // to reach PostgREST's own grammar (`select=`, `or=`, `order=`).
        if let Some((name, _)) = self.pairs.first() {
            return Err(ApiError::unknown_parameter(name));
        }
        self.problems.result(value)
    }
}

/// A query-string type: reads its parameters from [`QueryFields`]. Derived.
pub trait FromParams: Sized {
    fn from_params(params: &mut QueryFields) -> Option<Self>;
}

/// How a query parameter of this type is read.
pub trait ParamField: Sized {
    fn take(params: &mut QueryFields, name: &'static str) -> Option<Self>;
}

/// Required: given once.
impl<T: FromParam> ParamField for T {
    fn take(params: &mut QueryFields, name: &'static str) -> Option<Self> {
        params.required(name)
    }
}

/// Optional: absent is `None`.
impl<T: FromParam> ParamField for Option<T> {
    fn take(params: &mut QueryFields, name: &'static str) -> Option<Self> {
        params.optional(name)
    }
}

/// Decodes a raw query string (without the `?`).
pub fn parse_query<T: FromParams>(query: &str) -> ApiResult<T> {
    let mut params = QueryFields {
        pairs: url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
        problems: Problems::default(),
    };
    let value = T::from_params(&mut params);
    params.finish(value)
}

/// No parameters at all: any given is refused by name (the route table's default for an
/// operation that documents none, `api::Route`).
impl FromParams for () {
    fn from_params(_: &mut QueryFields) -> Option<Self> {
        Some(())
    }
}

/// A query string decoded into `T`.
pub struct Params<T>(pub T);

impl<T: FromParams> FromRequest for Params<T> {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            parse_query(req.query_string())
                .map(Params)
                .map_err(Into::into),
        )
    }
}

// ---- schemas ----

/// `impl ToSchema` for a field type, from the same constants its parser enforces, so a bound
/// is written once: the type's schema (bounds and description) is what every field of that
/// type documents, inlined with `#[schema(inline)]` / `#[param(inline)]`.
#[macro_export]
macro_rules! field_schema {
    ($ty:ty => $schema:expr) => {
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object($schema.build()))
            }
        }
        impl utoipa::ToSchema for $ty {}
    };
}

/// A string schema, described.
pub fn text(description: impl Into<String>) -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some(description))
}

/// A string schema whose fields describe it.
pub fn plain_text() -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String)
}

/// An integer (`int64`) schema (a query parameter's description is the parameter's own).
pub fn integer() -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Integer)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Int64,
        )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, FromBody)]
    #[allow(dead_code)] // the fields are what the decode produced; the tests read errors
    struct Sample {
        name: String,
        id: Option<Uuid>,
        note: Change<String>,
        #[input(not_null)]
        title: Option<String>,
        #[input(rename = "type")]
        kind: Option<bool>,
    }

    fn decode(text: &str) -> ApiResult<Sample> {
        let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
        decode_body(&raw)
    }

    fn field_errors(text: &str) -> Value {
        let e = decode(text).unwrap_err();
        assert_eq!(e.code(), "validation_failed");
        let body = serde_json::to_value(e.details().cloned()).unwrap();
        body["fieldErrors"].clone()
    }

    #[test]
    fn missing_wrong_typed_and_unknown_fields_are_reported_together() {
        let errors = field_errors(r#"{"id": 5, "note": ["x"], "extra": true}"#);
        assert_eq!(errors["name"][0], "is required");
        assert_eq!(errors["id"][0], "must be a string");
        assert_eq!(errors["note"][0], "must be a string");
        assert_eq!(errors["extra"][0], "is not an allowed field");
    }

    #[test]
    fn a_not_null_field_may_be_absent_but_not_null_and_a_renamed_field_reads_its_wire_name() {
        let errors = field_errors(r#"{"name": "a", "title": null, "kind": true}"#);
        assert_eq!(errors["title"][0], "must not be null");
        assert_eq!(errors["kind"][0], "is not an allowed field");
        let s = decode(r#"{"name": "a", "type": false}"#).unwrap();
        assert_eq!((s.title, s.kind), (None, Some(false)));
    }

    #[test]
    fn null_clears_a_patch_field_and_absence_keeps_it() {
        let s = decode(r#"{"name": "a", "note": null}"#).unwrap();
        assert_eq!(s.note, Change::Clear);
        let s = decode(r#"{"name": "a"}"#).unwrap();
        assert_eq!(s.note, Change::Keep);
        assert_eq!(s.id, None);
    }

    #[test]
    fn a_body_that_is_not_an_object_is_a_form_error() {
        for text in ["[]", "1", "\"x\"", "null"] {
            let e = decode(text).unwrap_err();
            let details = e.details().unwrap();
            assert_eq!(details["formErrors"][0], "Expected a JSON object", "{text}");
        }
    }

    #[derive(FromParams)]
    #[input(check = Page::consistent)]
    struct Page {
        mine: Option<bool>,
        id: Option<Uuid>,
        #[input(default)]
        all: bool,
    }

    impl Page {
        fn consistent(&self) -> Result<(), Across> {
            match (self.mine, self.id) {
                (Some(true), Some(_)) => Err(Across::Form("mine or id, not both")),
                _ => Ok(()),
            }
        }
    }

    #[derive(FromParams)]
    struct Required {
        id: Uuid,
        #[input(flatten)]
        page: Page,
    }

    #[test]
    fn an_unknown_parameter_is_refused_by_name() {
        let e = parse_query::<Page>("mine=true&select=*").err().unwrap();
        assert_eq!(e.code(), "unknown_parameter");
        assert_eq!(e.details().unwrap()["parameter"], "select");
    }

    #[test]
    fn a_repeated_or_malformed_parameter_is_a_field_error() {
        let e = parse_query::<Page>("mine=true&mine=false").err().unwrap();
        assert_eq!(
            e.details().unwrap()["fieldErrors"]["mine"][0],
            "must be given once"
        );
        let e = parse_query::<Page>("mine=yes").err().unwrap();
        assert_eq!(
            e.details().unwrap()["fieldErrors"]["mine"][0],
            "must be true or false"
        );
        assert_eq!(parse_query::<Page>("mine=true").unwrap().mine, Some(true));
        assert_eq!(parse_query::<Page>("").unwrap().mine, None);
    }

    #[test]
    fn an_absent_defaulted_parameter_is_its_default() {
        assert!(!parse_query::<Page>("").unwrap().all);
        assert!(parse_query::<Page>("all=true").unwrap().all);
    }

    #[test]
    fn a_required_parameter_missing_is_reported_with_the_flattened_ones() {
        let e = parse_query::<Required>("mine=maybe").err().unwrap();
        let fields = &e.details().unwrap()["fieldErrors"];
        assert_eq!(fields["id"][0], "is required");
        assert_eq!(fields["mine"][0], "must be true or false");
        let ok = parse_query::<Required>(&format!("id={}&mine=true", Uuid::nil())).unwrap();
        assert_eq!((ok.id, ok.page.mine), (Uuid::nil(), Some(true)));
    }

    #[test]
    fn a_rule_across_fields_runs_once_every_field_parsed() {
        let e = parse_query::<Page>(&format!("mine=true&id={}", Uuid::nil()))
            .err()
            .unwrap();
        assert_eq!(
            e.details().unwrap()["formErrors"][0],
            "mine or id, not both"
        );
        // A field that failed hides the rule: its message is the one to fix first.
        let e = parse_query::<Page>("mine=true&id=x").err().unwrap();
        let details = e.details().unwrap();
        assert_eq!(details["fieldErrors"]["id"][0], "must be a valid UUID");
        assert_eq!(details["formErrors"].as_array().map(Vec::len), Some(0));
    }
}
