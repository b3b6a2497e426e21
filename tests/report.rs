//! `report --html`: a small fleet with a known history (daily successes, a warning, failures, a
//! job that misses every weekend, an offline device) is rendered, and the page, parsed by
//! Python's html.parser (tests/oracle/parse_html.py), shows each problem with the verdict
//! `status --json` gives it and one heat-map mark per day that matches the runs. A device that
//! writes `<script>`, attribute breakers and bidi characters through its own role gets them
//! shown as text. Headless Chromium loads the page (no console message, nothing blocked) and
//! its DOM carries `status --json`'s counts; skipped with a printed reason without Chromium.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use common::*;
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

fn rf(env: &Env, args: &[&str]) -> Output {
    env.cmd().args(args).stdin(Stdio::null()).output().unwrap()
}

/// An element of the parsed page.
#[derive(Debug, serde::Deserialize)]
struct Element {
    tag: String,
    attrs: HashMap<String, String>,
    text: String,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }
}

/// Writes the report to a file and parses it.
fn report(env: &Env, extra: &[&str]) -> (String, Vec<Element>) {
    let file = env.dir.path().join("report.html");
    let mut args = vec!["report", "--html", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = rf(env, &args);
    assert_ok(&out);
    let html = std::fs::read_to_string(&file).unwrap();
    (html, parse(&file))
}

fn parse(file: &Path) -> Vec<Element> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle/parse_html.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(file)
        .output()
        .expect("python3 runs");
    assert_ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn device(env: &Env, id: &str, last_seen: DateTime<Utc>) {
    sqlx::query(
        "INSERT INTO devices (id, name, platform, hostname, last_seen, metadata) \
         VALUES ($1, $1 || ' box', 'linux', $1 || '.lan', $2, \
                 '{\"client_version\": \"0.1.0\", \"restic_version\": \"restic 0.17.3\"}')",
    )
    .bind(id)
    .bind(last_seen)
    .execute(&env.pool)
    .await
    .unwrap();
}

/// A job created 40 days ago with one schedule of the same age.
async fn job(
    env: &Env,
    device: &str,
    name: &str,
    cron: Option<&str>,
    interval: Option<i32>,
) -> Uuid {
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO backup_jobs (device_id, name, source_paths, created_at) \
         VALUES ($1, $2, ARRAY['/srv'], NOW() - interval '40 days') RETURNING id",
    )
    .bind(device)
    .bind(name)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO schedules (job_id, schedule_type, cron_expression, interval_seconds, \
                                created_at) \
         VALUES ($1, CASE WHEN $2::text IS NULL THEN 'interval' ELSE 'cron' END, $2, $3, \
                 NOW() - interval '40 days')",
    )
    .bind(id)
    .bind(cron)
    .bind(interval)
    .execute(&env.pool)
    .await
    .unwrap();
    id
}

/// A finished run that started at `start`.
async fn run(
    env: &Env,
    job: Uuid,
    start: DateTime<Utc>,
    status: &str,
    message: Option<&str>,
    metadata: Value,
) {
    sqlx::query(
        "INSERT INTO runs (job_id, device_id, start_time, end_time, status, error_message, \
                           data_added_bytes, files_new, files_changed, metadata) \
         SELECT $1, device_id, $2, $2 + interval '1 minute', $3, $4, 1000, 2, 1, $5 \
         FROM backup_jobs WHERE id = $1",
    )
    .bind(job)
    .bind(start)
    .bind(status)
    .bind(message)
    .bind(metadata)
    .execute(&env.pool)
    .await
    .unwrap();
}

/// The glyphs of a job's heat-map row, one per day.
fn row_marks(page: &[Element], job: Uuid) -> Vec<char> {
    let row = page
        .iter()
        .find(|e| {
            e.tag == "tr"
                && e.attr("data-job") == Some(&job.to_string())
                && e.attr("data-verdict").is_none()
        })
        .unwrap_or_else(|| panic!("no heat-map row for {job}"));
    row.text
        .chars()
        .take_while(|c| "·●▲○✖".contains(*c))
        .collect()
}

/// The day (index in the 30-day window ending today, UTC) of `t`.
fn day(first: NaiveDate, t: DateTime<Utc>) -> usize {
    (t.date_naive() - first).num_days() as usize
}

#[tokio::test]
async fn report_shows_each_problem_and_the_days_as_they_ran() {
    let env = Env::enrolled().await;
    let now = Utc::now();
    let first = now.date_naive() - Duration::days(29);
    // Runs 10 minutes after the hour, 29..1 days ago, and one 10 minutes ago.
    let past = |k: i64| now - Duration::days(k) - Duration::minutes(10);
    device(&env, "alpha", now).await;
    sqlx::query("UPDATE devices SET last_seen = NOW() WHERE id = $1")
        .bind(&env.device)
        .execute(&env.pool)
        .await
        .unwrap();
    device(&env, "beta", now).await;
    device(&env, "gamma", now - Duration::days(2)).await;
    let none = json!({});

    let home = job(&env, "alpha", "home", None, Some(86400)).await;
    let warned = job(&env, "alpha", "warned", None, Some(86400)).await;
    let db = job(&env, "beta", "db", None, Some(86400)).await;
    // One more day than the window, so that its first day has a run whatever the time of day.
    for k in 0..31 {
        run(&env, home, past(k), "success", None, none.clone()).await;
    }
    for k in 0..30 {
        let meta = if k == 0 {
            json!({"warnings": ["1 file could not be read"]})
        } else {
            none.clone()
        };
        run(&env, warned, past(k), "success", None, meta).await;
        let failed = k == 0 || k == 5;
        let (status, msg) = if failed {
            ("failed", Some("repository is locked\nsecond line"))
        } else {
            ("success", None)
        };
        run(&env, db, past(k), status, msg, none.clone()).await;
    }
    // Daily at noon UTC, run on weekdays only: every weekend day is missed.
    let weekdays = job(&env, "beta", "weekdays", Some("0 12 * * *"), None).await;
    let noon = |k: i64| {
        (now.date_naive() - Duration::days(k))
            .and_hms_opt(12, 0, 0)
            .unwrap()
            .and_utc()
    };
    for k in 1..30 {
        if !matches!(noon(k).weekday(), Weekday::Sat | Weekday::Sun) {
            run(&env, weekdays, noon(k), "success", None, none.clone()).await;
        }
    }
    // The offline device's laptop stopped three days ago.
    let laptop = job(&env, "gamma", "laptop", None, Some(86400)).await;
    for k in 3..30 {
        run(&env, laptop, past(k), "success", None, none.clone()).await;
    }

    let status = rf(&env, &["status", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let (html, page) = report(&env, &[]);
    assert!(html.contains("Content-Security-Policy"), "{html}");
    assert!(!page.iter().any(|e| e.tag == "script"));

    // The fleet verdict: the same counts as `status --json`.
    for e in page
        .iter()
        .filter(|e| e.tag == "li" && e.attr("data-verdict").is_some())
    {
        let v = e.attr("data-verdict").unwrap();
        let n = status["counts"][v].as_u64().unwrap_or(0);
        assert!(e.text.starts_with(&n.to_string()), "{v}: {} vs {n}", e.text);
    }
    let offline = page
        .iter()
        .find(|e| e.attr("data-devices") == Some("offline"))
        .unwrap();
    assert!(offline.text.starts_with('1'), "{}", offline.text);

    // Every job that needs attention, with the verdict and reason of `status`.
    let verdict_of = |job: Uuid| -> (String, String) {
        let j = status["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["job_id"] == job.to_string())
            .unwrap();
        (
            j["verdict"].as_str().unwrap().to_string(),
            j["reason"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(verdict_of(warned).0, "warning");
    assert_eq!(verdict_of(db).0, "failing");
    assert_eq!(verdict_of(laptop).0, "overdue");
    assert_eq!(verdict_of(home).0, "ok");
    for job in [warned, db, laptop] {
        let row = page
            .iter()
            .find(|e| {
                e.tag == "tr"
                    && e.attr("data-verdict").is_some()
                    && e.attr("data-job") == Some(&job.to_string())
            })
            .unwrap_or_else(|| panic!("{job} is not among the problems"));
        let (verdict, reason) = verdict_of(job);
        // As a terminal shows it: a newline in a device's message is a visible escape.
        let reason = reason.replace('\n', "\\n");
        assert_eq!(row.attr("data-verdict"), Some(verdict.as_str()));
        assert!(row.text.contains(&reason), "{} lacks {reason}", row.text);
    }
    let db_row = page
        .iter()
        .find(|e| e.attr("data-verdict") == Some("failing") && e.tag == "tr")
        .unwrap();
    assert!(
        db_row.text.ends_with("repository is locked"),
        "{}",
        db_row.text
    );
    assert!(!page.iter().any(|e| e.tag == "tr"
        && e.attr("data-verdict").is_some()
        && e.attr("data-job") == Some(&home.to_string())));
    let gamma = page
        .iter()
        .find(|e| e.tag == "tr" && e.attr("data-device") == Some("gamma"))
        .expect("the offline device is listed");
    assert_eq!(gamma.attr("data-state"), Some("offline"));

    // The heat map: one mark per day, as the runs went.
    let marks = row_marks(&page, home);
    assert_eq!(marks.len(), 30);
    let mut expected = vec!['·'; 30];
    for k in 0..31 {
        if let Some(c) = expected.get_mut(day(first, past(k))) {
            *c = '●';
        }
    }
    assert_eq!(marks, expected, "home");
    let marks = row_marks(&page, warned);
    assert_eq!(marks[day(first, past(0))], '▲', "{marks:?}");
    assert_eq!(marks[day(first, past(1))], '●', "{marks:?}");
    let marks = row_marks(&page, db);
    assert_eq!(marks[day(first, past(0))], '✖', "{marks:?}");
    assert_eq!(marks[day(first, past(5))], '✖', "{marks:?}");
    assert_eq!(marks[day(first, past(4))], '●', "{marks:?}");
    let marks = row_marks(&page, weekdays);
    for k in 1..29 {
        let d = noon(k);
        let want = if matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
            '○'
        } else {
            '●'
        };
        assert_eq!(
            marks[day(first, d)],
            want,
            "{} in {marks:?}",
            d.date_naive()
        );
    }
    // The laptop: success until three days ago, then missed (its interval is a day).
    let marks = row_marks(&page, laptop);
    assert_eq!(marks[day(first, past(3))], '●', "{marks:?}");
    assert_eq!(marks[day(first, past(1))], '○', "{marks:?}");

    // Devices that need attention are open; alpha's warning makes it one of them, the enrolled
    // test device (no jobs, online) is folded among the healthy ones.
    let details = |id: &str| {
        page.iter()
            .find(|e| e.tag == "details" && e.attr("data-device") == Some(id))
            .unwrap_or_else(|| panic!("no section for {id}"))
    };
    for id in ["alpha", "beta", "gamma"] {
        assert!(details(id).attrs.contains_key("open"), "{id} is folded");
    }
    assert!(!details(&env.device).attrs.contains_key("open"));
    let alpha = details("alpha");
    for fact in ["alpha.lan", "client 0.1.0", "restic 0.17.3", "every 86400s"] {
        assert!(alpha.text.contains(fact), "{fact} missing: {}", alpha.text);
    }
    // Growth: alpha's two jobs added 1000 bytes a run, 3 files a run.
    let runs_alpha: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM runs WHERE device_id = 'alpha' AND status = 'success' \
         AND start_time >= $1",
    )
    .bind(first.and_hms_opt(0, 0, 0).unwrap().and_utc())
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(
        alpha.text.contains(&format!(
            "added {} and {} files",
            human(runs_alpha * 1000),
            runs_alpha * 3
        )),
        "{}",
        alpha.text
    );

    chromium_loads(&env, &status).await;

    // --device: only that device, with its own counts.
    let (_, only) = report(&env, &["--device", "beta", "--days", "7"]);
    assert!(only.iter().any(|e| e.attr("data-device") == Some("beta")));
    assert!(!only.iter().any(|e| e.attr("data-device") == Some("alpha")));
    assert_eq!(row_marks(&only, db).len(), 7);

    // Bad input: one sentence, exit 2, the page left as it was.
    let file = env.dir.path().join("report.html");
    let before = std::fs::read(&file).unwrap();
    for (args, says) in [
        (vec!["--days", "0"], "--days 0 is out of range"),
        (vec!["--device", "nosuch"], "nosuch"),
    ] {
        let mut all = vec!["report", "--html", file.to_str().unwrap()];
        all.extend(args);
        let out = rf(&env, &all);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{all:?}: {}", stderr(&out));
    }
    assert_eq!(std::fs::read(&file).unwrap(), before);
    let dir = env.dir.path().join("no-such-dir").join("r.html");
    let out = rf(&env, &["report", "--html", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("give --html a file"),
        "{}",
        stderr(&out)
    );
}

/// `output::human_bytes` as the page shows it.
fn human(n: i64) -> String {
    if n < 1024 {
        format!("{n} B")
    } else {
        format!("{:.1} KiB", n as f64 / 1024.0)
    }
}

/// Headless Chromium loads the page: nothing is blocked or logged to the console, the DOM holds
/// `status --json`'s counts; a screenshot is kept in the target directory.
async fn chromium_loads(env: &Env, status: &Value) {
    let Some(browser) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| which(b))
    else {
        println!("SKIPPED: headless Chromium test: no chromium on PATH (apt-get install chromium)");
        return;
    };
    let file = env.dir.path().join("report.html");
    let url = format!("file://{}", file.display());
    let profile = env.dir.path().join("chromium-profile");
    let base = |extra: &[&str]| {
        let mut c = Command::new(browser);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(&url)
        .stdin(Stdio::null());
        c
    };
    let out = match base(&["--dump-dom"]).output() {
        Ok(o) if o.status.success() => o,
        other => {
            println!("SKIPPED: headless Chromium could not start: {other:?}");
            return;
        }
    };
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    for bad in ["CONSOLE", "Refused to", "net::ERR"] {
        assert!(!log.contains(bad), "Chromium logged {bad}:\n{log}");
    }
    for (v, n) in status["counts"].as_object().unwrap() {
        let li = format!("data-verdict=\"{v}\"><b>{n}</b>");
        assert!(dom.contains(&li), "the DOM lacks {li}");
    }
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report.png");
    let out = base(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1280,1500",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shot.exists());
    println!("screenshot of the report: {}", shot.display());
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// What a hostile device may write into its own rows.
const HOSTILE: &str = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>\u{202e}gnp.exe";

#[tokio::test]
async fn device_written_markup_is_text_on_the_page() {
    let env = Env::with_repo().await;
    let admin_pw = env.dir.path().join("admin.pw");
    let viewer_pw = env.dir.path().join("viewer.pw");
    std::fs::write(&admin_pw, "admin-pw\n").unwrap();
    std::fs::write(&viewer_pw, "viewer-pw\n").unwrap();
    let out = env
        .cmd()
        .args(["db", "roles", "--database-url", &env.url])
        .arg("--admin-password-file")
        .arg(&admin_pw)
        .arg("--viewer-password-file")
        .arg(&viewer_pw)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ok(&out);
    let id = format!("evil-{}", &Uuid::new_v4().simple().to_string()[..10]);
    let out = rf(
        &env,
        &["device", "enroll", &id, "--platform", "linux", "--json"],
    );
    assert_ok(&out);
    let enrolled: Value = serde_json::from_slice(&out.stdout).unwrap();
    let device_url = enrolled["database_url"].as_str().unwrap().to_string();
    let job = job(&env, &id, "docs", None, Some(3600)).await;

    let device = PgPoolOptions::new()
        .max_connections(1)
        .connect(&device_url)
        .await
        .expect("the device's role connects");
    sqlx::query(
        "UPDATE devices SET name = $2, hostname = $2, last_seen = NOW() - interval '1 day', \
         metadata = jsonb_build_object('client_version', $2::text, 'restic_version', $2::text) \
         WHERE id = $1",
    )
    .bind(&id)
    .bind(HOSTILE)
    .execute(&device)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO runs (job_id, device_id, start_time, end_time, status, exit_code, \
         error_message, metadata) \
         VALUES ($1, $2, NOW() - interval '2 minutes', NOW() - interval '1 minute', 'failed', 1, \
         $3, $4)",
    )
    .bind(job)
    .bind(&id)
    .bind(HOSTILE)
    .bind(json!({"warnings": [HOSTILE]}))
    .execute(&device)
    .await
    .unwrap();
    device.close().await;

    let (html, page) = report(&env, &[]);
    assert!(
        !page
            .iter()
            .any(|e| matches!(e.tag.as_str(), "script" | "img"))
    );
    for e in &page {
        for (k, v) in &e.attrs {
            assert!(
                !k.starts_with("on"),
                "an event handler {k}={v} on <{}>",
                e.tag
            );
        }
    }
    assert!(
        !html.contains('\u{202e}'),
        "a raw bidi override reached the page"
    );
    // The text is there, as text: escaped markup and a visible escape for the bidi override.
    let shown = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>\\u{202e}gnp.exe";
    let body = &page.iter().find(|e| e.tag == "body").unwrap().text;
    assert!(body.matches(shown).count() >= 4, "{body}");
    let problem = page
        .iter()
        .find(|e| e.tag == "tr" && e.attr("data-verdict") == Some("failing"))
        .unwrap();
    assert!(problem.text.contains(shown), "{}", problem.text);
    let summary = page
        .iter()
        .find(|e| e.tag == "details" && e.attr("data-device") == Some(&id))
        .unwrap();
    assert!(
        summary.text.contains(&format!("host {shown}")),
        "{}",
        summary.text
    );
}
