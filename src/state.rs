//! What every handler can reach: settings and the upstream clients, built once at start-up.

use std::sync::Arc;

use crate::auth::Verifier;
use crate::config::Settings;
use crate::supabase::Supabase;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub supabase: Supabase,
    pub verifier: Arc<Verifier>,
}

impl AppState {
    pub fn new(settings: Settings) -> anyhow::Result<Self> {
        let supabase = Supabase::new(&settings)?;
        let verifier = Arc::new(Verifier::new(&settings));
        Ok(Self {
            settings: Arc::new(settings),
            supabase,
            verifier,
        })
    }
}
