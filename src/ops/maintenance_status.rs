//! The `maintenance` object of `restic-fleet status` and `metrics`: reads who maintains each
//! repository, the maintainers' settings and heartbeats, the `repositories` rows and the last
//! steps per repository in `maintenance_runs`, and has [`crate::domain::health::maintenance`]
//! judge them. The top level is the shared repositories' (the `maintenance_device`'s, with the
//! rows recorded before steps named their repository); `repositories` has each.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::domain::health::maintenance::{
    self, MaintenanceFacts, MaintenanceStatus, RepositoryIdent, RepositoryMaintenance, StepHistory,
};

/// Reads the settings, repositories and `maintenance_runs` and judges: a fixed number of
/// queries, whatever the number of repositories.
pub async fn collect(pool: &PgPool, now: DateTime<Utc>) -> anyhow::Result<MaintenanceStatus> {
    let owner = crate::store::maintenance::global_owner(pool).await?;
    // The owner's own settings (time zone, schedule overrides) decide its timer.
    let settings = crate::store::settings::load(pool, owner.as_deref().unwrap_or("")).await?;
    let histories = crate::store::maintenance::step_histories(pool).await?;
    let repositories = crate::store::repositories::all(pool).await?;
    let maintainers: Vec<String> = owner
        .iter()
        .chain(
            repositories
                .iter()
                .filter_map(|r| r.maintainer_device_id.as_ref()),
        )
        .cloned()
        .collect();
    let last_seen = crate::store::maintenance::devices_last_seen(pool, &maintainers).await?;
    let device_settings = crate::store::maintenance::maintainer_settings(pool).await?;
    let seen = |d: &str| last_seen.get(d).copied();

    let shared: Vec<i32> = repositories
        .iter()
        .filter(|r| r.maintainer_device_id.is_none())
        .map(|r| r.id)
        .collect();
    let legacy = histories.get(&None);
    let mut top_steps = legacy.cloned().unwrap_or_default();
    for id in &shared {
        if let Some(h) = histories.get(&Some(*id)) {
            merge(&mut top_steps, h);
        }
    }
    let mut status = maintenance::status(
        MaintenanceFacts {
            owner: owner.clone(),
            owner_last_seen: owner.as_deref().and_then(seen),
            settings: settings.clone(),
            steps: top_steps,
        },
        now,
    );

    let mut entries = Vec::new();
    if legacy.is_some() && shared.len() != 1 {
        // Steps from before repositories were told apart, and no one shared repository to
        // give them to.
        entries.push((
            RepositoryIdent::default(),
            legacy.cloned().unwrap_or_default(),
        ));
    }
    for r in &repositories {
        let mut steps = histories.get(&Some(r.id)).cloned().unwrap_or_default();
        if r.maintainer_device_id.is_none()
            && shared.len() == 1
            && let Some(l) = legacy
        {
            merge(&mut steps, l);
        }
        let ident = RepositoryIdent {
            repository_id: Some(r.id),
            label: r.fingerprint.chars().take(12).collect(),
            maintainer: r.maintainer_device_id.clone(),
            snapshot_count: r.snapshot_count,
            total_size: r.total_size,
            counted_at: r.counted_at,
        };
        entries.push((ident, steps));
    }
    for (mut ident, steps) in entries {
        if ident.label.is_empty() {
            ident.label = "shared".to_string();
        }
        let maintainer = ident.maintainer.clone().or_else(|| owner.clone());
        let s = match &ident.maintainer {
            Some(d) => device_settings
                .get(d)
                .cloned()
                .unwrap_or_else(|| settings.clone()),
            None => settings.clone(),
        };
        let judged = maintenance::status(
            MaintenanceFacts {
                owner: maintainer.clone(),
                owner_last_seen: maintainer.as_deref().and_then(seen),
                settings: s,
                steps,
            },
            now,
        );
        status
            .repositories
            .push(RepositoryMaintenance::new(ident, judged));
    }
    Ok(status)
}

fn merge(into: &mut [StepHistory; 3], from: &[StepHistory; 3]) {
    for (a, b) in into.iter_mut().zip(from) {
        a.merge(b);
    }
}
