//! Who is calling: token extraction (bearer, then the `@supabase/ssr` cookie), local JWT
//! verification (JWKS and HS256), and the extractors handlers use (`User`, `MaybeUser`, `Admin`).

pub mod cache;
pub mod cookie;
pub mod extract;
pub mod jwks;
mod user;
pub mod verify;

pub use extract::{Admin, MaybeUser, User};
pub use user::AuthUser;
pub use verify::Verifier;
