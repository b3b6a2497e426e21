//! What restic-fleet knows, with no I/O: the cron engine and its systemd and Task Scheduler
//! translations, jobs, schedules and settings as values, restic's command line, JSON messages,
//! exit codes and allow-lists, Relica's cache format and the import plan made of it, retention
//! and maintenance rules, exit codes, and the text rules (masking, quoting) every layer shares.
//!
//! Uses nothing of the crate above it. Everything here is a pure function of its arguments
//! (the clock and the time zone are passed in), so it is tested with plain unit tests.

pub mod calendar;
pub mod client_version;
pub mod device;
pub mod exit;
pub mod health;
pub mod hook_command;
pub mod job;
pub mod maintenance;
pub mod private_acl;
pub mod quote;
pub mod relica;
pub mod repository;
pub mod restic;
pub mod retention;
pub mod run_record;
pub mod schedule;
pub mod scram;
pub mod settings;
pub mod text;
