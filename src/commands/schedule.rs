//! `restic-fleet schedule add|list|rm|enable|disable` (`schedule preview` lives in
//! [`crate::commands::schedule_preview`]).

use std::path::Path;

use chrono::Utc;
use clap::Args;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::commands::{Conn, confirm, explain, require_device};
use crate::domain::calendar::Schedule;
use crate::domain::exit;
use crate::domain::schedule::ScheduleRow;
use crate::domain::schedule::parse_schedule;
use crate::output::{self, print_json};
use crate::store::schedules::NewSchedule;
use crate::usage_err;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("when").required(true).args(["cron", "interval"])))]
pub struct AddArgs {
    /// The job: its UUID, its name on this device, or DEVICE/NAME.
    #[arg(value_name = "JOB")]
    pub job: String,
    /// A 5-field cron expression or a macro like @daily, in the device's time zone.
    #[arg(long, value_name = "EXPR")]
    pub cron: Option<String>,
    #[command(flatten)]
    pub interval: crate::commands::IntervalArg,
    /// Create the schedule disabled.
    #[arg(long)]
    pub disabled: bool,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only the schedules of this job.
    #[arg(long, value_name = "JOB")]
    pub job: Option<String>,
    /// Only the schedules of this device's jobs.
    #[arg(long, value_name = "ID")]
    pub device: Option<String>,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// Schedule id (a number, see `schedule list`).
    #[arg(value_name = "ID")]
    pub id: String,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Schedule id (a number, see `schedule list`).
    #[arg(value_name = "ID")]
    pub id: String,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    #[command(flatten)]
    pub conn: Conn,
}

/// A schedule as printed by `schedule list --json` (an array) and `schedule add|enable|disable
/// --json`: `id`, `job_id`, `job_name`, `device_id`, `schedule_type` (`cron`/`interval`),
/// `cron_expression`, `interval_seconds`, `enabled`, `last_run_at`, `next_run_at` (RFC 3339 or
/// null).
#[derive(Debug, Serialize)]
pub struct ScheduleOut {
    #[serde(flatten)]
    pub row: ScheduleRow,
    pub job_name: String,
    pub device_id: String,
}

pub async fn add(config_path: &Path, a: AddArgs) -> anyhow::Result<u8> {
    explain(add_inner(config_path, a).await)
}
pub async fn list(config_path: &Path, a: ListArgs) -> anyhow::Result<u8> {
    explain(list_inner(config_path, a).await)
}
pub async fn rm(config_path: &Path, a: RmArgs) -> anyhow::Result<u8> {
    explain(rm_inner(config_path, a).await)
}
pub async fn enable(config_path: &Path, a: IdArgs) -> anyhow::Result<u8> {
    explain(set_enabled(config_path, a, true).await)
}
pub async fn disable(config_path: &Path, a: IdArgs) -> anyhow::Result<u8> {
    explain(set_enabled(config_path, a, false).await)
}

fn parse_id(text: &str) -> anyhow::Result<i32> {
    text.trim().parse::<i32>().ok().filter(|n| *n > 0).ok_or_else(|| {
        usage_err!("{text:?} is not a schedule id (a number); list them with `restic-fleet schedule list`")
    })
}

async fn load(pool: &PgPool, id: i32) -> anyhow::Result<ScheduleOut> {
    let row = crate::store::schedules::find(pool, id).await?;
    let row = row.ok_or_else(|| {
        usage_err!("no schedule with id {id} exists; list them with `restic-fleet schedule list`")
    })?;
    let (job_name, device_id) = crate::store::jobs::name_and_device(pool, row.job_id).await?;
    Ok(ScheduleOut {
        row,
        job_name,
        device_id,
    })
}

/// Recomputes `next_run_at` of one schedule with the device's time zone.
async fn refresh_next(pool: &PgPool, s: &ScheduleOut) -> anyhow::Result<()> {
    let tz = crate::store::settings::load(pool, &s.device_id)
        .await?
        .timezone()?;
    let next = match s.row.schedule() {
        Ok(sched) => crate::domain::schedule::next_run(&sched, s.row.last_run_at, Utc::now(), &tz),
        Err(_) => None,
    };
    crate::store::schedules::set_next_run(pool, s.row.id, next).await
}

fn print_one(s: &ScheduleOut, json: bool, verb: &str) -> anyhow::Result<()> {
    if json {
        return print_json(s);
    }
    println!(
        "{verb} schedule {} ({}) of job {} ({:?} on device {:?}); next run: {}",
        s.row.id,
        crate::domain::schedule::describe_schedule(&s.row),
        s.row.job_id,
        s.job_name,
        s.device_id,
        output::time(s.row.next_run_at)
    );
    Ok(())
}

async fn add_inner(config_path: &Path, a: AddArgs) -> anyhow::Result<u8> {
    let sched = parse_schedule(a.cron.as_deref(), a.interval.interval)?;
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    let job = crate::commands::resolve_job(config_path, &pool, &a.job).await?;
    let job_id = job.id;
    // The time zone is checked before anything is written: a broken setting is reported here.
    let tz = crate::store::settings::load(&pool, &job.device_id)
        .await?
        .timezone()?;
    let next = if a.disabled {
        None
    } else {
        crate::domain::schedule::next_run(&sched, None, Utc::now(), &tz)
    };
    let (kind, cron, interval) = match &sched {
        Schedule::Cron(c) => ("cron", Some(c.as_str().to_string()), None),
        Schedule::Interval { seconds } => ("interval", None, Some(*seconds as i32)),
    };
    let new = NewSchedule {
        job_id,
        schedule_type: kind,
        cron_expression: cron,
        interval_seconds: interval,
        enabled: !a.disabled,
        next_run_at: next,
    };
    let id = crate::store::schedules::insert(&pool, new).await?;
    let s = load(&pool, id).await?;
    print_one(&s, a.conn.json, "added")?;
    Ok(exit::SUCCESS)
}

async fn list_inner(config_path: &Path, a: ListArgs) -> anyhow::Result<u8> {
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    if let Some(d) = &a.device {
        require_device(&pool, d).await?;
    }
    let job: Option<Uuid> = match a.job.as_deref() {
        Some(t) => Some(
            crate::commands::resolve_job(config_path, &pool, t)
                .await?
                .id,
        ),
        None => None,
    };
    let rows = crate::store::schedules::listed(&pool, job, a.device.as_deref()).await?;
    let all = crate::store::schedules::all(&pool).await?;
    let out: Vec<ScheduleOut> = rows
        .into_iter()
        .filter_map(|(id, job_name, device_id)| {
            all.iter().find(|r| r.id == id).map(|row| ScheduleOut {
                row: row.clone(),
                job_name,
                device_id,
            })
        })
        .collect();
    if a.conn.json {
        print_json(&out)?;
        return Ok(exit::SUCCESS);
    }
    if out.is_empty() {
        println!("no schedules; add one with `restic-fleet schedule add JOB --cron EXPR`");
        return Ok(exit::SUCCESS);
    }
    let mut t = output::table(&["id", "device", "job", "schedule", "last run", "next run"]);
    for s in &out {
        t.add_row([
            s.row.id.to_string().into(),
            s.device_id.clone().into(),
            output::lines([s.job_name.clone(), s.row.job_id.to_string()]),
            crate::domain::schedule::describe_schedule(&s.row).into(),
            output::time(s.row.last_run_at).into(),
            output::time(s.row.next_run_at).into(),
        ]);
    }
    println!("{}", output::render(&t));
    Ok(exit::SUCCESS)
}

async fn rm_inner(config_path: &Path, a: RmArgs) -> anyhow::Result<u8> {
    let id = parse_id(&a.id)?;
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    let s = load(&pool, id).await?;
    confirm(
        &format!(
            "remove schedule {id} ({}) of job {:?} on device {:?}",
            crate::domain::schedule::describe_schedule(&s.row),
            s.job_name,
            s.device_id
        ),
        a.yes,
    )?;
    crate::store::schedules::delete(&pool, id).await?;
    if a.conn.json {
        print_json(&serde_json::json!({"id": id, "removed": true}))?;
    } else {
        println!("removed schedule {id}");
    }
    Ok(exit::SUCCESS)
}

async fn set_enabled(config_path: &Path, a: IdArgs, enabled: bool) -> anyhow::Result<u8> {
    let id = parse_id(&a.id)?;
    let pool = crate::commands::connect(config_path, &a.conn).await?;
    let s = load(&pool, id).await?;
    if enabled {
        // Check the stored expression and the time zone before changing anything.
        s.row.schedule().map_err(|e| {
            usage_err!("{e}; remove it with `restic-fleet schedule rm {id}` and add a valid one")
        })?;
        crate::store::settings::load(&pool, &s.device_id)
            .await?
            .timezone()?;
    }
    crate::store::schedules::set_enabled(&pool, id, enabled).await?;
    let mut s = load(&pool, id).await?;
    if enabled {
        refresh_next(&pool, &s).await?;
        s = load(&pool, id).await?;
    }
    print_one(
        &s,
        a.conn.json,
        if enabled { "enabled" } else { "disabled" },
    )?;
    Ok(exit::SUCCESS)
}
