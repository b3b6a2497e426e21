//! Step 3 of `run`: the complete run record, and writing it to the database.
//!
//! A [`RunRecord`] is every column `runs` gets, plus the id the client chose when the run
//! started (`client_run_id`). The same record either goes to the database now ([`deliver`]) or
//! to the spool ([`crate::local::spool`]) to be delivered later by the very same function, so a run
//! recorded live and one recorded after an outage end up as identical rows (apart from the
//! metadata saying it was recorded offline).
//!
//! [`deliver`] is idempotent on `client_run_id`: it finishes the row the run inserted when it
//! started (still `running`, or closed meanwhile as stale by a later run or sync), else inserts
//! the whole row with `ON CONFLICT (client_run_id) DO NOTHING`. A record delivered twice (a
//! crash between the commit and the removal of its spool file) changes nothing the second
//! time. It needs only what a device role may do: INSERT and UPDATE its own runs, UPDATE
//! `last_run_at`/`next_run_at` of its own schedules, SELECT its settings.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::commands::run::TriggeredBy;
use crate::domain::calendar::Schedule;
use crate::domain::restic;
use crate::ops::backup::execute::Outcome;

/// One run, as stored in `runs` (and in a spool file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub client_run_id: Uuid,
    pub job_id: Uuid,
    /// Not a column: for people reading the spool.
    pub job_name: String,
    pub device_id: String,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub status: String,
    pub exit_code: Option<i32>,
    pub error_message: Option<String>,
    pub files_new: Option<i32>,
    pub files_changed: Option<i32>,
    pub files_unmodified: Option<i32>,
    pub dirs_new: Option<i32>,
    pub dirs_changed: Option<i32>,
    pub dirs_unmodified: Option<i32>,
    pub data_added_bytes: Option<i64>,
    pub total_files_processed: Option<i32>,
    pub total_bytes_processed: Option<i64>,
    pub duration_seconds: Option<i32>,
    pub snapshot_id: Option<String>,
    pub restic_output: Option<String>,
    pub restic_errors: Option<String>,
    pub triggered_by: String,
    pub metadata: Value,
}

impl RunRecord {
    /// The record of a run that starts now (status `running`).
    pub fn starting(
        job_id: Uuid,
        job_name: &str,
        device_id: &str,
        triggered_by: TriggeredBy,
    ) -> Self {
        Self {
            client_run_id: Uuid::new_v4(),
            job_id,
            job_name: job_name.to_string(),
            device_id: device_id.to_string(),
            // PostgreSQL keeps microseconds: the same instant in the spool, the row and the
            // local last-run note, so they compare equal.
            start_time: Utc::now().trunc_subsecs(6),
            end_time: None,
            status: "running".to_string(),
            exit_code: None,
            error_message: None,
            files_new: None,
            files_changed: None,
            files_unmodified: None,
            dirs_new: None,
            dirs_changed: None,
            dirs_unmodified: None,
            data_added_bytes: None,
            total_files_processed: None,
            total_bytes_processed: None,
            duration_seconds: None,
            snapshot_id: None,
            restic_output: None,
            restic_errors: None,
            triggered_by: triggered_by.as_str().to_string(),
            metadata: json!({
                "client_version": crate::platform::host::VERSION,
                "hostname": crate::platform::host::hostname(),
                "pid": std::process::id(),
            }),
        }
    }

    /// Completes the record with restic's outcome, ending now.
    pub(crate) fn finish(&mut self, o: &Outcome) {
        let end = Utc::now().trunc_subsecs(6).max(self.start_time);
        let clamp = |v: Option<i64>| v.map(|n| n.clamp(0, i64::from(i32::MAX)) as i32);
        self.end_time = Some(end);
        self.duration_seconds = Some(
            (end - self.start_time)
                .num_seconds()
                .clamp(0, i64::from(i32::MAX)) as i32,
        );
        self.status = o.status.to_string();
        self.exit_code = o.exit_code;
        self.error_message = o.error_message.clone();
        self.files_new = clamp(o.summary.files_new);
        self.files_changed = clamp(o.summary.files_changed);
        self.files_unmodified = clamp(o.summary.files_unmodified);
        self.dirs_new = clamp(o.summary.dirs_new);
        self.dirs_changed = clamp(o.summary.dirs_changed);
        self.dirs_unmodified = clamp(o.summary.dirs_unmodified);
        self.data_added_bytes = o.summary.data_added;
        self.total_files_processed = clamp(o.summary.total_files_processed);
        self.total_bytes_processed = o.summary.total_bytes_processed;
        self.snapshot_id = o.summary.snapshot_id.clone();
        self.restic_output = Some(o.output.clone());
        self.restic_errors = Some(o.errors.clone());
        self.merge_metadata(json!({
            "warnings": o.warnings,
            "missing_paths": o.missing_paths,
            "incomplete": o.exit_code == Some(restic::code::INCOMPLETE),
            "total_duration": o.summary.total_duration,
        }));
    }

    /// Notes that the record is kept in the spool because the database could not be reached.
    pub fn mark_offline(&mut self, reason: &str) {
        self.merge_metadata(json!({
            "recorded_offline": true,
            "offline_reason": reason,
            "spooled_at": Utc::now(),
        }));
    }

    pub fn recorded_offline(&self) -> bool {
        self.metadata.get("recorded_offline") == Some(&Value::Bool(true))
    }

    pub(crate) fn merge_metadata(&mut self, extra: Value) {
        if !self.metadata.is_object() {
            self.metadata = json!({});
        }
        if let (Some(m), Value::Object(extra)) = (self.metadata.as_object_mut(), extra) {
            m.extend(extra);
        }
    }
}

/// Inserts the `running` row of a run that starts; returns the row id.
pub async fn insert_running(conn: &mut PgConnection, r: &RunRecord) -> anyhow::Result<i32> {
    Ok(sqlx::query_scalar(
        "INSERT INTO runs (client_run_id, job_id, device_id, start_time, status, triggered_by, \
         metadata) VALUES ($1, $2, $3, $4, 'running', $5, $6) RETURNING id",
    )
    .bind(r.client_run_id)
    .bind(r.job_id)
    .bind(&r.device_id)
    .bind(r.start_time)
    .bind(&r.triggered_by)
    .bind(&r.metadata)
    .fetch_one(conn)
    .await?)
}

/// What delivering a record did.
#[derive(Debug)]
pub struct Delivery {
    pub run_id: i32,
    /// False when the database already had this record (delivered before).
    pub applied: bool,
    /// The job's valid enabled schedules, moved on (empty when not applied).
    pub schedules: Vec<Schedule>,
    pub tz: chrono_tz::Tz,
}

/// Writes a finished record, exactly once, and moves the job's schedules on as if the run had
/// been recorded live when it ended. One transaction: all of it or nothing.
pub async fn deliver(conn: &mut PgConnection, r: &RunRecord) -> anyhow::Result<Delivery> {
    let mut tx = conn.begin().await?;
    // Lock order: the job's schedules, then (through the triggers on runs) its job_run_state row.
    // `sync` moving a schedule takes the schedule and then, through migration 013's trigger,
    // the same state row; writing the run first would take them in the opposite order and
    // deadlock with it.
    sqlx::query("SELECT id FROM schedules WHERE job_id = $1 ORDER BY id FOR UPDATE")
        .bind(r.job_id)
        .execute(&mut *tx)
        .await?;
    let offline = r.recorded_offline();
    // Keys a stale close or a reconciliation wrote are dropped: this record is the real one.
    let updated: Option<i32> = sqlx::query_scalar(
        "UPDATE runs SET end_time = $2, status = $3, exit_code = $4, error_message = $5, \
           files_new = $6, files_changed = $7, files_unmodified = $8, \
           dirs_new = $9, dirs_changed = $10, dirs_unmodified = $11, \
           data_added_bytes = $12, total_files_processed = $13, total_bytes_processed = $14, \
           duration_seconds = $15, snapshot_id = $16, restic_output = $17, restic_errors = $18, \
           metadata = (COALESCE(metadata, '{}'::jsonb) - ARRAY['stale', 'recovered', 'note']) \
                      || $19 || CASE WHEN $20 THEN jsonb_build_object('delivered_at', NOW()) \
                                     ELSE '{}'::jsonb END \
         WHERE client_run_id = $1 AND device_id = $21 \
           AND (status = 'running' OR metadata->>'stale' = 'true') \
         RETURNING id",
    )
    .bind(r.client_run_id)
    .bind(r.end_time)
    .bind(&r.status)
    .bind(r.exit_code)
    .bind(&r.error_message)
    .bind(r.files_new)
    .bind(r.files_changed)
    .bind(r.files_unmodified)
    .bind(r.dirs_new)
    .bind(r.dirs_changed)
    .bind(r.dirs_unmodified)
    .bind(r.data_added_bytes)
    .bind(r.total_files_processed)
    .bind(r.total_bytes_processed)
    .bind(r.duration_seconds)
    .bind(&r.snapshot_id)
    .bind(&r.restic_output)
    .bind(&r.restic_errors)
    .bind(&r.metadata)
    .bind(offline)
    .bind(&r.device_id)
    .fetch_optional(&mut *tx)
    .await?;
    let inserted: Option<i32> =
        match updated {
            Some(_) => None,
            None => sqlx::query_scalar(
                "INSERT INTO runs (client_run_id, job_id, device_id, start_time, end_time, status, \
                   exit_code, error_message, files_new, files_changed, files_unmodified, \
                   dirs_new, dirs_changed, dirs_unmodified, data_added_bytes, \
                   total_files_processed, total_bytes_processed, duration_seconds, snapshot_id, \
                   restic_output, restic_errors, triggered_by, metadata) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                   $17, $18, $19, $20, $21, $22, \
                   $23 || CASE WHEN $24 THEN jsonb_build_object('delivered_at', NOW()) \
                               ELSE '{}'::jsonb END) \
                 ON CONFLICT (client_run_id) DO NOTHING RETURNING id",
            )
            .bind(r.client_run_id)
            .bind(r.job_id)
            .bind(&r.device_id)
            .bind(r.start_time)
            .bind(r.end_time)
            .bind(&r.status)
            .bind(r.exit_code)
            .bind(&r.error_message)
            .bind(r.files_new)
            .bind(r.files_changed)
            .bind(r.files_unmodified)
            .bind(r.dirs_new)
            .bind(r.dirs_changed)
            .bind(r.dirs_unmodified)
            .bind(r.data_added_bytes)
            .bind(r.total_files_processed)
            .bind(r.total_bytes_processed)
            .bind(r.duration_seconds)
            .bind(&r.snapshot_id)
            .bind(&r.restic_output)
            .bind(&r.restic_errors)
            .bind(&r.triggered_by)
            .bind(&r.metadata)
            .bind(offline)
            .fetch_optional(&mut *tx)
            .await?,
        };
    // A bad timezone setting must not keep a record out of the database for ever.
    let tz = crate::store::settings::load(&mut *tx, &r.device_id)
        .await?
        .timezone()
        .unwrap_or_else(|_| crate::domain::settings::local_timezone());
    let (run_id, applied) = match updated.or(inserted) {
        Some(id) => (id, true),
        None => {
            let id: i32 = sqlx::query_scalar("SELECT id FROM runs WHERE client_run_id = $1")
                .bind(r.client_run_id)
                .fetch_one(&mut *tx)
                .await?;
            (id, false)
        }
    };
    let schedules = if applied {
        let recorded = r.end_time.unwrap_or(r.start_time);
        crate::store::schedules::update_after_run(&mut tx, r.job_id, r.start_time, recorded, tz)
            .await?
    } else {
        Vec::new()
    };
    tx.commit().await?;
    Ok(Delivery {
        run_id,
        applied,
        schedules,
        tz,
    })
}
