#!/usr/bin/env bash
# scripts/bench/snapshots.py against real restic: for each restic in RESTIC_VERSIONS (default
# "0.14 0.19"; see scripts/restic.sh) and both repository formats, a real backup, then 200
# written snapshots over 20 jobs on 4 devices. restic must accept them (`check`), list them
# with the hosts and tags the manifest names, select them by host and tag, and forget one job's
# by its tag; a written snapshot with one byte changed must make `check` fail (so that the
# first verdict means something), and a wrong password is one sentence and a non-zero exit.
# A few seconds per version; run by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/restic.sh
gen=scripts/bench/snapshots.py
dir=$(mktemp -d /tmp/restic-fleet-bench-snapshots.XXXXXX)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/src"
echo "some data" >"$dir/src/file"
export RESTIC_PASSWORD=bench-password RESTIC_CACHE_DIR="$dir/cache"
versions=${RESTIC_VERSIONS:-0.14 0.19}
failures=0
fail() { echo "FAILED: $*" >&2; failures=$((failures + 1)); }

for v in $versions; do
  bin=$(restic_dir "$v")/restic
  full=$(restic_version_of "$bin")
  for format in 1 2; do
    what="restic $full, repository format $format"
    repo="$dir/repo-$v-$format"
    "$bin" init -q -r "$repo" --repository-version "$format" >/dev/null
    "$bin" backup -q -r "$repo" --host real-host --tag backup:real "$dir/src" >/dev/null
    python3 "$gen" "$repo" --restic "$bin" --count 200 --jobs 20 --devices 4 \
      --manifest "$dir/manifest-$v-$format.csv" 2>/dev/null
    if ! out=$("$bin" check -r "$repo" 2>&1); then
      fail "$what: restic check refused the written snapshots: $out"
      continue
    fi
    "$bin" snapshots -r "$repo" --json >"$dir/snapshots.json"
    # Every written snapshot is as the manifest says: its job's tag, its device as host and tag.
    if ! problem=$(python3 - "$dir/snapshots.json" "$dir/manifest-$v-$format.csv" <<'EOF'
import collections, csv, json, sys
snaps = json.load(open(sys.argv[1]))
jobs = {r["job_id"]: r for r in csv.DictReader(open(sys.argv[2]))}
written = [s for s in snaps if s["hostname"] != "real-host"]
per_job = collections.Counter()
for s in written:
    tags = s.get("tags") or []
    if len(tags) != 2 or not tags[0].startswith("backup:"):
        sys.exit(f"snapshot {s['short_id']} has tags {tags}")
    job = jobs.get(tags[0][len("backup:"):])
    if job is None or s["hostname"] != job["device_id"] or tags[1] != "device:" + job["device_id"]:
        sys.exit(f"snapshot {s['short_id']} ({s['hostname']}, {tags}) does not match the manifest")
    per_job[tags[0][len("backup:"):]] += 1
if len(snaps) != 201 or len(written) != 200:
    sys.exit(f"{len(snaps)} snapshots listed, {len(written)} written ones; expected 201 and 200")
if any(per_job[j] != int(r["snapshots"]) for j, r in jobs.items()) or len(jobs) != 20:
    sys.exit(f"snapshots per job {dict(per_job)} differ from the manifest")
EOF
    ); then
      fail "$what: $problem"
    fi
    # Selection by host, then a job's forget by its tag, as restic-fleet does them.
    n=$("$bin" snapshots -r "$repo" --json --host device-0 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    [ "$n" = 50 ] || fail "$what: --host device-0 listed $n snapshots, expected 50"
    job=$(sed -n 2p "$dir/manifest-$v-$format.csv" | cut -d, -f1)
    "$bin" forget -q -r "$repo" --host device-0 --tag "backup:$job" --group-by '' --keep-last 1 >/dev/null
    n=$("$bin" snapshots -r "$repo" --json --tag "backup:$job" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    [ "$n" = 1 ] || fail "$what: after forget --keep-last 1 the job has $n snapshots, expected 1"
    "$bin" check -q -r "$repo" >/dev/null 2>&1 || fail "$what: restic check failed after forget"
    # One written snapshot with a byte changed: check must notice.
    files=("$repo"/snapshots/*)
    victim=$(basename "${files[0]}")
    cp "$repo/snapshots/$victim" "$dir/victim"
    python3 -c 'import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[20] ^= 1; open(p, "wb").write(b)' "$dir/victim"
    chmod u+w "$repo/snapshots/$victim"
    cp "$dir/victim" "$repo/snapshots/$victim"
    if "$bin" check -r "$repo" >/dev/null 2>&1; then
      fail "$what: restic check accepted a snapshot file with a changed byte, so its verdict proves nothing"
    fi
    echo "ok: $what"
  done
done

# A wrong password: one sentence, non-zero.
if out=$(RESTIC_PASSWORD=wrong python3 "$gen" "$dir/repo-${versions%% *}-1" --count 1 2>&1); then
  fail "a wrong password was accepted"
elif ! grep -q "opens none of the 1 keys" <<<"$out"; then
  fail "a wrong password said: $out"
fi
if [ "$failures" -gt 0 ]; then
  echo "tests/bench_snapshots.sh: $failures failed" >&2
  exit 1
fi
echo "tests/bench_snapshots.sh: all passed"
