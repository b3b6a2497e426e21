//! Import of a Relica Backup client cache (`cache_header.cache_version` 3): pure parsing and
//! planning. No I/O besides parsing a `&str`; the caller writes the [`ImportPlan`] into the
//! database.
//!
//! # What the Relica file contains (cache version 3)
//!
//! * `read_only.origins[]`: the machines of the account (`id`, `name`, `account_id`, `created`,
//!   `last_connected`, `last_ip`, and a secret `key` that is never read here).
//!   `read_only.self` is the machine the file was written on; `local.runtime.os` is its OS.
//! * `read_only.backups[]`: `id`, `name` (free text, usually `"<origin>/<label>"`, but the prefix
//!   does not always equal the origin's name), `origin_id`, `account_id`, `include[]`,
//!   `exclude[]` (may be absent), `destinations[]` (destination ids), `hooks[]`, and `schedule`
//!   (`scheduled`, `flexible`, `times_of_day["HH:MM"]`, `days_of_week[]` 0-6 with 0 = Sunday,
//!   `days_of_month[]` 1-31, `months_of_year[]` 1-12; an empty list means "every").
//! * `read_only.destinations[]`: where Relica stored the data; credentials are never read.
//! * `local.last_backups_done{backup_id:{destination_id:time}}` and `local.recent_tasks[]`
//!   (`id`, `backup_id`, `destination_id`, `task`, `status` `success`|`error`, `begin`, `end`,
//!   `error_message`). Both only describe backups run by the `self` machine.
//! * Times carry nanoseconds; Go's zero time `0001-01-01T00:00:00Z` means "never" (`None`).
//!
//! # Secrets
//!
//! The parser never reads the origin `key`, the account (`api_key`, `password`, ...), or the
//! destination credentials, so they cannot reach [`ImportPlan`]. As a second guard, every
//! metadata object is scrubbed of keys whose name contains `key`, `password`, `passwd`,
//! `secret`, `token` or `credential` (see [`is_secret_field_name`]).
//!
//! # Files
//!
//! [`document`] holds the parsed values, [`parse`](mod@parse) reads them (with the accessors of
//! `json` and the errors of [`error`]), [`plan`](mod@plan) builds the [`ImportPlan`] of
//! [`planned`] from them with [`ids`] (device ids), [`hooks`], `schedules` (cron lines),
//! `history` (runs) and `metadata` (secret scrubbing); [`retention`] reads the plan's
//! destinations. Everything is pure; this folder uses nothing above `domain`.

pub mod document;
pub mod error;
mod history;
pub mod hooks;
pub mod ids;
mod json;
mod metadata;
pub mod parse;
pub mod plan;
pub mod planned;
pub mod retention;
mod schedules;

pub use document::{
    Backup, Destination, Hook, Origin, RelicaDocument, Runtime, SUPPORTED_CACHE_VERSION, Schedule,
    Task, TimeOfDay,
};
pub use error::RelicaError;
pub use hooks::job_hooks;
pub use ids::{device_ids, is_valid_device_id};
pub use metadata::is_secret_field_name;
pub use parse::parse;
pub use plan::plan;
pub use planned::{ImportPlan, JobHooks, PlannedDevice, PlannedJob, PlannedRun, PlannedSchedule};

#[cfg(test)]
mod tests {
    use super::metadata::scrub_secrets;
    use super::*;
    use chrono::{DateTime, Utc};
    use serde_json::{Value, json};
    use std::collections::HashSet;
    use uuid::Uuid;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/relica/relica-account-info.json"
    );

    fn fixture() -> RelicaDocument {
        let text = std::fs::read_to_string(FIXTURE).expect("fixture readable");
        parse(&text).expect("fixture parses")
    }

    /// The job planned for the Relica backup named `name`.
    fn job<'a>(p: &'a ImportPlan, name: &str) -> &'a PlannedJob {
        p.jobs
            .iter()
            .find(|j| j.metadata["relica"]["backup_name"] == name)
            .expect(name)
    }

    fn crons(j: &PlannedJob) -> Vec<&str> {
        j.schedules
            .iter()
            .map(|s| s.cron_expression.as_str())
            .collect()
    }

    fn u(s: &str) -> Uuid {
        Uuid::parse_str(s).unwrap()
    }

    // ---- the real fixture, expectations computed by hand from the JSON ----

    #[test]
    fn fixture_counts() {
        let d = fixture();
        assert_eq!(d.backups.len(), 21);
        assert_eq!(d.origins.len(), 9);
        assert_eq!(d.recent_tasks.len(), 500);
        assert_eq!(
            d.self_origin_id,
            Some(u("214d5118-bc3a-4927-989a-a90ae144f47a"))
        );
        let p = plan(&d, &[]).unwrap();
        assert_eq!(p.devices.len(), 9);
        assert_eq!(p.jobs.len(), 21);
        let manual: Vec<&str> = p
            .jobs
            .iter()
            .filter(|j| j.schedules.is_empty())
            .map(|j| j.name.as_str())
            .collect();
        assert_eq!(manual, ["homepc-Fotky", "test"]);
        // 17 backups with one time of day, two (device1/Dokumenty, device6/Dokumenty) with two.
        assert_eq!(p.jobs.iter().map(|j| j.schedules.len()).sum::<usize>(), 21);
        assert!(p.jobs.iter().all(|j| j.enabled));
    }

    #[test]
    fn fixture_device_ids_are_the_origin_names() {
        let p = plan(&fixture(), &[]).unwrap();
        let ids: Vec<&str> = p.devices.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "device1", "device2", "device3", "device4", "cloud", "device8", "device6", "prcek",
                "device5"
            ]
        );
        let plat = |id: &str| {
            p.devices
                .iter()
                .find(|d| d.id == id)
                .unwrap()
                .platform
                .clone()
        };
        assert_eq!(plat("device1"), "linux");
        assert_eq!(plat("device2"), "windows");
        assert_eq!(plat("cloud"), "linux"); // self: local.runtime.os
        assert_eq!(plat("device5"), "linux"); // no backups: default + warning
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("\"device5\"") && w.contains("no backups"))
        );
    }

    #[test]
    fn fixture_cron_lines() {
        let p = plan(&fixture(), &[]).unwrap();
        assert_eq!(
            crons(job(&p, "device1/Dokumenty")),
            ["0 13 * * *", "0 23 * * *"]
        );
        assert_eq!(crons(job(&p, "device1/home")), ["30 22 * * *"]);
        assert_eq!(crons(job(&p, "device3/Fotky")), ["30 1 * * 1,2,4,6"]);
        assert_eq!(crons(job(&p, "cloud/backups")), ["0 3 * * 1,3,5"]);
        // days_of_week [0] = Sunday = cron 0.
        assert_eq!(crons(job(&p, "device7/Fotky")), ["0 22 * * 0"]);
        assert_eq!(crons(job(&p, "device7/Docs")), ["0 1 * * 0,3"]);
        assert_eq!(crons(job(&p, "device7/PhotoMaterials")), ["0 23 * * 6"]);
        assert_eq!(
            crons(job(&p, "device6/Dokumenty")),
            ["0 12 * * *", "0 22 * * *"]
        );
        let s = &job(&p, "device7/Fotky").schedules[0].metadata;
        assert_eq!(s["relica_time_of_day"], "22:00");
        assert_eq!(s["relica_flexible"], true);
        assert_eq!(s["exact"], true);
    }

    #[test]
    fn fixture_paths_names_and_origins() {
        let p = plan(&fixture(), &[]).unwrap();
        assert_eq!(
            job(&p, "device3/Dokumenty").source_paths,
            ["C:\\Users\\User2\\Documents", "C:\\Users\\User2\\Desktop"]
        );
        assert_eq!(job(&p, "device7/Docs2").source_paths, ["D:\\"]);
        assert_eq!(job(&p, "device4/ÚČTO").source_paths, ["C:\\UCTO2020"]);
        assert_eq!(job(&p, "device4/ÚČTO").device_id, "device4");
        let home = job(&p, "device1/home");
        assert_eq!(home.exclude_patterns.len(), 17);
        assert_eq!(home.exclude_patterns[0], "/home/user/.cache");
        assert_eq!(home.exclude_patterns[5], "/home/user/VirtualBox VMs");
        assert!(job(&p, "device1/Dokumenty").exclude_patterns.is_empty());

        // "homepc/..." belongs to origin device2, "device7/..." to origin device8.
        let hp = job(&p, "homepc/User3 dokumenty");
        assert_eq!(hp.id, u("6f82fc40-b82b-43d2-b4f0-72c12deca9fa"));
        assert_eq!(hp.origin_name, "device2");
        assert_eq!(hp.origin_id, u("32ed6434-d17e-44be-a1de-260c6bec9452"));
        assert_eq!(hp.device_id, "device2");
        assert_eq!(
            hp.account_id,
            Some(u("003dbcee-4f0a-4a55-a7bb-a6511b263558"))
        );
        assert_eq!(crons(hp), ["0 12 * * 2,5"]);
        assert_eq!(job(&p, "device7/Fotky").device_id, "device8");
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("\"homepc\"") && w.contains("\"device2\""))
        );
    }

    #[test]
    fn fixture_last_run_and_history() {
        let p = plan(&fixture(), &[]).unwrap();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            job(&p, "cloud/backups").last_run_at,
            Some(t("2025-12-15T03:01:07.580094317Z"))
        );
        assert_eq!(
            job(&p, "cloud/home").last_run_at,
            Some(t("2025-12-15T01:00:59.59646097Z"))
        );
        assert_eq!(job(&p, "device1/home").last_run_at, None);

        assert_eq!(p.history.len(), 500);
        assert_eq!(
            p.history.iter().filter(|r| r.status == "failed").count(),
            489
        );
        assert_eq!(
            p.history.iter().filter(|r| r.status == "success").count(),
            11
        );
        let backups = u("2ac41143-fd87-4c5d-b2d4-213eb5b6c42e");
        assert_eq!(
            p.history.iter().filter(|r| r.job_id == backups).count(),
            252
        );
        assert!(p.history.iter().all(|r| r.device_id == "cloud"));
        let first = &p.history[0];
        assert_eq!(first.relica_task_id, "e00d98bf-80f9-4f26-8fda-5d7a171b8645");
        assert_eq!(
            first.metadata["relica_task_id"],
            "e00d98bf-80f9-4f26-8fda-5d7a171b8645"
        );
        assert_eq!(first.start_time, t("2025-12-04T08:49:17.743154362Z"));
        assert_eq!(first.end_time, Some(t("2025-12-04T08:49:27.782800592Z")));
        assert!(
            first
                .error_message
                .as_deref()
                .unwrap()
                .starts_with("opening destination 'Cloud'")
        );
        assert!(
            p.history
                .iter()
                .filter(|r| r.status == "success")
                .all(|r| r.error_message.is_none())
        );
        let keys: HashSet<&str> = p
            .history
            .iter()
            .map(|r| r.relica_task_id.as_str())
            .collect();
        assert_eq!(keys.len(), 500);
    }

    #[test]
    fn relica_hooks_become_job_hooks() {
        let hook = |timing: &str, on_error: Option<&str>, cmd: &str| Hook {
            id: None,
            timing: Some(timing.into()),
            on_error: on_error.map(str::to_string),
            description: None,
            command: cmd.into(),
        };
        let mut b = Backup {
            index: 0,
            id: Uuid::nil(),
            name: "d/x".into(),
            origin_id: Uuid::nil(),
            account_id: None,
            created: None,
            include: vec![],
            exclude: vec![],
            destinations: vec![],
            hooks: vec![
                hook("start", Some("continue"), "dump db"),
                hook("start", Some("continue"), "sync"),
                hook("end", Some("stop"), "notify"),
                hook("middle", None, "what"),
                hook("end", None, " "),
            ],
            schedule: Schedule::default(),
        };
        let mut w = Vec::new();
        let h = job_hooks(&b, "b", &mut w);
        assert_eq!(h.before.as_deref(), Some("dump db && sync"));
        assert_eq!(h.finally.as_deref(), Some("notify"));
        assert_eq!(h.before_on_error, "continue");
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("no command") || w[1].contains("no command"));
        b.hooks[1].on_error = None;
        assert_eq!(job_hooks(&b, "b", &mut w).before_on_error, "stop");
    }

    #[test]
    fn fixture_hooks_destinations_and_no_secrets() {
        let p = plan(&fixture(), &[]).unwrap();
        let m = &job(&p, "cloud/backups").metadata["relica"];
        assert_eq!(m["hooks_executed"], true);
        assert_eq!(m["hooks"][0]["timing"], "end");
        let hooks = &job(&p, "cloud/backups").hooks;
        assert_eq!(
            hooks.finally.as_deref(),
            Some("/etc/cloud-config/scripts/endpoint-watcher cloud relica-backup-end backups")
        );
        assert_eq!(hooks.before, None);
        assert_eq!(
            m["destinations"][0]["id"],
            "cb871492-76dc-4683-8ecd-d9a6c84ae798"
        );
        assert_eq!(m["destinations"][0]["name"], "Cloud");
        assert_eq!(
            m["destinations"][0]["last_backup_done"],
            "2025-12-15T03:01:07.580094317Z"
        );
        assert!(!p.warnings.iter().any(|w| w.contains("NOT executed")));

        let all = serde_json::to_string(&p).unwrap();
        for secret in [
            "<DEVICE_KEY",
            "<PASSWORD_HASH>",
            "<ACCOUNT_PASSWORD_ENCRYPTED>",
            "<METADATA_ENCRYPTION_KEY>",
            "igC***",
            "backup_user",
            "cus_EXAMPLE",
        ] {
            assert!(!all.contains(secret), "plan leaks {secret}");
        }
        fn no_secret_keys(v: &Value) {
            match v {
                Value::Object(m) => m.iter().for_each(|(k, v)| {
                    assert!(!is_secret_field_name(k), "secret-looking key {k}");
                    no_secret_keys(v)
                }),
                Value::Array(a) => a.iter().for_each(no_secret_keys),
                _ => {}
            }
        }
        p.devices.iter().for_each(|d| no_secret_keys(&d.metadata));
        p.jobs.iter().for_each(|j| {
            no_secret_keys(&j.metadata);
            j.schedules.iter().for_each(|s| no_secret_keys(&s.metadata));
        });
        p.history.iter().for_each(|r| no_secret_keys(&r.metadata));
    }

    #[test]
    fn fixture_origin_filter() {
        let d = fixture();
        let p = plan(&d, &["device2".into()]).unwrap();
        assert_eq!(p.devices.len(), 1);
        let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
        // Their prefix "homepc" is not their origin's name (device2): it stays, without '/'.
        assert_eq!(
            names,
            ["homepc-User3 dokumenty", "homepc-Fotky", "homepc-davinci"]
        );
        assert!(p.history.is_empty());

        let p = plan(&d, &["214d5118-bc3a-4927-989a-a90ae144f47a".into()]).unwrap();
        assert_eq!(p.devices[0].id, "cloud");
        assert_eq!(p.jobs.len(), 2);
        assert_eq!(p.history.len(), 500);

        let e = plan(&d, &["nope".into()]).unwrap_err();
        assert!(matches!(e, RelicaError::UnknownOriginFilter { .. }));
        assert!(e.to_string().contains("\"nope\"") && e.to_string().contains("\"device1\""));
    }

    // ---- small synthetic documents ----

    const ORIGIN: &str = "11111111-1111-4111-8111-111111111111";
    const BACKUP: &str = "22222222-2222-4222-8222-222222222222";

    /// A minimal document with one origin named `origin_name` and one backup whose fields are
    /// `backup_fields` (a JSON object body without braces).
    fn doc(origin_name: &str, backup_fields: &str) -> String {
        format!(
            r#"{{"cache_header": {{"cache_version": 3, "save_time": "0001-01-01T00:00:00Z"}},
              "read_only": {{
                "origins": [{{"id": "{ORIGIN}", "name": "{origin_name}", "key": "SECRETKEY",
                              "last_connected": "0001-01-01T00:00:00Z", "future_field": [1]}}],
                "backups": [{{"id": "{BACKUP}", "name": "pc/Docs", "origin_id": "{ORIGIN}",
                              {backup_fields}}}]
              }},
              "local": {{
                "last_backups_done": {{"{BACKUP}": {{"33333333-3333-4333-8333-333333333333":
                                                    "0001-01-01T00:00:00Z"}}}},
                "recent_tasks": [{{"backup_id": "{BACKUP}", "begin": "2025-01-02T03:04:05.123456789Z",
                                   "end": "0001-01-01T00:00:00Z", "status": "success",
                                   "task": "backup"}}]
              }}}}"#
        )
    }

    fn sched(fields: &str) -> String {
        format!(r#""include": ["/a"], "schedule": {{"scheduled": true, {fields}}}"#)
    }

    fn plan_of(backup_fields: &str) -> ImportPlan {
        plan(&parse(&doc("pc", backup_fields)).unwrap(), &[]).unwrap()
    }

    #[test]
    fn job_names_drop_the_origin_prefix_and_never_keep_a_slash() {
        let p = plan_of(r#""include": ["/a"]"#);
        assert_eq!(
            (p.jobs[0].name.as_str(), p.jobs[0].origin_name.as_str()),
            ("Docs", "pc")
        );
        let p = plan(&parse(&doc("laptop", r#""include": ["/a"]"#)).unwrap(), &[]).unwrap();
        assert_eq!(p.jobs[0].name, "pc-Docs");
        let p = plan(
            &parse(&doc("pc", r#""include": ["/a"]"#).replace("pc/Docs", "pc/a/b")).unwrap(),
            &[],
        )
        .unwrap();
        assert_eq!(p.jobs[0].name, "a-b");
        assert!(crate::domain::job::validate_name(&p.jobs[0].name).is_ok());
    }

    #[test]
    fn tolerant_parsing() {
        // No exclude, no hooks, no destinations, no schedule, no account; unknown fields; zero
        // times.
        let d = parse(&doc(
            "pc",
            r#""include": ["/a", "/a", "/b"], "whatever": {"x": 1}"#,
        ))
        .unwrap();
        assert_eq!(d.save_time, None);
        assert_eq!(d.origins[0].last_connected, None);
        assert!(d.backups[0].exclude.is_empty() && d.backups[0].hooks.is_empty());
        assert!(d.last_backups_done.values().all(|m| m.is_empty()));
        assert_eq!(d.recent_tasks[0].end, None);
        let p = plan(&d, &[]).unwrap();
        let j = &p.jobs[0];
        assert_eq!(j.source_paths, ["/a", "/b"]);
        assert!(j.schedules.is_empty());
        assert_eq!(j.last_run_at, None);
        assert_eq!(j.account_id, None);
        // Task without id: key is backup id @ begin, with nanoseconds.
        assert_eq!(
            p.history[0].relica_task_id,
            format!("{BACKUP}@2025-01-02T03:04:05.123456789Z")
        );
        assert_eq!(p.history[0].end_time, None);
        assert!(!serde_json::to_string(&p).unwrap().contains("SECRETKEY"));
    }

    #[test]
    fn not_json() {
        let e = parse("{\"cache_header\": ").unwrap_err();
        assert!(matches!(e, RelicaError::NotJson { line: 1, .. }), "{e}");
        assert!(e.to_string().contains("not valid JSON"));
    }

    #[test]
    fn wrong_cache_version() {
        let text = doc("pc", r#""include": ["/a"]"#)
            .replace("\"cache_version\": 3", "\"cache_version\": 4");
        let e = parse(&text).unwrap_err();
        assert_eq!(
            e,
            RelicaError::UnsupportedCacheVersion {
                found: "4".into(),
                supported: 3
            }
        );
        let msg = e.to_string();
        assert!(
            msg.contains("cache_header.cache_version is 4") && msg.contains("version 3"),
            "{msg}"
        );

        let e = parse(r#"{"read_only": {}}"#).unwrap_err();
        assert!(
            e.to_string().contains("cache_header") && e.to_string().contains("Relica"),
            "{e}"
        );
    }

    #[test]
    fn missing_origin() {
        let text = doc("pc", r#""include": ["/a"]"#).replacen(
            &format!("\"origin_id\": \"{ORIGIN}\""),
            "\"origin_id\": \"44444444-4444-4444-8444-444444444444\"",
            1,
        );
        let e = parse(&text).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "read_only.backups[0] (\"pc/Docs\", id {BACKUP}): origin_id \
                 44444444-4444-4444-8444-444444444444 is not among read_only.origins; the file is \
                 inconsistent, so the backup's device cannot be determined"
            )
        );
    }

    #[test]
    fn bad_time_of_day_and_weekday() {
        let e = parse(&doc("pc", &sched(r#""times_of_day": ["01:00", "25:00"]"#))).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "read_only.backups[0] (\"pc/Docs\", id {BACKUP}).schedule.times_of_day[1]"
            )),
            "{msg}"
        );
        assert!(msg.contains("\"25:00\""), "{msg}");

        let e = parse(&doc(
            "pc",
            &sched(r#""times_of_day": ["01:00"], "days_of_week": [0, 7]"#),
        ))
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(".schedule.days_of_week[1]")
                && msg.contains("number 7")
                && msg.contains("0 = Sunday"),
            "{msg}"
        );

        let e = parse(&doc("pc", r#""include": ["/a", 5]"#)).unwrap_err();
        assert!(
            e.to_string()
                .contains(".include[1]: expected a string, found the number 5"),
            "{e}"
        );
        let e = parse(&doc(
            "pc",
            r#""include": [], "days_of_month": 3, "schedule": {"days_of_month": [0]}"#,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("days_of_month[0]"), "{e}");
        assert!(TimeOfDay::parse("7:05").is_some());
        for bad in ["24:00", "12:60", "12:5", "1200", ":30", "a:bc"] {
            assert!(TimeOfDay::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn manual_only_keeps_times_in_metadata() {
        let p = plan_of(
            r#""include": ["/a"], "schedule": {"scheduled": false, "times_of_day": ["01:00"]}"#,
        );
        assert!(p.jobs[0].schedules.is_empty());
        assert_eq!(
            p.jobs[0].metadata["relica"]["schedule"]["times_of_day"][0],
            "01:00"
        );
        assert!(p.warnings.iter().any(|w| w.contains("manual-only")));
    }

    #[test]
    fn days_of_month_months_and_full_lists() {
        let p = plan_of(&sched(
            r#""times_of_day": ["05:07", "05:07"], "days_of_month": [15, 1], "months_of_year": [3, 1]"#,
        ));
        assert_eq!(crons(&p.jobs[0]), ["7 5 1,15 1,3 *"]);
        let p = plan_of(&sched(
            r#""times_of_day": ["00:00"], "days_of_week": [6,5,4,3,2,1,0]"#,
        ));
        assert_eq!(crons(&p.jobs[0]), ["0 0 * * *"]);
    }

    #[test]
    fn both_day_lists_fall_back_to_a_superset_with_warning() {
        // 2 days of month vs 1 weekday: days of month fire less often -> kept.
        let p = plan_of(&sched(
            r#""times_of_day": ["01:00"], "days_of_week": [1], "days_of_month": [1, 15]"#,
        ));
        assert_eq!(crons(&p.jobs[0]), ["0 1 1,15 * *"]);
        assert_eq!(p.jobs[0].schedules[0].metadata["exact"], false);
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("both") && w.contains("days_of_month [1, 15]"))
        );
        // 10 days of month vs 1 weekday: the weekday is kept.
        let p = plan_of(&sched(
            r#""times_of_day": ["01:00"], "days_of_week": [1], "days_of_month": [1,2,3,4,5,6,7,8,9,10]"#,
        ));
        assert_eq!(crons(&p.jobs[0]), ["0 1 * * 1"]);
        // Weekends {0,6} are `*/6`, which starts with `*`, so Vixie ANDs it with the day list.
        let p = plan_of(&sched(
            r#""times_of_day": ["01:00"], "days_of_week": [6, 0], "days_of_month": [1, 15]"#,
        ));
        assert_eq!(crons(&p.jobs[0]), ["0 1 1,15 * */6"]);
        assert_eq!(p.jobs[0].schedules[0].metadata["exact"], true);
    }

    #[test]
    fn short_months_run_on_the_last_day() {
        let p = plan_of(&sched(
            r#""times_of_day": ["01:00"], "days_of_month": [31]"#,
        ));
        assert_eq!(
            crons(&p.jobs[0]),
            ["0 1 31 * *", "0 1 30 4,6,9,11 *", "0 1 28,29 2 *"]
        );
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("last day") && w.contains("leap"))
        );
        let p = plan_of(&sched(
            r#""times_of_day": ["01:00"], "days_of_month": [29], "months_of_year": [1, 2]"#,
        ));
        assert_eq!(crons(&p.jobs[0]), ["0 1 29 1,2 *", "0 1 28 2 *"]);
        let p = plan_of(&sched(
            r#""times_of_day": ["01:00"], "days_of_month": [28, 30], "months_of_year": [2, 4]"#,
        ));
        assert_eq!(crons(&p.jobs[0]), ["0 1 28,30 2,4 *", "0 1 29 2 *"]);
        assert_eq!(p.jobs[0].schedules[0].metadata["exact"], true);
        let p = plan_of(&sched(
            r#""times_of_day": ["01:00"], "days_of_month": [29]"#,
        ));
        assert_eq!(p.jobs[0].schedules.len(), 2);
    }

    #[test]
    fn device_id_rule() {
        let d = parse(&doc("my laptop", r#""include": ["C:\\x"]"#)).unwrap();
        let p = plan(&d, &[]).unwrap();
        assert_eq!(p.devices[0].id, ORIGIN);
        assert_eq!(p.devices[0].name, "my laptop");
        assert_eq!(p.devices[0].platform, "windows");
        assert_eq!(p.jobs[0].device_id, ORIGIN);
        assert!(p.warnings.iter().any(|w| w.contains("origin id")));
        assert!(is_valid_device_id("Počítač-1"));
        for bad in ["", "a b", "a,b", "a/b", "a\tb", ORIGIN] {
            assert!(!is_valid_device_id(bad), "{bad:?}");
        }
        // Two origins named alike (case-insensitively) both get their UUIDs.
        let mut d = parse(&doc("PC", r#""include": ["/a"]"#)).unwrap();
        let mut twin = d.origins[0].clone();
        twin.id = u("55555555-5555-4555-8555-555555555555");
        twin.name = "pc".into();
        d.origins.push(twin);
        let ids = device_ids(&d);
        assert_eq!(ids[&u(ORIGIN)], ORIGIN);
        assert_eq!(
            ids[&u("55555555-5555-4555-8555-555555555555")],
            "55555555-5555-4555-8555-555555555555"
        );
    }

    #[test]
    fn scrub_removes_secret_names() {
        let mut v = json!({"a": {"api_key": 1, "Password": 2, "x": [{"token_id": 3, "ok": 4}]}, "credentials": []});
        scrub_secrets(&mut v);
        assert_eq!(v, json!({"a": {"x": [{"ok": 4}]}}));
    }
}
