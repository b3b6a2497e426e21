//! restic-fleet: a backup orchestrator for fleets of machines running restic, with one
//! PostgreSQL database as the single source of truth.

pub mod cli;
pub mod commands;
pub mod domain;
pub mod local;
pub mod ops;
pub mod output;
pub mod platform;
pub mod store;
