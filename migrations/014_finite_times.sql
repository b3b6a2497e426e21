-- Times a device (or anyone) can write are finite and within years 1900..9999: the client's
-- timestamp type cannot hold 'infinity' nor years past 262143, and reading such a value would
-- end every query that meets the row. Rows already out of range are put right first (an
-- unknown time becomes NULL, a required one the row's creation time or now).

CREATE OR REPLACE FUNCTION fleet_sane_time(t TIMESTAMP WITH TIME ZONE) RETURNS BOOLEAN
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT t IS NULL OR (t > '1900-01-01 00:00:00+00' AND t < '10000-01-01 00:00:00+00') $$;

UPDATE devices SET last_seen = NULL WHERE NOT fleet_sane_time(last_seen);
UPDATE devices SET updated_at = NOW() WHERE NOT fleet_sane_time(updated_at);
UPDATE schedules SET last_run_at = NULL WHERE NOT fleet_sane_time(last_run_at);
UPDATE schedules SET next_run_at = NULL WHERE NOT fleet_sane_time(next_run_at);
UPDATE schedules SET updated_at = NOW() WHERE NOT fleet_sane_time(updated_at);
UPDATE runs SET start_time = created_at WHERE NOT fleet_sane_time(start_time);
UPDATE runs SET end_time = NULL WHERE NOT fleet_sane_time(end_time);
UPDATE maintenance_runs SET start_time = NOW() WHERE NOT fleet_sane_time(start_time);
UPDATE maintenance_runs SET end_time = NULL WHERE NOT fleet_sane_time(end_time);

ALTER TABLE devices
    DROP CONSTRAINT IF EXISTS devices_sane_times,
    ADD CONSTRAINT devices_sane_times CHECK (fleet_sane_time(last_seen) AND fleet_sane_time(updated_at));
ALTER TABLE schedules
    DROP CONSTRAINT IF EXISTS schedules_sane_times,
    ADD CONSTRAINT schedules_sane_times
        CHECK (fleet_sane_time(last_run_at) AND fleet_sane_time(next_run_at) AND fleet_sane_time(updated_at));
ALTER TABLE runs
    DROP CONSTRAINT IF EXISTS runs_sane_times,
    ADD CONSTRAINT runs_sane_times CHECK (fleet_sane_time(start_time) AND fleet_sane_time(end_time));
ALTER TABLE maintenance_runs
    DROP CONSTRAINT IF EXISTS maintenance_runs_sane_times,
    ADD CONSTRAINT maintenance_runs_sane_times
        CHECK (fleet_sane_time(start_time) AND fleet_sane_time(end_time));

COMMENT
ON FUNCTION fleet_sane_time(TIMESTAMP WITH TIME ZONE) IS 'True for NULL and for times within years 1900..9999 (never infinity): the CHECK of every time a device writes';
