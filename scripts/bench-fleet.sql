-- Generates a synthetic fleet for scripts/bench.sh, in SQL for speed (10 million runs in a few
-- minutes). psql variables: devices, jobs_per_device, runs_per_job (one run per job per day),
-- and shape: `cron+interval` (every job has a daily cron schedule at its own hour and an
-- interval schedule of 1, 2, 3 or 7 days) or `two-cron` (daily at its own hour and weekly on
-- Sunday). Runs are 97% success, 2% failed, 1% cancelled; a few jobs have a run in progress.
-- scripts/bench.py turns one shape into the other with bench_fleet_shape() below.
-- Runs are inserted oldest first (ids grow with time, as in a real fleet). The runs table's
-- secondary indexes and triggers are dropped/disabled during the load and rebuilt afterwards
-- (much faster than maintaining them row by row).
\set ON_ERROR_STOP on
SET maintenance_work_mem = '512MB';
SET synchronous_commit = off;

DELETE FROM settings WHERE device_id IS NOT NULL;
TRUNCATE runs, schedules, backup_jobs RESTART IDENTITY CASCADE;
DELETE FROM devices;

INSERT INTO devices (id, name, platform, hostname, last_seen, enabled)
SELECT 'dev-' || lpad(d::text, 6, '0'),
       'Device ' || d,
       CASE WHEN d % 5 = 0 THEN 'windows' ELSE 'linux' END,
       'host-' || d,
       CASE WHEN d % 50 = 0 THEN NULL ELSE now() - (d % 900) * interval '1 second' END,
       d % 200 <> 0
FROM generate_series(1, :devices) d;

-- Every tenth device has a setting of its own (a time zone), as a real fleet would.
INSERT INTO settings (device_id, key, value)
SELECT 'dev-' || lpad(d::text, 6, '0'), 'timezone', 'Europe/Prague'
FROM generate_series(10, :devices, 10) d;

INSERT INTO backup_jobs (device_id, name, source_paths, enabled)
SELECT 'dev-' || lpad(d::text, 6, '0'), 'job-' || k, ARRAY['/home/user' || k, '/etc'],
       (d * 7 + k) % 97 <> 0
FROM generate_series(1, :devices) d,
     generate_series(1, :jobs_per_device) k;

-- next_run_at is each schedule's true next instant (UTC), as sync would store it, so that a
-- sync finds nothing missed and writes nothing (an interval schedule's last_run_at is on the
-- grid of the job's newest run, yesterday at the job's hour, and its next_run_at one interval
-- later). The per-row triggers that keep job_run_state's schedule facts (migration 013) are off
-- for the load; the rebuild below computes them in one pass.
ALTER TABLE schedules DISABLE TRIGGER USER;
INSERT INTO schedules (job_id, schedule_type, cron_expression, next_run_at, last_run_at)
SELECT id, 'cron', m || ' ' || h || ' * * *',
       CASE WHEN today > now() THEN today ELSE today + interval '1 day' END,
       CASE WHEN today > now() THEN today - interval '1 day' ELSE today END
FROM (SELECT id, abs(hashtext(id::text)) % 60 AS m, abs(hashtext(id::text)) % 24 AS h,
             date_trunc('day', now()) + (abs(hashtext(id::text)) % 24) * interval '1 hour'
                 + (abs(hashtext(id::text)) % 60) * interval '1 minute' AS today
      FROM backup_jobs) j;

-- The second schedule of every job, in either shape (the two-cron shape's weekly schedule
-- keeps no last_run_at). A function of the benchmark's database, so that bench.py can switch
-- shapes with bench_fleet_shape().
CREATE OR REPLACE FUNCTION bench_second_schedule(shape text)
    RETURNS TABLE (job_id uuid, schedule_type text, cron_expression text,
                   interval_seconds integer, next_run_at timestamptz, last_run_at timestamptz)
    LANGUAGE sql STABLE AS
$$
SELECT id,
       CASE WHEN shape = 'two-cron' THEN 'cron' ELSE 'interval' END,
       CASE WHEN shape = 'two-cron' THEN '30 ' || h || ' * * 0' END,
       CASE WHEN shape = 'two-cron' THEN NULL ELSE every END,
       CASE WHEN shape = 'two-cron'
            THEN CASE WHEN sunday > now() THEN sunday ELSE sunday + interval '7 days' END
            ELSE last_run + (k + 1) * every * interval '1 second' END,
       CASE WHEN shape = 'two-cron' THEN NULL ELSE last_run + k * every * interval '1 second' END
FROM (SELECT *, floor(extract(epoch FROM now() - last_run) / every)::int AS k
      FROM (SELECT id, abs(hashtext(id::text)) % 24 AS h,
                   date_trunc('week', now()) + interval '6 days'
                       + (abs(hashtext(id::text)) % 24) * interval '1 hour'
                       + interval '30 minutes' AS sunday,
                   (ARRAY[86400, 172800, 259200, 604800])[1 + abs(hashtext(id::text || 'i')) % 4]
                       AS every,
                   date_trunc('day', now()) - interval '1 day'
                       + (abs(hashtext(id::text)) % 24) * interval '1 hour' AS last_run
            FROM backup_jobs) j) j
$$;
INSERT INTO schedules (job_id, schedule_type, cron_expression, interval_seconds, next_run_at,
                       last_run_at)
SELECT * FROM bench_second_schedule(:'shape');

-- Replaces every job's second schedule by the other shape's and rebuilds job_run_state.
CREATE OR REPLACE FUNCTION bench_fleet_shape(shape text) RETURNS void LANGUAGE plpgsql AS
$$
BEGIN
    ALTER TABLE schedules DISABLE TRIGGER USER;
    DELETE FROM schedules WHERE schedule_type = 'interval' OR cron_expression LIKE '30 % * * 0';
    INSERT INTO schedules (job_id, schedule_type, cron_expression, interval_seconds, next_run_at,
                           last_run_at)
    SELECT * FROM bench_second_schedule(shape);
    ALTER TABLE schedules ENABLE TRIGGER USER;
    PERFORM rebuild_job_run_state();
    ANALYZE schedules;
    ANALYZE job_run_state;
END;
$$;
ALTER TABLE schedules ENABLE TRIGGER USER;

CREATE TEMP TABLE saved_indexes AS
SELECT indexname, indexdef FROM pg_indexes
WHERE schemaname = 'public' AND tablename = 'runs'
  -- Indexes that back a constraint (the primary key, runs_client_run_id_key) stay.
  AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'runs'::regclass);
SELECT format('DROP INDEX %I', indexname) FROM saved_indexes \gexec
-- The per-row triggers (job_run_state) are rebuilt in one statement after the load.
ALTER TABLE runs DISABLE TRIGGER USER;

INSERT INTO runs (job_id, device_id, start_time, end_time, status, exit_code, error_message,
                  files_new, files_changed, files_unmodified, data_added_bytes,
                  total_files_processed, total_bytes_processed, duration_seconds, snapshot_id,
                  restic_output, triggered_by, metadata)
SELECT j.id, j.device_id, t.start, t.start + interval '95 seconds',
       CASE WHEN n % 100 < 97 THEN 'success' WHEN n % 100 < 99 THEN 'failed' ELSE 'cancelled' END,
       CASE WHEN n % 100 < 97 THEN 0 ELSE 1 END,
       CASE WHEN n % 100 BETWEEN 97 AND 98 THEN 'repository is locked' END,
       n % 17, n % 5, 2000, 123456 + n, 2005, 987654321, 95,
       md5(j.id::text || n) || md5(n || j.id::text),
       '{"message_type":"summary","files_new":3,"files_changed":1,"files_unmodified":2000}',
       'schedule',
       '{"warnings": [], "missing_paths": []}'::jsonb
FROM generate_series(:runs_per_job, 1, -1) n,
     backup_jobs j,
     LATERAL (SELECT date_trunc('day', now()) - n * interval '1 day'
                     + (abs(hashtext(j.id::text)) % 24) * interval '1 hour' AS start) t;

-- A run in progress on one job in a thousand.
INSERT INTO runs (job_id, device_id, start_time, status, triggered_by)
SELECT id, device_id, now() - interval '2 minutes', 'running', 'schedule'
FROM backup_jobs WHERE abs(hashtext(id::text)) % 1000 = 0;

SELECT indexdef FROM saved_indexes \gexec
ALTER TABLE runs ENABLE TRIGGER USER;
SELECT rebuild_job_run_state() \g /dev/null
VACUUM (ANALYZE) devices, backup_jobs, schedules, settings, runs, job_run_state;
