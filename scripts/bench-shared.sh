#!/usr/bin/env bash
# A fleet in one shared repository, with real restic and PostgreSQL: `restic-fleet maintain` of
# that repository, and a device's backup into a repository of its own beside it. Not part of CI.
#
#   scripts/bench-shared.sh [--jobs N] [--count N] [--bin PATH] [--keep DIR]
#
# A private PostgreSQL holds N jobs (default 50,000) on 10,000 devices, each with the same
# retention policy (keep-last 1), and a maintenance device; the shared repository holds
# --count snapshots (default 100,000: two a job), written by scripts/bench/snapshots.py with
# the repository's own key (scripts/bench-repositories.sh --prepare-shared). Then one
# `restic-fleet maintain --json` on the maintenance device, with a `restic` on PATH that logs
# each command and execs the real one. Prints the wall time, each step's time, how many
# restic processes of each kind ran, and the snapshots left; and `restic check`'s verdict on
# the repository afterwards. Then `restic-fleet run` of a device with a repository of its own
# in that fleet against the same in an empty fleet (interleaved, median, ratio). About 4
# minutes on a quiet 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=50000 count=100000 bin="" keep=""
while [ $# -gt 0 ]; do
  case $1 in
    --jobs) jobs=$2; shift ;;
    --count) count=$2; shift ;;
    --bin) bin=$2; shift ;;
    --keep) keep=$2; shift ;;
    *) echo "unknown argument $1; see the header of $0" >&2; exit 2 ;;
  esac
  shift
done
scripts/install-deps.sh
[ -n "$bin" ] || bin=$(scripts/release-bin.sh)
bin=$(realpath "$bin")
. scripts/pg.sh
dir=${keep:-$(mktemp -d /tmp/restic-fleet-bench-shared.XXXXXX)}
mkdir -p "$dir"
chmod 755 "$dir"  # the cluster runs as postgres when we are root
trap 'pg_stop "$dir/pg"; [ -n "$keep" ] || rm -rf "$dir"' EXIT
pg_start "$dir/pg"
psql -qX "$PG_URL" -c "CREATE DATABASE bench" >/dev/null
url=${PG_URL%/*}/bench
"$bin" db migrate --database-url "$url" >/dev/null
echo "machine: $(nproc) cores (load average $(cut -d' ' -f1-3 /proc/loadavg)); restic $(restic version | awk '{print $2}')"

start=$(date +%s)
scripts/bench-repositories.sh --prepare-shared "$dir/shared" --jobs "$jobs" --count "$count" \
  --versions "$(restic version | awk '{print $2}' | cut -d. -f1-2)" >"$dir/prepare.log"
echo "repository of $count snapshots over $jobs jobs written in $(($(date +%s) - start)) s"

# The fleet: every device and job of the manifest, one retention policy, the maintenance device.
psql -qX -v ON_ERROR_STOP=1 "$url" >/dev/null <<SQL
CREATE TEMP TABLE manifest (job_id UUID, device_id TEXT, snapshots INTEGER);
\copy manifest FROM '$dir/shared/manifest.csv' WITH (FORMAT csv, HEADER true)
INSERT INTO devices (id, name, platform) SELECT DISTINCT device_id, device_id, 'linux' FROM manifest;
INSERT INTO devices (id, name, platform) VALUES ('maint', 'maint', 'linux');
INSERT INTO backup_jobs (id, device_id, name, source_paths)
  SELECT job_id, device_id, 'job-' || job_id, ARRAY['/srv'] FROM manifest;
INSERT INTO job_retention (job_id, keep_last) SELECT job_id, 1 FROM manifest;
UPDATE settings SET value = '$dir/shared/repo' WHERE device_id IS NULL AND key = 'repository_url';
UPDATE settings SET value = 'bench' WHERE device_id IS NULL AND key = 'repository_password';
UPDATE settings SET value = 'maint' WHERE device_id IS NULL AND key = 'maintenance_device';
SQL

# restic as maintain starts it, each command logged.
mkdir -p "$dir/bin"
real=$(command -v restic)
printf '#!/bin/sh\necho "$1" >>%s\nexec %s "$@"\n' "$dir/restic.log" "$real" >"$dir/bin/restic"
chmod 755 "$dir/bin/restic"
export RESTIC_FLEET_CONFIG=$dir/config.toml RESTIC_FLEET_STATE_DIR=$dir/state RESTIC_FLEET_LOG=warn
"$bin" init --database-url "$url" --device-id maint >/dev/null
: >"$dir/restic.log"
t0=$(date +%s%N)
PATH="$dir/bin:$PATH" "$bin" maintain --json >"$dir/maintain.json" 2>"$dir/maintain.err" || {
  echo "maintain failed ($?):" >&2; tail -5 "$dir/maintain.err" >&2; exit 1; }
wall=$((($(date +%s%N) - t0) / 1000000))
python3 - "$dir/maintain.json" "$dir/restic.log" "$wall" <<'PY'
import collections, datetime, json, sys
report = json.load(open(sys.argv[1]))
counts = collections.Counter(l.strip() for l in open(sys.argv[2]))
print(f"maintain --json: {int(sys.argv[3]) / 1000:.1f} s wall, "
      f"{sum(counts.values())} restic processes ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})")
for repo in report.get("repositories", []):
    print(f"repository {repo.get('label')}: snapshots left {repo.get('snapshot_count')}, "
          f"forget processes {repo.get('forget_processes')}")
    for s in repo.get("steps", []):
        print(f"  {s['step']:7} {s['status']:8} removed {s.get('snapshots_removed')}")
PY
psql -qAtX "$url" -c "SELECT step, round(extract(epoch FROM end_time - start_time)::numeric, 1) || ' s' \
  FROM maintenance_runs ORDER BY id" | sed 's/|/ took /; s/^/  step /'
if RESTIC_REPOSITORY=$dir/shared/repo RESTIC_PASSWORD=bench restic check --no-cache >/dev/null 2>&1; then
  echo "restic check afterwards: no errors"
else
  echo "restic check afterwards: FAILED" >&2; exit 1
fi

# A device's backup into a repository of its own while the fleet's 100,000 snapshots sit in
# the shared repository beside it (same cache directory, same database), against the same
# backup by a device in an empty fleet (a database and a repository with nothing else):
# `restic-fleet run`, interleaved, median and ratio.
mkdir -p "$dir/src"
for i in $(seq 2000); do echo "file $i of the benchmark's device" >"$dir/src/f$((i % 20))-$i"; done
psql -qX "$PG_URL" -c "CREATE DATABASE empty" >/dev/null
empty_url=${PG_URL%/*}/empty
"$bin" db migrate --database-url "$empty_url" >/dev/null
own_device() {  # $1 database URL, $2 config, $3 repository
  RESTIC_FLEET_CONFIG=$2 "$bin" init --database-url "$1" --device-id own-dev >/dev/null
  RESTIC_FLEET_CONFIG=$2 "$bin" settings set repository_url "$3" --device own-dev >/dev/null
  echo bench | RESTIC_FLEET_CONFIG=$2 "$bin" settings set repository_password - --device own-dev >/dev/null
  RESTIC_FLEET_CONFIG=$2 "$bin" job add --device own-dev --name data --path "$dir/src" --json |
    python3 -c 'import json, sys; d = json.load(sys.stdin); print(d.get("id") or d.get("job_id"))'
  RESTIC_REPOSITORY=$3 RESTIC_PASSWORD=bench restic init -q >/dev/null
}
fleet_job=$(own_device "$url" "$dir/fleet-own.toml" "$dir/own-in-fleet")
empty_job=$(own_device "$empty_url" "$dir/empty-own.toml" "$dir/own-in-empty")
one_run() {  # $1 config, $2 job: prints ms
  local t=$(date +%s%N)
  RESTIC_FLEET_CONFIG=$1 RESTIC_FLEET_STATE_DIR=$1.state "$bin" run "$2" >/dev/null 2>&1 ||
    { echo "run failed" >&2; exit 1; }
  echo $((($(date +%s%N) - t) / 1000000))
}
for c in fleet empty; do  # the first backups, not measured: the rest are incremental
  cfg=$dir/$c-own.toml; j=${c}_job; one_run "$cfg" "${!j}" >/dev/null; one_run "$cfg" "${!j}" >/dev/null
done
: >"$dir/own.txt"
for _ in $(seq 11); do
  echo "$(one_run "$dir/empty-own.toml" "$empty_job") $(one_run "$dir/fleet-own.toml" "$fleet_job")" >>"$dir/own.txt"
done
python3 - "$dir/own.txt" <<'PY'
import statistics, sys
pairs = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
empty, fleet = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
ratio = statistics.median(f / e for e, f in pairs)
print(f"run into its own repository beside 100,000 snapshots: {fleet:.0f} ms; in an empty fleet: "
      f"{empty:.0f} ms; ratio {ratio:.3f} (median of {len(pairs)} interleaved pairs; target <= 1.1)")
PY
