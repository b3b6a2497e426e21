-- Settings of the Windows Task Scheduler backend (restic-fleet sync on Windows).

INSERT INTO settings (device_id, key, value, description)
VALUES (NULL, 'windows_run_on_battery', 'true',
        'Windows tasks start and keep running on battery power (DisallowStartIfOnBatteries/StopIfGoingOnBatteries = false), so laptops are backed up away from the charger'),
       (NULL, 'windows_wake_to_run', 'false',
        'Windows tasks wake the computer from sleep to run a scheduled backup (WakeToRun)'),
       (NULL, 'windows_execution_time_limit_hours', '72',
        'Task Scheduler stops a backup task after this many hours (ExecutionTimeLimit; 0 = no limit)')
ON CONFLICT DO NOTHING;
