//! Shared output helpers: tables that fit 100 columns, JSON, times and ages, secret masking.

use std::io::IsTerminal;

use chrono::{DateTime, Duration, Utc};
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

use crate::usage_err;

/// Width every human table is laid out to.
pub const WIDTH: u16 = 100;

/// What a secret value looks like in output unless `--show-secrets` is given.
pub const MASK: &str = "***";

/// A borderless table with upper-case headers, wrapped to [`WIDTH`] columns.
pub fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(WIDTH)
        .set_header(headers.iter().map(|h| h.to_ascii_uppercase()));
    t
}

/// Never wraps column `col` (ids that must stay copyable, like job UUIDs).
pub fn keep_whole(t: &mut Table, col: usize) {
    if let Some(c) = t.column_mut(col) {
        c.set_constraint(comfy_table::ColumnConstraint::ContentWidth);
    }
}

/// The rendered table, trailing spaces removed.
pub fn render(t: &Table) -> String {
    t.lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    // i13: streamed, not built as one string first (a whole fleet's status is tens of MB).
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// The value of setting `key` as it may be shown: a secret (see
/// [`crate::settings::secret_keys`]) becomes `***` (empty stays empty, so "not set" shows),
/// except `repository_url` (a secret for viewers since migration 012, who never get the row),
/// of which only a credential inside is masked, as `run` and `status` print it.
pub fn shown_value(key: &str, value: &str, secret: bool, show_secrets: bool) -> String {
    if show_secrets {
        value.to_string()
    } else if key == "repository_url" {
        crate::util::mask_url(value)
    } else if secret && !value.is_empty() {
        MASK.to_string()
    } else {
        value.to_string()
    }
}

/// A time for a table: local wall time of this machine to the minute, `-` when absent.
pub fn time(t: Option<DateTime<Utc>>) -> String {
    match t {
        None => "-".into(),
        Some(t) => {
            let tz = crate::settings::local_timezone();
            t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
        }
    }
}

/// A duration in the largest two units: `45s`, `12m`, `3h 5m`, `9d 2h`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    if d > 0 {
        if h > 0 {
            format!("{d}d {h}h")
        } else {
            format!("{d}d")
        }
    } else if h > 0 {
        if m > 0 {
            format!("{h}h {m}m")
        } else {
            format!("{h}h")
        }
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    }
}

/// How long ago `t` was, as [`age`] plus ` ago`, or `-`.
pub fn ago(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match t {
        None => "-".into(),
        Some(t) if t > now => format!("in {}", age((t - now).num_seconds())),
        Some(t) => format!("{} ago", age((now - t).num_seconds())),
    }
}

/// Parses a `--since`/`--until` value: RFC 3339 (`2027-01-31T12:00:00Z`) or a time before now
/// such as `30m`, `12h`, `7d`, `2w`.
pub fn parse_when(flag: &str, text: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    let bad = || {
        usage_err!(
            "{flag} {text:?} is neither an RFC 3339 time like 2027-01-31T12:00:00Z nor a \
             relative time like 30m, 12h, 7d or 2w"
        )
    };
    let unit = t.chars().last().ok_or_else(bad)?;
    let n: i64 = t[..t.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    if n < 0 {
        return Err(bad());
    }
    let d = match unit {
        's' => Duration::try_seconds(n),
        'm' => Duration::try_minutes(n),
        'h' => Duration::try_hours(n),
        'd' => Duration::try_days(n),
        'w' => Duration::try_weeks(n),
        _ => None,
    }
    .ok_or_else(bad)?;
    now.checked_sub_signed(d).ok_or_else(bad)
}

/// Should human output be coloured? Only on a terminal, and not when NO_COLOR is set.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Wraps `text` in an ANSI colour (`31` red, `32` green, `33` yellow, `35` magenta, `2` dim).
pub fn paint(text: &str, code: &str) -> String {
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// `yes`/`no` for a table.
pub fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ages() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(3 * 3600 + 300), "3h 5m");
        assert_eq!(age(9 * 86400 + 7200), "9d 2h");
        assert_eq!(age(86400), "1d");
    }

    #[test]
    fn when() {
        let now = Utc.with_ymd_and_hms(2027, 1, 10, 0, 0, 0).unwrap();
        assert_eq!(
            parse_when("--since", "7d", now).unwrap(),
            Utc.with_ymd_and_hms(2027, 1, 3, 0, 0, 0).unwrap()
        );
        assert_eq!(
            parse_when("--since", "2027-01-01T01:00:00+01:00", now).unwrap(),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
        let e = parse_when("--since", "yesterday", now).unwrap_err();
        assert!(e.to_string().contains("--since"), "{e}");
        assert!(parse_when("--until", "7x", now).is_err());
        assert!(parse_when("--until", "", now).is_err());
    }

    #[test]
    fn masks_secrets_only() {
        assert_eq!(shown_value("repository_password", "pw", true, false), "***");
        assert_eq!(shown_value("repository_password", "pw", true, true), "pw");
        assert_eq!(shown_value("repository_password", "", true, false), "");
        assert_eq!(shown_value("timezone", "UTC", false, false), "UTC");
        assert_eq!(
            shown_value("repository_url", "rest:https://u:pw@h/", false, false),
            "rest:https://u:***@h/"
        );
        assert_eq!(
            shown_value("repository_url", "rest:https://u:pw@h/", false, true),
            "rest:https://u:pw@h/"
        );
        assert_eq!(
            shown_value("repository_url", "rest:https://u:pw@h/", true, false),
            "rest:https://u:***@h/"
        );
    }
}
