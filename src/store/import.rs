//! The Relica import of `relica-migrate`: devices, jobs, schedules and settings written in one
//! transaction with their Relica UUIDs kept.
