//! The `schedules` table: one column list
//! ([`crate::domain::schedule::SCHEDULE_COLUMNS`]) for every read, the writes of
//! `schedule add|rm|enable|disable`, and the moves of `next_run_at` by `run` and `sync`.
