-- The oldest restic-fleet client that understands this database's schema. A client ignores
-- migrations newer than its own and keeps working, so `status` compares each device's reported
-- client_version with this row and names the devices that need the new package. The client that
-- applies migrations raises the value to its SCHEMA_MIN_CLIENT (src/domain/client_version.rs);
-- no client lowers it. One row, not a setting: it describes the schema, not the fleet's policy.
-- Depends on no other migration's objects.
CREATE TABLE IF NOT EXISTS schema_client_minimum (
    only_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
    min_client_version TEXT NOT NULL CHECK (min_client_version ~ '^[0-9]+\.[0-9]+\.[0-9]+'),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Every version released so far understands the schema up to here.
INSERT INTO schema_client_minimum (min_client_version) VALUES ('0.1.0') ON CONFLICT DO NOTHING;

-- Everyone who runs `status` reads it: devices (their own status), viewers and admins. `db roles`
-- grants the same (DEVICE_GRANTS); this covers roles that exist already.
DO
$$
    BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'backup_admin') THEN
            GRANT ALL PRIVILEGES ON schema_client_minimum TO backup_admin;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'backup_client') THEN
            GRANT SELECT ON schema_client_minimum TO backup_client;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'backup_viewer') THEN
            GRANT SELECT ON schema_client_minimum TO backup_viewer;
        END IF;
    END
$$;
