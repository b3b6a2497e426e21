//! Shared output helpers: tables that fit 100 columns, JSON, times and ages, secret masking,
//! and [`printable`], which keeps text from devices and repositories from driving the terminal.
//!
//! Much of what human output shows was written by a device (run messages and restic output,
//! hostnames, device names, spool files, snapshot paths), and a compromised device can write
//! escape sequences there: clearing the screen, rewriting earlier lines, setting the clipboard
//! (OSC 52), or reordering text with bidi overrides. Every table cell goes through
//! [`printable`] in [`Table::add_row`]; lines printed outside tables wrap such text in
//! [`printable`] (one value) or [`printable_lines`] (multi-line output such as restic's).
//! `--json` output ([`print_json`]) carries the data unchanged but still cannot drive a terminal
//! it is read on: serde_json writes C0 controls as `\uXXXX` escapes, and [`print_json`] does
//! the same for DEL, C1 controls and the bidi characters (xterm and VTE act on a C1 CSI even
//! when it arrives UTF-8 encoded). A JSON parser reads back the very same string.

pub mod json_fields;

use std::borrow::Cow;
use std::io::IsTerminal;

use chrono::{DateTime, Duration, Utc};
use comfy_table::ContentArrangement;
use serde::Serialize;

use crate::usage_err;

/// Width every human table is laid out to.
pub const WIDTH: u16 = 100;

/// What a secret value looks like in output unless `--show-secrets` is given.
pub const MASK: &str = "***";

/// A human table. Cells go in only through [`Table::add_row`], which passes each through
/// [`printable`], so no command can put raw database text into a table.
pub struct Table(comfy_table::Table);

/// One table cell: a single value (a newline in it is shown as `\n`), or several values
/// shown one a line ([`lines`]).
pub enum Cell {
    Value(String),
    Lines(Vec<String>),
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Value(s)
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Value(s.to_string())
    }
}

/// A cell showing `items` one a line (paths of a job, schedules); a newline inside an item is
/// escaped, so an item cannot pose as two.
pub fn lines<I, S>(items: I) -> Cell
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Cell::Lines(items.into_iter().map(Into::into).collect())
}

/// Widest a path is shown in a table: a longer one continues on the next line.
pub const PATH_WIDTH: usize = 32;

/// A cell of paths, one a line. A path wider than [`PATH_WIDTH`] is broken after a `/` or `\`
/// and continues on the next line indented by two spaces, never inside a name (unless one name
/// alone is wider); give its column [`keep_whole`] so that the table does not break it again.
pub fn path_lines<I, S>(paths: I) -> Cell
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    Cell::Lines(
        paths
            .into_iter()
            .flat_map(|p| wrap_path(p.as_ref(), PATH_WIDTH))
            .collect(),
    )
}

fn wrap_path(path: &str, width: usize) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut part = String::new();
    for c in path.chars() {
        part.push(c);
        if c == '/' || c == '\\' {
            parts.push(std::mem::take(&mut part));
        }
    }
    parts.push(part);
    let mut out: Vec<String> = Vec::new();
    let mut line = String::new();
    for part in parts.iter().filter(|p| !p.is_empty()) {
        let fits = line.chars().count() + part.chars().count() <= width;
        if !fits && !line.trim().is_empty() {
            out.push(std::mem::replace(&mut line, "  ".to_string()));
        }
        for c in part.chars() {
            // A single name wider than the column is cut where it must be.
            if line.chars().count() >= width && !line.trim().is_empty() {
                out.push(std::mem::replace(&mut line, "  ".to_string()));
            }
            line.push(c);
        }
    }
    out.push(line);
    out
}

impl Table {
    /// Adds a row; every cell is made [`printable`].
    pub fn add_row<C: Into<Cell>>(&mut self, cells: impl IntoIterator<Item = C>) {
        let row: Vec<String> = cells
            .into_iter()
            .map(|c| match c.into() {
                Cell::Value(v) => printable_owned(v),
                Cell::Lines(items) => items
                    .into_iter()
                    .map(printable_owned)
                    .collect::<Vec<_>>()
                    .join("\n"),
            })
            .collect();
        self.0.add_row(row);
    }
}

/// A borderless table with upper-case headers, wrapped to [`WIDTH`] columns.
pub fn table(headers: &[&str]) -> Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(WIDTH)
        .set_header(headers.iter().map(|h| h.to_ascii_uppercase()));
    Table(t)
}

/// Never wraps column `col` (ids that must stay copyable, like job UUIDs).
pub fn keep_whole(t: &mut Table, col: usize) {
    if let Some(c) = t.0.column_mut(col) {
        c.set_constraint(comfy_table::ColumnConstraint::ContentWidth);
    }
}

/// The rendered table, trailing spaces removed.
pub fn render(t: &Table) -> String {
    t.0.lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `s` as it may be shown on a terminal: every control character (Unicode Cc: C0, DEL, C1)
/// and every bidi embedding, override and isolate (U+202A–U+202E, U+2066–U+2069) is replaced
/// by a visible escape (`\x1b`, `\r`, `\n`, `\t`, `\u{9b}`, `\u{202e}`), so text from the
/// database or a repository can neither send escape sequences (colours, cursor moves, OSC 52
/// clipboard writes), overwrite what is already shown (`\r`, backspace) nor reorder a line.
/// Everything else is untouched, non-ASCII letters and emoji included, and so is `\` (Windows
/// paths stay readable; a literal `\x1b` in the text therefore looks like an escaped one,
/// which is harmless). A newline is escaped too: one value is one line (a table cell, a
/// `name:` line), and a newline in it would forge the next one; multi-line text goes through
/// [`printable_lines`]. Borrows when nothing needs escaping, the usual case.
pub fn printable(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// [`printable`] for multi-line text such as restic's output or a hook's: newlines stay (a
/// `\r\n` line end becomes `\n`), every other control character is escaped.
pub fn printable_lines(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

/// [`printable`] of an owned string, without a copy when nothing changes.
fn printable_owned(s: String) -> String {
    match escape(&s, false) {
        Cow::Borrowed(_) => None,
        Cow::Owned(o) => Some(o),
    }
    .unwrap_or(s)
}

use crate::domain::text::unsafe_char;

fn escape(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    // Fast path: every character to escape is a byte below 0x20, DEL, or starts with 0xC2
    // (C1) or 0xE2 (the bidi characters); most text has none of these bytes.
    let suspect = |b: &u8| *b < 0x20 || *b == 0x7f || *b == 0xc2 || *b == 0xe2;
    if !s.as_bytes().iter().any(suspect) {
        return Cow::Borrowed(s);
    }
    let keep = |c: char| keep_newlines && c == '\n';
    if !s.chars().any(|c| unsafe_char(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len() + 16);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' if keep_newlines => out.push('\n'),
            '\r' if keep_newlines && chars.peek() == Some(&'\n') => {}
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Writes `value` as pretty JSON to stdout, the one way `--json` output is printed.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    // Streamed, not built as one string first (a whole fleet's status is tens of MB), in
    // writes the size of a pipe's buffer rather than 8 KiB ones.
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    write_json(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// [`print_json`] of `value` whose top-level field `key` is an empty array standing in for
/// `items`: the items are rendered on as many threads as there are processors and written in
/// its place. The bytes are those [`print_json`] writes for the value with `items` in that
/// field; a whole fleet's `status --json` (32 MB, most of it its jobs) is written in about half
/// the time on two processors.
pub fn print_json_with_items<T: Serialize + ?Sized, I: Serialize + Sync>(
    value: &T,
    key: &str,
    items: &[I],
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    write_json_with_items(&mut out, value, key, items)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// See [`print_json_with_items`].
fn write_json_with_items<W: std::io::Write, T: Serialize + ?Sized, I: Serialize + Sync>(
    mut out: W,
    value: &T,
    key: &str,
    items: &[I],
) -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = items.len().div_ceil(threads).max(1);
    let (head, parts) = std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(per_thread)
            .enumerate()
            .map(|(i, chunk)| scope.spawn(move || render_items(chunk, i == 0)))
            .collect();
        let mut head = Vec::new();
        let head = write_json(&mut head, value).map(|()| head);
        let parts: Vec<_> = workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect();
        (head, parts)
    });
    let head = head?;
    // A top-level key is the only thing at two spaces after a line break (strings carry
    // their line breaks escaped), and the pretty printer writes an empty array as `[]`.
    let marker = format!("\n  {}: []", serde_json::to_string(key)?);
    let Some(at) = memchr::memmem::find(&head, marker.as_bytes()) else {
        anyhow::bail!("the JSON output has no top-level empty array {key:?} to fill");
    };
    let close = at + marker.len() - 1;
    out.write_all(&head[..close])?;
    for part in parts {
        out.write_all(&part?)?;
    }
    if !items.is_empty() {
        out.write_all(b"\n  ")?;
    }
    out.write_all(&head[close..])?;
    Ok(())
}

/// Items of a top-level array, each as the pretty printer writes an element at that depth
/// (after a line break and four spaces, separated by commas); `first`: the array's first.
fn render_items<I: Serialize>(items: &[I], first: bool) -> anyhow::Result<Vec<u8>> {
    use serde_json::ser::Formatter;
    // Room for a whole fleet's status jobs (some 650 bytes each) without growing: pages
    // reserved and never written cost nothing.
    let mut buf = Vec::with_capacity(items.len() * 1024);
    for (i, item) in items.iter().enumerate() {
        buf.extend_from_slice(if first && i == 0 {
            b"\n    "
        } else {
            b",\n    "
        });
        // Two levels deep, as inside the top-level object and its array.
        let mut pretty = serde_json::ser::PrettyFormatter::new();
        pretty.begin_object(&mut std::io::sink())?;
        pretty.begin_array(&mut std::io::sink())?;
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, TerminalSafeJson(pretty));
        item.serialize(&mut ser)?;
    }
    Ok(buf)
}

/// A time in `--json` output exactly as chrono's `Serialize` writes it (RFC 3339 in UTC with
/// `Z`, and 3, 6 or 9 fractional digits when there are any), handed to the serializer as one
/// string: chrono's own goes through `collect_str`, one escaped character at a time, which
/// was a tenth of whole-fleet `status --json` (150,000 times at 50,000 jobs).
pub fn json_time<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// [`json_time`] for an optional time (`null` when absent).
pub fn json_opt_time<S: serde::Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => json_time(t, s),
        None => s.serialize_none(),
    }
}

/// serde_json's pretty output with DEL, C1 controls and bidi characters as `\uXXXX` (see the
/// module doc).
fn write_json<W: std::io::Write, T: Serialize + ?Sized>(out: W, value: &T) -> anyhow::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(
        out,
        TerminalSafeJson(serde_json::ser::PrettyFormatter::new()),
    );
    value.serialize(&mut ser)?;
    Ok(())
}

/// A [`serde_json::ser::PrettyFormatter`] that escapes what [`printable`] escapes and serde_json
/// leaves raw. Only string fragments are touched; the layout methods are passed through.
struct TerminalSafeJson<'a>(serde_json::ser::PrettyFormatter<'a>);

macro_rules! pass_through {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        #[inline]
        fn $name<W: ?Sized + std::io::Write>(
            &mut self,
            writer: &mut W,
            $($arg: $ty),*
        ) -> std::io::Result<()> {
            self.0.$name(writer, $($arg),*)
        }
    )*};
}

impl serde_json::ser::Formatter for TerminalSafeJson<'_> {
    pass_through! {
        begin_array();
        end_array();
        begin_array_value(first: bool);
        end_array_value();
        begin_object();
        end_object();
        begin_object_key(first: bool);
        begin_object_value();
        end_object_value();
    }

    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        // serde_json has escaped C0 already; DEL is 0x7F, C1 starts with 0xC2 and the bidi
        // characters with 0xE2 in UTF-8.
        if memchr::memchr3(0x7f, 0xc2, 0xe2, fragment.as_bytes()).is_none() {
            return writer.write_all(fragment.as_bytes());
        }
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if unsafe_char(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                // every such character is below U+FFFF: one \uXXXX
                write!(writer, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// The value of setting `key` as it may be shown: a secret (see
/// [`crate::store::settings::secret_keys`]) becomes `***` (empty stays empty, so "not set" shows),
/// except `repository_url` (a secret for viewers since migration 012, who never get the row),
/// of which only a credential inside is masked, as `run` and `status` print it.
pub fn shown_value(key: &str, value: &str, secret: bool, show_secrets: bool) -> String {
    if show_secrets {
        value.to_string()
    } else if key == "repository_url" {
        crate::domain::text::mask_url(value)
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
            let tz = crate::domain::settings::local_timezone();
            t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
        }
    }
}

/// A duration in the largest two units: `45s`, `12m`, `3h 5m`, `9d 2h`. Written where the
/// health verdicts' reasons need it (they are pure knowledge, below this layer), so that a
/// table and a reason show a duration the same way.
pub use crate::domain::health::age::age;

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

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn items_written_in_parallel_are_the_bytes_of_the_whole_value() {
        #[derive(Serialize, Clone)]
        struct Item {
            name: String,
            n: i64,
            tags: Vec<String>,
            inner: BTreeMap<String, Option<Vec<u8>>>,
            empty: Vec<u8>,
        }
        #[derive(Serialize)]
        struct Doc<'a> {
            first: &'a str,
            // A nested key of the same name is not the top-level one.
            nested: BTreeMap<&'a str, Vec<u8>>,
            items: Vec<Item>,
            last: Option<&'a str>,
        }
        let item = |i: usize| Item {
            name: format!("job {i} \u{202e}\n\"quoted\"\u{7f}"),
            n: i as i64 - 3,
            tags: (0..i % 3).map(|t| format!("t{t}")).collect(),
            inner: [(format!("k{i}"), i.is_multiple_of(2).then(|| vec![1, 2]))]
                .into_iter()
                .collect(),
            empty: vec![],
        };
        for count in [0, 1, 2, 3, 7, 100] {
            let items: Vec<Item> = (0..count).map(item).collect();
            let doc = |items: Vec<Item>| Doc {
                first: "a \"jobs\": [] in a string",
                nested: [("items", vec![])].into_iter().collect(),
                items,
                last: Some("z"),
            };
            let mut whole = Vec::new();
            write_json(&mut whole, &doc(items.clone())).unwrap();
            let mut parallel = Vec::new();
            write_json_with_items(&mut parallel, &doc(Vec::new()), "items", &items).unwrap();
            assert_eq!(
                String::from_utf8(parallel).unwrap(),
                String::from_utf8(whole).unwrap(),
                "{count} items"
            );
        }
        let mut out = Vec::new();
        let missing = write_json_with_items(&mut out, &doc_without_items(), "items", &[1, 2]);
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("no top-level empty array")
        );
    }

    fn doc_without_items() -> BTreeMap<&'static str, &'static str> {
        [("other", "x")].into_iter().collect()
    }

    #[test]
    fn json_times_are_written_as_chrono_writes_them() {
        use chrono::TimeZone;
        #[derive(Serialize)]
        struct Ours {
            #[serde(serialize_with = "json_time")]
            t: DateTime<Utc>,
            #[serde(serialize_with = "json_opt_time")]
            o: Option<DateTime<Utc>>,
        }
        #[derive(Serialize)]
        struct Chrono {
            t: DateTime<Utc>,
            o: Option<DateTime<Utc>>,
        }
        let base = Utc.with_ymd_and_hms(2026, 12, 6, 17, 41, 37).unwrap();
        let mut times = vec![
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
        ];
        for nanos in [
            0,
            1,
            999,
            1_000,
            120_000,
            518_602_224,
            500_000_000,
            999_999_999,
        ] {
            times.push(base + Duration::nanoseconds(nanos));
        }
        for t in times {
            for o in [None, Some(t)] {
                let ours = serde_json::to_string(&Ours { t, o }).unwrap();
                let chrono = serde_json::to_string(&Chrono { t, o }).unwrap();
                assert_eq!(ours, chrono);
            }
        }
        assert_eq!(
            serde_json::to_string(&Ours {
                t: base + Duration::microseconds(518_602),
                o: None
            })
            .unwrap(),
            r#"{"t":"2026-12-06T17:41:37.518602Z","o":null}"#
        );
    }
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

    #[test]
    fn printable_escapes_controls_and_bidi_only() {
        let evil = "a\x1b]52;c;cHduZWQ=\x07b\x1b[2J\rc\u{9b}31m\u{202e}d\u{2066}\x08\x7f\0\te\nf";
        let shown = printable(evil);
        assert_eq!(
            shown,
            "a\\x1b]52;c;cHduZWQ=\\x07b\\x1b[2J\\rc\\u{9b}31m\\u{202e}d\\u{2066}\\x08\\x7f\\x00\\te\\nf"
        );
        assert!(!shown.chars().any(unsafe_char), "{shown}");
        // Ordinary text, non-ASCII and Windows paths are borrowed unchanged.
        for ok in [
            "Büro ☃",
            "záloha 🚀",
            r"C:\Users\jan",
            "日本語",
            "\u{2028}x",
            "€ – …",
        ] {
            assert!(matches!(printable(ok), Cow::Borrowed(s) if s == ok), "{ok}");
        }
        assert_eq!(printable_owned("Büro".into()), "Büro");
        assert_eq!(printable_owned("a\u{202d}".into()), "a\\u{202d}");
    }

    #[test]
    fn printable_lines_keeps_newlines_only() {
        assert!(matches!(printable_lines("one\ntwo"), Cow::Borrowed(_)));
        assert_eq!(
            printable_lines("one\r\ntwo\rX\x1b[K\n"),
            "one\ntwo\\rX\\x1b[K\n"
        );
        assert_eq!(printable("one\r\ntwo"), "one\\r\\ntwo");
    }

    #[test]
    fn long_paths_wrap_after_a_separator() {
        assert_eq!(wrap_path("/etc", 32), ["/etc"]);
        assert_eq!(
            wrap_path("/home/alice/Documents/Projects/2024/reports", 20),
            [
                "/home/alice/",
                "  Documents/",
                "  Projects/2024/",
                "  reports"
            ]
        );
        assert_eq!(
            wrap_path(r"C:\Users\Alice\AppData\Roaming", 16),
            [r"C:\Users\Alice\", r"  AppData\", "  Roaming"]
        );
        // A single name wider than the column is cut, and nothing is lost.
        let long = format!("/srv/{}", "x".repeat(40));
        let lines = wrap_path(&long, 20);
        assert!(lines.iter().all(|l| l.chars().count() <= 20), "{lines:?}");
        assert_eq!(lines.concat().replace("  ", ""), long);
    }

    #[test]
    fn table_cells_are_printable() {
        let mut t = table(&["a", "b"]);
        t.add_row(vec![
            Cell::from("x\x1b[2Jy\nz"),
            lines(["p\u{9b}1", "q\nr", "Büro ☃"]),
        ]);
        let r = render(&t);
        assert!(!r.contains('\x1b') && !r.contains('\u{9b}'), "{r}");
        assert!(r.contains("x\\x1b[2Jy\\nz"), "{r}");
        // the lines cell has three lines, its second item's newline escaped
        assert!(
            r.contains("p\\u{9b}1") && r.contains("q\\nr") && r.contains("Büro ☃"),
            "{r}"
        );
        assert_eq!(r.lines().count(), 4, "{r}");
    }

    #[test]
    fn json_escapes_what_a_terminal_acts_on_and_parses_back_the_same() {
        let v = serde_json::json!({
            "m": "a\x1b[2J\u{9b}31m\u{202e}\x7fb\rc",
            "ok": "Büro ☃ C:\\x"
        });
        let mut out = Vec::new();
        write_json(&mut out, &v).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.chars().any(|c| unsafe_char(c) && c != '\n'), "{text}");
        assert!(text.contains(r"\u009b31m\u202e\u007fb"), "{text}");
        assert!(text.contains("Büro ☃"), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}
