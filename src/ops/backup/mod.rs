//! One restic backup, in the steps `run` takes ([`run`] strings them together): resolve the job
//! and what restic needs (from the database or the local copy), execute restic and classify how
//! it ended, show progress, and hand the record to [`crate::ops::delivery`].

pub mod execute;
pub mod progress;
pub mod resolve;
pub mod run;
