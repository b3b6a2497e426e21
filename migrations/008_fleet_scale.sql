-- Fleet scale (issue 13): indexes that let every fleet query cost O(jobs asked about) instead of
-- O(runs), and the seed's `latest_runs` view rewritten to use them.
--
-- The status queries fetch, for each job, its newest run, its newest finished run and its
-- newest success with one index probe each (`LATERAL (... LIMIT 1)`); without these indexes
-- PostgreSQL reads and sorts the whole runs table (10 million rows at 10k devices).

-- Newest run of a job: `ORDER BY start_time DESC, id DESC LIMIT 1` (id breaks ties between runs
-- that started in the same microsecond). Also serves `runs list --job`.
CREATE INDEX idx_runs_job_start_id ON runs (job_id, start_time DESC, id DESC);

-- Newest finished run of a job (the verdict ignores `running` and `cancelled` rows).
CREATE INDEX idx_runs_job_finished ON runs (job_id, start_time DESC, id DESC)
    WHERE status IN ('success', 'failed');

-- Newest success of a job, by when it ended (its start when the end is missing).
CREATE INDEX idx_runs_job_success_end ON runs (job_id, (COALESCE(end_time, start_time)) DESC, id DESC)
    WHERE status = 'success';

-- Runs in progress: a handful of rows at any time, looked up per device.
CREATE INDEX idx_runs_running ON runs (device_id, job_id) WHERE status = 'running';

-- Successful runs whose snapshot id is still restic 0.14's 8-digit short id: `sync` resolves
-- them to the full id in one `restic snapshots` call (see src/snapshot_ids.rs). The predicate
-- keeps the index as small as the number of pending ids.
CREATE INDEX idx_runs_snapshot_pending ON runs (device_id, start_time)
    WHERE status = 'success' AND length(snapshot_id) < 64;

-- The seed's `latest_runs` used `DISTINCT ON (job_id) ... ORDER BY job_id, start_time DESC`
-- over all runs: a full scan (and an on-disk sort) of the run history for every use, including
-- `job_summary`. Now the same columns and rows (every run references an existing job) from one
-- index probe per job. `job_id` is the job's own id, so that a filter on it (or
-- `job_summary`'s join, and through it a filter on the device) narrows the view to the probes
-- of those jobs; with `r.job_id` PostgreSQL would probe every job and filter afterwards.
CREATE OR REPLACE VIEW latest_runs AS
SELECT r.id,
       j.id AS job_id,
       r.device_id,
       r.start_time,
       r.end_time,
       r.status,
       r.error_message,
       r.snapshot_id,
       r.triggered_by
FROM backup_jobs j
         CROSS JOIN LATERAL (
    SELECT id, device_id, start_time, end_time, status, error_message, snapshot_id, triggered_by
    FROM runs
    WHERE runs.job_id = j.id
    ORDER BY start_time DESC, id DESC
    LIMIT 1
    ) r;

COMMENT
ON VIEW latest_runs IS 'Most recent run for each backup job (one index probe per job)';

-- CREATE OR REPLACE VIEW resets the view's options: keep migration 006's security_invoker, so
-- row-level security still applies through the view (a device sees only its own runs).
ALTER VIEW latest_runs SET (security_invoker = true);

-- Derived state: each job's newest run, newest finished run and newest success, kept by the
-- database itself (triggers on runs), so that rows written by any client, by a delivered spool
-- or by plain SQL keep it right. `status` reads this small table (one row per job) instead of
-- probing the run history three times per job: at 50,000 jobs those probes touch a different
-- index page per job and index, more than a modest shared_buffers holds.
CREATE TABLE job_run_state
(
    job_id                 UUID PRIMARY KEY REFERENCES backup_jobs (id) ON DELETE CASCADE,
    -- The newest run, whatever its status (`running` included).
    last_run_id            INTEGER,
    last_run_status        VARCHAR(50),
    last_run_start         TIMESTAMP WITH TIME ZONE,
    -- The newest run whose status is `success` or `failed` (what the verdict is decided from).
    last_finished_run_id   INTEGER,
    last_finished_status   VARCHAR(50),
    last_finished_start    TIMESTAMP WITH TIME ZONE,
    last_finished_end      TIMESTAMP WITH TIME ZONE,
    last_finished_error    TEXT,
    last_finished_metadata JSONB,
    -- The success that ended last (its end, or its start when the end is missing).
    last_success_run_id    INTEGER,
    last_success_start     TIMESTAMP WITH TIME ZONE,
    last_success_end       TIMESTAMP WITH TIME ZONE,
    updated_at             TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);

COMMENT
ON TABLE job_run_state IS 'Per job: newest run, newest finished run, newest success (maintained by triggers on runs; never write it by hand)';

-- Recomputes one job's row from the run history (three index probes). The state row is locked
-- first, so two transactions writing runs of the same job recompute one after the other, the
-- second seeing the first's committed rows (READ COMMITTED takes a new snapshot per statement).
-- SECURITY DEFINER: devices insert runs under row-level security with roles that may not write
-- this table; the function runs as its owner and touches only the job whose run changed.
CREATE FUNCTION refresh_job_run_state(p_job UUID) RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS
$$
BEGIN
    -- A job being deleted (its runs go by cascade) keeps no state.
    IF NOT EXISTS (SELECT 1 FROM public.backup_jobs WHERE id = p_job) THEN
        RETURN;
    END IF;
    INSERT INTO public.job_run_state (job_id)
    VALUES (p_job)
    ON CONFLICT (job_id) DO UPDATE SET updated_at = NOW();
    UPDATE public.job_run_state s
    SET (last_run_id, last_run_status, last_run_start) =
            (SELECT id, status, start_time
             FROM public.runs
             WHERE job_id = p_job
             ORDER BY start_time DESC, id DESC
             LIMIT 1),
        (last_finished_run_id, last_finished_status, last_finished_start, last_finished_end,
         last_finished_error, last_finished_metadata) =
            (SELECT id, status, start_time, end_time, error_message, metadata
             FROM public.runs
             WHERE job_id = p_job
               AND status IN ('success', 'failed')
             ORDER BY start_time DESC, id DESC
             LIMIT 1),
        (last_success_run_id, last_success_start, last_success_end) =
            (SELECT id, start_time, COALESCE(end_time, start_time)
             FROM public.runs
             WHERE job_id = p_job
               AND status = 'success'
             ORDER BY COALESCE(end_time, start_time) DESC, id DESC
             LIMIT 1),
        updated_at = NOW()
    WHERE s.job_id = p_job;
END;
$$;

-- Rebuilds every job's row in one set-based statement (this migration, bulk loads that
-- disabled the triggers, or an admin who doubts the state: `SELECT rebuild_job_run_state()`).
CREATE FUNCTION rebuild_job_run_state() RETURNS void
    LANGUAGE sql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS
$$
DELETE FROM public.job_run_state;
INSERT INTO public.job_run_state (job_id, last_run_id, last_run_status, last_run_start,
                           last_finished_run_id, last_finished_status, last_finished_start,
                           last_finished_end, last_finished_error, last_finished_metadata,
                           last_success_run_id, last_success_start, last_success_end)
SELECT j.id, n.id, n.status, n.start_time,
       f.id, f.status, f.start_time, f.end_time, f.error_message, f.metadata,
       s.id, s.start_time, s.done
FROM public.backup_jobs j
         LEFT JOIN LATERAL (SELECT id, status, start_time
                            FROM public.runs
                            WHERE job_id = j.id
                            ORDER BY start_time DESC, id DESC
                            LIMIT 1) n ON true
         LEFT JOIN LATERAL (SELECT id, status, start_time, end_time, error_message, metadata
                            FROM public.runs
                            WHERE job_id = j.id
                              AND status IN ('success', 'failed')
                            ORDER BY start_time DESC, id DESC
                            LIMIT 1) f ON true
         LEFT JOIN LATERAL (SELECT id, start_time, COALESCE(end_time, start_time) AS done
                            FROM public.runs
                            WHERE job_id = j.id
                              AND status = 'success'
                            ORDER BY COALESCE(end_time, start_time) DESC, id DESC
                            LIMIT 1) s ON true
WHERE n.id IS NOT NULL;
$$;

CREATE FUNCTION runs_refresh_job_run_state() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS
$$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.job_id IS DISTINCT FROM NEW.job_id THEN
        PERFORM public.refresh_job_run_state(OLD.job_id);
    END IF;
    PERFORM public.refresh_job_run_state(NEW.job_id);
    RETURN NULL;
END;
$$;

-- Deleting old history (`cleanup`) removes rows the state does not point at: only the jobs
-- whose recorded newest run, finished run or success was deleted are recomputed.
CREATE FUNCTION runs_deleted_refresh_job_run_state() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS
$$
DECLARE
    j UUID;
BEGIN
    FOR j IN
        SELECT DISTINCT s.job_id
        FROM old_runs o
                 JOIN public.job_run_state s ON s.job_id = o.job_id
        WHERE o.id IN (s.last_run_id, s.last_finished_run_id, s.last_success_run_id)
        LOOP
            PERFORM public.refresh_job_run_state(j);
        END LOOP;
    RETURN NULL;
END;
$$;

-- Only the columns the state copies: resolving a snapshot id or storing output does not fire it.
CREATE TRIGGER runs_job_run_state_write
    AFTER INSERT OR UPDATE OF job_id, status, start_time, end_time, error_message, metadata
    ON runs
    FOR EACH ROW
EXECUTE FUNCTION runs_refresh_job_run_state();

CREATE TRIGGER runs_job_run_state_delete
    AFTER DELETE
    ON runs
    REFERENCING OLD TABLE AS old_runs
    FOR EACH STATEMENT
EXECUTE FUNCTION runs_deleted_refresh_job_run_state();

SELECT rebuild_job_run_state();

-- Only the triggers (running as the owner) and the owner may recompute the state; a device role
-- calling the rebuild over millions of runs would be a cheap denial of service.
REVOKE EXECUTE ON FUNCTION refresh_job_run_state(UUID) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION rebuild_job_run_state() FROM PUBLIC;

-- Row-level security (migration 006's model): the triggers write job_run_state as its owner;
-- admins and viewers read every row, a device only its own jobs' (for `status --device` of
-- itself). Nobody else writes it.
ALTER TABLE job_run_state ENABLE ROW LEVEL SECURITY;
CREATE POLICY job_run_state_read ON job_run_state FOR SELECT
    USING ((SELECT fleet_is_admin()) OR (SELECT fleet_is_viewer()) OR EXISTS (
        SELECT 1 FROM backup_jobs j
        WHERE j.id = job_run_state.job_id AND j.device_id = (SELECT fleet_current_device())));
CREATE POLICY job_run_state_admin ON job_run_state FOR ALL
    USING ((SELECT fleet_is_admin()))
    WITH CHECK ((SELECT fleet_is_admin()));
