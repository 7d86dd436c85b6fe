//! What every handler can reach: settings and the upstream clients, built once at start-up.

use std::sync::Arc;

use crate::config::Settings;
use crate::supabase::Supabase;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub supabase: Supabase,
}

impl AppState {
    pub fn new(settings: Settings) -> anyhow::Result<Self> {
        let supabase = Supabase::new(&settings)?;
        Ok(Self {
            settings: Arc::new(settings),
            supabase,
        })
    }
}
