//! The SQL of the commands, one module per area, so that a reader finds every query a command
//! sends in one place (and the indexes that serve it next to it).

pub mod db;
pub mod device;
pub mod fleet;
pub mod maintenance;
