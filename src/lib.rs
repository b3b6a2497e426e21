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
pub mod maintenance;
pub mod monitor;
pub mod ping;
pub mod preview;
pub mod quote;
pub mod reconcile;
pub mod relica;
pub mod relica_migrate;
pub mod repository;
pub mod restic;
pub mod restic_args;
pub mod run;
pub mod run_hooks;
pub mod schedule;
pub mod schedules;
pub mod settings;
// i13: full snapshot ids resolved by sync instead of a second restic call per run.
pub mod snapshot_ids;
// i13: the SQL of the fleet-scale commands (status, cleanup, snapshot ids).
pub mod snapshots;
pub mod spool;
pub mod state;
pub(crate) mod store;
pub mod sync;
pub mod unattended;
pub mod util;
