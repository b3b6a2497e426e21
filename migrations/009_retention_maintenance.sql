-- Retention per job and maintenance of the shared repository by one owner device (issue 11).

-- A job's retention policy: restic forget's --keep-* options. No row (and no
-- retention_default setting) means the job keeps every snapshot: nothing is forgotten by default.
-- A separate table rather than columns of backup_jobs keeps the policy out of what `run` and
-- `sync` read, and lets the maintenance owner read all policies without touching job rows.
CREATE TABLE job_retention
(
    job_id       UUID PRIMARY KEY REFERENCES backup_jobs (id) ON DELETE CASCADE,
    keep_last    INTEGER CHECK (keep_last > 0),
    keep_hourly  INTEGER CHECK (keep_hourly > 0),
    keep_daily   INTEGER CHECK (keep_daily > 0),
    keep_weekly  INTEGER CHECK (keep_weekly > 0),
    keep_monthly INTEGER CHECK (keep_monthly > 0),
    keep_yearly  INTEGER CHECK (keep_yearly > 0),
    -- restic's duration syntax: 1y5m7d2h (validated by restic-fleet where it is written and used)
    keep_within  VARCHAR(32) CHECK (keep_within ~ '^([0-9]+[ymdh])+$'),
    updated_at   TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    CHECK (num_nonnulls(keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly,
                        keep_yearly, keep_within) > 0)
);

COMMENT ON TABLE job_retention IS 'Retention policy per backup job (restic forget --keep-*); applied only by the maintenance owner';

-- One row per maintenance step run by `restic-fleet maintain` on the owner device.
CREATE TABLE maintenance_runs
(
    id                SERIAL PRIMARY KEY,
    device_id         VARCHAR(255)             NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    step              VARCHAR(20)              NOT NULL CHECK (step IN ('unlock', 'forget', 'prune', 'check')),
    start_time        TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    end_time          TIMESTAMP WITH TIME ZONE,
    status            VARCHAR(20)              NOT NULL CHECK (status IN ('running', 'success', 'failed')),
    exit_code         INTEGER,
    snapshots_removed INTEGER,
    bytes_freed       BIGINT,
    error_message     TEXT,
    output            TEXT,
    errors            TEXT,
    metadata          JSONB DEFAULT '{}'::jsonb
);

CREATE INDEX idx_maintenance_runs_step_time ON maintenance_runs (step, start_time DESC);

COMMENT ON TABLE maintenance_runs IS 'Steps of repository maintenance (unlock, forget, prune, check) run by the maintenance owner';

INSERT INTO settings (device_id, key, value, description)
VALUES (NULL, 'maintenance_device', '',
        'The one device that runs forget, prune and check on the shared repository (empty = nobody maintains it)'),
       (NULL, 'maintenance_schedule', '@weekly',
        'When the maintenance owner runs `restic-fleet maintain` (5-field cron or a macro)'),
       (NULL, 'prune_max_unused', '',
        'restic prune --max-unused (e.g. 5%, 100M, unlimited; empty = restic''s default)'),
       (NULL, 'check_read_data_subset', '',
        'restic check --read-data-subset after prune (e.g. 2%, 1/10, 500M; empty = check the structure only)'),
       (NULL, 'repository_lock_wait_seconds', '1800',
        'How long a backup or a maintenance step waits and retries while the repository is locked by another restic'),
       (NULL, 'retention_default', '',
        'Retention of jobs without a policy of their own, e.g. "keep-daily=7 keep-weekly=4" (empty = keep everything)')
ON CONFLICT DO NOTHING;

-- Row-level security (migration 006's model). The maintenance owner is the device named by the
-- GLOBAL maintenance_device row; it alone reads every job and every retention policy, because
-- forget must know the whole fleet's jobs (to keep the snapshots of unknown jobs apart). It still
-- writes no job. Everything else about these tables is the admins'; viewers read.
CREATE FUNCTION fleet_is_maintenance_owner() RETURNS BOOLEAN
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS
$$
SELECT public.fleet_current_device() IS NOT NULL
   AND EXISTS (SELECT 1 FROM public.settings
               WHERE device_id IS NULL AND key = 'maintenance_device'
                 AND value = public.fleet_current_device())
$$;

COMMENT ON FUNCTION fleet_is_maintenance_owner() IS 'True when the session is the device role of the global maintenance_device';

CREATE POLICY jobs_read_maintenance_owner ON backup_jobs FOR SELECT
    USING ((SELECT fleet_is_maintenance_owner()));

ALTER TABLE job_retention ENABLE ROW LEVEL SECURITY;
CREATE POLICY job_retention_read ON job_retention FOR SELECT
    USING ((SELECT fleet_is_admin()) OR (SELECT fleet_is_viewer()) OR (SELECT fleet_is_maintenance_owner()));
CREATE POLICY job_retention_write ON job_retention FOR ALL
    USING ((SELECT fleet_is_admin()))
    WITH CHECK ((SELECT fleet_is_admin()));

ALTER TABLE maintenance_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY maintenance_runs_read ON maintenance_runs FOR SELECT
    USING ((SELECT fleet_is_admin()) OR (SELECT fleet_is_viewer()) OR device_id = (SELECT fleet_current_device()));
-- Only the owner's device role records steps (besides admins): another device could otherwise
-- fake the fleet's maintenance health in `status`.
CREATE POLICY maintenance_runs_insert ON maintenance_runs FOR INSERT
    WITH CHECK ((SELECT fleet_is_admin())
        OR (device_id = (SELECT fleet_current_device()) AND (SELECT fleet_is_maintenance_owner())));
CREATE POLICY maintenance_runs_update ON maintenance_runs FOR UPDATE
    USING ((SELECT fleet_is_admin())
        OR (device_id = (SELECT fleet_current_device()) AND (SELECT fleet_is_maintenance_owner())))
    WITH CHECK ((SELECT fleet_is_admin())
        OR (device_id = (SELECT fleet_current_device()) AND (SELECT fleet_is_maintenance_owner())));
CREATE POLICY maintenance_runs_delete ON maintenance_runs FOR DELETE
    USING ((SELECT fleet_is_admin()));
