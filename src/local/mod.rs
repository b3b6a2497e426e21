//! The device's own state on disk: the config file, the state directory and the one way files
//! are written there, the local copy of this device's jobs, the spool of run records not yet
//! delivered, the lock files that keep runs apart, and the markers of restic processes.
//!
//! Uses `domain/`, `store/` (to refresh the local copy) and `platform/`; nothing above.

pub mod config;
pub mod copy;
pub mod locks;
pub mod markers;
pub mod restic_version;
pub mod spool;
pub mod state;
