//! The `devices` table: registering, listing, enabling and removing devices, the heartbeat
//! of `sync`, and the checks a device makes on its own row.
