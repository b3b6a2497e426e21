//! The operating system as restic-fleet uses it: child processes that die with their parent,
//! the scheduler backends (systemd units and Task Scheduler tasks), hooks run as shell
//! commands, outgoing HTTP pings, the network and sleep state, restic's environment and cache
//! directory, and restic itself run against a repository.
//!
//! Uses `domain/` only: never the database, the device's local state or anything above, so
//! what it installs or runs is computed by its caller.

pub mod acl;
pub mod child;
pub mod hooks;
pub mod host;
pub mod network;
pub mod ping;
pub mod power;
pub mod repository;
pub mod restic_cache;
pub mod restic_env;
pub mod scheduler;
