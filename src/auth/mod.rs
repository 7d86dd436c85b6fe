//! Who is calling: token extraction (bearer, then the `@supabase/ssr` cookie), local JWT
//! verification, and the extractors handlers use (`User`, `MaybeUser`, `Admin`).

pub mod extract;
pub mod verify;

pub use extract::{Admin, MaybeUser, User};
pub use verify::{AuthUser, Verifier};
