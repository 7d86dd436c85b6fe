//! `/api/admin/audit`: the audit log, for admins. The database's trigger writes it in each
//! write's own transaction; it is read here through PostgREST as the admin, so its RLS policy
//! (admins only) applies behind the `Admin` check.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use super::common::{json_response, Limit};
use super::input::{plain_text, Across, FromParam, FromParams, Params, Problem};
use crate::auth::Admin;
use crate::error::ApiResult;
use crate::field_schema;
use crate::openapi::responses;
use crate::state::AppState;
use crate::supabase::postgrest::{Caller, Query, Value};

const AUDIT_COLUMNS: &str =
    "id,occurred_at,user_id,role,is_anonymous,table_name,row_id,operation,changed_columns,request_id";

/// One audited write: one row of one table, as the database's trigger recorded it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // never built: PostgREST's bytes pass through unparsed; this is their shape
#[schema(example = json!({
    "id": 1042, "occurred_at": "2026-12-04T21:03:11.402311+00:00",
    "user_id": "4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90", "role": "authenticated",
    "is_anonymous": false, "table_name": "items",
    "row_id": "0b6f1c2e-4a5d-4e8f-9b1a-2c3d4e5f6a7b", "operation": "UPDATE",
    "changed_columns": ["price", "updated_at"],
    "request_id": "9d1c0a52-5a3e-4f3b-8d6e-2b1f0c7e4a11"
}))]
pub struct AuditEntry {
    /// Increasing with each write: the keyset of the pages (`before`).
    #[schema(format = Int64)]
    id: i64,
    /// The write's transaction time.
    #[schema(format = DateTime)]
    occurred_at: String,
    /// The caller's `sub`; `null` for a write without a user (the service role).
    #[schema(required = true)]
    user_id: Option<Uuid>,
    /// The database role: `authenticated`, `service_role`, ...
    role: String,
    /// An anonymous sign-in wrote.
    is_anonymous: bool,
    table_name: String,
    /// The written row's key (`id`; `user_id` for `customers`).
    #[schema(required = true)]
    row_id: Option<String>,
    /// `INSERT`, `UPDATE` or `DELETE`.
    operation: String,
    /// Names of the columns set (insert) or changed (update); never their values.
    changed_columns: Vec<String>,
    /// The `X-Request-Id` of the request that wrote, as supagate sent it upstream.
    #[schema(required = true)]
    request_id: Option<String>,
}

/// The audited tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum AuditTable {
    Items,
    Categories,
    Profiles,
    Customers,
    Subscriptions,
    Payments,
}

impl AuditTable {
    fn name(self) -> &'static str {
        match self {
            Self::Items => "items",
            Self::Categories => "categories",
            Self::Profiles => "profiles",
            Self::Customers => "customers",
            Self::Subscriptions => "subscriptions",
            Self::Payments => "payments",
        }
    }
}

impl FromParam for AuditTable {
    fn from_param(text: &str) -> Result<Self, Problem> {
        Ok(match text {
            "items" => Self::Items,
            "categories" => Self::Categories,
            "profiles" => Self::Profiles,
            "customers" => Self::Customers,
            "subscriptions" => Self::Subscriptions,
            "payments" => Self::Payments,
            _ => return Err(
                "must be one of items, categories, profiles, customers, subscriptions, payments"
                    .into(),
            ),
        })
    }
}

/// An RFC 3339 instant with its offset (`2026-12-04T21:00:00Z`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Instant(OffsetDateTime);

impl FromParam for Instant {
    fn from_param(text: &str) -> Result<Self, Problem> {
        OffsetDateTime::parse(text, &Rfc3339)
            .map(Self)
            .map_err(|_| "must be an RFC 3339 date-time with an offset".into())
    }
}

field_schema!(Instant => plain_text()
    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime))));

/// An entry id to page before: a positive integer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Before(i64);

impl FromParam for Before {
    fn from_param(text: &str) -> Result<Self, Problem> {
        match text.parse::<i64>() {
            Ok(n) if n > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(Self(n)),
            _ => Err("must be a positive integer (an entry's id)".into()),
        }
    }
}

field_schema!(Before => super::input::integer()
    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
    .minimum(Some(1)));

/// `GET /api/admin/audit` parameters.
#[derive(FromParams, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[input(check = Self::consistent)]
pub struct AuditQuery {
    /// Only writes by this user.
    #[param(nullable = false)]
    user_id: Option<Uuid>,
    /// Only writes to this table.
    #[param(inline, nullable = false)]
    table: Option<AuditTable>,
    /// Only writes at or after this instant.
    #[param(inline, nullable = false, example = "2026-12-01T00:00:00Z")]
    from: Option<Instant>,
    /// Only writes before this instant.
    #[param(inline, nullable = false, example = "2026-12-05T00:00:00Z")]
    to: Option<Instant>,
    /// Keyset paging: only entries with an `id` below this one; pass the last `id` of a page
    /// to get the next.
    #[param(inline, nullable = false)]
    before: Option<Before>,
    /// Page size.
    #[param(inline, nullable = false)]
    limit: Option<Limit>,
}

impl AuditQuery {
    fn consistent(&self) -> Result<(), Across> {
        if let (Some(from), Some(to)) = (self.from, self.to) {
            if from.0 >= to.0 {
                return Err(Across::Field("to", "must be later than from"));
            }
        }
        Ok(())
    }

    fn to_query(&self) -> Query {
        let mut query = Query::table("audit_log").select(AUDIT_COLUMNS);
        if let Some(id) = self.user_id {
            query = query.eq("user_id", id);
        }
        if let Some(table) = self.table {
            query = query.eq("table_name", Value::Name(table.name()));
        }
        if let Some(from) = self.from {
            query = query.gte("occurred_at", Value::Timestamp(from.0));
        }
        if let Some(to) = self.to {
            query = query.lt("occurred_at", Value::Timestamp(to.0));
        }
        if let Some(before) = self.before {
            query = query.lt("id", Value::Integer(before.0));
        }
        query.order("id.desc").limit(Limit::or_default(self.limit))
    }
}

#[utoipa::path(
    get,
    path = "/api/admin/audit",
    operation_id = "listAudit",
    tag = "admin",
    params(AuditQuery),
    security(("bearer_jwt" = []), ("session_cookie" = [])),
    responses(
        responses::UpstreamErrors,
        responses::CallerErrors,
        (status = 200, description = "Audited writes, newest first; an empty array past the last page", body = Vec<AuditEntry>),
    )
)]
pub async fn audit(
    state: web::Data<AppState>,
    Admin(admin): Admin,
    Params(query): Params<AuditQuery>,
) -> ApiResult<HttpResponse> {
    let body = state
        .supabase
        .pg_read(&query.to_query(), Caller::User(&admin))
        .await?;
    Ok(json_response(StatusCode::OK, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::input::parse_query;

    #[test]
    fn filters_become_postgrest_filters_newest_first() {
        let q: AuditQuery = parse_query(
            "user_id=4b8e5d0c-6f1a-4c7e-9a3b-2d5f8e1c7a90&table=items\
             &from=2026-12-01T00:00:00Z&to=2026-12-05T01:00:00%2B01:00&before=42&limit=5",
        )
        .unwrap();
        let path = q.to_query().to_path();
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(path.split_once('?').unwrap().1.as_bytes())
                .into_owned()
                .collect();
        let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "select",
                "user_id",
                "table_name",
                "occurred_at",
                "occurred_at",
                "id",
                "order",
                "limit"
            ]
        );
        assert_eq!(pairs[2].1, "eq.items");
        assert_eq!(pairs[3].1, "gte.2026-12-01T00:00:00Z");
        assert_eq!(pairs[4].1, "lt.2026-12-05T01:00:00+01:00");
        assert_eq!(pairs[5].1, "lt.42");
        assert_eq!(pairs[6].1, "id.desc");
        assert_eq!(pairs[7].1, "5");
    }

    #[test]
    fn bad_filters_are_refused() {
        for bad in [
            "table=audit_log",
            "from=yesterday",
            "before=0",
            "before=-3",
            "before=+3",
            "from=2026-12-05T00:00:00Z&to=2026-12-01T00:00:00Z",
        ] {
            assert!(parse_query::<AuditQuery>(bad).is_err(), "{bad}");
        }
    }
}
