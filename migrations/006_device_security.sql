-- One machine cannot harm another: per-device roles, row-level security, secret settings.
--
-- Who is who (the roles themselves are cluster objects made by `restic-fleet db roles` and
-- `restic-fleet device enroll`, which may run after this migration, so no policy names a role;
-- every policy is for PUBLIC and asks these functions instead):
--   * an admin: a member of backup_admin (superusers and the tables' owner bypass row-level
--     security anyway);
--   * a viewer: a member of backup_viewer: reads everything except secret settings;
--   * a device: a login role listed in device_roles (a member of the group backup_client): sees
--     and writes only its own rows, as the policies below say.
-- What each role may do at all (SELECT/INSERT/UPDATE, column lists) is granted by `db roles`;
-- the policies decide which rows. Both must allow an action.

-- The login role of each enrolled device. Written only by `device enroll` / `device rm`.
CREATE TABLE device_roles
(
    device_id  VARCHAR(255) PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    role_name  TEXT                     NOT NULL UNIQUE,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    rotated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);

COMMENT
ON TABLE device_roles IS 'PostgreSQL login role of each enrolled device (restic-fleet device enroll)';

-- The device id of the session's role, NULL for every role that is not an enrolled device.
-- session_user, not current_user: inside a SECURITY DEFINER function (this one, or a trigger
-- that maintains derived state) current_user is the function's owner, while session_user stays
-- the role that logged in. Only a superuser can change session_user.
CREATE FUNCTION fleet_current_device() RETURNS TEXT
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS
$$
SELECT device_id::text
FROM public.device_roles
WHERE role_name = session_user::text
$$;

COMMENT
ON FUNCTION fleet_current_device() IS 'Device id of the session''s role (device_roles), NULL for non-device roles; use it in row-level security policies';

-- Membership in a group role that may not exist yet (db roles creates it).
CREATE FUNCTION fleet_member_of(grp TEXT) RETURNS BOOLEAN
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS
$$
SELECT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = grp AND pg_has_role(current_user, r.oid, 'MEMBER'))
$$;

CREATE FUNCTION fleet_is_admin() RETURNS BOOLEAN
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS
$$
SELECT public.fleet_member_of('backup_admin')
$$;

CREATE FUNCTION fleet_is_viewer() RETURNS BOOLEAN
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS
$$
SELECT public.fleet_member_of('backup_viewer')
$$;

-- THE list of secret settings, shared by SQL (the viewer policy below) and the client (which
-- masks these keys in output; src/settings.rs reads this function). A later secret setting is
-- added by a later migration with CREATE OR REPLACE FUNCTION, never by editing this one.
CREATE FUNCTION fleet_secret_setting_keys() RETURNS TEXT[]
    LANGUAGE sql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS
$$
SELECT ARRAY ['repository_password', 'repository_environment']::text[]
$$;

COMMENT
ON FUNCTION fleet_secret_setting_keys() IS 'Keys of secret settings: masked in output, never readable by backup_viewer';

-- Views run with the querying role's rights, so row-level security applies through them
-- (by default a view runs as its owner, who bypasses it).
ALTER VIEW latest_runs SET (security_invoker = true);
ALTER VIEW job_summary SET (security_invoker = true);

ALTER TABLE devices ENABLE ROW LEVEL SECURITY;
ALTER TABLE backup_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE schedules ENABLE ROW LEVEL SECURITY;
ALTER TABLE runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE device_roles ENABLE ROW LEVEL SECURITY;

-- The function calls are wrapped in (SELECT ...) so that each is evaluated once per statement,
-- not once per row.

-- devices: a device reads and updates its own row (the columns it may update are granted by
-- db roles: heartbeat and identity only); `init` upserts it, so it may also "insert" its own id,
-- which exists already and turns into the update.
CREATE POLICY devices_read ON devices FOR SELECT
    USING ((SELECT fleet_is_admin()) OR (SELECT fleet_is_viewer()) OR id = (SELECT fleet_current_device()));
CREATE POLICY devices_insert ON devices FOR INSERT
    WITH CHECK ((SELECT fleet_is_admin()) OR id = (SELECT fleet_current_device()));
CREATE POLICY devices_update ON devices FOR UPDATE
    USING ((SELECT fleet_is_admin()) OR id = (SELECT fleet_current_device()))
    WITH CHECK ((SELECT fleet_is_admin()) OR id = (SELECT fleet_current_device()));
CREATE POLICY devices_delete ON devices FOR DELETE
    USING ((SELECT fleet_is_admin()));

-- backup_jobs: a device reads its own jobs and writes none.
CREATE POLICY jobs_read ON backup_jobs FOR SELECT
    USING ((SELECT fleet_is_admin()) OR (SELECT fleet_is_viewer()) OR device_id = (SELECT fleet_current_device()));
CREATE POLICY jobs_insert ON backup_jobs FOR INSERT
    WITH CHECK ((SELECT fleet_is_admin()));
CREATE POLICY jobs_update ON backup_jobs FOR UPDATE
    USING ((SELECT fleet_is_admin()))
    WITH CHECK ((SELECT fleet_is_admin()));
CREATE POLICY jobs_delete ON backup_jobs FOR DELETE
    USING ((SELECT fleet_is_admin()));

-- schedules: a device reads its own jobs' schedules and updates them (db roles grants only
-- last_run_at, next_run_at and updated_at).
CREATE POLICY schedules_read ON schedules FOR SELECT
    USING ((SELECT fleet_is_admin()) OR (SELECT fleet_is_viewer()) OR EXISTS (
        SELECT 1 FROM backup_jobs j WHERE j.id = schedules.job_id AND j.device_id = (SELECT fleet_current_device())));
CREATE POLICY schedules_insert ON schedules FOR INSERT
    WITH CHECK ((SELECT fleet_is_admin()));
CREATE POLICY schedules_update ON schedules FOR UPDATE
    USING ((SELECT fleet_is_admin()) OR EXISTS (
        SELECT 1 FROM backup_jobs j WHERE j.id = schedules.job_id AND j.device_id = (SELECT fleet_current_device())))
    WITH CHECK ((SELECT fleet_is_admin()) OR EXISTS (
        SELECT 1 FROM backup_jobs j WHERE j.id = schedules.job_id AND j.device_id = (SELECT fleet_current_device())));
CREATE POLICY schedules_delete ON schedules FOR DELETE
    USING ((SELECT fleet_is_admin()));

-- runs: a device reads its own runs, inserts runs of its own jobs for itself, and updates its own
-- runs (closing stale ones included); it deletes none.
CREATE POLICY runs_read ON runs FOR SELECT
    USING ((SELECT fleet_is_admin()) OR (SELECT fleet_is_viewer()) OR device_id = (SELECT fleet_current_device()));
CREATE POLICY runs_insert ON runs FOR INSERT
    WITH CHECK ((SELECT fleet_is_admin()) OR (device_id = (SELECT fleet_current_device()) AND EXISTS (
        SELECT 1 FROM backup_jobs j WHERE j.id = runs.job_id AND j.device_id = runs.device_id)));
CREATE POLICY runs_update ON runs FOR UPDATE
    USING ((SELECT fleet_is_admin()) OR device_id = (SELECT fleet_current_device()))
    WITH CHECK ((SELECT fleet_is_admin()) OR (device_id = (SELECT fleet_current_device()) AND EXISTS (
        SELECT 1 FROM backup_jobs j WHERE j.id = runs.job_id AND j.device_id = runs.device_id)));
CREATE POLICY runs_delete ON runs FOR DELETE
    USING ((SELECT fleet_is_admin()));

-- settings: a device reads the global rows and its own (secrets included: it needs the
-- repository password); a viewer reads every row that is not a secret; only admins write.
CREATE POLICY settings_read ON settings FOR SELECT
    USING ((SELECT fleet_is_admin())
        OR ((SELECT fleet_is_viewer()) AND key::text <> ALL (fleet_secret_setting_keys()))
        OR ((SELECT fleet_current_device()) IS NOT NULL
            AND (device_id IS NULL OR device_id = (SELECT fleet_current_device()))));
CREATE POLICY settings_insert ON settings FOR INSERT
    WITH CHECK ((SELECT fleet_is_admin()));
CREATE POLICY settings_update ON settings FOR UPDATE
    USING ((SELECT fleet_is_admin()))
    WITH CHECK ((SELECT fleet_is_admin()));
CREATE POLICY settings_delete ON settings FOR DELETE
    USING ((SELECT fleet_is_admin()));

-- device_roles: admins only (fleet_current_device() reads it as its owner).
CREATE POLICY device_roles_admin ON device_roles FOR ALL
    USING ((SELECT fleet_is_admin()))
    WITH CHECK ((SELECT fleet_is_admin()));

