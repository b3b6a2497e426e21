//! What `status --notify` remembers between runs: the last verdict notified per job and device.
