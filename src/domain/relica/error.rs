//! The errors of a Relica import: each names the element of the Relica file it is about, in
//! sentences the user can act on.

use std::fmt;

use uuid::Uuid;

/// Every error names the element of the Relica file it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelicaError {
    NotJson {
        line: usize,
        column: usize,
        message: String,
    },
    UnsupportedCacheVersion {
        found: String,
        supported: i64,
    },
    Malformed {
        path: String,
        message: String,
    },
    MissingOrigin {
        path: String,
        origin_id: Uuid,
    },
    UnknownOriginFilter {
        filter: String,
        known: String,
    },
}

impl fmt::Display for RelicaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelicaError::NotJson {
                line,
                column,
                message,
            } => write!(
                f,
                "the Relica file is not valid JSON (line {line}, column {column}: {message}); \
                 pass the unmodified cache file from the Relica client's data folder"
            ),
            RelicaError::UnsupportedCacheVersion { found, supported } => write!(
                f,
                "cache_header.cache_version is {found} but only cache_version {supported} is \
                 supported; use the cache file written by a Relica client that writes version \
                 {supported}"
            ),
            RelicaError::Malformed { path, message } => {
                write!(f, "malformed Relica file: {path}: {message}")
            }
            RelicaError::MissingOrigin { path, origin_id } => write!(
                f,
                "{path}: origin_id {origin_id} is not among read_only.origins; the file is \
                 inconsistent, so the backup's device cannot be determined"
            ),
            RelicaError::UnknownOriginFilter { filter, known } => write!(
                f,
                "origin filter {filter:?} matches no origin name or id in the Relica file \
                 (known origins: {known})"
            ),
        }
    }
}

impl std::error::Error for RelicaError {}

/// A [`RelicaError::Malformed`] at `path`.
pub(super) fn malformed(path: impl Into<String>, message: impl Into<String>) -> RelicaError {
    RelicaError::Malformed {
        path: path.into(),
        message: message.into(),
    }
}
