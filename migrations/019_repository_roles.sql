-- fleet_register_repository and fleet_devices_with_own_repository run as their owner
-- (SECURITY DEFINER), where fleet_is_admin() and fleet_is_viewer() ask about the owner, a
-- superuser that is a member of every role: every device counted as an admin, so any device
-- could register, or take over, any repository. They ask about the session's login instead.
CREATE FUNCTION fleet_session_member_of(grp TEXT) RETURNS BOOLEAN
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS
$$
SELECT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = grp AND pg_has_role(session_user, r.oid, 'MEMBER'))
$$;

CREATE OR REPLACE FUNCTION fleet_register_repository(p_fingerprint TEXT, p_shared BOOLEAN) RETURNS INTEGER
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS
$$
DECLARE
    me       TEXT := public.fleet_current_device();
    admin    BOOLEAN := public.fleet_session_member_of('backup_admin');
    wanted   TEXT := CASE WHEN p_shared THEN NULL ELSE me END;
    row      public.repositories%ROWTYPE;
BEGIN
    IF NOT admin AND me IS NULL THEN
        RAISE EXCEPTION 'only a device or an admin registers a repository';
    END IF;
    IF p_shared AND NOT admin AND NOT public.fleet_is_maintenance_owner() THEN
        RAISE EXCEPTION 'only the maintenance_device maintains a shared repository';
    END IF;
    INSERT INTO public.repositories (fingerprint, maintainer_device_id)
    VALUES (p_fingerprint, wanted)
    ON CONFLICT (fingerprint) DO NOTHING;
    SELECT * INTO row FROM public.repositories WHERE fingerprint = p_fingerprint;
    IF row.maintainer_device_id IS DISTINCT FROM wanted THEN
        IF NOT admin THEN
            RAISE EXCEPTION 'repository % is maintained by %, not by this device',
                left(p_fingerprint, 12), coalesce(row.maintainer_device_id, 'the maintenance_device');
        END IF;
        UPDATE public.repositories SET maintainer_device_id = wanted, updated_at = NOW()
        WHERE id = row.id;
    END IF;
    RETURN row.id;
END
$$;

CREATE OR REPLACE FUNCTION fleet_devices_with_own_repository() RETURNS SETOF TEXT
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS
$$
SELECT s.device_id::TEXT
FROM public.settings s
WHERE s.device_id IS NOT NULL AND s.key = 'repository_url' AND s.value <> ''
  AND (public.fleet_session_member_of('backup_admin') OR public.fleet_session_member_of('backup_viewer')
    OR public.fleet_is_maintenance_owner())
$$;
