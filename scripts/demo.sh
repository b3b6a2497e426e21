#!/usr/bin/env bash
# The demo: installs what is missing (PostgreSQL server, restic), starts a private PostgreSQL
# cluster in .demo/, creates a local restic repository and a demo job, runs it, shows the run
# recorded in the database, and shows what `sync` installs for the job (into .demo/units, with
# the timer's next fire times). Everything lives in .demo/ and can be deleted afterwards.
# --bin PATH runs the demo with that binary (an installed package's) instead of building one.
set -euo pipefail
bin=
if [ "${1:-}" = --bin ] && [ -n "${2:-}" ]; then
  bin=$2
elif [ $# -gt 0 ]; then
  echo "usage: scripts/demo.sh [--bin PATH]" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
root=$PWD
demo=$root/.demo
scripts/install-deps.sh
. scripts/pg.sh

if [ -z "$bin" ]; then
  echo "== building restic-fleet"
  cargo build --locked --quiet
  bin=$(scripts/target-dir.sh)/debug/restic-fleet
fi
echo "== restic-fleet: $bin ($("$bin" --version))"
rf() { "$bin" --config "$demo/config.toml" "$@"; }

rm -rf "$demo"
mkdir -p "$demo/data/documents" "$demo/units"
trap 'pg_stop "$demo/pg"' EXIT
echo "== starting a private PostgreSQL in .demo/pg"
pg_start "$demo/pg"
psql_bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/psql | sort -V | tail -n 1)")/psql
"$psql_bin" -q "$PG_URL" -c "CREATE DATABASE backup_control"
db_url="${PG_URL%/*}/backup_control"

echo "== creating a restic repository in .demo/repo"
head -c 24 /dev/urandom | base64 > "$demo/repo-password"
chmod 600 "$demo/repo-password"
RESTIC_PASSWORD_FILE="$demo/repo-password" restic init --quiet --repo "$demo/repo"
for i in 1 2 3; do echo "demo file $i, $(date)" > "$demo/data/documents/file$i.txt"; done

echo "== enrolling this machine as device 'demo'"
rf init --database-url "$db_url" --device-id demo --name "Demo machine"
rf settings set repository_url "$demo/repo"
rf settings set repository_password - < "$demo/repo-password"
rf settings set timezone UTC

echo "== adding a job with a daily schedule"
job=$(rf job add --device demo --name documents --path "$demo/data/documents" --exclude '*.tmp')
rf schedule add "$job" --cron "30 2 * * *"
echo "job id: $job"

echo "== running the job"
rf run "$job"

echo "== the run, read back from the database"
"$psql_bin" "$db_url" -c "SELECT id, status, exit_code, snapshot_id, files_new, data_added_bytes, duration_seconds, triggered_by FROM runs"
echo "== what sync installs for the demo job (into .demo/units; systemd is not running here)"
rf sync --unit-dir "$demo/units" || true
timer="$demo/units/restic-fleet-job-$job.timer"
cat "$timer"
echo "== the timer's next fire times, from systemd's own calendar engine"
grep '^OnCalendar=' "$timer" | cut -d= -f2- | while read -r spec; do
  systemd-analyze calendar --iterations=3 "$spec" | grep -E 'Original|Next elapse|Iter'
done
echo "== status of the fleet (sync has heartbeated the device)"
rf status
echo "== demo complete: the backup ran and is recorded in the database (state in .demo/)"
