-- Many repositories. `repository_url` may be a template ({device_id}, {account_id},
-- {origin_name}, {job_id}); each distinct expanded URL is a repository of the fleet. This table
-- remembers the repositories that have been seen (by `repositories list|init`, `maintain`),
-- who maintains each, and its size as of its last maintenance.
--
-- A repository is known by the SHA-256 of its expanded URL, never by the URL: the URL may hold
-- credentials, and viewers (who read every table) must not read it. Admin commands compute the
-- URLs from the settings and match them by fingerprint.
CREATE TABLE repositories
(
    id                   SERIAL PRIMARY KEY,
    fingerprint          CHAR(64)                 NOT NULL UNIQUE CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    -- The one device that writes and maintains it; NULL: shared, maintained by the global
    -- maintenance_device.
    maintainer_device_id VARCHAR(255) REFERENCES devices (id) ON DELETE SET NULL,
    snapshot_count       INTEGER CHECK (snapshot_count >= 0),
    total_size           BIGINT CHECK (total_size >= 0),
    counted_at           TIMESTAMP WITH TIME ZONE CHECK (fleet_sane_time(counted_at)),
    created_at           TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at           TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);

COMMENT ON TABLE repositories IS 'restic repositories of the fleet, by the SHA-256 of their expanded URL; maintainer and size as of the last maintenance';

-- Each maintenance step belongs to the repository it maintained (NULL: before this migration,
-- the one shared repository).
ALTER TABLE maintenance_runs
    ADD COLUMN repository_id INTEGER REFERENCES repositories (id) ON DELETE SET NULL;
CREATE INDEX idx_maintenance_runs_repository ON maintenance_runs (repository_id, step, start_time DESC);

INSERT INTO settings (device_id, key, value, description)
VALUES (NULL, 'repository_snapshot_warning', '20000',
        'status warns when a repository holds more snapshots than this (restic reads every snapshot on every backup): split it with a per-device URL template ({device_id})')
ON CONFLICT DO NOTHING;

-- Whether the session's login (not the owner a SECURITY DEFINER function runs as, a superuser
-- that is a member of every role) is a member of `grp`: the functions below run as their owner,
-- where fleet_is_admin() would count every device as an admin.
CREATE FUNCTION fleet_session_member_of(grp TEXT) RETURNS BOOLEAN
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS
$$
SELECT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = grp AND pg_has_role(session_user, r.oid, 'MEMBER'))
$$;

-- True when the session's device maintains repository `repo`: it is the repository's
-- maintainer, or the repository is shared and the device is the maintenance owner.
CREATE FUNCTION fleet_maintains_repository(repo INTEGER) RETURNS BOOLEAN
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS
$$
SELECT public.fleet_current_device() IS NOT NULL
   AND EXISTS (SELECT 1 FROM public.repositories r
               WHERE r.id = repo
                 AND (r.maintainer_device_id = public.fleet_current_device()
                      OR (r.maintainer_device_id IS NULL AND public.fleet_is_maintenance_owner())))
$$;

-- A device registers the repository it is about to maintain and gets its id. It may register
-- its own repository (maintainer = itself) or, as maintenance owner, a shared one. A row that
-- another device maintains is never taken over by a device: only an admin can hand it on, so a
-- device cannot fake the health of a repository it does not write.
CREATE FUNCTION fleet_register_repository(p_fingerprint TEXT, p_shared BOOLEAN) RETURNS INTEGER
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

-- The devices with a repository_url of their own: their jobs are not in the shared
-- repositories, which the maintenance owner must know without reading those settings (they are
-- the devices' secrets).
CREATE FUNCTION fleet_devices_with_own_repository() RETURNS SETOF TEXT
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

REVOKE EXECUTE ON FUNCTION fleet_register_repository(TEXT, BOOLEAN) FROM PUBLIC;
DO
$$
    BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'backup_client') THEN
            GRANT EXECUTE ON FUNCTION fleet_register_repository(TEXT, BOOLEAN) TO backup_client;
            GRANT SELECT, UPDATE (snapshot_count, total_size, counted_at, updated_at)
                ON repositories TO backup_client;
            GRANT INSERT (repository_id) ON maintenance_runs TO backup_client;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'backup_admin') THEN
            GRANT ALL PRIVILEGES ON repositories TO backup_admin;
            GRANT ALL PRIVILEGES ON SEQUENCE repositories_id_seq TO backup_admin;
            GRANT EXECUTE ON FUNCTION fleet_register_repository(TEXT, BOOLEAN) TO backup_admin;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'backup_viewer') THEN
            GRANT SELECT ON repositories TO backup_viewer;
        END IF;
    END
$$;

ALTER TABLE repositories ENABLE ROW LEVEL SECURITY;
CREATE POLICY repositories_read ON repositories FOR SELECT
    USING ((SELECT fleet_is_admin()) OR (SELECT fleet_is_viewer())
        OR maintainer_device_id = (SELECT fleet_current_device())
        OR (maintainer_device_id IS NULL AND (SELECT fleet_is_maintenance_owner())));
CREATE POLICY repositories_update ON repositories FOR UPDATE
    USING ((SELECT fleet_is_admin())
        OR maintainer_device_id = (SELECT fleet_current_device())
        OR (maintainer_device_id IS NULL AND (SELECT fleet_is_maintenance_owner())))
    WITH CHECK ((SELECT fleet_is_admin())
        OR maintainer_device_id = (SELECT fleet_current_device())
        OR (maintainer_device_id IS NULL AND (SELECT fleet_is_maintenance_owner())));
CREATE POLICY repositories_admin ON repositories FOR ALL
    USING ((SELECT fleet_is_admin()))
    WITH CHECK ((SELECT fleet_is_admin()));

-- A device records steps of the repositories it maintains; rows without a repository stay the
-- maintenance owner's (the one shared repository, as before).
DROP POLICY maintenance_runs_insert ON maintenance_runs;
DROP POLICY maintenance_runs_update ON maintenance_runs;
CREATE POLICY maintenance_runs_insert ON maintenance_runs FOR INSERT
    WITH CHECK ((SELECT fleet_is_admin())
        OR (device_id = (SELECT fleet_current_device())
            AND CASE WHEN repository_id IS NULL THEN (SELECT fleet_is_maintenance_owner())
                     ELSE fleet_maintains_repository(repository_id) END));
CREATE POLICY maintenance_runs_update ON maintenance_runs FOR UPDATE
    USING ((SELECT fleet_is_admin())
        OR (device_id = (SELECT fleet_current_device())
            AND CASE WHEN repository_id IS NULL THEN (SELECT fleet_is_maintenance_owner())
                     ELSE fleet_maintains_repository(repository_id) END))
    WITH CHECK ((SELECT fleet_is_admin())
        OR (device_id = (SELECT fleet_current_device())
            AND CASE WHEN repository_id IS NULL THEN (SELECT fleet_is_maintenance_owner())
                     ELSE fleet_maintains_repository(repository_id) END));
