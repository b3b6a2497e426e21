//! One restic backup, in the steps `run` takes: resolve the job and what restic needs (from the
//! database or the local copy), execute restic and classify how it ended, and show progress.

pub mod execute;
pub mod progress;
pub mod resolve;
