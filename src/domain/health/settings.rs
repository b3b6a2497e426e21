//! The settings the verdicts read for one device: its time zone (cron schedules are judged in
//! it), how often it syncs (when it counts as offline) and the grace a job gets after its
//! expected period.

use chrono_tz::Tz;

use crate::domain::settings::Settings;

/// The settings `status` needs for one device.
#[derive(Debug, Clone, Copy)]
pub struct DeviceSettings {
    pub tz: Tz,
    pub sync_interval: u64,
    /// `missed_run_grace_seconds` plus `schedule_jitter_seconds`.
    pub grace: i64,
}

impl DeviceSettings {
    /// What a device's jobs are judged with when the device is gone (deleted meanwhile): the
    /// settings' defaults.
    pub const DEFAULTS: DeviceSettings = DeviceSettings {
        tz: chrono_tz::UTC,
        sync_interval: 300,
        grace: 900,
    };

    pub fn from(s: &Settings) -> Self {
        let sync_interval = s.get_u64("sync_interval_seconds", 300).unwrap_or(300);
        let grace = s.get_u64("missed_run_grace_seconds", 900).unwrap_or(900)
            + s.get_u64("schedule_jitter_seconds", 0).unwrap_or(0);
        Self {
            tz: s.timezone().unwrap_or(chrono_tz::UTC),
            sync_interval,
            grace: grace as i64, // each term ≤ i32::MAX
        }
    }
}
