-- Ping URLs and repository credentials out of reach of viewers and of other devices.
--
-- A healthchecks-style ping URL is a bearer secret: whoever knows it can ping success over a
-- failing backup, or ping /fail. Row-level security chooses rows, not columns, and viewers and
-- the maintenance owner (migration 009) read every row of backup_jobs, so the URL moves to a
-- table of its own whose policy gives it to admins and to the device that runs the job only.
-- (Column grants would not do: they are per role, and the maintenance owner is a device role
-- like any other.)
CREATE TABLE job_ping_urls
(
    job_id     UUID PRIMARY KEY REFERENCES backup_jobs (id) ON DELETE CASCADE,
    -- The same rule as migration 010's backup_jobs_ping_url_check (job edit checks it first,
    -- run again before use).
    ping_url   TEXT                     NOT NULL
        CONSTRAINT job_ping_urls_ping_url_check
            CHECK (ping_url ~ '^https?://[^[:space:]]+$' AND length(ping_url) <= 2048),
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);

COMMENT ON TABLE job_ping_urls IS 'healthchecks.io-style ping URL per job (URL/start, URL, URL/fail): readable only by admins and the job''s own device';

INSERT INTO job_ping_urls (job_id, ping_url)
SELECT id, ping_url
FROM backup_jobs
WHERE ping_url IS NOT NULL;

-- The old column stays, empty, for clients older than this migration: they still select it and
-- keep running backups (without pinging) until they are upgraded. Nothing may write a URL there
-- again, where every reader of the job would see it; an old `job edit --ping-url` is refused.
UPDATE backup_jobs
SET ping_url = NULL
WHERE ping_url IS NOT NULL;
ALTER TABLE backup_jobs
    ADD CONSTRAINT backup_jobs_ping_url_moved CHECK (ping_url IS NULL);
COMMENT ON COLUMN backup_jobs.ping_url IS 'Unused since migration 012 (always NULL): the ping URL is in job_ping_urls';

-- Migration 006's model. The device check is explicit (not "the job is visible"): the
-- maintenance owner sees every job, but only its own jobs' URLs.
ALTER TABLE job_ping_urls ENABLE ROW LEVEL SECURITY;
CREATE POLICY job_ping_urls_read ON job_ping_urls FOR SELECT
    USING ((SELECT fleet_is_admin()) OR EXISTS (
        SELECT 1 FROM backup_jobs j
        WHERE j.id = job_ping_urls.job_id AND j.device_id = (SELECT fleet_current_device())));
CREATE POLICY job_ping_urls_write ON job_ping_urls FOR ALL
    USING ((SELECT fleet_is_admin()))
    WITH CHECK ((SELECT fleet_is_admin()));

-- Every role reads jobs through a query that looks the URL up here (src/jobs.rs), so each needs
-- SELECT on the table (the policy then hides the rows). `db roles` grants the same
-- (DEVICE_GRANTS); this covers a database whose roles exist already, without waiting for
-- `db roles` to run again, while devices run backups.
DO
$$
    BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'backup_admin') THEN
            GRANT ALL PRIVILEGES ON job_ping_urls TO backup_admin;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'backup_client') THEN
            GRANT SELECT ON job_ping_urls TO backup_client;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'backup_viewer') THEN
            GRANT SELECT ON job_ping_urls TO backup_viewer;
        END IF;
    END
$$;

-- repository_url may hold credentials (rest:https://user:password@host/, a query password):
-- a secret for viewers like the others (migration 006's one list). Devices read it: a backup
-- needs it, as it needs the password and the backend environment.
CREATE OR REPLACE FUNCTION fleet_secret_setting_keys() RETURNS TEXT[]
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS
$$
SELECT ARRAY ['repository_password', 'repository_environment', 'notify_webhook_url', 'notify_ntfy_url',
           'repository_url']::text[]
$$;

ALTER POLICY settings_read ON settings
    USING ((SELECT fleet_is_admin())
        OR ((SELECT fleet_is_viewer()) AND key::text <> ALL (fleet_secret_setting_keys()))
        OR ((SELECT fleet_current_device()) IS NOT NULL
            AND (device_id IS NULL OR device_id = (SELECT fleet_current_device()))
            AND (key::text <> ALL (fleet_secret_setting_keys())
                 OR key::text IN ('repository_url', 'repository_password', 'repository_environment'))));
