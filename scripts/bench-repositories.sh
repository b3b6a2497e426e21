#!/usr/bin/env bash
# What a repository's snapshot count costs every backup, with real restic. Not part of CI.
#
#   scripts/bench-repositories.sh [--full] [--sizes "1 10000 50000"] [--repeat N]
#                                 [--versions "0.14 0.19"] [--keep DIR]
#   scripts/bench-repositories.sh --prepare-shared DIR [--jobs N] [--count N]
#
# For each restic version (the system's and those scripts/restic.sh keeps in .cache/restic;
# one that is missing is skipped with a note) and each repository size: a local repository
# with one real `restic backup` of a small directory and the rest of its snapshots written by
# scripts/bench/snapshots.py (a fleet of 15 snapshots a job, 5 jobs a device), then the median
# of --repeat (default 3) runs of what a device does, as `restic-fleet run` and `maintain` do it:
#   - `restic backup --host --tag backup:<uuid> --tag device:<id>` with its cache warm, and
#     with a new, empty cache (a new machine, or one whose cache was cleared);
#   - `restic forget` of one job (`--host --tag backup:<uuid> --group-by '' --keep-last 1`);
#   - `restic snapshots --host` of one device;
#   - the size of the device's cache after its backups.
# Prints a markdown table per version, and the load average before and after (the figures are
# only as quiet as the machine). Default sizes 1, 10,000 and 50,000 snapshots; --full adds
# 100,000 (8 minutes for both versions on a quiet 2-core machine, 35 on a busy one).
#
# Then bench_own_repository: a device's backup into its own repository (one snapshot of its
# own) while the largest repository above, the rest of the fleet, sits beside it with its cache
# in the same cache directory, against a backup into an empty fleet (a repository with nothing
# else anywhere): interleaved, median and ratio. It takes two shell functions that each run one
# backup, so the same comparison can time `restic-fleet run`.
#
# --prepare-shared DIR: a shared repository for a maintenance benchmark, made with the first
# version of --versions: 50,000 jobs (--jobs) and 100,000 snapshots (--count) on 10,000
# devices; DIR/repo (password "bench"), and DIR/manifest.csv (job_id,device_id,snapshots) to
# load the jobs into a database. Prints how long it took; keeps DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="1 10000 50000" repeat=3 versions="0.14 0.19" keep="" shared="" shared_jobs=50000 shared_count=100000
while [ $# -gt 0 ]; do
  case $1 in
    --full) sizes="1 10000 50000 100000" ;;
    --sizes) sizes=$2; shift ;;
    --repeat) repeat=$2; shift ;;
    --versions) versions=$2; shift ;;
    --keep) keep=$2; shift ;;
    --prepare-shared) shared=$2; shift ;;
    --jobs) shared_jobs=$2; shift ;;
    --count) shared_count=$2; shift ;;
    *) echo "unknown argument $1; see the header of $0" >&2; exit 2 ;;
  esac
  shift
done
scripts/install-deps.sh
. scripts/restic.sh
export RESTIC_PASSWORD=bench
gen=scripts/bench/snapshots.py

# Milliseconds since the epoch.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# The median of the numbers on stdin.
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

# Runs the command; prints how long it took in ms. Its output is discarded, a failure is fatal.
time_ms() {
  local start
  start=$(now_ms)
  if ! "$@" >/dev/null 2>"$work/last-error"; then
    echo "benchmark step failed: $*" >&2
    cat "$work/last-error" >&2
    exit 1
  fi
  echo $(($(now_ms) - start))
}

# "10,000" from 10000.
thousands() { echo "$1" | sed -e :a -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/; ta'; }

# "1.23 s" from milliseconds.
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f s", ms / 1000 }'; }

# A repository at $1 holding $2 snapshots: one real backup of $work/src as host bench-host, job
# $job, and $2 - 1 written ones (15 a job, 5 jobs a device). Prints the seconds writing took.
make_repository() {
  local repo=$1 count=$2 jobs start
  "$restic" init -q -r "$repo" >/dev/null
  "$restic" backup -q -r "$repo" --cache-dir "$work/setup-cache" --host bench-host \
    --tag "backup:$job" --tag device:bench-host "$work/src" >/dev/null
  rm -rf "$work/setup-cache"
  start=$(now_ms)
  if [ "$count" -gt 1 ]; then
    jobs=$(((count - 1) / 15))
    [ "$jobs" -ge 1 ] || jobs=1
    python3 "$gen" "$repo" --restic "$restic" --count $((count - 1)) --jobs "$jobs" 2>/dev/null
  fi
  secs $(($(now_ms) - start))
}

# One device backup as restic-fleet runs it, into $1 with cache dir $2.
device_backup() {
  "$restic" backup -r "$1" --cache-dir "$2" --json --host bench-host --tag "backup:$job" \
    --tag device:bench-host "$work/src"
}

# The median of $repeat runs of the rest of the arguments, in ms.
median_of() {
  local i
  for i in $(seq "$repeat"); do time_ms "$@"; done | median
}

# Empties a cache dir, then backs up (the new-cache case).
new_cache_backup() {
  rm -rf "$2"
  device_backup "$1" "$2"
}

# One row of the table: the repository of $1 snapshots.
bench_size() {
  local size=$1 repo="$work/repo-$1" cache="$work/cache-$1" took warm cold forget list mib
  took=$(make_repository "$repo" "$size")
  # Warm the cache: the device's first backup reads every snapshot file once.
  time_ms device_backup "$repo" "$cache" >/dev/null
  warm=$(median_of device_backup "$repo" "$cache")
  forget=$(median_of "$restic" forget -r "$repo" --cache-dir "$cache" --host bench-host \
    --tag "backup:$job" --group-by '' --keep-last 1)
  list=$(median_of "$restic" snapshots -r "$repo" --cache-dir "$cache" --json --host bench-host)
  mib=$(du -sk "$cache" | awk '{ printf "%.1f MiB", $1 / 1024 }')
  cold=$(median_of new_cache_backup "$repo" "$work/new-cache")
  rm -rf "$work/new-cache"
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$(thousands "$size")" "$(secs "$warm")" \
    "$(secs "$cold")" "$(secs "$forget")" "$(secs "$list")" "$mib" "$took"
}

# Interleaved runs of two one-backup functions: $2 (the baseline: a backup into an empty
# fleet) and $3 (a backup into the device's own repository while the fleet holds its snapshots
# elsewhere). Prints both medians and the ratio under the label $1.
bench_own_repository() {
  local label=$1 baseline=$2 candidate=$3 i a=() b=() ma mb
  "$baseline" >/dev/null 2>&1 && "$candidate" >/dev/null 2>&1 # first backups: not timed
  for i in $(seq $((repeat * 2 + 1))); do
    a+=("$(time_ms "$baseline")")
    b+=("$(time_ms "$candidate")")
  done
  ma=$(printf '%s\n' "${a[@]}" | median)
  mb=$(printf '%s\n' "${b[@]}" | median)
  echo "$label: own repository $(secs "$mb") vs empty fleet $(secs "$ma"): ratio $(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.3f", b / a }') (target 1.1; median of $((repeat * 2 + 1)), interleaved)"
}

restic_empty_fleet() { device_backup "$work/empty-fleet" "$work/empty-fleet-cache"; }
restic_own_repository() { device_backup "$work/own" "$work/fleet-cache"; }

load() { awk '{ print $1 " " $2 " " $3 }' /proc/loadavg; }

job=6a1f0c52-2d7e-4c1b-9f3e-0d5b7a8e9c41
work=$(mktemp -d /tmp/restic-fleet-bench-repos.XXXXXX)
if [ -n "$keep" ]; then
  echo "keeping the repositories in $work"
else
  trap 'rm -rf "$work"' EXIT
fi
# The device's data: 200 small files, so a backup's own work is small next to reading snapshots.
mkdir -p "$work/src"
for i in $(seq 200); do echo "file $i of the benchmark's device" >"$work/src/f$i"; done

if [ -n "$shared" ]; then
  v=${versions%% *}
  restic=$(restic_dir "$v")/restic
  mkdir -p "$shared"
  "$restic" init -q -r "$shared/repo" >/dev/null
  "$restic" backup -q -r "$shared/repo" --cache-dir "$work/setup-cache" --host bench-host \
    --tag "backup:$job" --tag device:bench-host "$work/src" >/dev/null
  start=$(now_ms)
  python3 "$gen" "$shared/repo" --restic "$restic" --count "$shared_count" --jobs "$shared_jobs" \
    --devices $((shared_jobs / 5 > 0 ? shared_jobs / 5 : 1)) --manifest "$shared/manifest.csv"
  echo "shared repository $shared/repo (password $RESTIC_PASSWORD, restic $(restic_version_of "$restic")): $shared_count snapshots of $shared_jobs jobs written in $(secs $(($(now_ms) - start))); jobs in $shared/manifest.csv"
  exit 0
fi

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -sr); load average $(load)"
largest=$(printf '%s\n' $sizes | sort -n | tail -n 1)
for v in $versions; do
  if ! dir=$(restic_dir "$v" 2>&1); then
    echo "skipped: $dir"
    continue
  fi
  restic=$dir/restic
  echo
  echo "restic $(restic_version_of "$restic"), local repository, median of $repeat:"
  echo
  echo "| snapshots in the repository | backup (warm cache) | backup (new cache) | forget of one job | snapshots --host | cache per machine | writing the snapshots |"
  echo "|---|---|---|---|---|---|---|"
  for size in $sizes; do
    bench_size "$size"
    if [ "$size" != "$largest" ]; then rm -rf "$work/repo-$size" "$work/cache-$size"; fi
  done
  # The fleet elsewhere: the largest repository, its cache where the device's cache is.
  rm -rf "$work/fleet-cache" "$work/own" "$work/empty-fleet" "$work/empty-fleet-cache"
  mkdir -p "$work/fleet-cache"
  mv "$work/cache-$largest"/* "$work/fleet-cache/"
  "$restic" init -q -r "$work/own" >/dev/null
  "$restic" init -q -r "$work/empty-fleet" >/dev/null
  echo
  bench_own_repository "restic $(restic_version_of "$restic") backup, fleet of $(thousands "$largest") snapshots in another repository" \
    restic_empty_fleet restic_own_repository
  rm -rf "$work/repo-$largest" "$work/cache-$largest" "$work/fleet-cache" "$work/own" "$work/empty-fleet" "$work/empty-fleet-cache"
done
echo
echo "load average at the end: $(load)"
