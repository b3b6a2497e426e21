#!/usr/bin/env bash
# Fault injection for `run`/`sync`: random kill -9s of restic-fleet and of restic,
# PostgreSQL outages (pg_ctl stop -m immediate) before, during and after backups, repeated
# spool delivery, and 20 simultaneous runs with the database up and down. Everything runs
# against a private PostgreSQL and a local restic repository in a temporary directory; the
# figures are printed at the end (each line says what it should be).
#   scripts/faults.sh [KILLS]        (default 30)
# Needs what scripts/test.sh needs (postgresql, restic, python3).
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${1:-30}
cargo build --quiet --locked
BIN=$(scripts/target-dir.sh)/debug/restic-fleet
. scripts/pg.sh

work=$(mktemp -d /tmp/restic-fleet-faults.XXXXXX)
chmod 755 "$work"
cleanup() { pg_stop "$work/pg"; rm -rf "$work"; }
trap cleanup EXIT
pg_start "$work/pg"
PORT=${PG_URL##*:}; PORT=${PORT%%/*}
PGBIN=$(pg_bindir)
pg_down() { pg_as_owner "$PGBIN/pg_ctl" -D "$work/pg/data" -m immediate -w stop >/dev/null; }
pg_up() {
  pg_as_owner "$PGBIN/pg_ctl" -D "$work/pg/data" -l "$work/pg/server.log" -w -t 60 \
    -o "-p $PORT -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" \
    start >/dev/null
}
psql -q "$PG_URL" -c "CREATE DATABASE faults"
DB="postgres://postgres@127.0.0.1:$PORT/faults"
q() { psql -qAt "$DB" -c "$1"; }

export RESTIC_FLEET_CONFIG=$work/config.toml RESTIC_FLEET_STATE_DIR=$work/state
export RESTIC_REPOSITORY=$work/repo RESTIC_PASSWORD=faults-password RESTIC_CACHE_DIR=$work/cache
unset DATABASE_URL RESTIC_FLEET_DEVICE_ID
mkdir -p "$work/bin" "$work/src"
printf '#!/bin/sh\nexit 0\n' >"$work/bin/systemctl"; chmod +x "$work/bin/systemctl"
export PATH="$work/bin:$PATH"
DEVICE=faults-dev
JOB=$(python3 -c 'import uuid; print(uuid.uuid4())')

"$BIN" init --database-url "$DB" --device-id "$DEVICE" >/dev/null
restic init --quiet
"$BIN" settings set repository_url "$RESTIC_REPOSITORY" >/dev/null
printf '%s' "$RESTIC_PASSWORD" | "$BIN" settings set repository_password - >/dev/null
"$BIN" settings set repository_cache_dir "$RESTIC_CACHE_DIR" >/dev/null
"$BIN" job add --device "$DEVICE" --name faults --id "$JOB" --path "$work/src" \
  --restic-args '["--limit-upload=1024"]' >/dev/null
sync_once() {
  "$BIN" sync --no-catch-up --unit-dir "$work/units" >"$work/sync.log" 2>&1 \
    || { echo "sync failed:"; cat "$work/sync.log"; }
}
sync_once
# New data before every backup, so each one uploads about 3 MiB (3 s) and differs.
touch_data() { head -c $((3 * 1024 * 1024)) /dev/urandom >"$work/src/big.bin"; }
# Every record that reaches the spool is copied aside, to be delivered again later.
mkdir -p "$work/spool-copy"
save_spool() { cp "$work/state/spool"/*.json "$work/spool-copy/" 2>/dev/null || true; }
our_restics() { { pgrep -f -- "--tag=backup:$JOB" || true; } | wc -l; }
rand_ms() { python3 -c "import random; print(random.randint($1, $2) / 1000)"; }

echo "== $KILLS random kill -9s (restic-fleet or restic, sometimes with PostgreSQL down)"
kills_client=0; kills_restic=0; attempts=0; locks_seen=0
# A kill that finds its target gone (the backup already ended) does not count; go on until
# KILLS kills have landed.
while [ $((kills_client + kills_restic)) -lt "$KILLS" ] && [ "$attempts" -lt $((KILLS * 3)) ]; do
  attempts=$((attempts + 1))
  touch_data
  outage=$((attempts % 5 == 0))
  [ "$outage" = 1 ] && pg_down
  "$BIN" run "$JOB" >/dev/null 2>&1 &
  client=$!
  if [ $((RANDOM % 2)) = 0 ]; then
    sleep "$(rand_ms 200 3500)"
    kill -9 "$client" 2>/dev/null && kills_client=$((kills_client + 1))
  else
    r=""
    until [ -n "$r" ] || ! kill -0 "$client" 2>/dev/null; do
      r=$(pgrep -P "$client" -f -- "--tag=backup:$JOB" || true); sleep 0.02
    done
    sleep "$(rand_ms 0 2500)"
    [ -n "$r" ] && kill -9 $r 2>/dev/null && kills_restic=$((kills_restic + 1))
  fi
  wait "$client" 2>/dev/null || true
  # Locks a killed restic left behind (each next run's `restic unlock` clears them).
  seen=$(restic list locks --no-lock | grep -c . || true)
  locks_seen=$((locks_seen + seen))
  [ "$outage" = 1 ] && pg_up
done
sleep 5 # restic answers its parent-death signal by removing its lock and exiting
orphans=$(our_restics)
locks_before_sync=$(restic list locks --no-lock | grep -c . || true)
sync_once
running=$(q "SELECT count(*) FROM runs WHERE status = 'running'")
locks_after_kills=$(restic list locks --no-lock | grep -c . || true)

echo "== outages before, during and after backups"
outage_runs=0; outage_ok=0
# Before: the database is down when the run starts.
pg_down
for i in 1 2 3; do
  touch_data; outage_runs=$((outage_runs + 1))
  "$BIN" run "$JOB" >/dev/null 2>&1 && outage_ok=$((outage_ok + 1))
  save_spool
done
pg_up
# During: the database stops while restic works.
for i in 1 2 3; do
  touch_data; outage_runs=$((outage_runs + 1))
  "$BIN" run "$JOB" >/dev/null 2>&1 &
  client=$!
  sleep "$(rand_ms 1500 3000)"
  pg_down
  wait "$client" && outage_ok=$((outage_ok + 1))
  save_spool
  pg_up
done
# After: the database stops as soon as restic has ended, before the run is recorded.
for i in 1 2 3; do
  touch_data; outage_runs=$((outage_runs + 1))
  "$BIN" run "$JOB" >/dev/null 2>&1 &
  client=$!
  until pgrep -P "$client" -f "backup:$JOB" >/dev/null || ! kill -0 "$client" 2>/dev/null; do sleep 0.02; done
  while pgrep -P "$client" -f "backup:$JOB" >/dev/null; do sleep 0.01; done
  pg_down
  wait "$client" && outage_ok=$((outage_ok + 1))
  save_spool
  pg_up
done
count_spool() { find "$work/state/spool" -name '*.json' 2>/dev/null | wc -l; }
spooled=$(find "$work/spool-copy" -name '*.json' | wc -l)
"$BIN" spool deliver >/dev/null || echo "spool deliver left records in the spool"
rows_before=$(q "SELECT count(*) FROM runs")
# Deliver every record a second and a third time (a crash between commit and removal).
for pass in 1 2; do
  cp "$work/spool-copy"/*.json "$work/state/spool/" 2>/dev/null || true
  if [ "$pass" = 1 ]; then "$BIN" spool deliver >/dev/null || echo "spool deliver left records in the spool"; else sync_once; fi
done
rows_after=$(q "SELECT count(*) FROM runs")
duplicates=$(q "SELECT count(*) FROM (SELECT client_run_id FROM runs WHERE client_run_id IS NOT NULL GROUP BY 1 HAVING count(*) > 1) d")
outage_recorded=$(q "SELECT count(*) FROM runs WHERE status = 'success' AND metadata->>'recorded_offline' = 'true'")

echo "== 20 simultaneous runs, database up then down"
concurrent=""
for phase in up down; do
  touch_data
  [ "$phase" = down ] && pg_down
  pids=()
  for i in $(seq 1 20); do "$BIN" run "$JOB" >/dev/null 2>&1 & pids+=($!); done
  ok=0; skipped=0
  for p in "${pids[@]}"; do
    set +e; wait "$p"; rc=$?; set -e
    [ "$rc" = 0 ] && ok=$((ok + 1))
    [ "$rc" = 4 ] && skipped=$((skipped + 1))
  done
  concurrent="$concurrent database $phase: $ok backed up, $skipped skipped;"
  [ "$phase" = down ] && pg_up
done
echo "== hooks: 100 MB of output, a setsid child, a background child, a timeout"
HJOB=$(python3 -c 'import uuid; print(uuid.uuid4())')
# The after hook exits 0 at once, leaving a setsid child and a background child that both hold
# its stdout open; the finally hook reads restic-fleet's peak resident size.
"$BIN" job add --device "$DEVICE" --name hooks --id "$HJOB" --path "$work/src" >/dev/null
"$BIN" job edit "$HJOB" --hook-before "head -c 100000000 /dev/zero | tr '\\0' x" \
  --hook-after "setsid sh -c 'echo \$\$ >$work/setsid.pid; exec sleep 600' & sleep 60 & echo \$! >$work/bg.pid; while [ ! -s $work/setsid.pid ]; do sleep 0.05; done" \
  --hook-finally 'grep VmHWM /proc/$PPID/status' >/dev/null
# Counts the hooks' children still alive (and ends them, so that the script leaves none).
hook_leftovers() {
  local n=0 f pid
  for f in "$@"; do
    pid=$(cat "$work/$f.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && [ -e "/proc/$pid" ]; then n=$((n + 1)); kill "$pid" 2>/dev/null || true; fi
    rm -f "$work/$f.pid"
  done
  echo "$n"
}
t0=$(date +%s)
set +e; "$BIN" run "$HJOB" >/dev/null 2>&1; hook_rc=$?; set -e
hook_secs=$(( $(date +%s) - t0 ))
hook_status=$(q "SELECT status FROM runs WHERE job_id = '$HJOB' ORDER BY id DESC LIMIT 1")
hook_peak=$(q "SELECT metadata->'hooks'->2->>'stdout' FROM runs WHERE job_id = '$HJOB' ORDER BY id DESC LIMIT 1" | awk 'NF {print $2, $3}')
hook_left=$(hook_leftovers setsid bg)
"$BIN" settings set hook_timeout_seconds 2 >/dev/null
"$BIN" job edit "$HJOB" --no-hook-after --no-hook-finally \
  --hook-before "setsid sh -c 'echo \$\$ >$work/setsid.pid; exec sleep 600' & sleep 60" >/dev/null
t0=$(date +%s)
set +e; "$BIN" run "$HJOB" >/dev/null 2>&1; timeout_rc=$?; set -e
timeout_secs=$(( $(date +%s) - t0 ))
timeout_left=$(hook_leftovers setsid)
"$BIN" settings unset hook_timeout_seconds >/dev/null 2>&1 || true

sync_once
sync_once

locks=$(restic list locks --no-lock | grep -c . || true)
restic snapshots --json --no-lock >"$work/snapshots.json"
q "SELECT coalesce(snapshot_id, '') FROM runs WHERE status = 'success'" >"$work/rows.txt"
read -r snaps_unmatched rows_unmatched nsnaps < <(python3 - "$work/snapshots.json" "$work/rows.txt" <<'EOF'
import json, sys
snaps = [s["id"] for s in json.load(open(sys.argv[1]))]
rows = [l.strip() for l in open(sys.argv[2]) if l.strip()]
def owners(sid):
    return sum(1 for r in rows if sid == r or sid.startswith(r))
snaps_bad = sum(1 for s in snaps if owners(s) != 1)
rows_bad = sum(1 for r in rows if not any(s == r or s.startswith(r) for s in snaps))
print(snaps_bad, rows_bad, len(snaps))
EOF
)
final_running=$(q "SELECT count(*) FROM runs WHERE status = 'running'")
final_orphans=$(our_restics)
left_in_spool=$(count_spool)

echo
echo "figures (expected in brackets):"
echo "  kill -9s: $kills_client of restic-fleet, $kills_restic of restic ($attempts runs)"
echo "  rows left running after one sync: $running (0); at the end: $final_running (0)"
echo "  orphan restic processes 5 s after the kills: $orphans (0); at the end: $final_orphans (0)"
echo "  repository locks seen right after the kills (summed): $locks_seen; after all kills: $locks_before_sync; after one sync: $locks_after_kills (0); at the end: $locks (0)"
echo "  snapshots: $nsnaps; without exactly one run row: $snaps_unmatched (0)"
echo "  success rows without their snapshot: $rows_unmatched (0)"
echo "  records spooled during the outages: $spooled; rows before/after delivering them all twice more: $rows_before/$rows_after (equal)"
echo "  duplicate rows after repeated delivery: $duplicates (0)"
echo "  backups made during an outage: $outage_ok of $outage_runs (all); recorded offline in the database: $outage_recorded"
echo "  records left in the spool: $left_in_spool (0)"
echo "  concurrent runs:$concurrent (1 backed up, 19 skipped each)"
echo "  hooks: exit $hook_rc (0), $hook_status (success) in ${hook_secs}s (a few), restic-fleet peak $hook_peak (< 32 MiB), children left $hook_left (0)"
echo "  hook timeout: exit $timeout_rc (1) in ${timeout_secs}s (a few), children left $timeout_left (0)"
