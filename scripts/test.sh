#!/usr/bin/env bash
# Runs the whole test suite against a private PostgreSQL cluster that this script starts and
# stops, with a PgBouncer (transaction pooling) in front of it for tests/pgbouncer.rs. Needs:
# postgresql (server), pgbouncer, restic, systemd (systemd-analyze), python3 with croniter
# (scripts/install-deps.sh installs them). Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --tests
. scripts/pg.sh
dir=$(mktemp -d /tmp/restic-fleet-test-pg.XXXXXX)
trap 'pgb_stop "$dir/pgbouncer"; pg_stop "$dir"; rm -rf "$dir"' EXIT
pg_start "$dir"
export RESTIC_FLEET_TEST_PG="$PG_URL"
pgb_start "$dir/pgbouncer"
export RESTIC_FLEET_TEST_PGBOUNCER="$PGB_URL"
echo "private PostgreSQL for the tests: $(echo "$PG_URL" | sed 's/:[^:@]*@/@/')"
cargo test --locked "$@"
