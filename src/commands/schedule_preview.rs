//! `restic-fleet schedule preview`: the next fire times of a schedule and the systemd
//! OnCalendar= lines that represent it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::calendar::{CronExpr, Schedule};
use crate::usage_err;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["cron", "interval", "job"])))]
pub struct PreviewArgs {
    /// A cron expression (5 fields or a macro like @daily).
    #[arg(long, value_name = "EXPR")]
    pub cron: Option<String>,
    #[command(flatten)]
    pub interval: crate::commands::IntervalArg,
    /// Every enabled schedule of this job (UUID or name; needs the database).
    #[arg(long, value_name = "JOB")]
    pub job: Option<String>,
    /// Database URL for --job (default: the DATABASE_URL variable, else database_url from the
    /// config file, a device's or an admin machine's).
    #[arg(long, value_name = "URL", requires = "job")]
    pub database_url: Option<String>,
    /// How many fire times to print.
    #[arg(long, default_value_t = 10)]
    pub count: usize,
    /// IANA time zone (default: the `timezone` setting with --job, else this machine's zone).
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// Start from this instant instead of now (RFC 3339, e.g. 2027-03-27T12:00:00+01:00).
    #[arg(long, value_name = "RFC3339")]
    pub from: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// The `--json` shape: `next` (RFC 3339 with offset, in the zone), `on_calendar` (systemd lines;
/// empty for interval schedules), `timezone`, and the schedules previewed.
#[derive(Debug, Serialize)]
pub struct Preview {
    pub timezone: String,
    pub from: String,
    pub schedules: Vec<String>,
    pub next: Vec<String>,
    pub on_calendar: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interval_seconds: Vec<u64>,
    /// The Windows Task Scheduler `<Triggers>` element exactly as it goes into the task XML
    /// (see `crate::domain::calendar::task_scheduler`).
    pub windows_triggers_xml: String,
}

pub fn parse_tz(name: &str) -> anyhow::Result<chrono_tz::Tz> {
    name.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        usage_err!("{name:?} is not an IANA time zone name (like Europe/Prague or UTC); check --tz")
    })
}

pub fn parse_from(text: Option<&str>) -> anyhow::Result<DateTime<Utc>> {
    match text {
        None => Ok(Utc::now()),
        Some(t) => DateTime::parse_from_rfc3339(t.trim())
            .map(|d| d.with_timezone(&Utc))
            .map_err(|_| {
                usage_err!(
                    "--from {t:?} is not an RFC 3339 time like 2027-03-27T12:00:00+01:00; fix it"
                )
            }),
    }
}

/// Computes the preview of a set of schedules (their fire times merged).
pub fn preview(
    schedules: &[Schedule],
    labels: Vec<String>,
    tz: chrono_tz::Tz,
    from: DateTime<Utc>,
    count: usize,
) -> Preview {
    let mut next: Vec<DateTime<Utc>> = Vec::new();
    let mut on_calendar = Vec::new();
    let mut intervals = Vec::new();
    for s in schedules {
        next.extend(s.upcoming(from, &tz, count));
        match s {
            Schedule::Cron(expr) => {
                for line in crate::domain::calendar::systemd::on_calendar_lines(
                    expr,
                    &tz,
                    from,
                    crate::domain::calendar::HORIZON_DAYS,
                ) {
                    if !on_calendar.contains(&line) {
                        on_calendar.push(line);
                    }
                }
            }
            Schedule::Interval { seconds } => intervals.push(*seconds),
        }
    }
    next.sort();
    next.dedup();
    next.truncate(count);
    let windows = crate::domain::calendar::task_scheduler::job_triggers(
        schedules,
        &[],
        &tz,
        from,
        crate::domain::calendar::HORIZON_DAYS,
    );
    Preview {
        timezone: tz.name().to_string(),
        from: from.with_timezone(&tz).to_rfc3339(),
        schedules: labels,
        next: next
            .iter()
            .map(|t| t.with_timezone(&tz).to_rfc3339())
            .collect(),
        on_calendar,
        interval_seconds: intervals,
        windows_triggers_xml: crate::domain::calendar::task_scheduler::triggers_xml(
            &windows.triggers,
            "  ",
        ),
    }
}

pub fn parse_cron(expr: &str) -> anyhow::Result<CronExpr> {
    CronExpr::parse(expr).map_err(|e| usage_err!("{e}"))
}

pub fn print(p: &Preview, json: bool) -> anyhow::Result<()> {
    if json {
        crate::output::print_json(p)?;
        return Ok(());
    }
    println!(
        "schedule: {} (time zone {})",
        p.schedules.join("; "),
        p.timezone
    );
    println!("next runs after {}:", p.from);
    if p.next.is_empty() {
        println!("  (none: the expression never fires)");
    }
    for t in &p.next {
        println!("  {t}");
    }
    if !p.on_calendar.is_empty() {
        println!("systemd timer:");
        for l in &p.on_calendar {
            println!("  OnCalendar={l}");
        }
    }
    for s in &p.interval_seconds {
        println!("systemd timer:\n  OnUnitActiveSec={s}s (and OnBootSec= for the first run)");
    }
    Ok(())
}

/// Runs `schedule preview`.
pub async fn run(config_path: &std::path::Path, args: &PreviewArgs) -> anyhow::Result<u8> {
    let from = parse_from(args.from.as_deref())?;
    let count = args.count.clamp(1, 10_000);
    let (schedules, labels, tz) = match &args.job {
        Some(job) => job_schedules(config_path, args, job).await?,
        None => given_schedule(args)?,
    };
    let p = preview(&schedules, labels, tz, from, count);
    print(&p, args.json)?;
    Ok(crate::domain::exit::SUCCESS)
}

/// What is previewed: the schedules, a label for each, and the zone they fire in.
type Previewed = (Vec<Schedule>, Vec<String>, chrono_tz::Tz);

/// Every enabled schedule of the job (a UUID or a name: a name works wherever a UUID does), in
/// `tz` or else the job's device's `timezone` setting.
async fn job_schedules(
    config_path: &std::path::Path,
    args: &PreviewArgs,
    job: &str,
) -> anyhow::Result<Previewed> {
    let url = crate::commands::database_url(config_path, args.database_url.as_deref())?;
    let pool = crate::store::db::connect(&url).await?;
    let job = crate::commands::resolve_job(config_path, &pool, job).await?;
    let job_id = job.id;
    let tz = match args.tz.as_deref() {
        Some(z) => parse_tz(z)?,
        None => crate::store::settings::load(&pool, &job.device_id)
            .await?
            .timezone()?,
    };
    let rows = crate::store::schedules::enabled_of_job(&pool, job_id).await?;
    let mut scheds = Vec::new();
    let mut labels = Vec::new();
    for row in &rows {
        scheds.push(
            row.schedule()
                .map_err(|e| usage_err!("job {job_id} ({:?}): {e}", job.name))?,
        );
        labels.push(match &row.cron_expression {
            Some(c) if row.schedule_type == "cron" => c.clone(),
            _ => format!("every {}s", row.interval_seconds.unwrap_or(0)),
        });
    }
    if scheds.is_empty() {
        return Err(usage_err!(
            "job {job_id} ({:?}) has no enabled schedule; add one with `restic-fleet schedule add {job_id} --cron EXPR`",
            job.name
        ));
    }
    Ok((scheds, labels, tz))
}

/// The schedule given by `--cron` or `--interval`, in `--tz` or else this machine's zone.
fn given_schedule(args: &PreviewArgs) -> anyhow::Result<Previewed> {
    let tz = match &args.tz {
        Some(z) => parse_tz(z)?,
        None => crate::domain::settings::local_timezone(),
    };
    if let Some(expr) = &args.cron {
        return Ok((
            vec![Schedule::Cron(parse_cron(expr)?)],
            vec![expr.clone()],
            tz,
        ));
    }
    // An interval is held to the same bounds as `schedule add --interval`.
    let secs = args.interval.interval.unwrap_or(0);
    let Schedule::Interval { seconds: secs } =
        crate::domain::schedule::parse_schedule(None, Some(secs))?
    else {
        return Err(usage_err!("--interval DURATION is required without --cron"));
    };
    Ok((
        vec![Schedule::Interval { seconds: secs }],
        vec![format!("every {secs}s")],
        tz,
    ))
}
