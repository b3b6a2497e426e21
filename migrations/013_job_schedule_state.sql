-- Fleet scale, continued (issue 13): what `status` needs of each job's enabled schedules, kept
-- beside its run state by the database itself.
--
-- Whole-fleet `status` read every enabled schedule (100,000 rows for 50,000 jobs) only to fold
-- them into three facts per job: the earliest next run, the cron expressions (for the expected
-- period) and the smallest interval. Reading those rows was a fifth of its time. Triggers on
-- `schedules` now keep the three facts in `job_run_state`, so that schedules written by any
-- client (`schedule add`, `sync` and `run` moving `next_run_at`, plain SQL) keep them right,
-- and `status` reads one row per job.

ALTER TABLE job_run_state
    -- Of the job's enabled schedules: the earliest next_run_at,
    ADD COLUMN next_run_at          TIMESTAMP WITH TIME ZONE,
    -- the distinct cron expressions of its cron schedules (sorted; NULL without any),
    ADD COLUMN cron_expressions     TEXT[],
    -- and the smallest positive interval of its interval schedules.
    ADD COLUMN min_interval_seconds INTEGER;

COMMENT
ON TABLE job_run_state IS 'Per job: newest run, newest finished run, newest success (triggers on runs), and what its enabled schedules say (triggers on schedules); never write it by hand';

-- Recomputes one job's schedule facts. As refresh_job_run_state does, the state row is locked
-- by a statement of its own first, so that two transactions changing schedules of one job
-- recompute one after the other, the second seeing the first's committed rows (READ COMMITTED
-- takes a new snapshot per statement). SECURITY DEFINER: `sync` and `run` move next_run_at
-- with device roles that may not write this table.
CREATE FUNCTION refresh_job_schedule_state(p_job UUID) RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS
$$
BEGIN
    -- A job being deleted (its schedules go by cascade) keeps no state.
    IF NOT EXISTS (SELECT 1 FROM public.backup_jobs WHERE id = p_job) THEN
        RETURN;
    END IF;
    INSERT INTO public.job_run_state (job_id)
    VALUES (p_job)
    ON CONFLICT (job_id) DO UPDATE SET updated_at = NOW();
    UPDATE public.job_run_state s
    SET (next_run_at, cron_expressions, min_interval_seconds) =
            (SELECT min(next_run_at),
                    array_agg(DISTINCT cron_expression ORDER BY cron_expression)
                    FILTER (WHERE schedule_type = 'cron'),
                    min(interval_seconds)
                    FILTER (WHERE schedule_type = 'interval' AND interval_seconds > 0)
             FROM public.schedules
             WHERE job_id = p_job
               AND enabled),
        updated_at = NOW()
    WHERE s.job_id = p_job;
END;
$$;

CREATE FUNCTION schedules_refresh_job_state() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS
$$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM public.refresh_job_schedule_state(OLD.job_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.job_id IS DISTINCT FROM OLD.job_id) THEN
        PERFORM public.refresh_job_schedule_state(NEW.job_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER schedules_job_state_insert_delete
    AFTER INSERT OR DELETE
    ON schedules
    FOR EACH ROW
EXECUTE FUNCTION schedules_refresh_job_state();

-- Only a change of what the facts are made of fires it: recording last_run_at or metadata
-- does not.
CREATE TRIGGER schedules_job_state_update
    AFTER UPDATE
    ON schedules
    FOR EACH ROW
    WHEN ((OLD.job_id, OLD.enabled, OLD.schedule_type, OLD.cron_expression, OLD.interval_seconds,
           OLD.next_run_at)
        IS DISTINCT FROM
          (NEW.job_id, NEW.enabled, NEW.schedule_type, NEW.cron_expression, NEW.interval_seconds,
           NEW.next_run_at))
EXECUTE FUNCTION schedules_refresh_job_state();

-- The rebuild (bulk loads that disabled the triggers, or an admin who doubts the state) now
-- computes the schedule facts too, in the same single pass: migration 008's probes for the run
-- columns, joined with one grouped read of the enabled schedules (one row version per job).
CREATE OR REPLACE FUNCTION rebuild_job_run_state() RETURNS void
    LANGUAGE sql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS
$$
DELETE FROM public.job_run_state;
INSERT INTO public.job_run_state (job_id, last_run_id, last_run_status, last_run_start,
                           last_finished_run_id, last_finished_status, last_finished_start,
                           last_finished_end, last_finished_error, last_finished_metadata,
                           last_success_run_id, last_success_start, last_success_end,
                           next_run_at, cron_expressions, min_interval_seconds)
SELECT j.id, n.id, n.status, n.start_time,
       f.id, f.status, f.start_time, f.end_time, f.error_message, f.metadata,
       s.id, s.start_time, s.done,
       sc.next_run_at, sc.cron_expressions, sc.min_interval_seconds
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
         LEFT JOIN (SELECT job_id,
                           min(next_run_at) AS next_run_at,
                           array_agg(DISTINCT cron_expression ORDER BY cron_expression)
                           FILTER (WHERE schedule_type = 'cron') AS cron_expressions,
                           min(interval_seconds)
                           FILTER (WHERE schedule_type = 'interval' AND interval_seconds > 0)
                               AS min_interval_seconds
                    FROM public.schedules
                    WHERE enabled
                    GROUP BY job_id) sc ON sc.job_id = j.id
WHERE n.id IS NOT NULL
   OR sc.job_id IS NOT NULL;
$$;

SELECT rebuild_job_run_state();

-- As in migration 008: only the triggers (running as the owner) and the owner recompute.
REVOKE EXECUTE ON FUNCTION refresh_job_schedule_state(UUID) FROM PUBLIC;
