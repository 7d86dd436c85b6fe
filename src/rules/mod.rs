//! Business decisions as plain functions: no HTTP, no I/O, unit-tested exhaustively.

pub mod billing;
