//! The Windows triggers fire exactly at the cron engine's instants: for every expression of the
//! shared corpus (tests/oracle/corpus.txt), in UTC and Europe/Prague, from two starting points,
//! the independent evaluator tests/oracle/task_eval.py computes from the `<Triggers>` XML alone
//! the instants of one year, and they must equal `CronExpr::upcoming` over the same year; an
//! expression using the documented fallback must fire exactly once, at the next cron instant.

use std::io::Write;
use std::process::{Command, Stdio};

use chrono::{DateTime, Duration, Utc};
use restic_fleet::domain::calendar::{CronExpr, task_scheduler as windows};
use serde_json::{Value, json};

fn corpus() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle/corpus.txt");
    std::fs::read_to_string(path)
        .expect("tests/oracle/corpus.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Runs the evaluator on JSON-lines cases; returns id -> result.
pub fn evaluate(cases: &[Value]) -> std::collections::HashMap<String, Value> {
    let mut child = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/oracle/task_eval.py"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdin = child.stdin.take().unwrap();
    let input: String = cases.iter().map(|c| format!("{c}\n")).collect();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "task_eval.py failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["id"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

fn z(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[test]
fn triggers_fire_exactly_at_the_cron_instants_over_a_year() {
    let exprs = corpus();
    assert!(exprs.len() >= 200, "corpus too small: {}", exprs.len());
    let froms = [
        "2026-12-31T23:30:00Z".parse::<DateTime<Utc>>().unwrap(),
        // On the spring-forward day in Prague, before the change.
        "2027-03-28T00:20:00Z".parse::<DateTime<Utc>>().unwrap(),
    ];
    let mut cases = Vec::new();
    let mut expected = std::collections::HashMap::new();
    for (i, e) in exprs.iter().enumerate() {
        let Ok(expr) = CronExpr::parse(e) else {
            continue;
        };
        for zone in ["UTC", "Europe/Prague"] {
            let tz: chrono_tz::Tz = zone.parse().unwrap();
            for (k, from) in froms.iter().enumerate() {
                let to = *from + Duration::days(365);
                let set = windows::cron_triggers(&expr, &tz, *from, 400);
                assert!(set.triggers.len() <= windows::MAX_TRIGGERS, "{e}");
                let want: Vec<String> = if set.fallback {
                    expr.next_after(*from, &tz)
                        .into_iter()
                        .filter(|t| *t <= to)
                        .map(z)
                        .collect()
                } else {
                    let mut v = Vec::new();
                    let mut cursor = *from;
                    while let Some(t) = expr.next_after(cursor, &tz) {
                        if t > to {
                            break;
                        }
                        v.push(z(t));
                        cursor = t;
                    }
                    v
                };
                let id = format!("{i}/{zone}/{k}");
                cases.push(json!({
                    "id": id,
                    "xml": windows::triggers_xml(&set.triggers, "  "),
                    "tz": zone,
                    "from": z(*from),
                    "to": z(to),
                }));
                expected.insert(id, (e.clone(), zone, set.fallback, want));
            }
        }
    }
    let got = evaluate(&cases);
    let mut failures = Vec::new();
    let mut fallbacks = std::collections::BTreeSet::new();
    for (id, (e, zone, fallback, want)) in &expected {
        let r = &got[id];
        if let Some(err) = r.get("error") {
            failures.push(format!("{e:?} in {zone}: evaluator error {err}"));
            continue;
        }
        let inst: Vec<String> = r["instants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        if &inst != want {
            let first_diff = inst
                .iter()
                .zip(want.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(inst.len().min(want.len()));
            failures.push(format!(
                "{e:?} in {zone} ({id}): {} instants from the XML, {} from cron; first difference \
                 at #{first_diff}: xml {:?} cron {:?}",
                inst.len(),
                want.len(),
                inst.get(first_diff),
                want.get(first_diff)
            ));
        }
        if *fallback {
            fallbacks.insert(format!("{e} ({zone})"));
        }
    }
    eprintln!("expressions using the single-TimeTrigger fallback: {fallbacks:#?}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
