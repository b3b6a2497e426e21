//! Relica's retention carried over by `relica-migrate`: a destination's `retention_days` N > 0
//! becomes the job's policy keep-within `Nd`. A job whose destinations disagree gets the longest
//! N; a destination that keeps forever (0 or no value) makes the job keep everything, as
//! forgetting is the one step that cannot be undone. An existing policy is never replaced.

use std::collections::HashSet;

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::relica::PlannedJob;

/// The keep-within days for a job from its planned metadata (`relica.destinations[]`), or
/// `None` when the job keeps everything.
pub fn retention_days(metadata: &Value) -> Option<i64> {
    let dests = metadata.pointer("/relica/destinations")?.as_array()?;
    let days: Vec<Option<i64>> = dests
        .iter()
        .map(|d| d.get("retention_days").and_then(Value::as_i64))
        .collect();
    if days.is_empty() || days.iter().any(|d| !matches!(d, Some(n) if *n > 0)) {
        return None;
    }
    days.into_iter().flatten().max()
}

/// Stores keep-within `Nd` for each imported job (not `skipped`) without a policy of its own;
/// one note per job says so.
pub async fn import_retention(
    conn: &mut PgConnection,
    jobs: &[PlannedJob],
    skipped: &HashSet<Uuid>,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    for j in jobs.iter().filter(|j| !skipped.contains(&j.id)) {
        let Some(days) = retention_days(&j.metadata) else {
            continue;
        };
        // restic's duration counts; 1000000 days is far beyond any real retention.
        let days = days.min(1_000_000);
        let done = sqlx::query(
            "INSERT INTO job_retention (job_id, keep_within) VALUES ($1, $2) \
             ON CONFLICT (job_id) DO NOTHING",
        )
        .bind(j.id)
        .bind(format!("{days}d"))
        .execute(&mut *conn)
        .await?
        .rows_affected();
        notes.push(if done == 1 {
            format!(
                "job {:?} ({}): Relica's retention_days {days} became the retention policy \
                 keep-within {days}d (applied by the maintenance owner's `restic-fleet maintain`)",
                j.name, j.id
            )
        } else {
            format!(
                "job {:?} ({}): Relica's retention_days {days} was not applied because the job \
                 already has a retention policy",
                j.name, j.id
            )
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn days_from_destinations() {
        let m = |d: Value| json!({"relica": {"destinations": d}});
        assert_eq!(
            retention_days(&m(json!([{"retention_days": 30}]))),
            Some(30)
        );
        assert_eq!(
            retention_days(&m(json!([{"retention_days": 30}, {"retention_days": 90}]))),
            Some(90)
        );
        assert_eq!(
            retention_days(&m(json!([{"retention_days": 30}, {"retention_days": 0}]))),
            None
        );
        assert_eq!(retention_days(&m(json!([{"retention_days": null}]))), None);
        assert_eq!(retention_days(&m(json!([]))), None);
        assert_eq!(retention_days(&json!({})), None);
    }
}
