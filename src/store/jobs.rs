//! The `backup_jobs` table and the ping URLs of `job_ping_urls`: one column list
//! ([`crate::domain::job::JOB_COLUMNS`]) for every read, and the writes of `job add|edit|rm`.
