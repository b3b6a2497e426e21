//! The OS schedulers `sync` installs into: one systemd `.service` + `.timer` per job, or one
//! Task Scheduler task per job, both computed from one [`plan::Plan`] and compared with what is
//! installed; and catch-up runs started through the same scheduler.

pub mod catch_up;
pub mod plan;
pub mod systemd;
pub mod task_scheduler;
