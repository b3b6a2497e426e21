#!/usr/bin/env bash
# Runs the whole test suite against a private PostgreSQL cluster that this script starts and
# stops, with a PgBouncer (transaction pooling) in front of it for tests/pgbouncer.rs. Needs:
# postgresql (server), pgbouncer, restic, systemd (systemd-analyze), python3 with croniter
# (scripts/install-deps.sh installs them). Extra arguments go to `cargo test`. Every test binary
# runs even when an earlier one fails; the end prints the total over all of them and the exit
# status is non-zero when anything failed.
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
status=0
cargo test --locked --no-fail-fast "$@" | tee "$dir/cargo-test.log" || status=$?
# One `test result:` line per test binary (and doc tests): sum them.
awk '/^test result:/ {
       for (i = 2; i <= NF; i++) { word = $i; sub(/;$/, "", word); n[word] += $(i - 1) }
       binaries++
     }
     END { printf "total over %d test binaries: %d passed, %d failed, %d ignored\n",
                  binaries, n["passed"], n["failed"], n["ignored"] }' "$dir/cargo-test.log"
if [ "$status" -ne 0 ]; then
  echo "FAILED: cargo test exited with status $status (see the failures above)" >&2
fi
exit "$status"
