//! The house rules of ARCHITECTURE.md, checked on the source tree (in the manner of
//! rust-analyzer's tidy tests): imports go down the layers and never in a circle, SQL is written
//! only in `store/`, every module says what it owns in a `//!` line, no function outside tests
//! grows past 100 lines, and comments say why rather than which ticket wrote them.
//!
//! The checker reads `src/` as text with a small lexer (comments, strings and raw strings) and
//! needs no crate of its own; each rule has a unit test that shows it failing on a bad example.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers of `src/`, bottom first. A module may use its own layer and the ones below it.
const LAYERS: &[&str] = &[
    "domain", "output", "store", "platform", "local", "ops", "commands", "cli", "main", "lib",
];

/// The longest function body outside tests, in lines.
const MAX_FUNCTION_LINES: usize = 100;

/// One file of `src/`, by its module path (`ops::backup::execute`) and its text.
struct Source {
    module: String,
    path: String,
    text: String,
}

/// A file split by the lexer: code with comments and string contents blanked (line structure
/// kept), the comments, and the string literals with the line each starts on.
#[derive(Default)]
struct Lexed {
    code: String,
    comments: Vec<(usize, String)>,
    strings: Vec<(usize, String)>,
}

fn lex(text: &str) -> Lexed {
    let b = text.as_bytes();
    let mut out = Lexed::default();
    let mut code = Vec::with_capacity(b.len());
    let (mut i, mut line) = (0, 1);
    while i < b.len() {
        let start_line = line;
        if b[i..].starts_with(b"//") {
            let end = b[i..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |p| i + p);
            out.comments.push((line, text[i..end].to_string()));
            code.extend(std::iter::repeat_n(b' ', end - i));
            i = end;
        } else if b[i..].starts_with(b"/*") {
            let end = text[i + 2..].find("*/").map_or(b.len(), |p| i + 2 + p + 2);
            out.comments.push((line, text[i..end].to_string()));
            blank(&b[i..end], &mut code, &mut line);
            i = end;
        } else if let Some((open, close)) = raw_string_at(b, i) {
            let end = text[open..]
                .find(&close)
                .map_or(b.len(), |p| open + p + close.len());
            out.strings.push((
                start_line,
                text[open..end.saturating_sub(close.len())].into(),
            ));
            blank(&b[i..end], &mut code, &mut line);
            i = end;
        } else if b[i] == b'"' {
            let end = string_end(b, i + 1);
            out.strings
                .push((start_line, text[i + 1..end.saturating_sub(1)].to_string()));
            blank(&b[i..end], &mut code, &mut line);
            i = end;
        } else if b[i] == b'\'' && char_literal_len(b, i) > 0 {
            let len = char_literal_len(b, i);
            code.extend(std::iter::repeat_n(b' ', len));
            i += len;
        } else {
            if b[i] == b'\n' {
                line += 1;
            }
            code.push(b[i]);
            i += 1;
        }
    }
    out.code = String::from_utf8_lossy(&code).into_owned();
    out
}

/// Replaces a literal or comment by spaces, keeping its newlines so line numbers still hold.
fn blank(bytes: &[u8], code: &mut Vec<u8>, line: &mut usize) {
    for &c in bytes {
        if c == b'\n' {
            *line += 1;
            code.push(b'\n');
        } else {
            code.push(b' ');
        }
    }
}

/// `r"`, `r#"`, `br#"`...: the offset after the opening quote and the closing delimiter.
fn raw_string_at(b: &[u8], i: usize) -> Option<(usize, String)> {
    if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
        return None;
    }
    let mut j = i;
    if b.get(j) == Some(&b'b') {
        j += 1;
    }
    if b.get(j) != Some(&b'r') {
        return None;
    }
    j += 1;
    let hashes = b[j..].iter().take_while(|&&c| c == b'#').count();
    j += hashes;
    (b.get(j) == Some(&b'"')).then(|| (j + 1, format!("\"{}", "#".repeat(hashes))))
}

fn string_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// The length of a char literal at `i` (`'a'`, `'\n'`, `'\u{1F600}'`), or 0 for a lifetime.
fn char_literal_len(b: &[u8], i: usize) -> usize {
    if b.get(i + 1) == Some(&b'\\') {
        return b[i + 2..]
            .iter()
            .position(|&c| c == b'\'')
            .map_or(0, |p| p + 3);
    }
    let rest = std::str::from_utf8(&b[i + 1..(i + 6).min(b.len())]).unwrap_or("");
    match rest.chars().next() {
        Some(c) if rest[c.len_utf8()..].starts_with('\'') => c.len_utf8() + 2,
        _ => 0,
    }
}

/// The first line of the `#[cfg(test)]` module at the end of a file, if it has one; the rules
/// on SQL, length and layers apply to what comes before it.
fn test_module_start(code: &str) -> Option<usize> {
    let mut prev_cfg_test = false;
    for (n, l) in code.lines().enumerate() {
        let t = l.trim();
        if prev_cfg_test && t.starts_with("mod ") {
            return Some(n);
        }
        if !t.is_empty() {
            prev_cfg_test = t == "#[cfg(test)]";
        }
    }
    None
}

fn non_test_code(code: &str) -> String {
    match test_module_start(code) {
        Some(n) => code.lines().take(n).collect::<Vec<_>>().join("\n"),
        None => code.to_string(),
    }
}

/// Every `crate::a::b` path the code names (and `restic_fleet::` in `main.rs`), with its line.
fn crate_paths(code: &str) -> Vec<(usize, Vec<String>)> {
    let mut found = Vec::new();
    for (n, l) in code.lines().enumerate() {
        for prefix in ["crate::", "restic_fleet::"] {
            let mut rest = l;
            while let Some(p) = rest.find(prefix) {
                let before = rest[..p].chars().next_back();
                let after = &rest[p + prefix.len()..];
                rest = after;
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                    continue;
                }
                let segs: Vec<String> = after
                    .split("::")
                    .map(|s| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_'))
                    .map(String::from_iter)
                    .take_while(|s| !s.is_empty())
                    .collect();
                if !segs.is_empty() {
                    found.push((n + 1, segs));
                }
            }
        }
    }
    found
}

/// The layer of a module path: its first segment's place in [`LAYERS`].
fn layer_of(module: &str) -> Option<usize> {
    let first = module.split("::").next().unwrap_or("");
    LAYERS.iter().position(|l| *l == first)
}

/// The file a path resolves to: the longest prefix of it that is a module of the tree.
fn resolve<'a>(segs: &[String], modules: &'a BTreeSet<String>) -> Option<&'a String> {
    (1..=segs.len())
        .rev()
        .find_map(|n| modules.get(&segs[..n].join("::")))
}

fn upward_imports(files: &[Source]) -> Vec<String> {
    let modules: BTreeSet<String> = files.iter().map(|f| f.module.clone()).collect();
    let mut problems = Vec::new();
    for f in files {
        let Some(own) = layer_of(&f.module) else {
            problems.push(format!("{}: not in any layer of ARCHITECTURE.md", f.path));
            continue;
        };
        for (line, segs) in crate_paths(&lex(&f.text).code) {
            let Some(target) = resolve(&segs, &modules) else {
                continue;
            };
            if layer_of(target).is_some_and(|t| t > own) {
                problems.push(format!(
                    "{}:{line}: imports {target}, a higher layer",
                    f.path
                ));
            }
        }
    }
    problems
}

/// A command using another command's module: what two commands share belongs in
/// `commands/mod.rs` or a layer below. A file `job_monitor.rs` is part of the `job` command.
fn commands_importing_commands(files: &[Source]) -> Vec<String> {
    let modules: BTreeSet<String> = files.iter().map(|f| f.module.clone()).collect();
    let mut problems = Vec::new();
    for f in files.iter().filter(|f| f.module.starts_with("commands::")) {
        let own = &f.module["commands::".len()..];
        for (line, segs) in crate_paths(&non_test_code(&lex(&f.text).code)) {
            let Some(target) = resolve(&segs, &modules) else {
                continue;
            };
            let Some(other) = target.strip_prefix("commands::") else {
                continue;
            };
            if other != own && !other.starts_with(&format!("{own}_")) {
                problems.push(format!("{}:{line}: uses the command {target}", f.path));
            }
        }
    }
    problems
}

/// Import cycles between files, each reported once as the circle of modules it goes round.
fn import_cycles(files: &[Source]) -> Vec<String> {
    let modules: BTreeSet<String> = files.iter().map(|f| f.module.clone()).collect();
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for f in files {
        let targets = edges.entry(&f.module).or_default();
        for (_, segs) in crate_paths(&non_test_code(&lex(&f.text).code)) {
            if let Some(t) = resolve(&segs, &modules).filter(|t| **t != f.module) {
                targets.insert(t);
            }
        }
    }
    let mut cycles = BTreeSet::new();
    for start in edges.keys() {
        let mut stack = vec![(*start, vec![*start])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for &next in edges.get(node).into_iter().flatten() {
                if next == *start {
                    let mut circle = path.clone();
                    let min = (0..circle.len()).min_by_key(|&i| circle[i]).unwrap_or(0);
                    circle.rotate_left(min);
                    cycles.insert(circle.join(" -> "));
                } else if seen.insert(next) {
                    let mut p = path.clone();
                    p.push(next);
                    stack.push((next, p));
                }
            }
        }
    }
    cycles
        .into_iter()
        .map(|c| format!("import cycle: {c}"))
        .collect()
}

/// Whether a string literal is SQL: a statement keyword followed by the words it needs.
fn is_sql(s: &str) -> bool {
    let words: Vec<String> = s
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    let has = |a: &str, b: &str| words.windows(2).any(|w| w[0] == a && w[1] == b);
    let contains = |w: &str| words.iter().any(|x| x == w);
    let upper_kw = s.contains("SELECT ")
        || s.contains("INSERT ")
        || s.contains("UPDATE ")
        || s.contains("DELETE ")
        || s.contains("GRANT ")
        || s.contains("ALTER ")
        || s.contains("CREATE ")
        || s.contains("REVOKE ")
        || s.contains("LOCK ");
    upper_kw
        && ((contains("SELECT") && (contains("FROM") || s.contains('$') || s.contains('(')))
            || has("INSERT", "INTO")
            || (contains("UPDATE") && contains("SET"))
            || has("DELETE", "FROM")
            || (contains("GRANT") && (contains("ON") || contains("TO")))
            || has("REVOKE", "ALL")
            || contains("REVOKE") && contains("FROM")
            || has("ALTER", "ROLE")
            || has("ALTER", "TABLE")
            || has("CREATE", "ROLE")
            || has("CREATE", "TABLE")
            || has("LOCK", "TABLE"))
}

fn sql_outside_store(files: &[Source]) -> Vec<String> {
    let mut problems = Vec::new();
    for f in files.iter().filter(|f| !f.module.starts_with("store")) {
        let lexed = lex(&f.text);
        let end = test_module_start(&lexed.code).unwrap_or(usize::MAX);
        let code_sql = ["sqlx::query", "query_as", "query_scalar", "QueryBuilder"];
        for (n, l) in lexed.code.lines().enumerate().take(end) {
            if code_sql.iter().any(|q| l.contains(q)) {
                problems.push(format!("{}:{}: a query outside store/", f.path, n + 1));
            }
        }
        for (line, s) in lexed.strings.iter().filter(|(l, s)| *l <= end && is_sql(s)) {
            let first = s.trim().lines().next().unwrap_or("");
            problems.push(format!("{}:{line}: SQL outside store/: {first}", f.path));
        }
    }
    problems
}

fn missing_module_docs(files: &[Source]) -> Vec<String> {
    files
        .iter()
        .filter(|f| !f.text.trim_start().starts_with("//!"))
        .map(|f| format!("{}: no `//!` saying what the module owns", f.path))
        .collect()
}

/// Functions of more than [`MAX_FUNCTION_LINES`] lines, tests left out.
fn long_functions(files: &[Source]) -> Vec<String> {
    let mut problems = Vec::new();
    for f in files {
        let code = non_test_code(&lex(&f.text).code);
        for (name, first, lines) in functions(&code) {
            if lines > MAX_FUNCTION_LINES {
                problems.push(format!(
                    "{}:{first}: fn {name} has {lines} lines (at most {MAX_FUNCTION_LINES})",
                    f.path
                ));
            }
        }
    }
    problems
}

/// Every `fn` with a body: its name, first line and length in lines.
fn functions(code: &str) -> Vec<(String, usize, usize)> {
    let mut found = Vec::new();
    let mut open: Vec<(String, usize, usize)> = Vec::new();
    let mut pending: Option<(String, usize)> = None;
    let (mut depth, mut nest) = (0usize, 0usize);
    for (n, l) in code.lines().enumerate() {
        let mut words = l
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .peekable();
        while let Some(w) = words.next() {
            if w == "fn"
                && let Some(name) = words.peek().filter(|s| !s.is_empty())
            {
                pending = Some((name.to_string(), n + 1));
            }
        }
        for c in l.chars() {
            match c {
                '{' => {
                    depth += 1;
                    if let Some((name, first)) = pending.take() {
                        open.push((name, first, depth));
                    }
                }
                '}' => {
                    if open.last().is_some_and(|o| o.2 == depth) {
                        let (name, first, _) = open.pop().unwrap_or_default();
                        found.push((name, first, n + 2 - first));
                    }
                    depth = depth.saturating_sub(1);
                }
                '(' | '[' => nest += 1,
                ')' | ']' => nest = nest.saturating_sub(1),
                ';' if nest == 0 => pending = None,
                _ => {}
            }
        }
    }
    found
}

/// Comments naming the ticket that wrote the code (`// i13: ...`): history, not why.
fn ticket_tags(files: &[Source]) -> Vec<String> {
    let mut problems = Vec::new();
    for f in files {
        for (line, c) in lex(&f.text).comments {
            let tagged = c.split(|ch: char| !ch.is_alphanumeric()).any(is_ticket_tag);
            if tagged {
                problems.push(format!(
                    "{}:{line}: a ticket tag in a comment: {}",
                    f.path,
                    c.trim()
                ));
            }
        }
    }
    problems
}

/// `i13`, `I7`: an `i` and a ticket number; Rust's integer types (`i64`) are not tags.
fn is_ticket_tag(word: &str) -> bool {
    const INTEGER_TYPES: [&str; 5] = ["i8", "i16", "i32", "i64", "i128"];
    word.len() >= 2
        && word.starts_with(['i', 'I'])
        && word[1..].bytes().all(|b| b.is_ascii_digit())
        && !INTEGER_TYPES.contains(&word)
}

fn read_tree(root: &Path) -> Vec<Source> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).expect("src/ is readable");
        for entry in entries.map(|e| e.expect("a directory entry")) {
            let path: PathBuf = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(root)
                    .expect("under src/")
                    .with_extension("");
                let mut parts: Vec<String> = rel
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect();
                if parts.last().is_some_and(|p| p == "mod") {
                    parts.pop();
                }
                files.push(Source {
                    module: parts.join("::"),
                    path: format!("src/{}", rel.with_extension("rs").display()),
                    text: std::fs::read_to_string(&path).expect("a readable source file"),
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

fn assert_clean(rule: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{rule}:\n  {}", problems.join("\n  "));
}

fn src() -> Vec<Source> {
    read_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

#[test]
fn imports_go_down_the_layers() {
    assert_clean("imports that go up a layer", upward_imports(&src()));
}

#[test]
fn commands_do_not_use_each_other() {
    assert_clean(
        "commands using other commands",
        commands_importing_commands(&src()),
    );
}

#[test]
fn no_import_cycles() {
    assert_clean("import cycles", import_cycles(&src()));
}

#[test]
fn sql_is_written_only_in_the_store() {
    assert_clean("SQL outside store/", sql_outside_store(&src()));
}

#[test]
fn every_module_says_what_it_owns() {
    assert_clean("modules without //!", missing_module_docs(&src()));
}

#[test]
fn functions_fit_on_a_screen() {
    assert_clean("long functions", long_functions(&src()));
}

#[test]
fn comments_say_why_not_which_ticket() {
    assert_clean("ticket tags", ticket_tags(&src()));
}

#[test]
fn architecture_md_names_every_room() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    assert_clean(
        "rooms of src/ that ARCHITECTURE.md does not name",
        unnamed_rooms(&src(), &doc),
    );
}

/// The rooms of `src/` (each file of a layer, each folder inside one, the top-level files) that
/// the code map does not name: in full (`store/runs.rs`), or by its own name (`runs.rs`,
/// `backup/`) under the `###` heading of its layer.
fn unnamed_rooms(files: &[Source], doc: &str) -> Vec<String> {
    let rooms: BTreeSet<String> = files.iter().map(|f| room_name(&f.path)).collect();
    rooms
        .into_iter()
        .filter(|room| !doc.contains(&format!("`{room}`")))
        .filter(|room| {
            let Some((layer, own)) = room.split_once('/').filter(|(_, own)| !own.is_empty()) else {
                return true;
            };
            let section = doc.split("\n### ").find(|s| {
                s.lines()
                    .next()
                    .is_some_and(|h| h.contains(&format!("`{layer}/`")))
            });
            !section.is_some_and(|s| s.contains(&format!("`{own}`")))
        })
        .collect()
}

/// `src/ops/backup/execute.rs` -> `ops/backup/`; `src/store/runs.rs` -> `store/runs.rs`;
/// `src/store/mod.rs` -> `store/`.
fn room_name(path: &str) -> String {
    let rel = path.trim_start_matches("src/");
    match rel.split_once('/') {
        Some((layer, rest)) => match rest.split_once('/') {
            Some((dir, _)) => format!("{layer}/{dir}/"),
            None if rest == "mod.rs" => format!("{layer}/"),
            None => format!("{layer}/{rest}"),
        },
        None => rel.to_string(),
    }
}

/// The checker itself: each rule fails on a small bad example and passes on a good one.
mod checker {
    use super::*;

    fn file(module: &str, text: &str) -> Source {
        let path = format!("src/{}.rs", module.replace("::", "/"));
        Source {
            module: module.into(),
            path,
            text: text.into(),
        }
    }

    #[test]
    fn an_import_going_up_is_found() {
        let files = [
            file("domain::job", "//! jobs\nuse crate::store::jobs::load;\n"),
            file("store::jobs", "//! rows\nuse crate::domain::job::Job;\n"),
        ];
        let found = upward_imports(&files);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("src/domain/job.rs:2: imports store::jobs"),
            "{found:?}"
        );
    }

    #[test]
    fn a_command_using_another_is_found_but_not_its_own_part() {
        let files = [
            file(
                "commands::job",
                "//! job\nuse crate::commands::job_monitor::X;\n",
            ),
            file("commands::job_monitor", "//! part of job\n"),
            file(
                "commands::restore",
                "//! r\nuse crate::commands::snapshots::f;\nuse crate::commands::Conn;\n",
            ),
            file("commands::snapshots", "//! s\n"),
            file("commands", "//! shared\npub struct Conn;\n"),
        ];
        let found = commands_importing_commands(&files);
        assert_eq!(
            found,
            vec!["src/commands/restore.rs:2: uses the command commands::snapshots"]
        );
    }

    #[test]
    fn a_path_in_a_comment_or_string_is_not_an_import() {
        let files = [
            file(
                "domain::job",
                "//! see [`crate::store::jobs`]\nconst A: &str = \"crate::store::jobs\";\n",
            ),
            file("store::jobs", "//! rows\n"),
        ];
        assert!(upward_imports(&files).is_empty());
    }

    #[test]
    fn a_cycle_is_found_once() {
        let files = [
            file("ops::a", "//! a\nuse crate::ops::b::f;\n"),
            file("ops::b", "//! b\nuse crate::ops::a::g;\n"),
            file("ops::c", "//! c\nuse crate::ops::a::g;\n"),
        ];
        assert_eq!(
            import_cycles(&files),
            vec!["import cycle: ops::a -> ops::b"]
        );
    }

    #[test]
    fn sql_outside_the_store_is_found_and_inside_is_not() {
        let bad = "//! x\nfn f() { let q = \"SELECT id FROM runs WHERE job_id = $1\"; }\n";
        let raw = "//! x\nfn f() { let q = r#\"UPDATE runs\n SET status = 'x'\"#; }\n";
        let prose = "//! x\nfn f() { println!(\"select the job from the list\"); }\n";
        assert_eq!(sql_outside_store(&[file("ops::a", bad)]).len(), 1);
        assert_eq!(sql_outside_store(&[file("ops::a", raw)]).len(), 1);
        assert!(sql_outside_store(&[file("ops::a", prose)]).is_empty());
        assert!(sql_outside_store(&[file("store::runs", bad)]).is_empty());
    }

    #[test]
    fn a_module_without_docs_is_found() {
        let found = missing_module_docs(&[file("ops::a", "// not a module doc\nfn f() {}\n")]);
        assert_eq!(
            found,
            vec!["src/ops/a.rs: no `//!` saying what the module owns"]
        );
    }

    #[test]
    fn a_long_function_is_found_and_a_test_is_not() {
        let body = "    let x = 1;\n".repeat(100);
        let long = format!("//! x\nfn long() {{\n{body}}}\nfn short() {{\n}}\n");
        let found = long_functions(&[file("ops::a", &long)]);
        assert_eq!(
            found,
            vec!["src/ops/a.rs:2: fn long has 102 lines (at most 100)"]
        );
        let fits = format!("//! x\nfn fits() {{\n{}}}\n", "    let x = 1;\n".repeat(98));
        assert!(long_functions(&[file("ops::a", &fits)]).is_empty());
        let in_tests =
            format!("//! x\n#[cfg(test)]\nmod tests {{\n    fn long() {{\n{body}}}\n}}\n");
        assert!(long_functions(&[file("ops::a", &in_tests)]).is_empty());
    }

    #[test]
    fn braces_in_strings_do_not_confuse_the_count() {
        let text = "//! x\nfn a() {\n    let s = \"}}}\";\n    let c = '}';\n}\nfn b<'a>(x: &'a str) {\n}\n";
        let fns = functions(&lex(text).code);
        assert_eq!(fns, vec![("a".into(), 2, 4), ("b".into(), 6, 2)]);
    }

    #[test]
    fn a_ticket_tag_is_found_but_i18n_is_not() {
        let tagged = "//! x\n// i13: streamed\nfn f() {} // i12\n";
        assert_eq!(ticket_tags(&[file("ops::a", tagged)]).len(), 2);
        let clean = "//! x\n// i18n, i64 and u64 are words; so is i\nfn f() {}\n";
        assert!(ticket_tags(&[file("ops::a", clean)]).is_empty());
    }

    #[test]
    fn a_room_the_code_map_does_not_name_is_found() {
        let files = [
            file("store::runs", "//! runs"),
            file("store::jobs", "//! jobs"),
            file("ops::backup::execute", "//! restic"),
            file("main", "//! main"),
        ];
        let doc = "# A\n### `store/`\n`runs.rs` and `ops/backup/`\n### `ops/`\n`jobs.rs`\n";
        assert_eq!(unnamed_rooms(&files, doc), vec!["main.rs", "store/jobs.rs"]);
    }

    #[test]
    fn rooms_are_named_by_folder_or_file() {
        assert_eq!(room_name("src/ops/backup/execute.rs"), "ops/backup/");
        assert_eq!(room_name("src/store/runs.rs"), "store/runs.rs");
        assert_eq!(room_name("src/store/mod.rs"), "store/");
        assert_eq!(room_name("src/main.rs"), "main.rs");
    }
}
