//! Text that leaves the program: URLs with their passwords masked, secrets redacted, strings
//! cut to a length on a character boundary, and the characters no display may get raw.

/// A character that must not reach a terminal or a display as it is: a control character, or
/// a bidi embedding, override or isolate (U+202A..U+202E, U+2066..U+2069), which reorder what
/// follows them on the line.
pub fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// One line of free text for a scheduler's description (a unit's `Description=`, a task's
/// `<Description>`): at most 200 characters, each unsafe character ([`unsafe_char`]) written
/// as its code point (`U+202E`), a line end included.
pub fn description_line(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().take(200) {
        if unsafe_char(c) {
            out.push_str(&format!("U+{:04X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// Replaces the passwords of a URL with `***`: the one in `scheme://user:password@host/...` and
/// the values of query parameters named like `password` (libpq's `?password=`, `sslpassword=`),
/// so that a database or repository URL can be printed and logged.
pub fn mask_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = url[..scheme_end + 3].to_string();
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => out.push_str(&format!("{}:***", &userinfo[..colon])),
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let tail = &rest[authority_end..];
    let Some(q) = tail.find('?') else {
        out.push_str(tail);
        return out;
    };
    out.push_str(&tail[..=q]);
    let query_and_fragment = &tail[q + 1..];
    let (query, fragment) = match query_and_fragment.find('#') {
        Some(h) => query_and_fragment.split_at(h),
        None => (query_and_fragment, ""),
    };
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.to_ascii_lowercase().ends_with("password") => format!("{k}=***"),
            _ => p.to_string(),
        })
        .collect();
    out.push_str(&params.join("&"));
    out.push_str(fragment);
    out
}

/// Replaces every occurrence of `secret` in `text` by `***` (no-op for an empty secret).
pub fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() || !text.contains(secret) {
        text.to_string()
    } else {
        text.replace(secret, "***")
    }
}

/// Cuts `text` to at most `max` bytes on a char boundary.
pub fn truncate_str(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_only_the_password() {
        assert_eq!(
            mask_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(mask_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(mask_url("rest:https://a:b@c/d"), "rest:https://a:***@c/d");
        assert_eq!(mask_url("/srv/repo"), "/srv/repo");
        assert_eq!(mask_url("postgres://h/db?x=@"), "postgres://h/db?x=@");
        assert_eq!(
            mask_url("postgres://u@h/db?sslmode=require&password=hunter2"),
            "postgres://u@h/db?sslmode=require&password=***"
        );
        assert_eq!(
            mask_url("postgres://u:a@h/db?sslpassword=b#f"),
            "postgres://u:***@h/db?sslpassword=***#f"
        );
    }

    #[test]
    fn truncates_on_char_boundary() {
        assert_eq!(truncate_str("ÚČTO", 3), "Ú");
        assert_eq!(truncate_str("abc", 10), "abc");
    }
}
