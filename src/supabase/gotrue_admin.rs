//! The Auth admin API (`/auth/v1/admin/users`), called with the secret/service-role key.
//! Only the admin user endpoints (and self-deletion, which docs/api.md routes through it) use this.

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Supabase;
use crate::error::ApiError;
use crate::http_client::{JsonApi, UpstreamError};

#[derive(Serialize)]
pub struct NewAuthUser<'a> {
    pub email: &'a str,
    pub password: &'a str,
    /// Admin-created accounts are confirmed: the admin vouches for the address.
    pub email_confirm: bool,
    pub user_metadata: serde_json::Value,
}

#[derive(Deserialize)]
struct CreatedUser {
    id: Uuid,
}

/// GoTrue's error bodies: legacy `{code:int, error_code, msg}` or `{code:"...", message}`.
#[derive(Deserialize)]
struct AuthErrorBody {
    error_code: Option<String>,
    code: Option<serde_json::Value>,
}

fn auth_error_code(body: &[u8]) -> String {
    let Ok(parsed) = serde_json::from_slice::<AuthErrorBody>(body) else {
        return String::new();
    };
    parsed
        .error_code
        .or_else(|| parsed.code.and_then(|c| c.as_str().map(str::to_owned)))
        .unwrap_or_default()
}

/// Auth admin errors → API errors, by string code (messages change between versions).
fn map_auth_error(e: UpstreamError) -> ApiError {
    let UpstreamError::Status { status, body, .. } = &e else {
        return e.into();
    };
    match auth_error_code(body).as_str() {
        "email_exists" | "user_already_exists" => ApiError::conflict(
            "user_already_exists",
            "A user with this email already exists",
        ),
        "weak_password" => ApiError::unprocessable("weak_password", "The password is too weak"),
        "validation_failed" | "email_address_invalid" => ApiError::validation(
            serde_json::json!({}),
            vec!["Supabase Auth rejected the user data".to_owned()],
        ),
        "user_not_found" => ApiError::not_found("User not found"),
        _ if *status == StatusCode::NOT_FOUND => ApiError::not_found("User not found"),
        _ => ApiError::upstream_error(&e),
    }
    .with_internal(&e)
}

impl Supabase {
    fn admin_api(&self) -> Result<&JsonApi, ApiError> {
        self.gotrue_admin
            .as_ref()
            .ok_or_else(|| ApiError::internal("supabase.service_role_key is not configured"))
    }

    /// `POST /auth/v1/admin/users`; the profile row is created by the database trigger.
    pub async fn admin_create_user(&self, user: &NewAuthUser<'_>) -> Result<Uuid, ApiError> {
        let api = self.admin_api()?;
        let request = self.service_bearer(api.request(Method::POST, "/admin/users").json(user));
        let created: CreatedUser = api.json(request).await.map_err(map_auth_error)?;
        Ok(created.id)
    }

    /// `DELETE /auth/v1/admin/users/{id}`; the profile and items go by cascade.
    pub async fn admin_delete_user(&self, id: Uuid) -> Result<(), ApiError> {
        let api = self.admin_api()?;
        let request =
            self.service_bearer(api.request(Method::DELETE, &format!("/admin/users/{id}")));
        api.execute(request).await.map_err(map_auth_error)?;
        Ok(())
    }
}
