//! Exit codes and the error type that carries one.
//!
//! Every error a user can cause is a [`Failure`] with one clear sentence and the exit code that
//! README.md documents. Anything else that bubbles up as a plain `anyhow::Error` exits with
//! [`FAILED`].

use std::fmt;

/// Everything worked (for `run`: the backup succeeded without warnings).
pub const SUCCESS: u8 = 0;
/// The operation failed (for `run`: the backup failed; for `sync`: at least one item failed).
pub const FAILED: u8 = 1;
/// Usage or configuration error: bad arguments, missing or invalid config, unknown job, ...
pub const USAGE: u8 = 2;
/// The backup finished with warnings: a snapshot exists but is incomplete (restic exit 3),
/// or a configured source path does not exist.
pub const WARNINGS: u8 = 3;
/// Skipped: the same job is already running, or the device's concurrency limit held.
pub const SKIPPED: u8 = 4;
/// The backup was cancelled by SIGINT/SIGTERM (128 + SIGINT, as shells report it).
pub const CANCELLED: u8 = 130;

/// An error with a user-facing sentence and a documented exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: USAGE,
            message: message.into(),
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            code: FAILED,
            message: message.into(),
        }
    }

    pub fn skipped(message: impl Into<String>) -> Self {
        Self {
            code: SKIPPED,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Shorthand for returning a usage/configuration error from a function returning
/// `anyhow::Result`.
#[macro_export]
macro_rules! usage_err {
    ($($arg:tt)*) => {
        ::anyhow::Error::new($crate::domain::exit::Failure::usage(format!($($arg)*)))
    };
}

/// The exit code for an error: the [`Failure`]'s own, or [`FAILED`].
pub fn code_of(err: &anyhow::Error) -> u8 {
    err.downcast_ref::<Failure>()
        .map(|f| f.code)
        .unwrap_or(FAILED)
}
