//! Fleet monitoring from the database: the Prometheus metrics of `restic-fleet metrics` and the
//! notifications of `restic-fleet status --notify`.
//!
//! Both read the verdicts that `status` computes ([`crate::admin::status::collect`]) and never
//! decide a verdict themselves, so the metrics, the notifications and `status` always agree.
//! Because they read the database, a machine that is switched off or has silently stopped
//! backing up is reported too (as overdue/offline), which no per-machine tool can do.

pub mod metrics;
pub mod notify;
