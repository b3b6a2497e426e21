//! Health verdicts, with no I/O: what `status`, `metrics` and `status --notify` say about a
//! job (`ok`, `warning`, `failing`, `overdue`, `never_run`, `disabled`), a device (`online`,
//! `offline`, `never_seen`) and the repository's maintenance, each with its one-sentence reason,
//! decided from facts the caller read (the clock is passed in).
//!
//! Uses `domain/` only (calendar, settings, maintenance rules); the database reads that feed
//! these rules are in `ops/status.rs` and `ops/maintenance_status.rs`.

pub mod age;
pub mod device;
pub mod history;
pub mod job;
pub mod maintenance;
pub mod period;
pub mod settings;
