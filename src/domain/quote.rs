//! Quoting of command lines that we print for a user to paste into a shell: every word that
//! is not plainly safe is quoted, so a device id like `d;id` can never run a second command
//! when the line is pasted.

/// Quotes a word for a POSIX shell when it needs it (`'d;id'`, `'a'\''b'`).
pub fn posix(s: &str) -> String {
    if is_plain(s) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Quotes a word for PowerShell when it needs it (single quotes, `''` inside).
pub fn powershell(s: &str) -> String {
    if is_plain(s) {
        s.to_owned()
    } else {
        // PowerShell also treats the typographic single quotes as quotes.
        let escaped: String = s
            .chars()
            .flat_map(|c| match c {
                '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' => vec![c, c],
                c => vec![c],
            })
            .collect();
        format!("'{escaped}'")
    }
}

/// Quotes for the shell of `platform` (`windows`: PowerShell, anything else: POSIX).
pub fn for_platform(platform: &str, s: &str) -> String {
    if platform == "windows" {
        powershell(s)
    } else {
        posix(s)
    }
}

fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '@' | '+' | '=')
        })
        && !s.starts_with('-')
        && !s.starts_with('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(posix("device1"), "device1");
        assert_eq!(posix("Počítač-1"), "Počítač-1");
        assert_eq!(posix("postgres://u:***@h/db"), "'postgres://u:***@h/db'");
        assert_eq!(posix("d;id"), "'d;id'");
        assert_eq!(posix("a'b"), r"'a'\''b'");
        assert_eq!(posix("$(id)"), "'$(id)'");
        assert_eq!(posix(""), "''");
        assert_eq!(powershell("d;id"), "'d;id'");
        assert_eq!(powershell("a'b"), "'a''b'");
        assert_eq!(for_platform("windows", "a b"), "'a b'");
        assert_eq!(for_platform("linux", "a b"), "'a b'");
    }
}
