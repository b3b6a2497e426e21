//! restic-fleet: a backup orchestrator for fleets of machines running restic, with one
//! PostgreSQL database as the single source of truth.

pub mod admin;
pub mod app;
pub mod child;
pub mod cli;
pub mod config;
pub mod db;
pub mod exit;
pub mod init;
pub mod jobs;
pub mod local_copy;
pub mod locks;
pub mod preview;
pub mod reconcile;
pub mod relica;
pub mod relica_migrate;
pub mod restic;
pub mod run;
pub mod schedule;
pub mod schedules;
pub mod settings;
pub mod spool;
pub mod state;
pub mod sync;
pub mod util;
