//! The `settings` table: global rows and the device's own, read as one map, and the writes of
//! `settings set|unset`.
