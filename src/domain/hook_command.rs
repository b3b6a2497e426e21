//! The rule a hook command must meet wherever it is written (`job monitor`, a Relica import)
//! and wherever it is run: the text a shell can receive. Pure, so every layer can check it.

/// The longest hook command accepted.
const MAX_COMMAND_LEN: usize = 8 * 1024;

/// Checks a hook command (where it is written and where it is used): not blank, no NUL byte
/// (which no shell can receive), at most 8 KiB. The error completes "the X hook ...".
pub fn validate_command(cmd: &str) -> Result<(), String> {
    if cmd.trim().is_empty() {
        return Err("is empty; clear it with the matching --no-hook-... option instead".into());
    }
    if cmd.contains('\0') {
        return Err("contains a NUL byte, which no shell accepts".into());
    }
    if cmd.len() > MAX_COMMAND_LEN {
        return Err(format!("is longer than {MAX_COMMAND_LEN} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_checked() {
        assert!(validate_command("echo hi").is_ok());
        assert!(validate_command("  ").is_err());
        assert!(validate_command("a\0b").is_err());
        assert!(validate_command(&"x".repeat(9000)).is_err());
    }
}
