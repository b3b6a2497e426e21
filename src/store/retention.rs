//! The `job_retention` table: each job's `--keep-*` policy for `restic forget`.

use std::collections::HashMap;

use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::retention::RetentionPolicy;

/// The columns of [`RetentionPolicy`].
const POLICY_COLUMNS: &str =
    "keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within";

/// The job's own policy (`None`: it has none and the default applies).
pub async fn load(pool: &PgPool, job: Uuid) -> anyhow::Result<Option<RetentionPolicy>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {POLICY_COLUMNS} FROM job_retention WHERE job_id = $1"
    ))
    .bind(job)
    .fetch_optional(pool)
    .await?)
}

/// Every job's own policy.
pub async fn load_all(pool: &PgPool) -> anyhow::Result<HashMap<Uuid, RetentionPolicy>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        job_id: Uuid,
        #[sqlx(flatten)]
        policy: RetentionPolicy,
    }
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT job_id, {POLICY_COLUMNS} FROM job_retention"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.job_id, r.policy)).collect())
}

/// Stores the job's policy, validated by the caller (an empty policy removes the row: the job
/// falls back to the default).
pub async fn save(pool: &PgPool, job: Uuid, policy: &RetentionPolicy) -> anyhow::Result<()> {
    if policy.is_empty() {
        sqlx::query("DELETE FROM job_retention WHERE job_id = $1")
            .bind(job)
            .execute(pool)
            .await?;
        return Ok(());
    }
    sqlx::query(&format!(
        "INSERT INTO job_retention (job_id, {POLICY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (job_id) DO UPDATE SET keep_last = EXCLUDED.keep_last, \
           keep_hourly = EXCLUDED.keep_hourly, keep_daily = EXCLUDED.keep_daily, \
           keep_weekly = EXCLUDED.keep_weekly, keep_monthly = EXCLUDED.keep_monthly, \
           keep_yearly = EXCLUDED.keep_yearly, keep_within = EXCLUDED.keep_within, \
           updated_at = NOW()"
    ))
    .bind(job)
    .bind(policy.keep_last)
    .bind(policy.keep_hourly)
    .bind(policy.keep_daily)
    .bind(policy.keep_weekly)
    .bind(policy.keep_monthly)
    .bind(policy.keep_yearly)
    .bind(&policy.keep_within)
    .execute(pool)
    .await?;
    Ok(())
}
