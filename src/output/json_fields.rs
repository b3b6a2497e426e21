//! The `--json` field reference printed in the JSON OUTPUT section of `restic-fleet man` (and
//! quoted by README). Each entry names the commands and the fields of the objects they print;
//! the field names are a stable interface. The `Serialize` structs carry the same text in their
//! doc comments; a test (tests/json_fields.rs, which sees the whole CLI) checks that every
//! command with `--json` has an entry here.

/// (commands, fields) for every command with `--json`.
pub const JSON_FIELDS: &[(&str, &str)] = &[
    (
        "init --json",
        "config_path, device_id, device_name, platform, hostname, created (false when the device \
         existed and was updated).",
    ),
    (
        "run --json",
        "run_id, job_id, job_name, device_id, status (success, failed, cancelled), exit_code \
         (restic's), error_message (one sentence, or \"warning: ...\" for a successful run with \
         warnings), snapshot_id, start_time, end_time, files_new, files_changed, \
         files_unmodified, data_added_bytes, warnings (sentences), triggered_by (manual, \
         schedule, missed), client_run_id (the id this client gave the run, \
         runs.client_run_id), spooled (the spool file when the database was away, else null; \
         run_id is then null).",
    ),
    (
        "sync --json",
        "device_id, backend (systemd, windows), dry_run, added, updated, removed, unchanged \
         (each an array of {name, job_id, job_name, files}), missed (array of {job_id, job_name, \
         slot, catch_up (started, finished, not started (--no-catch-up), not started (dry run), \
         failed to start), exit_code}), failed (array of {job_id, job_name, item, error}), \
         warnings, commands (the systemctl / schtasks calls made, in order, catch-up starts \
         included), stale_runs_closed (run ids), next_runs (schedule id -> next_run_at), \
         spool_delivered (run ids of spooled records delivered first), local_copy (the local \
         copy's path; null on --dry-run).",
    ),
    (
        "spool list --json (an array, oldest first)",
        "file, client_run_id, job_id, job_name, status (running for a start spooled by a run \
         still going or killed), start_time, end_time, snapshot_id, error (set when the file \
         cannot be read as a record).",
    ),
    (
        "spool deliver --json",
        "delivered (array of {file, client_run_id, run_id, new_row (false when the database \
         had it already)}), kept (array of {file, error}), running (files of runs still \
         going).",
    ),
    (
        "schedule preview --json",
        "timezone, from, schedules (the expressions previewed), next (RFC 3339 fire times with \
         the zone's offset), on_calendar (systemd OnCalendar= values; empty for intervals), \
         interval_seconds (omitted when empty), windows_triggers_xml (the <Triggers> element of \
         the task XML).",
    ),
    (
        "schedule list --json (an array), schedule add|enable|disable --json",
        "id, job_id, job_name, device_id, schedule_type (cron, interval), cron_expression, \
         interval_seconds, enabled, last_run_at, next_run_at (RFC 3339 or null).",
    ),
    ("schedule rm --json", "id, removed (true)."),
    (
        "device list --json (an array), device show|add|enable|disable --json",
        "id, name, description, platform (linux, windows), hostname, enabled, last_seen (RFC 3339 \
         or null), created_at, updated_at, metadata (client version, OS, restic version as last \
         reported), client_version and restic_version (from metadata; null before the first \
         report), job_count; show adds jobs (array of {id, name, enabled, source_paths}).",
    ),
    ("device rm --json", "id, removed (true)."),
    (
        "device enroll --json",
        "device_id, role (the device's PostgreSQL login), database_url (with the new password: \
         printed once), rotated (true when an existing login got a new password), \
         device_created.",
    ),
    ("job add --json", "id, device_id, name."),
    (
        "job list --json (an array), job show|edit --json",
        "id, device_id, name, description, source_paths, exclude_patterns, tags, restic_args, \
         enabled, created_at, updated_at, metadata, origin_name, origin_id, account_id, \
         schedules (as schedule list --json); show and edit add last_run ({id, status, \
         start_time, end_time, error_message, snapshot_id} or null; null after edit), \
         ping_url (null also where the role may not read it: viewers, other devices' jobs), \
         hook_before, hook_after, hook_failure, hook_finally, hook_before_on_error \
         (stop, continue); show adds retention ({keep_last, keep_hourly, keep_daily, \
         keep_weekly, keep_monthly, keep_yearly, keep_within, source (job, default, none), \
         description}).",
    ),
    ("job rm --json", "id, removed (true)."),
    ("job enable|disable --json", "id, enabled."),
    (
        "settings list --json (an array), settings get --json",
        "key, value (*** for a secret such as repository_password or repository_environment \
         unless --show-secrets), scope (global, device), device_id (null for global), \
         description, updated_at; in list, hidden (true for a secret key a viewer may not \
         read, whose other fields are then null).",
    ),
    (
        "settings set --json",
        "key, value (secrets masked), scope, device_id.",
    ),
    ("settings unset --json", "key, device_id, removed (true)."),
    (
        "runs list --json (an array, newest first)",
        "id, job_id, job_name, device_id, status (running, success, failed, cancelled), \
         start_time, end_time, duration_seconds, exit_code, error_message, snapshot_id, \
         data_added_bytes, files_new, files_changed, files_unmodified, triggered_by.",
    ),
    (
        "runs show --json",
        "the runs list fields plus dirs_new, dirs_changed, dirs_unmodified, \
         total_files_processed, total_bytes_processed, restic_output, restic_errors, metadata \
         (warnings, missing_paths, ...), created_at.",
    ),
    (
        "status --json",
        "generated_at, ok (true exactly when the exit code is 0), counts (verdict -> number of \
         jobs), min_client_version (the oldest restic-fleet that understands the database's \
         schema), devices (array of {device_id, name, platform, enabled, last_seen, state \
         (online, offline, never_seen), sync_interval_seconds, client_version (as last reported; \
         null when never), client_outdated (older than min_client_version; false when \
         unknown)}), jobs (array of {job_id, job_name, \
         device_id, enabled, verdict (ok, warning, failing, overdue, never_run, disabled), reason, \
         last_run_id, last_run_status, last_run_start, running, last_success_at, \
         last_success_age_seconds, next_run_at, expected_period_seconds, warnings}), \
         maintenance ({owner, owner_state (online, offline, never_seen, unknown_device; null \
         without an owner), owner_last_seen, \
         schedule, period_seconds, last_forget, last_prune, last_check (each {last_success_at, \
         last_status, last_run_at, last_error, device_id}), verdict (ok, overdue, failing, \
         never_run, not_configured), reason: the shared repositories' (maintenance_device), \
         repositories (array of {repository_id (null: steps recorded before steps named their \
         repository), label (first 12 hex digits of the fingerprint, or shared), maintainer \
         (device id; null: shared), maintainer_state, snapshot_count, total_size, counted_at, \
         schedule, period_seconds, last_forget, last_prune, last_check, verdict, reason})}), repository_warnings (array of {repository (12 \
         hex), fingerprint, maintainer (null: shared), snapshot_count, counted_at, threshold, \
         message}: the repositories above repository_snapshot_warning).",
    ),
    (
        "repositories [list] --json",
        "limited (true for a viewer: the repositories table only, url null, devices and jobs \
         empty), checked (false with --no-check), repositories (array of {fingerprint, url \
         (credentials masked), shared, maintainer (the device that maintains it; null when \
         shared and maintenance_device is unset), devices, jobs (array of {job_id, device_id, \
         job_name}), exists (null when not checked or restic could not tell), check_error, \
         snapshot_count, total_size, counted_at (as of the last maintenance; null: never \
         counted)}), problems (array of {job_id, device_id, job_name, reason}).",
    ),
    (
        "repositories init --json",
        "dry_run, repositories (array of {fingerprint, url (masked), action (created, exists, \
         would_create, failed), error}), problems (as in list).",
    ),
    (
        "repositories move --json",
        "device_id, repository_url (the device's new own setting, masked), password_changed, \
         copies (array of {from, to (masked URLs), jobs (job ids), initialized, snapshots (the \
         device's snapshots in the destination afterwards)}), left_behind (masked URLs keeping \
         the old snapshots until their maintenance forgets them).",
    ),
    (
        "cleanup --json",
        "retention_days, dry_run, deleted, batches (delete transactions committed; 0 with \
         --dry-run).",
    ),
    (
        "maintain --json",
        "device_id, owner, dry_run, ok, steps (array of {step (unlock, forget, prune, check), \
         status (success, failed), exit_code, snapshots_removed, bytes_freed, error, record_id \
         (the maintenance_runs row; null with --dry-run)}), jobs (array of {job_id, job_name, \
         device_id, policy, policy_source (job, default), kept, removed (snapshot ids), alone, \
         error}), jobs_without_policy, unknown_job_snapshots (array of {snapshot_id, time, \
         hostname, paths, job_id}), unknown_job_snapshots_forgotten (true when \
         --forget-unknown-jobs removed them): these sum up every repository; repositories \
         (array of {repository_id (null with --dry-run), label (first 12 hex digits of the \
         fingerprint), fingerprint, maintainer (device id; null: shared), ok, error, steps, \
         jobs (each also with alone: forgotten by a restic forget of its own), \
         jobs_without_policy, forget_processes, snapshot_count, unknown_job_snapshots, \
         unknown_job_snapshots_forgotten}), job_errors (array of {job_id, error}: jobs whose \
         repository URL cannot be built).",
    ),
    (
        "snapshots --json (an array)",
        "id, short_id, time, hostname, device_name, job_id, job_name (null when the backup: tag \
         names no job), paths, tags, repository (the URL it was listed from, password masked).",
    ),
    (
        "restore --json",
        "job_id, job_name, device_id, snapshot_id, snapshot_time, paths, target, includes, \
         dry_run, restored.",
    ),
    (
        "db roles --json",
        "database, roles (array of {role, created}).",
    ),
    (
        "relica-migrate --json",
        "dry_run, file, database_url (password masked), import_history, overwrite, devices, jobs, \
         schedules, runs (each a section with the items planned or done), settings (array of \
         {key, action}; values never shown), warnings, notes, enrolment (array of {device_id, \
         device_name, command}).",
    ),
];

/// The section as roff, for the man page.
pub fn roff() -> String {
    let mut out = String::from(".SH \"JSON OUTPUT\"\n");
    out.push_str(
        "Every read command prints JSON with \\fB\\-\\-json\\fR and nothing else on standard \
         output. Times are RFC 3339. The fields:\n",
    );
    for (cmd, fields) in JSON_FIELDS {
        out.push_str(&format!(
            ".TP\n\\fBrestic\\-fleet {}\\fR\n{}\n",
            escape(cmd),
            escape(fields)
        ));
    }
    out.push_str(
        ".SH \"SEE ALSO\"\nOne page per command (restic\\-fleet\\-job\\-add(1), ...) is written by \
         \\fBrestic\\-fleet man \\-\\-out\\-dir\\fR \\fIDIR\\fR; install them into a man1 directory \
         (e.g. /usr/local/share/man/man1) to read them with man(1). \\fBrestic\\-fleet COMMAND \
         \\-\\-help\\fR shows the same text.\n",
    );
    out
}

/// Escapes text for roff: backslashes and hyphens, and a leading dot or quote.
fn escape(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}
