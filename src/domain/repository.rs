//! Which restic repository a job's snapshots go to.
//!
//! `repository_url` (global or per device) may be a template: `{device_id}`, `{account_id}`,
//! `{origin_name}` and `{job_id}` are replaced by the job's values, so one setting can give
//! every device (or account, origin, job) a repository of its own. Each distinct expanded URL
//! is a repository of the fleet.
//!
//! A template is checked where it is written (`settings set`) and every expansion where it is
//! used, because a value that reaches a URL could otherwise climb out of its directory (`..`),
//! add a path segment, or change the URL's meaning (`?`, `#`, `@`, `:`). Values are therefore
//! held to a conservative alphabet rather than escaped: an escaped value would name a
//! different directory on each backend.
//!
//! Who maintains a repository (forget, prune, check) follows from how its URL was made: a URL
//! built with `{device_id}` or `{job_id}`, or a device's own `repository_url` setting, is
//! written by that one device alone, which maintains it; any other repository is shared and
//! is maintained by the `maintenance_device`. `settings set` refuses a device setting that
//! would make another device's repository its own, so the rule stays true.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::domain::settings::Settings;
use uuid::Uuid;

/// The placeholders a `repository_url` may contain, in the order the docs list them.
pub const PLACEHOLDERS: [&str; 4] = ["device_id", "account_id", "origin_name", "job_id"];

/// Placeholders whose values belong to one device: a URL made with one of them is that
/// device's own repository.
const PER_DEVICE: [&str; 2] = ["device_id", "job_id"];

/// The values of one job that a template may use.
#[derive(Debug, Clone, Copy)]
pub struct JobPlace<'a> {
    pub device_id: &'a str,
    pub job_id: Uuid,
    pub account_id: Option<Uuid>,
    pub origin_name: Option<&'a str>,
}

/// A piece of a template: literal text or a placeholder's name.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// Splits a template into text and placeholders, refusing unknown names and stray braces.
fn pieces(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!(
                "repository_url {template:?} has a '}}' without '{{'; placeholders are written \
                 {{device_id}}, {{account_id}}, {{origin_name}} or {{job_id}}"
            ));
        }
        let Some(len) = rest[open + 1..].find('}') else {
            return Err(format!(
                "repository_url {template:?} has a '{{' without '}}'; placeholders are written \
                 {{device_id}}, {{account_id}}, {{origin_name}} or {{job_id}}"
            ));
        };
        let name = &rest[open + 1..open + 1 + len];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "repository_url {template:?} has the unknown placeholder {{{name}}}; use \
                 {{device_id}}, {{account_id}}, {{origin_name}} or {{job_id}}"
            ));
        }
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
        }
        out.push(Piece::Placeholder(name));
        rest = &rest[open + 2 + len..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// Checks a `repository_url` as it is written: known placeholders only, each right after a
/// `/`, `:`, `-`, `_` or `.`, so a value can never merge with the text before it into
/// something else (a host name, a user, a longer directory name).
pub fn validate_template(template: &str) -> Result<(), String> {
    let pieces = pieces(template)?;
    for (i, p) in pieces.iter().enumerate() {
        if let Piece::Placeholder(name) = p {
            let before = match i.checked_sub(1).map(|j| &pieces[j]) {
                Some(Piece::Text(t)) => t.ends_with(['/', ':', '-', '_', '.']),
                Some(Piece::Placeholder(_)) => false,
                None => false,
            };
            if !before {
                return Err(format!(
                    "repository_url {template:?} must have a '/' (or ':', '-', '_', '.') right \
                     before {{{name}}}, so that the value is a path segment of its own, e.g. \
                     /srv/restic/{{{name}}}"
                ));
            }
        }
    }
    Ok(())
}

/// The placeholders a template uses (known ones only; an invalid template has none).
pub fn placeholders(template: &str) -> Vec<&'static str> {
    let Ok(pieces) = pieces(template) else {
        return Vec::new();
    };
    PLACEHOLDERS
        .into_iter()
        .filter(|name| pieces.contains(&Piece::Placeholder(name)))
        .collect()
}

/// True when the template makes a repository per device (or per job).
pub fn is_per_device(template: &str) -> bool {
    placeholders(template)
        .iter()
        .any(|p| PER_DEVICE.contains(p))
}

/// Whether `value` may stand in a URL's path: 1 to 128 characters of ASCII letters, digits,
/// `.`, `_`, `-`, not starting with `.` (so never `.` or `..`).
fn check_value(name: &str, value: &str, job: &JobPlace) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && !value.starts_with('.')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        return Ok(());
    }
    Err(format!(
        "the {name} {value:?} of job {} cannot be part of a repository URL: {{{name}}} takes \
         1 to 128 letters, digits, '.', '_' or '-' (not starting with '.'); rename it, or use \
         another placeholder in repository_url",
        job.job_id
    ))
}

/// The repository URL of one job: the template with the job's values put in. A placeholder
/// whose value the job lacks (no account, no origin) is an error naming the job and the fix.
pub fn expand(template: &str, job: &JobPlace) -> Result<String, String> {
    let mut url = String::with_capacity(template.len() + 36);
    for piece in pieces(template)? {
        let (name, value) = match piece {
            Piece::Text(t) => {
                url.push_str(t);
                continue;
            }
            Piece::Placeholder(name) => (name, value_of(name, job)),
        };
        let Some(value) = value else {
            return Err(format!(
                "job {} has no {name}, but repository_url uses {{{name}}}; set it with \
                 `restic-fleet job edit {} --{}`, or give this device its own repository_url",
                job.job_id,
                job.job_id,
                name.replace('_', "-")
            ));
        };
        check_value(name, &value, job)?;
        url.push_str(&value);
    }
    Ok(url)
}

fn value_of(name: &str, job: &JobPlace) -> Option<String> {
    match name {
        "device_id" => Some(job.device_id.to_string()),
        "job_id" => Some(job.job_id.to_string()),
        "account_id" => job.account_id.map(|a| a.to_string()),
        "origin_name" => job.origin_name.map(str::to_string),
        _ => None,
    }
}

/// Who maintains a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Maintainer {
    /// The one device that writes it.
    Device(String),
    /// Written by several devices: the `maintenance_device` setting names who maintains it.
    Shared,
}

/// The maintainer of the repository a device's job writes to, from the template in force and
/// whether it is the device's own setting (see the module's rule).
pub fn maintainer(template: &str, own_setting: bool, device_id: &str) -> Maintainer {
    if own_setting || is_per_device(template) {
        Maintainer::Device(device_id.to_string())
    } else {
        Maintainer::Shared
    }
}

/// The repository one job writes to, as the device's settings give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRepository {
    /// The expanded URL (may hold credentials: mask it before showing it).
    pub url: String,
    pub maintainer: Maintainer,
}

/// The repository of `job` under `settings` (the job's device's settings in force).
pub fn of_job(settings: &Settings, job: &JobPlace) -> Result<JobRepository, String> {
    let Some(template) = settings.get("repository_url") else {
        return Err(
            "the repository_url setting is empty; set it with `restic-fleet settings set \
                    repository_url URL` (e.g. sftp:user@host:/srv/restic or /srv/{device_id})"
                .to_string(),
        );
    };
    validate_template(template)?;
    let own = settings.own_keys().contains("repository_url");
    Ok(JobRepository {
        url: expand(template, job)?,
        maintainer: maintainer(template, own, job.device_id),
    })
}

/// Jobs grouped by the repository each writes to (expanded URL → job ids, in the order given),
/// and the sentences of the jobs whose URL cannot be made. `settings_of` gives the settings in
/// force for a job's device.
pub fn by_repository<'a, 's>(
    settings_of: impl Fn(&str) -> &'s Settings,
    jobs: impl IntoIterator<Item = JobPlace<'a>>,
) -> (BTreeMap<String, Vec<Uuid>>, Vec<String>) {
    let mut groups: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
    let mut errors = Vec::new();
    for job in jobs {
        match of_job(settings_of(job.device_id), &job) {
            Ok(r) => groups.entry(r.url).or_default().push(job.job_id),
            Err(e) => errors.push(e),
        }
    }
    (groups, errors)
}

/// One device as the layout check sees it: its settings in force (`repository_url` and whether
/// it is its own) and its jobs.
pub struct DeviceJobs<'a> {
    pub device_id: &'a str,
    pub settings: Settings,
    pub jobs: Vec<JobPlace<'a>>,
}

/// What is wrong with the fleet's repositories under some settings.
#[derive(Debug, Default)]
pub struct Layout {
    /// `(device, sentence)` for each job whose repository URL cannot be made.
    pub job_errors: Vec<(String, String)>,
    /// One sentence per repository a device maintains as its own that another device writes
    /// too (the maintainer rule would break: two devices pruning one repository, or one
    /// device's exclusive lock blocking another's backups).
    pub collisions: BTreeSet<String>,
}

/// Checks every job of `devices` under their settings: the URLs that cannot be made, and the
/// repositories that would be one device's own while another writes to them.
pub fn layout(devices: &[DeviceJobs]) -> Layout {
    let mut out = Layout::default();
    // url → (maintaining devices, writing devices)
    let mut writers: BTreeMap<String, (BTreeSet<&str>, BTreeSet<&str>)> = BTreeMap::new();
    for d in devices {
        for job in &d.jobs {
            match of_job(&d.settings, job) {
                Ok(r) => {
                    let e = writers.entry(r.url).or_default();
                    if let Maintainer::Device(_) = r.maintainer {
                        e.0.insert(d.device_id);
                    }
                    e.1.insert(d.device_id);
                }
                Err(e) => out.job_errors.push((d.device_id.to_string(), e)),
            }
        }
    }
    for (url, (owners, all)) in writers {
        for owner in owners {
            let Some(other) = all.iter().find(|w| **w != owner) else {
                continue;
            };
            out.collisions.insert(format!(
                "the repository {} would be device {owner:?}'s own (its own repository_url, or \
                 one made with {{device_id}} or {{job_id}}) while device {other:?} writes to it \
                 too, but a device's own repository is written and maintained by it alone; give \
                 each device a repository of its own (e.g. a URL ending in /{{device_id}}), or \
                 share one repository through the global setting",
                crate::domain::text::mask_url(&url)
            ));
        }
    }
    out
}

/// A repository's identity in the database: the SHA-256 of its expanded URL in hex. The URL
/// itself may hold credentials and is a secret for viewers; its digest is not.
pub fn fingerprint(url: &str) -> String {
    let digest = Sha256::digest(url.trim().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job<'a>(device: &'a str, origin: Option<&'a str>) -> JobPlace<'a> {
        JobPlace {
            device_id: device,
            job_id: Uuid::from_u128(7),
            account_id: None,
            origin_name: origin,
        }
    }

    #[test]
    fn templates_expand_per_job() {
        let j = job("laptop", Some("blade"));
        assert_eq!(expand("/srv/restic", &j).unwrap(), "/srv/restic");
        assert_eq!(
            expand("sftp:u@h:/srv/{device_id}/{origin_name}", &j).unwrap(),
            "sftp:u@h:/srv/laptop/blade"
        );
        assert_eq!(
            expand("s3:https://s3/b/fleet-{job_id}", &j).unwrap(),
            "s3:https://s3/b/fleet-00000000-0000-0000-0000-000000000007"
        );
    }

    #[test]
    fn unknown_placeholders_and_stray_braces_are_refused() {
        for bad in ["/srv/{host}", "/srv/{device_id", "/srv/}x", "/srv/{}"] {
            let e = validate_template(bad).unwrap_err();
            assert!(e.contains("repository_url"), "{bad}: {e}");
        }
        assert!(validate_template("/srv/restic").is_ok());
        assert!(validate_template("/srv/{device_id}/{job_id}").is_ok());
        assert!(validate_template("rest:https://h/fleet-{device_id}").is_ok());
    }

    #[test]
    fn a_placeholder_must_be_a_segment_of_its_own() {
        let e = validate_template("/srv/x{device_id}").unwrap_err();
        assert!(e.contains("right before {device_id}"), "{e}");
        assert!(validate_template("{device_id}").is_err());
        assert!(validate_template("/srv/{device_id}{job_id}").is_err());
    }

    #[test]
    fn values_that_would_escape_the_path_are_refused() {
        for bad in [
            "..", ".hidden", "a/b", "a\\b", "x?y", "x#y", "u@h", "a:b", "", "a b",
        ] {
            let e = expand("/srv/{origin_name}", &job("laptop", Some(bad))).unwrap_err();
            assert!(
                e.contains("cannot be part of a repository URL"),
                "{bad}: {e}"
            );
        }
        let e = expand("/srv/{device_id}", &job("../etc", None)).unwrap_err();
        assert!(e.contains("\"../etc\""), "{e}");
        let e = expand("/srv/{origin_name}", &job("laptop", None)).unwrap_err();
        assert!(
            e.contains("has no origin_name") && e.contains("--origin-name"),
            "{e}"
        );
    }

    #[test]
    fn per_device_templates_and_own_settings_are_maintained_by_the_device() {
        assert_eq!(
            maintainer("/srv/{device_id}", false, "a"),
            Maintainer::Device("a".into())
        );
        assert_eq!(
            maintainer("/srv/{job_id}", false, "a"),
            Maintainer::Device("a".into())
        );
        assert_eq!(
            maintainer("/srv/shared", true, "a"),
            Maintainer::Device("a".into())
        );
        assert_eq!(maintainer("/srv/shared", false, "a"), Maintainer::Shared);
        assert_eq!(
            maintainer("/srv/{origin_name}", false, "a"),
            Maintainer::Shared
        );
        assert_eq!(
            placeholders("/srv/{job_id}/{device_id}"),
            ["device_id", "job_id"]
        );
    }

    #[test]
    fn a_job_repository_follows_the_setting_in_force() {
        let global = Settings::from_pairs([("repository_url".into(), "/srv/{device_id}".into())]);
        let r = of_job(&global, &job("a", None)).unwrap();
        assert_eq!(r.url, "/srv/a");
        assert_eq!(r.maintainer, Maintainer::Device("a".into()));
        let shared = Settings::from_pairs([("repository_url".into(), "/srv/all".into())]);
        assert_eq!(
            of_job(&shared, &job("a", None)).unwrap().maintainer,
            Maintainer::Shared
        );
        let own = shared.with_own("a", ["repository_url".to_string()]);
        assert_eq!(
            of_job(&own, &job("a", None)).unwrap().maintainer,
            Maintainer::Device("a".into())
        );
        let e = of_job(&Settings::default(), &job("a", None)).unwrap_err();
        assert!(e.contains("repository_url setting is empty"), "{e}");
    }

    #[test]
    fn jobs_group_by_their_expanded_repository() {
        let s = Settings::from_pairs([("repository_url".into(), "/srv/{origin_name}".into())]);
        let place = |n: u128, origin: Option<&'static str>| JobPlace {
            device_id: "a",
            job_id: Uuid::from_u128(n),
            account_id: None,
            origin_name: origin,
        };
        let (groups, errors) = by_repository(
            |_| &s,
            [
                place(1, Some("x")),
                place(2, Some("y")),
                place(3, Some("x")),
                place(4, None),
            ],
        );
        assert_eq!(groups.len(), 2);
        assert_eq!(groups["/srv/x"], [Uuid::from_u128(1), Uuid::from_u128(3)]);
        assert_eq!(groups["/srv/y"], [Uuid::from_u128(2)]);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("has no origin_name"), "{errors:?}");
    }

    #[test]
    fn a_devices_own_repository_written_by_another_is_a_collision() {
        let global = |url: &str| Settings::from_pairs([("repository_url".into(), url.into())]);
        let own = |url: &str, d: &str| global(url).with_own(d, ["repository_url".to_string()]);
        let dev = |id: &'static str, settings: Settings| DeviceJobs {
            device_id: id,
            settings,
            jobs: vec![job(id, Some("o"))],
        };
        // Per-device template: two repositories, no collision.
        let l = layout(&[
            dev("a", global("/srv/{device_id}")),
            dev("b", global("/srv/{device_id}")),
        ]);
        assert!(l.collisions.is_empty() && l.job_errors.is_empty());
        // One shared repository: no collision either.
        let l = layout(&[dev("a", global("/srv/all")), dev("b", global("/srv/all"))]);
        assert!(l.collisions.is_empty());
        // a's own URL is b's per-device repository.
        let l = layout(&[
            dev("a", own("/srv/b", "a")),
            dev("b", global("/srv/{device_id}")),
        ]);
        assert_eq!(l.collisions.len(), 2, "{:?}", l.collisions);
        assert!(
            l.collisions
                .iter()
                .any(|c| c.contains("device \"a\"'s own"))
        );
        // a's own URL is the shared repository b writes to.
        let l = layout(&[dev("a", own("/srv/all", "a")), dev("b", global("/srv/all"))]);
        let c: Vec<_> = l.collisions.iter().collect();
        assert_eq!(c.len(), 1);
        assert!(
            c[0].contains("/srv/all") && c[0].contains("device \"b\" writes"),
            "{c:?}"
        );
        // A job the template does not fit.
        let l = layout(&[dev("a", global("/srv/{account_id}"))]);
        assert_eq!(l.job_errors.len(), 1);
        assert!(l.job_errors[0].1.contains("has no account_id"));
    }

    #[test]
    fn fingerprints_are_stable_hex_digests() {
        let f = fingerprint("/srv/restic");
        assert_eq!(f.len(), 64);
        assert_eq!(f, fingerprint(" /srv/restic\n"));
        assert_ne!(f, fingerprint("/srv/restic2"));
    }
}
