//! Every SQL statement of the program, one module per table or aggregate, so that a reader finds
//! every query a command sends in one place (and the indexes that serve it next to it).
//!
//! Uses `domain/` for the row types; nothing above. Functions take a `&mut PgConnection` (or a
//! pool) and typed arguments, and return typed rows: no caller builds SQL.

pub mod client;
pub mod db;
pub mod devices;
pub mod fleet;
pub mod import;
pub mod jobs;
pub mod maintenance;
pub mod notifications;
pub mod report;
pub mod repositories;
pub mod retention;
pub mod roles;
pub mod runs;
pub mod schedules;
pub mod settings;
