//! restic-fleet: a backup orchestrator for fleets of machines running restic, with one
//! PostgreSQL database as the single source of truth.
//!
//! The modules are layers, bottom first: [`domain`] (knowledge without I/O), [`output`],
//! [`store`] (every SQL statement), [`platform`] (the operating system), [`local`] (this
//! device's files), [`ops`] (work the commands share), [`commands`] (one file per subcommand)
//! and [`cli`]. A module uses its own layer and the ones below it; ARCHITECTURE.md draws the
//! map and `tests/architecture.rs` holds the tree to it.

pub mod cli;
pub mod commands;
pub mod domain;
pub mod local;
pub mod ops;
pub mod output;
pub mod platform;
pub mod store;
