//! Full snapshot ids without a second repository open per run.
//!
//! restic 0.15 and later report the full 64-digit snapshot id in the backup summary, and `run`
//! stores it as given. restic 0.14 reports only the 8-digit short id; opening the
//! repository again just to learn the full one costs a second restic process and a scrypt key
//! derivation (~0.3 s, 60% of an incremental backup). So `run` stores the short id, and the next
//! `sync` of the device resolves all its pending short ids with ONE `restic snapshots --json`
//! call per repository its pending runs' jobs write to (none when nothing is pending: a no-op
//! sync does not open any repository).
//!
//! A pending id is a successful run of the last [`PENDING_DAYS`] days whose `snapshot_id` is
//! shorter than 64 characters (the partial index idx_runs_snapshot_pending keeps that lookup as
//! small as the number of pending ids). An id restic does not list (the snapshot was forgotten)
//! or lists more than once is marked `metadata.snapshot_id_unresolved` and not tried again; the
//! short id stays, which restic accepts while it is unique.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use crate::domain::settings::Settings;
use crate::domain::text::redact;

/// How far back `sync` looks for short ids to resolve.
pub(crate) const PENDING_DAYS: i32 = 30;

/// Whether `id` is a whole restic snapshot id (64 lowercase hex digits).
pub(crate) fn is_full(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `id` can be the prefix of a snapshot id (1 to 63 hex digits).
fn is_short(id: &str) -> bool {
    !id.is_empty() && id.len() < 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What became of the pending ids.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Resolution {
    /// run id → full snapshot id.
    pub resolved: Vec<(i32, String)>,
    /// Runs whose short id restic does not list exactly once.
    pub unresolved: Vec<i32>,
}

/// Matches pending `(run id, short id)` pairs against the ids restic listed.
pub(crate) fn resolve(pending: &[(i32, String)], listed: &[String]) -> Resolution {
    let mut by_prefix: HashMap<&str, Vec<&str>> = HashMap::new();
    for full in listed.iter().filter(|id| is_full(id)) {
        by_prefix.entry(&full[..8]).or_default().push(full);
    }
    let mut out = Resolution::default();
    for (run, short) in pending {
        let short = short.to_ascii_lowercase();
        let matches: Vec<&&str> = if is_short(&short) && short.len() >= 8 {
            by_prefix
                .get(&short[..8])
                .map(|c| c.iter().filter(|f| f.starts_with(&short)).collect())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        match matches.as_slice() {
            [one] => out.resolved.push((*run, (**one).to_string())),
            _ => out.unresolved.push(*run),
        }
    }
    out
}

/// Resolves this device's pending short snapshot ids, at most one restic call per repository. Never fails the
/// caller: problems are logged and the ids stay pending for the next sync. Returns how many ids
/// were resolved.
pub async fn resolve_pending(
    pool: &mut sqlx::PgConnection,
    device_id: &str,
    settings: &Settings,
) -> usize {
    // Behind PgBouncer the statements run pinned in a transaction (see `db::begin_pinned`),
    // ended here whatever happened.
    let result = async {
        crate::store::db::begin_pinned(&mut *pool).await?;
        match try_resolve_pending(&mut *pool, device_id, settings).await {
            Ok(n) => {
                crate::store::db::release_pinned(&mut *pool).await?;
                Ok(n)
            }
            Err(e) => {
                crate::store::db::abort_pinned(&mut *pool).await?;
                Err(e)
            }
        }
    }
    .await;
    match result {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("could not resolve the short snapshot ids of this device: {e:#}");
            0
        }
    }
}

async fn try_resolve_pending(
    pool: &mut sqlx::PgConnection,
    device_id: &str,
    settings: &Settings,
) -> anyhow::Result<usize> {
    let pending =
        crate::store::fleet::pending_snapshot_ids(&mut *pool, device_id, PENDING_DAYS).await?;
    let (pending, malformed): (Vec<_>, Vec<_>) = pending
        .into_iter()
        .partition(|(_, id, _)| is_short(id) && id.len() >= 8);
    let malformed: Vec<i32> = malformed.into_iter().map(|(run, _, _)| run).collect();
    if pending.is_empty() {
        crate::store::fleet::mark_snapshot_ids_unresolved(&mut *pool, &malformed).await?;
        return Ok(0);
    }
    let Some(password) = settings.get("repository_password") else {
        return Ok(0); // `run` reports the missing settings; nothing to resolve with
    };
    let Ok(restic) = which::which("restic") else {
        tracing::debug!("restic is not on PATH: short snapshot ids stay pending");
        return Ok(0);
    };
    // The repositories the pending runs' jobs write to: one listing per repository.
    let places = crate::store::jobs::places_of_device(&mut *pool, device_id).await?;
    let (groups, _) = crate::domain::repository::by_repository(
        |_| settings,
        places.iter().map(crate::store::jobs::PlaceRow::place),
    );
    // Behind PgBouncer no transaction (so no server connection) is held while restic runs: the
    // reads above and the writes below are short transactions of their own.
    crate::store::db::release_pinned(&mut *pool).await?;
    let mut resolution = Resolution::default();
    for (repository, jobs) in &groups {
        let waiting: Vec<(i32, String)> = pending
            .iter()
            .filter(|(_, _, job)| jobs.contains(job))
            .map(|(run, id, _)| (*run, id.clone()))
            .collect();
        if waiting.is_empty() {
            continue;
        }
        // Each repository's ids resolve only against its own listing: a short id may be the
        // prefix of snapshots in two repositories.
        match list_snapshot_ids(&restic, repository, password, settings, device_id).await {
            Ok(listed) => {
                let r = resolve(&waiting, &listed);
                resolution.resolved.extend(r.resolved);
                resolution.unresolved.extend(r.unresolved);
            }
            // The other repositories go ahead; these ids stay pending for the next sync.
            Err(e) => tracing::warn!(
                "could not list the snapshots of {}: {e:#}",
                crate::domain::text::mask_url(repository)
            ),
        }
    }
    crate::store::db::begin_pinned(&mut *pool).await?;
    resolution.unresolved.extend(malformed);
    crate::store::fleet::store_full_snapshot_ids(&mut *pool, &resolution.resolved).await?;
    crate::store::fleet::mark_snapshot_ids_unresolved(&mut *pool, &resolution.unresolved).await?;
    if !resolution.unresolved.is_empty() {
        tracing::warn!(
            "{} short snapshot id(s) are not listed by restic exactly once (forgotten \
             snapshots?); they are kept as they are",
            resolution.unresolved.len()
        );
    }
    tracing::info!(
        "resolved {} short snapshot id(s) to full ids",
        resolution.resolved.len()
    );
    Ok(resolution.resolved.len())
}

/// The ids of this device's snapshots (`restic snapshots --json --no-lock --host DEVICE`).
async fn list_snapshot_ids(
    restic: &std::path::Path,
    repository: &str,
    password: &str,
    settings: &Settings,
    device_id: &str,
) -> anyhow::Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Snap {
        id: String,
    }
    // The same restic environment as `run` (repository, password and cache dir in the
    // environment, never in argv), so the cache restic built while backing up is reused.
    let mut cmd =
        crate::platform::restic_env::restic_command(restic, repository, password, settings);
    cmd.args(["snapshots", "--json", "--no-lock", "--host", device_id]);
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .map_err(|_| anyhow::anyhow!("restic snapshots did not finish within 300 s"))?
        .map_err(|e| anyhow::anyhow!("could not start restic snapshots: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "restic snapshots failed: {}",
            redact(String::from_utf8_lossy(&out.stderr).trim(), password)
        );
    }
    let list: Vec<Snap> = serde_json::from_slice(&out.stdout)
        .map_err(|e| anyhow::anyhow!("restic snapshots printed unexpected JSON: {e}"))?;
    Ok(list.into_iter().map(|s| s.id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(prefix: &str) -> String {
        format!("{prefix}{}", "0".repeat(64 - prefix.len()))
    }

    #[test]
    fn each_short_id_needs_exactly_one_listed_match() {
        let a = full("2f8aaa3d");
        let b1 = full("11112222a");
        let b2 = full("11112222b");
        let listed = vec![a.clone(), b1.clone(), b2.clone(), "garbage".into()];
        let pending = vec![
            (1, "2f8aaa3d".to_string()),
            (2, "2F8AAA3D".to_string()),
            (3, "11112222".to_string()),
            (4, "11112222b".to_string()),
            (5, "deadbeef".to_string()),
        ];
        let r = resolve(&pending, &listed);
        assert_eq!(r.resolved, vec![(1, a.clone()), (2, a), (4, b2)]);
        assert_eq!(r.unresolved, vec![3, 5]);
        assert!(is_full(&b1) && !is_full("2f8aaa3d") && !is_full(&"g".repeat(64)));
    }
}
