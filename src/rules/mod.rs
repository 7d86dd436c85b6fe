//! Business decisions as plain functions: no HTTP, no I/O, unit-tested exhaustively.
//! Handlers gather the facts (who calls, who owns, how many items) and ask these.

pub mod files;
pub mod ownership;
pub mod plan;
pub mod price;
pub mod redirect;
pub mod username;
