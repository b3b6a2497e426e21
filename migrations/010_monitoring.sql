-- Monitoring (issue 12): per-job pings and hooks, the notifier's memory, and their settings.

-- What a device contacts (ping_url) and executes (hook_*) when it runs the job. Only admins may
-- write these columns: they decide what every device runs. The CHECKs are the last line of the
-- validation that `job edit` does first and `run` does again.
ALTER TABLE backup_jobs
    ADD COLUMN ping_url TEXT
        CONSTRAINT backup_jobs_ping_url_check
            CHECK (ping_url IS NULL OR (ping_url ~ '^https?://[^[:space:]]+$' AND length(ping_url) <= 2048)),
    ADD COLUMN hook_before TEXT
        CONSTRAINT backup_jobs_hook_before_check CHECK (hook_before IS NULL OR hook_before <> ''),
    ADD COLUMN hook_after TEXT
        CONSTRAINT backup_jobs_hook_after_check CHECK (hook_after IS NULL OR hook_after <> ''),
    ADD COLUMN hook_failure TEXT
        CONSTRAINT backup_jobs_hook_failure_check CHECK (hook_failure IS NULL OR hook_failure <> ''),
    ADD COLUMN hook_finally TEXT
        CONSTRAINT backup_jobs_hook_finally_check CHECK (hook_finally IS NULL OR hook_finally <> ''),
    ADD COLUMN hook_before_on_error TEXT NOT NULL DEFAULT 'stop'
        CONSTRAINT backup_jobs_hook_before_on_error_check CHECK (hook_before_on_error IN ('stop', 'continue'));

COMMENT ON COLUMN backup_jobs.ping_url IS 'healthchecks.io-style ping URL: URL/start, URL (success), URL/fail';
COMMENT ON COLUMN backup_jobs.hook_before IS 'Shell command run before the backup (sh -c / cmd /C)';
COMMENT ON COLUMN backup_jobs.hook_after IS 'Shell command run after a successful backup (warnings included)';
COMMENT ON COLUMN backup_jobs.hook_failure IS 'Shell command run after a failed backup';
COMMENT ON COLUMN backup_jobs.hook_finally IS 'Shell command run after every backup';
COMMENT ON COLUMN backup_jobs.hook_before_on_error IS 'stop: a failing before hook fails the run without a backup; continue: back up anyway';

-- What `status --notify` last told each target about each job and device. A row changes only
-- after its target accepted the notification, so a target that was down receives the change on
-- a later call; `status --notify` locks the table for its transaction so that two concurrent
-- calls send each change once. Written and read by admins only (the notifier).
CREATE TABLE notification_state
(
    target      TEXT                     NOT NULL CHECK (target IN ('webhook', 'ntfy')),
    -- 'job:<uuid>' or 'device:<id>'
    subject     TEXT                     NOT NULL,
    -- The last state this target was told: a job verdict, or a device's online/offline.
    state       TEXT                     NOT NULL,
    notified_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    PRIMARY KEY (target, subject)
);

COMMENT ON TABLE notification_state IS 'Last state each notification target was told, per job and device (status --notify)';

INSERT INTO settings (device_id, key, value, description)
VALUES (NULL, 'notify_webhook_url', '',
        'status --notify POSTs a JSON body per change of a job verdict or device state to this URL (empty = off)'),
       (NULL, 'notify_ntfy_url', '',
        'status --notify POSTs a plain-text ntfy message per change to this URL, e.g. https://ntfy.sh/TOPIC (empty = off)'),
       (NULL, 'ping_warning_as_success', 'false',
        'A run that finished with warnings pings the job''s ping URL as a success instead of URL/fail'),
       (NULL, 'hook_timeout_seconds', '300',
        'A job hook still running after this many seconds is killed and counts as failed')
ON CONFLICT DO NOTHING;

-- The notification targets are secrets (whoever knows a webhook URL or an ntfy topic can post
-- to it): masked in output and never readable by viewers (migration 006's one list).
-- STABLE, not IMMUTABLE: the list changes with migrations, and a plan must not keep an old one.
CREATE OR REPLACE FUNCTION fleet_secret_setting_keys() RETURNS TEXT[]
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS
$$
SELECT ARRAY ['repository_password', 'repository_environment', 'notify_webhook_url', 'notify_ntfy_url']::text[]
$$;

-- A device reads the secrets a backup needs (repository password, backend environment) and no
-- other: the notification targets are the admins'.
ALTER POLICY settings_read ON settings
    USING ((SELECT fleet_is_admin())
        OR ((SELECT fleet_is_viewer()) AND key::text <> ALL (fleet_secret_setting_keys()))
        OR ((SELECT fleet_current_device()) IS NOT NULL
            AND (device_id IS NULL OR device_id = (SELECT fleet_current_device()))
            AND (key::text <> ALL (fleet_secret_setting_keys())
                 OR key::text IN ('repository_password', 'repository_environment'))));

-- The notifier's memory is the admins'; viewers may read it; devices never see it.
ALTER TABLE notification_state ENABLE ROW LEVEL SECURITY;
CREATE POLICY notification_state_read ON notification_state FOR SELECT
    USING ((SELECT fleet_is_admin()) OR (SELECT fleet_is_viewer()));
CREATE POLICY notification_state_write ON notification_state FOR ALL
    USING ((SELECT fleet_is_admin()))
    WITH CHECK ((SELECT fleet_is_admin()));
