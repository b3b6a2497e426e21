//! The OS schedulers `sync` installs into: one systemd `.service` + `.timer` per job, or one
//! Task Scheduler task per job, both computed from one [`plan::Plan`] and compared with what is
//! installed; and catch-up runs started through the same scheduler.
//!
//! The files depend on each other in one direction: `names`, `privilege`, `report` and `plan`
//! use nothing here; `catch_up` uses those; `backend` uses `catch_up`; the backends (`systemd`,
//! `task_scheduler`) use all of them.

pub mod backend;
pub mod catch_up;
pub mod names;
pub mod plan;
pub mod privilege;
pub mod report;
pub mod systemd;
pub mod task_scheduler;
