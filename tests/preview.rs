//! `schedule preview` prints what the engine computes (the oracle tests in cron_oracle.rs prove
//! the engine and the OnCalendar lines exact; this proves the command is wired to them).

mod common;

use chrono::{DateTime, Utc};
use common::*;
use restic_fleet::domain::calendar::CronExpr;
use serde_json::Value;

fn preview(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_restic-fleet"))
        .args(["schedule", "preview"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn preview_json_matches_the_engine_and_the_systemd_lines() {
    let from = "2027-03-27T12:00:00+01:00";
    let from_utc: DateTime<Utc> = DateTime::parse_from_rfc3339(from)
        .unwrap()
        .with_timezone(&Utc);
    for (expr, zone) in [
        ("30 2 * * *", "Europe/Prague"),
        ("*/20 1-3 * * *", "Europe/Prague"),
        ("0 12 1,15 * mon", "UTC"),
        ("@hourly", "America/New_York"),
    ] {
        let out = preview(&[
            "--cron", expr, "--tz", zone, "--from", from, "--count", "7", "--json",
        ]);
        assert_ok(&out);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        let cron = CronExpr::parse(expr).unwrap();
        let want: Vec<String> = cron
            .upcoming(from_utc, &tz, 7)
            .iter()
            .map(|t| t.with_timezone(&tz).to_rfc3339())
            .collect();
        let got: Vec<String> = v["next"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, want, "{expr} in {zone}");
        for t in &got {
            assert!(
                DateTime::parse_from_rfc3339(t).is_ok(),
                "RFC 3339 with offset: {t}"
            );
        }
        let lines =
            restic_fleet::domain::calendar::systemd::on_calendar_lines(&cron, &tz, from_utc, 400);
        let got_lines: Vec<String> = v["on_calendar"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        assert_eq!(got_lines, lines);
        assert!(!got_lines.is_empty());
    }
    // 02:30 is skipped in Prague on 2027-03-28: the fixed-time job fires at 03:00 CEST.
    let out = preview(&[
        "--cron",
        "30 2 * * *",
        "--tz",
        "Europe/Prague",
        "--from",
        from,
        "--count",
        "2",
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["next"][0], "2027-03-28T03:00:00+02:00");
    assert_eq!(v["next"][1], "2027-03-29T02:30:00+02:00");
}

#[test]
fn preview_of_an_interval_has_no_calendar_lines() {
    let out = preview(&[
        "--interval",
        "3600",
        "--tz",
        "UTC",
        "--from",
        "2027-01-01T00:00:00Z",
        "--count",
        "2",
        "--json",
    ]);
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["next"],
        serde_json::json!(["2027-01-01T01:00:00+00:00", "2027-01-01T02:00:00+00:00"])
    );
    assert_eq!(v["on_calendar"], serde_json::json!([]));
}

#[test]
fn invalid_expressions_name_the_field() {
    for (expr, field) in [
        ("61 * * * *", "minute"),
        ("0 24 * * *", "hour"),
        ("0 0 32 * *", "day-of-month"),
        ("0 0 * 13 *", "month"),
        ("0 0 * * 8", "day-of-week"),
        ("0 0 * *", "5 fields"),
    ] {
        let out = preview(&["--cron", expr]);
        assert_eq!(out.status.code(), Some(2), "{expr}");
        let err = stderr(&out);
        assert!(err.contains(field) && err.contains(expr), "{expr}: {err}");
        assert_eq!(err.lines().count(), 1, "one sentence: {err}");
    }
    let out = preview(&["--cron", "@daily", "--tz", "Mars/Base"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("IANA"));
}

#[tokio::test]
async fn preview_of_a_job_uses_its_schedules_and_the_timezone_setting() {
    let env = Env::enrolled().await;
    env.set_setting("timezone", "Europe/Prague").await;
    let src = env.make_source("src", 1);
    let job = env.add_job("j", &[&src]).await;
    for expr in ["0 8 * * *", "0 20 * * *"] {
        sqlx::query("INSERT INTO schedules (job_id, schedule_type, cron_expression) VALUES ($1, 'cron', $2)")
            .bind(job)
            .bind(expr)
            .execute(&env.pool)
            .await
            .unwrap();
    }
    let out = env
        .cmd()
        .args([
            "schedule",
            "preview",
            "--job",
            &job.to_string(),
            "--from",
            "2027-01-01T00:00:00Z",
            "--count",
            "3",
            "--json",
        ])
        .output()
        .unwrap();
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["timezone"], "Europe/Prague");
    assert_eq!(
        v["next"],
        serde_json::json!([
            "2027-01-01T08:00:00+01:00",
            "2027-01-01T20:00:00+01:00",
            "2027-01-02T08:00:00+01:00"
        ])
    );
    assert_eq!(v["on_calendar"].as_array().unwrap().len(), 2);
}
