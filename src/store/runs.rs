//! The `runs` table: writing a run record (one column list and one bind function for the
//! whole row), closing runs whose process died, and the reads of `runs list|show`.
