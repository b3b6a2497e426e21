//! The `job_retention` table: each job's `--keep-*` policy for `restic forget`.
