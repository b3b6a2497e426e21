//! `restic-fleet repositories move DEVICE --to URL`: takes a device out of its repository
//! (usually the shared one) with its history. Its snapshots are copied with `restic copy
//! --host DEVICE` into URL (created first when missing, with `--copy-chunker-params` so that
//! deduplication keeps working), then URL becomes the device's own `repository_url` (and a new
//! password, if given, its own `repository_password`), in one transaction. The old snapshots
//! stay where they were until that repository's maintenance forgets them.
//!
//! Neither password nor URL reaches a command line: restic reads the second repository from
//! `RESTIC_FROM_REPOSITORY` and `RESTIC_FROM_PASSWORD` (the same names in 0.14 through 0.19).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use crate::commands::{Conn, require_device};
use crate::domain::exit::{self, Failure};
use crate::domain::repository::{JobPlace, of_job, validate_template};
use crate::domain::settings::Settings;
use crate::domain::text::mask_url;
use crate::ops::repositories::{self as repos, Existence};
use crate::output::{self, print_json};
use crate::platform::repository::Repository;
use crate::usage_err;

#[derive(Debug, Args)]
pub struct MoveArgs {
    /// The device whose snapshots move.
    #[arg(value_name = "DEVICE")]
    pub device: String,
    /// The repository the device moves to; it becomes the device's own repository_url (the
    /// placeholders of repository_url may be used).
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// A password for the new repository, read from FILE ('-': standard input); it becomes the
    /// device's own repository_password, so the device alone can open its backups. Default:
    /// the device's repository_password in force.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    #[command(flatten)]
    pub conn: Conn,
}

/// One copy of `repositories move --json`: `from`, `to` (masked URLs), `jobs` (job ids),
/// `initialized` (the destination was created), `snapshots` (the device's snapshots in the
/// destination afterwards).
#[derive(Debug, Serialize)]
pub struct CopyOut {
    pub from: String,
    pub to: String,
    pub jobs: Vec<uuid::Uuid>,
    pub initialized: bool,
    pub snapshots: usize,
}

/// `repositories move --json`: `device_id`, `repository_url` (the new setting, masked),
/// `password_changed`, `copies`, `left_behind` (masked URLs of the repositories that keep the
/// old snapshots until their maintenance forgets them).
#[derive(Debug, Serialize)]
pub struct MoveOut {
    pub device_id: String,
    pub repository_url: String,
    pub password_changed: bool,
    pub copies: Vec<CopyOut>,
    pub left_behind: Vec<String>,
}

/// A source and destination repository and the jobs moving between them.
struct Pair {
    from: Repository,
    to: Repository,
    jobs: Vec<uuid::Uuid>,
    /// Every job of the device moves this way: its snapshots are copied by host alone, those
    /// of jobs since deleted included.
    whole_device: bool,
}

/// Moves the device (see the module's documentation).
pub async fn run(config_path: &Path, args: MoveArgs) -> anyhow::Result<u8> {
    let pool = crate::commands::connect(config_path, &args.conn).await?;
    if !crate::store::settings::hidden_secrets(&pool)
        .await?
        .is_empty()
    {
        return Err(usage_err!(
            "repositories move needs the repository URLs and passwords, which only an admin may \
             read; connect as backup_admin with --database-url or DATABASE_URL"
        ));
    }
    require_device(&pool, &args.device).await?;
    validate_template(&args.to).map_err(|e| usage_err!("{e}"))?;
    let password = match &args.password_file {
        None => None,
        Some(p) => Some(read_password(p)?),
    };
    let fleet = repos::compute(&pool).await?;
    let current = crate::store::settings::load(&pool, &args.device).await?;
    if current.get("repository_password").is_none() && password.is_none() {
        return Err(usage_err!(
            "device {:?} has no repository_password in force; set one, or pass --password-file \
             FILE",
            args.device
        ));
    }
    let next = moved_settings(&current, &args.device, &args.to, password.as_deref());
    let pairs = plan(&pool, &fleet, &current, &next, &args.device).await?;
    let mut copies = Vec::new();
    for p in &pairs {
        copies.push(copy(p, &args.device).await?);
    }
    let mut settings: Vec<(&str, &str)> = vec![("repository_url", args.to.as_str())];
    if let Some(pw) = &password {
        settings.push(("repository_password", pw.as_str()));
    }
    crate::store::settings::set_many_for_device(&pool, &args.device, &settings).await?;
    let mut left_behind: Vec<String> = pairs.iter().map(|p| mask_url(&p.from.url)).collect();
    left_behind.dedup();
    let out = MoveOut {
        device_id: args.device.clone(),
        repository_url: mask_url(&args.to),
        password_changed: password.is_some(),
        copies,
        left_behind,
    };
    if args.conn.json {
        print_json(&out)?;
    } else {
        print_move(&out);
    }
    Ok(exit::SUCCESS)
}

/// The new repository password from a file or standard input (`-`), one trailing newline
/// removed; an empty one is refused.
fn read_password(path: &Path) -> anyhow::Result<String> {
    let pw = if path == Path::new("-") {
        crate::commands::read_stdin_value()?
    } else {
        let mut s = std::fs::read_to_string(path).map_err(|e| {
            usage_err!(
                "cannot read the password file {}: {e}; give --password-file a readable file, \
                 or '-' for standard input",
                path.display()
            )
        })?;
        if s.ends_with('\n') {
            s.pop();
            if s.ends_with('\r') {
                s.pop();
            }
        }
        s
    };
    if pw.is_empty() {
        return Err(usage_err!(
            "the new repository password is empty; put it in the file given to --password-file"
        ));
    }
    Ok(pw)
}

/// The device's settings once moved: `to` its own repository_url, and `password` (when given)
/// its own repository_password.
fn moved_settings(current: &Settings, device: &str, to: &str, password: Option<&str>) -> Settings {
    let mut values = current.values().clone();
    let mut own = current.own_keys().clone();
    values.insert("repository_url".into(), to.into());
    own.insert("repository_url".into());
    if let Some(pw) = password {
        values.insert("repository_password".into(), pw.into());
        own.insert("repository_password".into());
    }
    Settings::from_pairs(values).with_own(device, own)
}

/// Each job of the device with its repository now and after the move, grouped by (from, to);
/// refused before anything is written when a job cannot expand into `to`, or `to` is a
/// repository of another device.
async fn plan(
    pool: &sqlx::PgPool,
    fleet: &repos::Fleet,
    current: &Settings,
    next: &Settings,
    device: &str,
) -> anyhow::Result<Vec<Pair>> {
    let jobs: Vec<_> = crate::store::repositories::job_places(pool)
        .await?
        .into_iter()
        .filter(|j| j.device_id == device)
        .collect();
    let mut groups: BTreeMap<(String, String), Vec<uuid::Uuid>> = BTreeMap::new();
    for j in &jobs {
        let place = JobPlace {
            device_id: &j.device_id,
            job_id: j.id,
            account_id: j.account_id,
            origin_name: j.origin_name.as_deref(),
        };
        let to = of_job(next, &place).map_err(|e| usage_err!("{e}"))?;
        if let Some(other) = fleet.by_url(&to.url)
            && other.devices.iter().any(|d| d != device)
        {
            return Err(usage_err!(
                "{} is already the repository of device(s) {}; a device's own repository must \
                 be its alone: choose another URL (e.g. one with {{device_id}})",
                mask_url(&to.url),
                other.devices.join(", ")
            ));
        }
        // A job without a repository now has nothing to copy.
        let Ok(from) = of_job(current, &place) else {
            continue;
        };
        if from.url != to.url {
            groups.entry((from.url, to.url)).or_default().push(j.id);
        }
    }
    let mut pairs = Vec::new();
    let whole_device = groups.len() == 1 && groups.values().all(|g| g.len() == jobs.len());
    for ((from, to), jobs) in groups {
        let from = match fleet.by_url(&from) {
            Some(r) => repos::open(r)?,
            None => Repository::new(from, current)?,
        };
        pairs.push(Pair {
            from,
            to: Repository::new(to, next)?,
            jobs,
            whole_device,
        });
    }
    Ok(pairs)
}

/// Creates `p.to` when missing (chunker parameters of `p.from`) and copies the device's
/// snapshots of `p.jobs` into it: all of the device's when one pair moves every job.
async fn copy(p: &Pair, device: &str) -> anyhow::Result<CopyOut> {
    let fail = |what: &str, why: String| -> anyhow::Error {
        Failure::failed(format!(
            "{what} {}: {why}; nothing was switched, run the same move again once fixed \
             (snapshots already copied are skipped)",
            mask_url(&p.to.url)
        ))
        .into()
    };
    let initialized = match repos::exists(&p.to).await {
        Existence::Exists => false,
        Existence::Unknown(why) => return Err(fail("could not open", why)),
        Existence::Missing => {
            let out =
                repos::run_with_source(&p.to, &p.from, &["init", "--copy-chunker-params"]).await;
            if !out.success() {
                return Err(fail("could not create", out.reason(&p.to)));
            }
            true
        }
    };
    let host = format!("--host={device}");
    let mut args = vec!["copy", host.as_str()];
    let tags: Vec<String> = p.jobs.iter().map(|j| format!("--tag=backup:{j}")).collect();
    if !p.whole_device {
        args.extend(tags.iter().map(String::as_str));
    }
    let out = repos::run_with_source(&p.to, &p.from, &args).await;
    if !out.success() {
        return Err(fail(
            &format!("could not copy from {} into", mask_url(&p.from.url)),
            out.reason(&p.from),
        ));
    }
    let snapshots = p.to.snapshots(Some(device), &[]).await?.len();
    Ok(CopyOut {
        from: mask_url(&p.from.url),
        to: mask_url(&p.to.url),
        jobs: p.jobs.clone(),
        initialized,
        snapshots,
    })
}

fn print_move(out: &MoveOut) {
    for c in &out.copies {
        let line = format!(
            "copied {} job(s) of {} from {} to {}{}: {} snapshot(s) there now",
            c.jobs.len(),
            out.device_id,
            c.from,
            c.to,
            if c.initialized { " (created)" } else { "" },
            c.snapshots
        );
        println!("{}", output::printable(&line));
    }
    if out.copies.is_empty() {
        println!(
            "nothing to copy: no job of {} changes repository",
            out.device_id
        );
    }
    let line = format!(
        "{}'s own repository_url is now {}{}; its old snapshots stay in {} until that \
         repository's maintenance forgets them",
        out.device_id,
        out.repository_url,
        if out.password_changed {
            ", with its own repository_password"
        } else {
            ""
        },
        if out.left_behind.is_empty() {
            "no other repository".to_string()
        } else {
            out.left_behind.join(", ")
        }
    );
    println!("{}", output::printable(&line));
}
