#!/usr/bin/env bash
# Runs the whole test suite against a private PostgreSQL cluster that this script starts and
# stops, with a PgBouncer (transaction pooling) in front of it for tests/pgbouncer.rs. Needs:
# postgresql (server), pgbouncer, restic, systemd (systemd-analyze), python3 with croniter
# (scripts/install-deps.sh installs them). Extra arguments go to `cargo test`. Every test binary
# runs even when an earlier one fails; the exit status is non-zero when anything failed.
#
# The tests run once per restic version in RESTIC_VERSIONS (default "0.14 0.18 0.19"; e.g.
# RESTIC_VERSIONS=0.19 for the newest alone), with that version first on PATH: the first pass
# runs everything, the later ones only the test binaries that run restic (RESTIC_TESTS). With
# extra arguments, every pass runs those. A summary per version closes the output.
# and the total over all passes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --tests
. scripts/pg.sh
. scripts/restic.sh
dir=$(mktemp -d /tmp/restic-fleet-test-pg.XXXXXX)
trap 'pgb_stop "$dir/pgbouncer"; pg_stop "$dir"; rm -rf "$dir"' EXIT
pg_start "$dir"
export RESTIC_FLEET_TEST_PG="$PG_URL"
pgb_start "$dir/pgbouncer"
export RESTIC_FLEET_TEST_PGBOUNCER="$PGB_URL"
echo "private PostgreSQL for the tests: $(echo "$PG_URL" | sed 's/:[^:@]*@/@/')"

# The test binaries that start restic (directly or through restic-fleet), found by running the
# suite with a `restic` on PATH that logged which test binary its ancestors were.
RESTIC_TESTS=(admin_roles admin_status fleet_scale maintenance monitoring offline papercuts
  pgbouncer quickstart relica_migrate repositories repository_templates restic_environment run
  schema security sync task_schema terminal_safety unattended)

summary=()
status=0
pass=0
for v in ${RESTIC_VERSIONS:-0.14 0.18 0.19}; do
  bin=$(restic_dir "$v")
  if [ $# -gt 0 ]; then
    args=("$@")
  elif [ $pass = 0 ]; then
    args=()
  else
    args=()
    for t in "${RESTIC_TESTS[@]}"; do args+=(--test "$t"); done
  fi
  pass=$((pass + 1))
  full=$(restic_version_of "$bin/restic")
  echo "=== restic $full ($bin/restic) ==="
  log="$dir/restic-$v.log"
  rc=0
  PATH="$bin:$PATH" cargo test --locked --no-fail-fast "${args[@]}" 2>&1 | tee "$log" || rc=$?
  # One `test result:` line per test binary (and doc tests): sum them.
  counts=$(awk '/^test result:/ {
      for (i = 2; i <= NF; i++) { word = $i; sub(/;$/, "", word); n[word] += $(i - 1) }
      binaries++
    }
    END { printf "%d passed, %d failed, %d ignored over %d test binaries",
                 n["passed"], n["failed"], n["ignored"], binaries }' "$log")
  failed=$(sed -n 's/^test \(.*\) \.\.\. FAILED$/\1/p' "$log" | tr '\n' ' ')
  [ $rc = 0 ] || status=1
  summary+=("restic $full: $counts${failed:+: $failed}$([ $rc = 0 ] || echo " (cargo test exit $rc)")")
done
echo
echo "=== tests per restic version ==="
printf '%s\n' "${summary[@]}"
cat "$dir"/restic-*.log | awk '/^test result:/ {
    for (i = 2; i <= NF; i++) { word = $i; sub(/;$/, "", word); n[word] += $(i - 1) }
  }
  END { printf "total over all passes: %d passed, %d failed, %d ignored\n", n["passed"], n["failed"], n["ignored"] }'
[ $status = 0 ] || echo "FAILED: some tests failed (see the failures above)" >&2
exit $status
