//! Who is calling: token extraction (bearer, then the `@supabase/ssr` cookie session, refreshed
//! on the server), local JWT verification (JWKS and HS256), and the extractors handlers use
//! (`User`, `MaybeUser`, `Writer`, `Permanent`, `Admin`, `Identity`); API keys, and the
//! session checks of `auth.check_session_routes`.

pub mod api_key;
pub mod cache;
pub mod cookie;
pub mod extract;
pub mod issuers;
pub mod jwks;
pub mod pkce;
pub mod refresh;
pub mod session_check;
mod user;
pub mod verify;

pub use extract::{Admin, Identity, MaybeUser, Permanent, User, Writer};
pub use user::AuthUser;
pub use verify::Verifier;
