//! The Auth admin API (`/auth/v1/admin/users`), called with the secret/service-role key.
//! Only the admin user endpoints (and self-deletion, which docs/api.md routes through it) use this.
//! Errors go through the same parser and table as the user flows (`gotrue`).

use http::Method;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::gotrue::{auth_call, auth_request, AuthCall, ForClient};
use super::Supabase;
use crate::error::ApiError;
use crate::http_client::JsonApi;

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

impl Supabase {
    fn admin_api(&self) -> Result<&JsonApi, ApiError> {
        self.gotrue_admin
            .as_ref()
            .ok_or_else(|| ApiError::internal("supabase.service_role_key is not configured"))
    }

    /// `POST /auth/v1/admin/users`; the profile row is created by the database trigger.
    pub async fn admin_create_user(&self, user: &NewAuthUser<'_>) -> Result<Uuid, ApiError> {
        let api = self.admin_api()?;
        let request = auth_request(
            api,
            Method::POST,
            "/admin/users",
            ForClient::default(),
            false,
        );
        let body = auth_call(api, self.service_bearer(request.json(user)))
            .await
            .map_err(|e| e.into_api(AuthCall::Admin))?;
        let created: CreatedUser = api.decode(&body)?;
        Ok(created.id)
    }

    /// `DELETE /auth/v1/admin/users/{id}`; the profile and items go by cascade.
    pub async fn admin_delete_user(&self, id: Uuid) -> Result<(), ApiError> {
        let api = self.admin_api()?;
        let path = format!("/admin/users/{id}");
        let request = auth_request(api, Method::DELETE, &path, ForClient::default(), false);
        auth_call(api, self.service_bearer(request))
            .await
            .map_err(|e| e.into_api(AuthCall::Admin))?;
        Ok(())
    }
}
