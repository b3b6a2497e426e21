//! A device's state: `online`, `offline` when it has not been seen for three
//! `sync_interval_seconds`, `never_seen` when it never synced; and the sentence a notification
//! gives for it.

use chrono::{DateTime, Utc};

use crate::domain::health::age::age;

/// The state of a device last seen at `last_seen` that syncs every `sync_interval` seconds.
pub fn state(
    last_seen: Option<DateTime<Utc>>,
    sync_interval: u64,
    now: DateTime<Utc>,
) -> &'static str {
    match last_seen {
        None => "never_seen",
        // sync ≤ i32::MAX (the setting's bounds), so three of them fit in an i64.
        Some(t) if (now - t).num_seconds() > 3 * sync_interval as i64 => "offline",
        Some(_) => "online",
    }
}

/// One sentence on a device's `state` (see [`state`]).
pub fn reason(
    state: &str,
    last_seen: Option<DateTime<Utc>>,
    sync_interval: u64,
    now: DateTime<Utc>,
) -> String {
    match (state, last_seen) {
        ("offline", Some(t)) => format!(
            "the device has not synced for {} (expected every {})",
            age((now - t).num_seconds()),
            age(sync_interval as i64)
        ),
        ("online", _) => "the device synced recently".to_string(),
        _ => "the device never synced".to_string(),
    }
}
