-- Settings introduced by restic-fleet after the seed schema (never edit 001-003).

-- The seed's UNIQUE (device_id, key) does not stop two global rows with the same key,
-- because NULLs are distinct in a unique constraint. A partial unique index closes that gap,
-- so a global setting can be upserted like a per-device one.
CREATE UNIQUE INDEX idx_settings_global_key ON settings (key) WHERE device_id IS NULL;

INSERT INTO settings (device_id, key, value, description)
VALUES (NULL, 'schedule_jitter_seconds', '0',
        'Random delay (RandomizedDelaySec) added to every scheduled run, in seconds'),
       (NULL, 'missed_run_grace_seconds', '900',
        'A schedule whose next_run_at is this many seconds (plus the jitter) in the past with no run since was missed'),
       (NULL, 'concurrency_wait_seconds', '3600',
        'How long a run waits for a free slot under max_concurrent_backups before it is skipped'),
       (NULL, 'timezone', '',
        'IANA time zone in which cron expressions are evaluated (empty = the device''s local zone)')
ON CONFLICT DO NOTHING;
