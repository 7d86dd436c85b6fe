//! The `api_keys` table: the lookup by hash (secret key, past RLS) that verifies a key, and
//! the owner's own list, create and delete (their token, so RLS decides).

use http::Method;

use super::error::SupabaseError;
use super::stripe_data::service_call;
use super::Supabase;
use crate::auth::api_key::KeyRow;

impl Supabase {
    /// The key whose SHA-256 is `hash_hex` (lowercase hex), if it exists.
    pub async fn api_key_by_hash(&self, hash_hex: &str) -> Result<Option<KeyRow>, SupabaseError> {
        let api = self.service_api()?;
        let query = [
            (
                "select",
                "id,user_id,secret_hash,scopes,expires_at".to_owned(),
            ),
            ("secret_hash", format!("eq.{hash_hex}")),
        ];
        let request = self.service_bearer(api.request(Method::GET, "/api_keys").query(&query));
        let body = service_call(api, request).await?;
        let rows: Vec<KeyRow> = api.decode(&body)?;
        Ok(rows.into_iter().next())
    }
}
