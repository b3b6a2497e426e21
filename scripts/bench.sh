#!/usr/bin/env bash
# Fleet-scale benchmark. Not part of CI's test run.
#
#   scripts/bench.sh [--full] [--devices N] [--jobs-per-device N] [--runs-per-job N]
#                    [--repeat N] [--syncs N] [--sync-seconds S] [--bin PATH]
#                    [--shape cron+interval|two-cron] [--repositories]
#
# Starts a private PostgreSQL (shared_buffers 1 GB, pg_stat_statements) and a PgBouncer in
# transaction pooling mode in front of it, generates a fleet in SQL (devices with 5 jobs each,
# 2 schedules per job: by default one cron and one interval schedule, `--shape two-cron` two cron
# schedules; one run per job per day), and prints side by side: `run` vs a bare `restic backup
# --json --host --tag` of the same files, both with their default caches (interleaved, median),
# no-op `sync`, `status --json` (whole fleet, in both shapes), `status --device`,
# `runs list --job`, `report --html` (with the time headless Chromium takes to load the page, when
# installed), `cleanup`, N syncs spread over a minute (p50/p99, directly and through
# PgBouncer), with peak RSS, statements and connections per command.
# Default: 200 devices / 1,000 jobs / 100,000 runs, about a minute plus the release build.
# --full: 10,000 devices / 50,000 jobs / 10,000,000 runs and 1,000 syncs (the fleet takes
# several minutes to generate, and about 4 GB of disk).
# --repositories: then the repository figures, with snapshots written with the repository's key
# (about 12 minutes more): scripts/bench-repositories.sh (what a repository's snapshot count
# costs backup, forget and the cache, per restic version) and scripts/bench-shared.sh
# (`maintain` of 50,000 jobs and 100,000 snapshots in one repository; `run` into a device's own
# repository beside it against an empty fleet). Each also runs on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
devices=200 jobs=5 runs=100 repeat=5 syncs=200 sync_seconds=12 bin="" shape=cron+interval
repositories=false
while [ $# -gt 0 ]; do
  case $1 in
    --full) devices=10000 jobs=5 runs=200 syncs=1000 sync_seconds=60 ;;
    --devices) devices=$2; shift ;;
    --jobs-per-device) jobs=$2; shift ;;
    --runs-per-job) runs=$2; shift ;;
    --repeat) repeat=$2; shift ;;
    --syncs) syncs=$2; shift ;;
    --sync-seconds) sync_seconds=$2; shift ;;
    --bin) bin=$2; shift ;;
    --shape) shape=$2; shift ;;
    --repositories) repositories=true ;;
    *) echo "unknown argument $1; see the header of $0" >&2; exit 2 ;;
  esac
  shift
done
scripts/install-deps.sh
[ -n "$bin" ] || bin=$(scripts/release-bin.sh)
. scripts/pg.sh
dir=$(mktemp -d /tmp/restic-fleet-bench.XXXXXX)
chmod 755 "$dir"  # the cluster runs as postgres when we are root
trap 'pgb_stop "$dir/pgbouncer"; pg_stop "$dir/pg"; rm -rf "$dir"' EXIT
PG_EXTRA_OPTS="-c shared_buffers=1GB -c shared_preload_libraries=pg_stat_statements -c log_connections=on -c max_wal_size=4GB" \
  pg_start "$dir/pg"
PGB_POOL_SIZE=20 pgb_start "$dir/pgbouncer"
psql -qX "$PG_URL" -c "CREATE DATABASE bench" >/dev/null
url=${PG_URL%/*}/bench
pgb=${PGB_URL%/*}/bench
psql -qX "$url" -c "CREATE EXTENSION pg_stat_statements" >/dev/null
"$bin" db migrate --database-url "$url" >/dev/null
echo "machine: $(nproc) cores (load average $(cut -d" " -f1-3 /proc/loadavg)), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -sr); restic $(restic version | awk '{print $2}'); $(psql -qAtX "$url" -c 'SHOW server_version')"
echo "generating $devices devices, $((devices * jobs)) jobs, $((devices * jobs * 2)) schedules, $((devices * jobs * runs)) runs..."
start=$(date +%s)
# A fleet that failed to generate would make every figure meaningless: stop at the first error.
if ! psql -qX -v ON_ERROR_STOP=1 "$url" -v devices="$devices" -v jobs_per_device="$jobs" \
  -v runs_per_job="$runs" -v shape="$shape" -f scripts/bench-fleet.sql >"$dir/generate.log" 2>&1; then
  grep -v NOTICE "$dir/generate.log" >&2
  echo "generating the fleet failed" >&2
  exit 1
fi
echo "fleet generated in $(( $(date +%s) - start )) s; runs table $(psql -qAtX "$url" -c "SELECT pg_size_pretty(pg_total_relation_size('runs'))")"
# Measure a settled machine, not the write-back of the gigabytes just generated: until the
# kernel has written them, every fsync (sync's unit files and local copy) waits behind them.
psql -qX "$url" -c "CHECKPOINT" >/dev/null
sync
python3 scripts/bench.py --bin "$bin" --url "$url" --pgb-url "$pgb" --server-log "$dir/pg/server.log" \
  --repeat "$repeat" --syncs "$syncs" --sync-seconds "$sync_seconds" --runs-per-job "$runs" \
  --shape "$shape"
if $repositories; then
  echo
  scripts/bench-repositories.sh
  echo
  scripts/bench-shared.sh --bin "$bin"
fi
