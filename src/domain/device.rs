//! A device as a value: the rules its name follows wherever it is written (`device add`,
//! `device enroll`, `relica-migrate`).

use crate::usage_err;

/// A device name: 1 to 255 characters without control characters (it is printed in tables
/// and reports, where a newline or an escape sequence would forge output).
pub fn validate_device_name(name: &str) -> anyhow::Result<String> {
    let n = name.trim();
    if n.is_empty() || n.len() > 255 || n.chars().any(|c| c.is_control()) {
        return Err(usage_err!(
            "device name {name:?} must be 1 to 255 characters without control characters; give \
             the device a readable name with --name"
        ));
    }
    Ok(n.to_string())
}
