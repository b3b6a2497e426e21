//! The work the commands share, made of the layers below: running one backup (resolve, execute,
//! progress), delivering run records to the database or the spool, closing runs whose process
//! died, resolving full snapshot ids, forgetting by retention policy, enrolling a device's
//! credentials, the fleet's status report and the maintenance state, and notifications.
//!
//! Uses every layer below (`domain/`, `output/`, `store/`, `platform/`, `local/`); never
//! `commands/`, so any command can call any operation.

pub mod backup;
pub mod delivery;
pub mod enroll;
pub mod forget;
pub mod maintenance_status;
pub mod notify;
pub mod reconcile;
pub mod relica_import;
pub mod report;
pub mod repositories;
pub mod snapshot_ids;
pub mod status;
