-- Exactly-once run records (issue 10): every run carries an id its client chose when the run
-- started. A record spooled while the database was away is delivered with
-- INSERT ... ON CONFLICT (client_run_id) DO NOTHING, so delivering it twice (a crash between
-- the insert and the removal of the spool file) never makes two rows. Rows written before
-- this migration keep NULL, which a unique constraint allows any number of times.
ALTER TABLE runs ADD COLUMN client_run_id UUID;
ALTER TABLE runs ADD CONSTRAINT runs_client_run_id_key UNIQUE (client_run_id);

COMMENT ON COLUMN runs.client_run_id IS
    'Id chosen by the client when the run started; delivery of a spooled record is idempotent on it';
