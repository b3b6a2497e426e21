//! Fleet scale: the trigger-maintained `job_run_state` against the run history it
//! summarises (the seed's DISTINCT ON queries are the oracle) and the schedules it sums up, `status
//! --device` against the whole fleet's status, batched `cleanup`, and full snapshot ids resolved by
//! one restic call at the next sync instead of a second repository open per run.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};

use chrono::{DateTime, Utc};
use common::*;
use serde_json::Value;
use uuid::Uuid;

fn rf(env: &Env, args: &[&str]) -> Output {
    env.cmd().args(args).stdin(Stdio::null()).output().unwrap()
}

fn json(out: &Output) -> Value {
    assert_ok(out);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(out), stderr(out)))
}

type StateRow = (
    Uuid,
    Option<i32>,
    Option<i32>,
    Option<i32>,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
);

/// job_run_state as stored (jobs that have runs).
async fn stored_state(env: &Env) -> Vec<StateRow> {
    sqlx::query_as(
        "SELECT job_id, last_run_id, last_finished_run_id, last_success_run_id, \
                last_finished_error, last_finished_metadata::text, last_success_end \
         FROM job_run_state WHERE last_run_id IS NOT NULL ORDER BY job_id",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap()
}

/// The same facts computed from the whole run history with the seed's DISTINCT ON queries.
async fn oracle_state(env: &Env) -> Vec<StateRow> {
    sqlx::query_as(
        "WITH n AS (SELECT DISTINCT ON (job_id) job_id, id FROM runs \
                    ORDER BY job_id, start_time DESC, id DESC), \
              f AS (SELECT DISTINCT ON (job_id) job_id, id, error_message, metadata FROM runs \
                    WHERE status IN ('success', 'failed') ORDER BY job_id, start_time DESC, id DESC), \
              s AS (SELECT DISTINCT ON (job_id) job_id, id, COALESCE(end_time, start_time) AS done \
                    FROM runs WHERE status = 'success' \
                    ORDER BY job_id, COALESCE(end_time, start_time) DESC, id DESC) \
         SELECT n.job_id, n.id, f.id, s.id, f.error_message, f.metadata::text, s.done \
         FROM n LEFT JOIN f USING (job_id) LEFT JOIN s USING (job_id) ORDER BY n.job_id",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap()
}

async fn assert_state_matches(env: &Env, when: &str) {
    let stored = stored_state(env).await;
    let oracle = oracle_state(env).await;
    assert!(!oracle.is_empty() || when == "after deleting everything");
    assert_eq!(
        stored, oracle,
        "job_run_state differs from the run history {when}"
    );
}

async fn add_device(env: &Env, id: &str) {
    sqlx::query("INSERT INTO devices (id, name, platform) VALUES ($1, $1, 'linux')")
        .bind(id)
        .execute(&env.pool)
        .await
        .unwrap();
}

async fn add_job(env: &Env, device: &str, name: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO backup_jobs (device_id, name, source_paths) VALUES ($1, $2, ARRAY['/srv']) \
         RETURNING id",
    )
    .bind(device)
    .bind(name)
    .fetch_one(&env.pool)
    .await
    .unwrap()
}

/// A small deterministic generator (no test may depend on luck).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

const STATUSES: [&str; 4] = ["running", "success", "failed", "cancelled"];

async fn insert_run(pool: &sqlx::PgPool, job: Uuid, device: &str, rng: &mut Lcg) -> i32 {
    let status = STATUSES[rng.next(4) as usize];
    let start_min = rng.next(5000) as i32;
    // Some runs end later than newer ones started; some successes have no end at all.
    let end_min: Option<i32> = match rng.next(4) {
        0 => None,
        _ => Some(start_min - rng.next(300) as i32),
    };
    let message = (status == "failed").then(|| format!("boom {}", rng.next(1000)));
    sqlx::query_scalar(
        "INSERT INTO runs (job_id, device_id, start_time, end_time, status, error_message, metadata) \
         VALUES ($1, $2, TIMESTAMPTZ '2027-01-01 00:00:00+00' - make_interval(mins => $3), \
                 TIMESTAMPTZ '2027-01-01 00:00:00+00' - make_interval(mins => $4), $5, $6, \
                 jsonb_build_object('n', $3)) RETURNING id",
    )
    .bind(job)
    .bind(device)
    .bind(start_min)
    .bind(end_min)
    .bind(status)
    .bind(message)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn job_run_state_follows_every_kind_of_write_to_runs() {
    let env = Env::enrolled().await;
    add_device(&env, "other").await;
    let mut jobs = Vec::new();
    for i in 0..6 {
        let device = if i % 2 == 0 { "test-device" } else { "other" };
        jobs.push((add_job(&env, device, &format!("job{i}")).await, device));
    }
    let mut rng = Lcg(42);
    let mut ids = Vec::new();
    for _ in 0..120 {
        let (job, device) = jobs[rng.next(jobs.len() as u64) as usize];
        ids.push(insert_run(&env.pool, job, device, &mut rng).await);
    }
    assert_state_matches(&env, "after inserts").await;

    // Concurrent writers of the same jobs: each recompute must see the others' committed rows.
    let mut tasks = Vec::new();
    for t in 0..6u64 {
        let pool = env.pool.clone();
        let (job, device) = jobs[(t % 2) as usize];
        tasks.push(tokio::spawn(async move {
            let mut rng = Lcg(1000 + t);
            for _ in 0..15 {
                insert_run(&pool, job, device, &mut rng).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_state_matches(&env, "after concurrent inserts").await;

    // A run finishing, a status corrected by hand, a run moved to another job.
    for (i, id) in ids.iter().enumerate().take(40) {
        let status = STATUSES[i % 4];
        sqlx::query(
            "UPDATE runs SET status = $1, end_time = start_time + interval '5 minutes', \
             error_message = CASE WHEN $1 = 'failed' THEN 'late failure' END WHERE id = $2",
        )
        .bind(status)
        .bind(id)
        .execute(&env.pool)
        .await
        .unwrap();
    }
    sqlx::query("UPDATE runs SET job_id = $1 WHERE id = ANY($2)")
        .bind(jobs[2].0)
        .bind(&ids[40..50])
        .execute(&env.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE runs SET metadata = '{\"warnings\": [\"w\"]}' WHERE id = ANY($1)")
        .bind(&ids[50..70])
        .execute(&env.pool)
        .await
        .unwrap();
    assert_state_matches(&env, "after updates").await;

    // Deleting each job's newest runs (what the state points at) and some old ones.
    sqlx::query(
        "DELETE FROM runs WHERE id IN (SELECT last_run_id FROM job_run_state) \
            OR id IN (SELECT last_success_run_id FROM job_run_state) OR id % 7 = 0",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    assert_state_matches(&env, "after deletes").await;

    // Deleting a job cascades to its runs and its state; deleting a device to all of its jobs.
    sqlx::query("DELETE FROM backup_jobs WHERE id = $1")
        .bind(jobs[0].0)
        .execute(&env.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM devices WHERE id = 'other'")
        .execute(&env.pool)
        .await
        .unwrap();
    assert_state_matches(&env, "after deleting a job and a device").await;
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_run_state s WHERE NOT EXISTS \
         (SELECT 1 FROM backup_jobs j WHERE j.id = s.job_id)",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(orphans, 0);

    // The rebuild function agrees with the triggers.
    let before = stored_state(&env).await;
    sqlx::query("SELECT rebuild_job_run_state()")
        .execute(&env.pool)
        .await
        .unwrap();
    assert_eq!(stored_state(&env).await, before);

    sqlx::query("DELETE FROM runs")
        .execute(&env.pool)
        .await
        .unwrap();
    assert_state_matches(&env, "after deleting everything").await;
}

/// A job's schedule facts as `status` reads them: earliest next run, cron expressions (sorted
/// here: their order is not a contract), smallest positive interval.
type ScheduleFacts = (Option<DateTime<Utc>>, Vec<String>, Option<i32>);

/// The schedule facts migration 013's triggers keep, for every job (none stored: empty).
async fn stored_schedule_facts(env: &Env) -> Vec<(Uuid, ScheduleFacts)> {
    type Stored = (
        Uuid,
        Option<DateTime<Utc>>,
        Option<Vec<String>>,
        Option<i32>,
    );
    let rows: Vec<Stored> = sqlx::query_as(
        "SELECT j.id, s.next_run_at, s.cron_expressions, s.min_interval_seconds \
             FROM backup_jobs j LEFT JOIN job_run_state s ON s.job_id = j.id ORDER BY j.id",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(job, next, crons, interval)| {
            let mut crons = crons.unwrap_or_default();
            crons.sort();
            (job, (next, crons, interval))
        })
        .collect()
}

/// The same facts folded here, in Rust, from the raw schedule rows.
async fn oracle_schedule_facts(env: &Env) -> Vec<(Uuid, ScheduleFacts)> {
    let jobs: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM backup_jobs ORDER BY id")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    // job, type, cron expression, interval, enabled, next run
    type Raw = (
        Uuid,
        String,
        Option<String>,
        Option<i32>,
        bool,
        Option<DateTime<Utc>>,
    );
    let rows: Vec<Raw> = sqlx::query_as(
        "SELECT job_id, schedule_type, cron_expression, interval_seconds, enabled, next_run_at \
             FROM schedules",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    let mut facts: std::collections::BTreeMap<Uuid, ScheduleFacts> = jobs
        .iter()
        .map(|j| (*j, (None, Vec::new(), None)))
        .collect();
    for (job, kind, cron, interval, enabled, next) in rows {
        let Some(f) = facts.get_mut(&job).filter(|_| enabled) else {
            continue;
        };
        if let Some(n) = next {
            f.0 = Some(f.0.map_or(n, |m: DateTime<Utc>| m.min(n)));
        }
        match (kind.as_str(), cron, interval) {
            ("cron", Some(c), _) if !f.1.contains(&c) => f.1.push(c),
            ("interval", _, Some(i)) if i > 0 => f.2 = Some(f.2.map_or(i, |m: i32| m.min(i))),
            _ => {}
        }
    }
    facts
        .into_iter()
        .map(|(job, mut f)| {
            f.1.sort();
            (job, f)
        })
        .collect()
}

async fn assert_schedule_facts_match(env: &Env, when: &str) {
    let oracle = oracle_schedule_facts(env).await;
    assert!(
        oracle.iter().any(|(_, f)| !f.1.is_empty()) || when == "after deleting every schedule",
        "the oracle has something to compare {when}"
    );
    assert_eq!(
        stored_schedule_facts(env).await,
        oracle,
        "job_run_state's schedule facts differ from the schedules {when}"
    );
}

const CRONS: [&str; 5] = [
    "0 3 * * *",
    "30 2 * * 0",
    "*/15 * * * *",
    "0 13,23 * * *",
    "@daily",
];

async fn insert_schedule(pool: &sqlx::PgPool, job: Uuid, rng: &mut Lcg) -> i32 {
    let cron = rng.next(3) != 0;
    sqlx::query_scalar(
        "INSERT INTO schedules (job_id, schedule_type, cron_expression, interval_seconds, \
                                enabled, next_run_at) \
         VALUES ($1, $2, $3, $4, $5, \
                 TIMESTAMPTZ '2027-01-01 00:00:00+00' + make_interval(mins => $6)) RETURNING id",
    )
    .bind(job)
    .bind(if cron { "cron" } else { "interval" })
    .bind(cron.then(|| CRONS[rng.next(CRONS.len() as u64) as usize]))
    .bind((!cron).then(|| [0, 60, 3600, 86400][rng.next(4) as usize]))
    .bind(rng.next(5) != 0)
    .bind(rng.next(10_000) as i32)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Migration 013: what `status` needs of each job's enabled schedules is kept in
/// job_run_state by triggers on `schedules`, whoever writes them; the oracle folds the raw
/// schedule rows in Rust.
#[tokio::test]
async fn schedule_facts_follow_every_kind_of_write_to_schedules() {
    let env = Env::enrolled().await;
    add_device(&env, "other").await;
    let mut jobs = Vec::new();
    for i in 0..6 {
        let device = if i % 2 == 0 { "test-device" } else { "other" };
        jobs.push(add_job(&env, device, &format!("job{i}")).await);
    }
    let mut rng = Lcg(7);
    let mut ids = Vec::new();
    for _ in 0..40 {
        let job = jobs[rng.next(jobs.len() as u64) as usize];
        ids.push(insert_schedule(&env.pool, job, &mut rng).await);
    }
    assert_schedule_facts_match(&env, "after inserts").await;

    // Concurrent writers moving next_run_at of the same jobs' schedules (sync and run do).
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        let pool = env.pool.clone();
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Lcg(500 + t);
            for _ in 0..20 {
                sqlx::query(
                    "UPDATE schedules SET next_run_at = next_run_at + make_interval(mins => $1) \
                     WHERE id = $2",
                )
                .bind(rng.next(600) as i32 - 300)
                .bind(ids[rng.next(ids.len() as u64) as usize])
                .execute(&pool)
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_schedule_facts_match(&env, "after concurrent next_run_at updates").await;

    // Disabling, enabling, another expression, another type, another job, no next run.
    for (i, id) in ids.iter().enumerate().take(30) {
        let sql = match i % 6 {
            0 => "UPDATE schedules SET enabled = NOT enabled WHERE id = $1",
            1 => {
                "UPDATE schedules SET cron_expression = '45 4 * * 1', schedule_type = 'cron' \
                  WHERE id = $1"
            }
            2 => {
                "UPDATE schedules SET schedule_type = 'interval', interval_seconds = 1800 \
                  WHERE id = $1"
            }
            3 => "UPDATE schedules SET next_run_at = NULL WHERE id = $1",
            4 => {
                "UPDATE schedules SET interval_seconds = 7200 WHERE id = $1 \
                  AND schedule_type = 'interval'"
            }
            _ => {
                "UPDATE schedules SET job_id = (SELECT id FROM backup_jobs WHERE name = 'job5' \
                  LIMIT 1) WHERE id = $1"
            }
        };
        sqlx::query(sql).bind(id).execute(&env.pool).await.unwrap();
    }
    assert_schedule_facts_match(&env, "after updates").await;

    // Recording a run's time on a schedule changes no fact and does not fire the trigger.
    let before: Vec<(Uuid, DateTime<Utc>)> =
        sqlx::query_as("SELECT job_id, updated_at FROM job_run_state ORDER BY job_id")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    sqlx::query("UPDATE schedules SET last_run_at = NOW(), metadata = '{\"x\": 1}'")
        .execute(&env.pool)
        .await
        .unwrap();
    let after: Vec<(Uuid, DateTime<Utc>)> =
        sqlx::query_as("SELECT job_id, updated_at FROM job_run_state ORDER BY job_id")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(before, after);

    // Deleting schedules, a job (its schedules and state go by cascade) and a device.
    sqlx::query("DELETE FROM schedules WHERE id % 3 = 0")
        .execute(&env.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM backup_jobs WHERE id = $1")
        .bind(jobs[0])
        .execute(&env.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM devices WHERE id = 'other'")
        .execute(&env.pool)
        .await
        .unwrap();
    assert_schedule_facts_match(&env, "after deletes").await;

    // The rebuild agrees with the triggers.
    let before = stored_schedule_facts(&env).await;
    sqlx::query("SELECT rebuild_job_run_state()")
        .execute(&env.pool)
        .await
        .unwrap();
    assert_eq!(stored_schedule_facts(&env).await, before);

    sqlx::query("DELETE FROM schedules")
        .execute(&env.pool)
        .await
        .unwrap();
    assert_schedule_facts_match(&env, "after deleting every schedule").await;
}

/// A device's own database role (row-level security, no rights on job_run_state) writes runs,
/// and the SECURITY DEFINER triggers keep job_run_state right; the rebuild is refused to it.
#[tokio::test]
async fn a_device_role_keeps_job_run_state_right_through_the_trigger() {
    let env = Env::enrolled().await;
    let job = add_job(&env, "test-device", "j").await;
    // The seed's roles (same passwords as every test: roles are cluster-wide), then the device's
    // own login.
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
    let enrolled = json(&rf(&env, &["device", "enroll", "test-device", "--json"]));
    let url = enrolled["database_url"].as_str().unwrap().to_string();
    let mut device = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();

    let id: i32 = sqlx::query_scalar(
        "INSERT INTO runs (job_id, device_id, start_time, status) \
         VALUES ($1, 'test-device', NOW(), 'running') RETURNING id",
    )
    .bind(job)
    .fetch_one(&mut device)
    .await
    .unwrap();
    sqlx::query("UPDATE runs SET status = 'success', end_time = NOW() WHERE id = $1")
        .bind(id)
        .execute(&mut device)
        .await
        .unwrap();
    let denied = sqlx::query("SELECT rebuild_job_run_state()")
        .execute(&mut device)
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("permission denied"), "{denied}");
    let denied = sqlx::query("DELETE FROM job_run_state")
        .execute(&mut device)
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("permission denied"), "{denied}");
    assert_state_matches(
        &env,
        "after writes by a device role without rights on job_run_state",
    )
    .await;
    let state: Option<String> =
        sqlx::query_scalar("SELECT last_finished_status FROM job_run_state WHERE job_id = $1")
            .bind(job)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(state.as_deref(), Some("success"));
    // The device reads its own job's state (what `status --device` of itself needs).
    let own: Option<String> =
        sqlx::query_scalar("SELECT last_finished_status FROM job_run_state WHERE job_id = $1")
            .bind(job)
            .fetch_one(&mut device)
            .await
            .unwrap();
    assert_eq!(own.as_deref(), Some("success"));
}

#[tokio::test]
async fn status_of_one_device_is_that_device_in_the_fleet_status() {
    let env = Env::enrolled().await;
    let mut rng = Lcg(7);
    for d in ["a", "b", "c"] {
        add_device(&env, d).await;
        sqlx::query(
            "INSERT INTO settings (device_id, key, value) VALUES ($1, 'missed_run_grace_seconds', $2)",
        )
        .bind(d)
        .bind(if d == "b" { "100000000" } else { "60" })
        .execute(&env.pool)
        .await
        .unwrap();
        for j in 0..3 {
            let job = add_job(&env, d, &format!("{d}{j}")).await;
            sqlx::query(
                "INSERT INTO schedules (job_id, schedule_type, cron_expression) \
                 VALUES ($1, 'cron', '0 3 * * *')",
            )
            .bind(job)
            .execute(&env.pool)
            .await
            .unwrap();
            for _ in 0..(j * 3) {
                insert_run(&env.pool, job, d, &mut rng).await;
            }
        }
    }
    // Exit code 1 (jobs need attention) is expected: only the report is compared.
    let fleet = rf(&env, &["status", "--json", "--database-url", &env.url]);
    let fleet: Value = serde_json::from_slice(&fleet.stdout).unwrap();
    for d in ["a", "b", "c"] {
        let one = rf(
            &env,
            &[
                "status",
                "--json",
                "--device",
                d,
                "--database-url",
                &env.url,
            ],
        );
        let one: Value = serde_json::from_slice(&one.stdout).unwrap();
        let want_jobs: Vec<&Value> = fleet["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["device_id"] == d)
            .collect();
        let got_jobs: Vec<&Value> = one["jobs"].as_array().unwrap().iter().collect();
        assert_eq!(got_jobs.len(), 3);
        for (g, w) in got_jobs.iter().zip(&want_jobs) {
            let mut g = (*g).clone();
            let mut w = (*w).clone();
            // Ages are computed at each command's own instant.
            g["last_success_age_seconds"] = Value::Null;
            w["last_success_age_seconds"] = Value::Null;
            assert_eq!(g, w, "device {d}");
        }
        assert_eq!(one["devices"].as_array().unwrap().len(), 1);
        assert_eq!(one["devices"][0]["device_id"], d);
    }
    // Device b's own grace keeps its jobs from being overdue; a and c are overdue or failing.
    let verdicts_b: Vec<&str> = fleet["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["device_id"] == "b" && j["last_success_at"] != Value::Null)
        .map(|j| j["verdict"].as_str().unwrap())
        .collect();
    assert!(verdicts_b.iter().all(|v| *v != "overdue"), "{verdicts_b:?}");
}

#[tokio::test]
async fn cleanup_deletes_in_batches_and_keeps_running_and_recent_runs() {
    let env = Env::enrolled().await;
    let job = add_job(&env, "test-device", "j").await;
    sqlx::query(
        "INSERT INTO runs (job_id, device_id, start_time, end_time, status) \
         SELECT $1, 'test-device', NOW() - make_interval(days => 100 + n), \
                NOW() - make_interval(days => 100 + n), \
                (ARRAY['success', 'failed', 'cancelled', 'running'])[1 + n % 4] \
         FROM generate_series(1, 100) n",
    )
    .bind(job)
    .execute(&env.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO runs (job_id, device_id, start_time, end_time, status) \
         VALUES ($1, 'test-device', NOW() - interval '1 day', NOW(), 'success')",
    )
    .bind(job)
    .execute(&env.pool)
    .await
    .unwrap();
    // A job whose whole history is older than the retention: its newest run (cancelled), newest
    // finished run (failed) and newest success stay, so it keeps its state and verdict; only
    // its older success and failure go.
    let old = add_job(&env, "test-device", "old").await;
    sqlx::query(
        "INSERT INTO runs (job_id, device_id, start_time, end_time, status) \
         SELECT $1, 'test-device', NOW() - make_interval(days => d), \
                NOW() - make_interval(days => d), s \
         FROM (VALUES (120, 'cancelled'), (150, 'failed'), (200, 'success'), (250, 'failed'), \
                      (300, 'success')) v(d, s)",
    )
    .bind(old)
    .execute(&env.pool)
    .await
    .unwrap();
    let state_before: (Option<i32>, Option<i32>, Option<i32>) = sqlx::query_as(
        "SELECT last_run_id, last_finished_run_id, last_success_run_id FROM job_run_state \
         WHERE job_id = $1",
    )
    .bind(old)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(state_before.0.is_some() && state_before.1.is_some() && state_before.2.is_some());
    let dry = json(&rf(&env, &["cleanup", "--dry-run", "--json"]));
    assert_eq!(dry["deleted"], 77);
    let out = json(&rf(&env, &["cleanup", "--json", "--batch-size", "10"]));
    assert_eq!(out["deleted"], 77);
    assert_eq!(out["batches"], 8, "{out}");
    let left: Vec<String> =
        sqlx::query_scalar("SELECT status FROM runs WHERE job_id = $1 ORDER BY start_time DESC")
            .bind(job)
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(left.len(), 26);
    assert_eq!(left[0], "success");
    assert!(left[1..].iter().all(|s| s == "running"));
    let kept: Vec<String> =
        sqlx::query_scalar("SELECT status FROM runs WHERE job_id = $1 ORDER BY start_time DESC")
            .bind(old)
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(kept, ["cancelled", "failed", "success"]);
    let state_after: (Option<i32>, Option<i32>, Option<i32>) = sqlx::query_as(
        "SELECT last_run_id, last_finished_run_id, last_success_run_id FROM job_run_state \
         WHERE job_id = $1",
    )
    .bind(old)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(state_after, state_before);
    assert_state_matches(&env, "after cleanup").await;
    // Status still sees the old job's failure (it has not turned never_run).
    let status: Value = serde_json::from_slice(&rf(&env, &["status", "--json"]).stdout).unwrap();
    let old_status = status["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == "old")
        .cloned()
        .unwrap();
    assert_ne!(old_status["verdict"], "never_run", "{old_status}");
    // A second cleanup finds nothing more to delete.
    let again = json(&rf(&env, &["cleanup", "--json"]));
    assert_eq!(again["deleted"], 0);
    let zero = rf(&env, &["cleanup", "--batch-size", "0"]);
    assert_eq!(zero.status.code(), Some(2), "{}", stderr(&zero));
}

/// A `restic` on PATH that records each call's subcommand and then runs the real restic.
fn recording_restic(env: &Env) -> (std::path::PathBuf, std::path::PathBuf) {
    let real = which_restic();
    let bin = env.dir.path().join("wrapbin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = env.dir.path().join("restic-calls.log");
    let script = bin.join("restic");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The fake systemctl of the sync tests lives beside it.
    std::fs::write(bin.join("systemctl"), "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(
        bin.join("systemctl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    (bin, log)
}

fn which_restic() -> std::path::PathBuf {
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let p = dir.join("restic");
        if p.is_file() {
            return p;
        }
    }
    panic!("restic is not on PATH")
}

/// The recorded restic calls that open the repository (`restic version` does not).
fn restic_calls(log: &Path) -> Vec<String> {
    calls(log).into_iter().filter(|c| c != "version").collect()
}

#[tokio::test]
async fn one_repository_open_per_run_and_short_ids_resolved_by_one_call_at_sync() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 3);
    let job = env.add_job("docs", &[&src]).await;
    let (bin, log) = recording_restic(&env);
    let units = env.dir.path().join("units");
    let run = |env: &Env| {
        env.cmd()
            .env("PATH", path_with(&bin))
            .args(["run", &job.to_string(), "--json"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let sync = |env: &Env| {
        env.cmd()
            .env("PATH", path_with(&bin))
            .args(["sync", "--json", "--no-catch-up", "--unit-dir"])
            .arg(&units)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    for _ in 0..2 {
        assert_ok(&run(&env));
    }
    assert_eq!(
        restic_calls(&log),
        ["backup", "backup"],
        "one restic per run"
    );
    let snaps = env.restic(&["snapshots", "--json"]);
    let snaps: Value = serde_json::from_slice(&snaps.stdout).unwrap();
    let mut full: Vec<String> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let stored = || async {
        let v: Vec<String> =
            sqlx::query_scalar("SELECT snapshot_id FROM runs ORDER BY snapshot_id")
                .fetch_all(&env.pool)
                .await
                .unwrap();
        v
    };
    let before = stored().await;
    full.sort();
    for (s, f) in before.iter().zip(&full) {
        assert!(f.starts_with(s.as_str()), "{s} is not a prefix of {f}");
    }
    // A short id whose snapshot is gone (forgotten) is tried once, then left alone.
    let gone: i32 = sqlx::query_scalar(
        "INSERT INTO runs (job_id, device_id, start_time, end_time, status, snapshot_id) \
         VALUES ($1, 'test-device', NOW(), NOW(), 'success', 'abcdef12') RETURNING id",
    )
    .bind(job)
    .fetch_one(&env.pool)
    .await
    .unwrap();

    let out = sync(&env);
    assert_ok(&out);
    assert!(!stderr(&out).contains("WARN could not"), "{}", stderr(&out));
    let mut after: Vec<String> = stored().await;
    after.retain(|s| s != "abcdef12");
    assert_eq!(after, full, "sync stored the full ids");
    let unresolved: bool = sqlx::query_scalar(
        "SELECT COALESCE((metadata->>'snapshot_id_unresolved')::boolean, false) FROM runs WHERE id = $1",
    )
    .bind(gone)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(unresolved);
    let n_calls = restic_calls(&log).len();
    assert_eq!(
        restic_calls(&log)[2..],
        ["snapshots"],
        "one call resolves all"
    );
    // Nothing pending: a sync does not open the repository.
    assert_ok(&sync(&env));
    assert_eq!(restic_calls(&log).len(), n_calls);
}

/// Migration 013's trigger makes a schedule update lock the job's state row too. A run's
/// delivery writes the run (locking the state row) and then moves the job's schedules on, while
/// `sync` updates a schedule (locking it) and then, through the trigger, the state row: in
/// opposite orders, they deadlock. Delivery therefore locks the job's schedules first. Here
/// deliveries race a "sync" moving the same schedule, statement after statement; PostgreSQL
/// reports a deadlock (40P01) when the order is wrong.
#[tokio::test]
async fn a_delivery_racing_sync_over_the_same_schedules_never_deadlocks() {
    use restic_fleet::domain::run_record::TriggeredBy;
    use restic_fleet::ops::delivery as record;
    let env = Env::enrolled().await;
    let job = add_job(&env, "test-device", "busy").await;
    let mut schedules = Vec::new();
    for expr in ["*/5 * * * *", "0 3 * * *"] {
        schedules.push(add_cron(&env, job, expr).await);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut movers = Vec::new();
    for (k, id) in schedules.iter().copied().enumerate() {
        let (pool, stop) = (env.pool.clone(), stop.clone());
        movers.push(tokio::spawn(async move {
            let mut n = 0i32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                sqlx::query(
                    "UPDATE schedules SET next_run_at = NOW() + make_interval(secs => $1) \
                     WHERE id = $2",
                )
                .bind(n * 2 + k as i32)
                .bind(id)
                .execute(&pool)
                .await
                .expect("the sync-like update");
                n += 1;
            }
            n
        }));
    }
    for i in 0..150 {
        let mut conn = env.pool.acquire().await.unwrap();
        let mut r = record::RunRecord::starting(job, "busy", "test-device", TriggeredBy::Manual);
        r.status = "success".into();
        r.end_time = Some(Utc::now());
        if let Err(e) = record::deliver(&mut conn, &r, None).await {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            panic!("delivery {i} failed: {e:#}");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for m in movers {
        assert!(m.await.unwrap() > 0, "the schedules were moved meanwhile");
    }
    let delivered: i64 = sqlx::query_scalar("SELECT count(*) FROM runs WHERE job_id = $1")
        .bind(job)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(delivered, 150);
}
