-- Settings that make a scheduled run behave like a hand run (issue 14).

UPDATE settings SET description = 'restic cache directory (empty = the persistent default: systemd CacheDirectory=restic-fleet, /var/cache/restic-fleet as root, ~/.cache/restic-fleet otherwise, %ProgramData%\restic-fleet\cache on Windows)'
WHERE key = 'repository_cache_dir' AND device_id IS NULL AND description = 'Restic cache directory (empty = restic default)';

INSERT INTO settings (device_id, key, value, description)
VALUES (NULL, 'repository_environment', '',
        'Secret. Backend credentials for restic as KEY=VALUE lines (AWS_ACCESS_KEY_ID, B2_ACCOUNT_KEY, RESTIC_REST_PASSWORD, ...), given to restic''s environment only; variables that run programs or change the repository or password are refused'),
       (NULL, 'network_wait_seconds', '120',
        'A run whose repository is unreachable at start (the network lagging after wake) retries for up to this many seconds before it fails'),
       (NULL, 'run_on_battery', 'true',
        'Linux: scheduled backups also start on battery power (false adds ConditionACPower=true to the job units); Windows uses windows_run_on_battery'),
       (NULL, 'prevent_sleep', 'true',
        'Hold a sleep inhibitor while restic runs (systemd-inhibit on Linux, SetThreadExecutionState on Windows)')
ON CONFLICT DO NOTHING;
