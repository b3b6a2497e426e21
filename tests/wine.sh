#!/usr/bin/env bash
# The Windows binary run for real under Wine, from the zip scripts/package.sh builds: in a
# private WINEPREFIX (with tests/wine/bcryptprimitives.c built into its system32, since Wine 8.0
# lacks ProcessPrng, which Rust's std needs to start), restic-fleet.exe --version and --help,
# schedule preview, init against a private PostgreSQL on 127.0.0.1 (the config lands under the
# prefix's %ProgramData%; tests/wine/show_dacl.c prints the access lists init set there, and the
# output says plainly when Wine does not keep them), and sync --dry-run --backend windows, whose
# task XML must validate against tests/schema/task.xsd; run without restic.exe records a failed run that names restic,
# which status from Linux shows; sync registers the tasks with Wine's schtasks (which keeps
# neither triggers nor actions, so the XML is checked from the dry run). Skipped, saying why,
# only where Wine cannot start.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "FAILED (tests/wine.sh): $*" >&2; exit 1; }
wine=$(command -v wine64 || echo /usr/lib/wine/wine64)
if [ ! -x "$wine" ]; then
  echo "SKIPPED tests/wine.sh: wine64 is not installed (scripts/install-deps.sh --package installs it)"
  exit 0
fi
command -v x86_64-w64-mingw32-gcc >/dev/null || fail "the mingw-w64 compiler is missing (scripts/install-deps.sh --package)"
. scripts/pg.sh
tmp=$(mktemp -d /tmp/restic-fleet-wine-test.XXXXXX)
# Apart from $tmp, which only root may enter: as root the cluster runs as the postgres user.
pgdir=$(mktemp -d /tmp/restic-fleet-wine-pg.XXXXXX)
export WINEPREFIX=$tmp/prefix WINEDEBUG=-all WINEDLLOVERRIDES="bcryptprimitives=n;mscoree,mshtml="
wineserver=$(dirname "$wine")/wineserver
[ -x "$wineserver" ] || wineserver=$(command -v wineserver || echo true)
trap '"$wineserver" -k >/dev/null 2>&1 || true; pg_stop "$pgdir"; rm -rf "$tmp" "$pgdir"' EXIT
if ! timeout 180 "$wine" wineboot -i >"$tmp/wineboot.log" 2>&1 || [ ! -d "$WINEPREFIX/drive_c/windows/system32" ]; then
  cat "$tmp/wineboot.log"
  echo "SKIPPED tests/wine.sh: Wine cannot start here (wineboot failed, output above)"
  exit 0
fi
x86_64-w64-mingw32-gcc -O2 -shared -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
  tests/wine/bcryptprimitives.c tests/wine/bcryptprimitives.def -ladvapi32
x86_64-w64-mingw32-gcc -O2 -municode -o "$tmp/show_dacl.exe" tests/wine/show_dacl.c -ladvapi32

echo "== Wine started ($SECONDS s); the zip"
scripts/package.sh --zip
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
unzip -q "dist/restic-fleet-$version-windows-x86_64.zip" -d "$tmp/app"
app=$tmp/app/restic-fleet-$version-windows-x86_64
for f in restic-fleet.exe README.md LICENSE-MIT LICENSE-APACHE INSTALL-windows.txt; do
  [ -s "$app/$f" ] || fail "the zip has no $f"
done
win() { timeout 120 "$wine" "$app/restic-fleet.exe" "$@" | tr -d "\r"; }

echo "== restic-fleet.exe --version"
out=$(win --version)
echo "$out"
echo "$out" | grep -Eq "^restic-fleet $version \(git ([0-9a-f]{7,}|unknown)\)$" || fail "--version under Wine printed: $out"
echo "== restic-fleet.exe --help"
win --help | grep -q '^  sync ' || fail "--help under Wine does not list sync"
echo "== restic-fleet.exe schedule preview"
win schedule preview --cron '30 2 * * *' --tz UTC --from 2027-01-04T00:00:00Z --count 2 \
  | grep -q '2027-01-04T02:30:00' || fail "schedule preview under Wine is wrong"

echo "== init against PostgreSQL on 127.0.0.1, from Wine"
pg_start "$pgdir"
psql_bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/psql | sort -V | tail -n 1)")/psql
"$psql_bin" -q "$PG_URL" -c "CREATE DATABASE backup_control"
db_url="${PG_URL%/*}/backup_control"
echo "$db_url" | win init --database-url - --device-id win1 --name "Wine machine" > "$tmp/init.log" \
  || { cat "$tmp/init.log"; fail "init under Wine failed"; }
config=$WINEPREFIX/drive_c/ProgramData/restic-fleet/config.toml
[ -s "$config" ] || { cat "$tmp/init.log"; fail "init under Wine wrote no $config"; }

echo "== the access lists init set on the config file and the state directory, as Wine reports them"
# init fails when SetNamedSecurityInfoW does, so its success says the calls were accepted;
# whether Wine keeps the DACL is what show_dacl.exe (GetNamedSecurityInfoW) tells.
want_file='D:P(A;;FA;;;SY)(A;;FA;;;BA)' want_dir='D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)'
got_file=$(timeout 60 "$wine" "$tmp/show_dacl.exe" 'C:\ProgramData\restic-fleet\config.toml' | tr -d "\r") \
  || fail "show_dacl.exe cannot read the config file's security descriptor under Wine"
got_dir=$(timeout 60 "$wine" "$tmp/show_dacl.exe" 'C:\ProgramData\restic-fleet' | tr -d "\r") \
  || fail "show_dacl.exe cannot read the state directory's security descriptor under Wine"
echo "config file:     $got_file (Unix mode $(stat -c %a "$config"))"
echo "state directory: $got_dir (Unix mode $(stat -c %a "${config%/*}"))"
if [ "$got_file" = "$want_file" ] && [ "$got_dir" = "$want_dir" ]; then
  echo "Wine keeps the DACLs init set: SYSTEM and Administrators only, protected"
else
  echo "NOT CHECKED under Wine: Wine accepted the DACLs ($want_file, $want_dir) but does not"
  echo "keep them; it reports an access list derived from the files' Unix mode instead. The"
  echo "descriptor itself is checked by the unit tests of src/domain/private_acl.rs."
fi
echo "== a job and a schedule for the Windows device, then sync --dry-run under Wine"
job=$(win job add --device win1 --name documents --path 'C:\Users\Public\Documents' | tail -n 1)
win schedule add "$job" --cron '30 2 * * *' >/dev/null || fail "schedule add under Wine failed"
mkdir -p "$tmp/out"
win sync --dry-run --backend windows --output-dir "Z:${tmp//\//\\}\\out" > "$tmp/sync.log" \
  || { cat "$tmp/sync.log"; fail "sync --dry-run under Wine failed"; }
ls "$tmp/out"/*.xml >/dev/null 2>&1 || { cat "$tmp/sync.log"; fail "sync --dry-run under Wine wrote no task XML"; }
grep -q "restic-fleet-job-$job" "$tmp/out/schtasks-commands.txt" || fail "the job's task is not among the schtasks commands"
xmllint --noout --schema tests/schema/task.xsd "$tmp/out"/*.xml || fail "the task XML written under Wine does not validate"

echo "== run without restic.exe records a failed run naming restic; status from Linux shows it"
win settings set repository_url 'C:\repo' >/dev/null
echo "not-a-real-password" | win settings set repository_password - >/dev/null
if win run "$job" > "$tmp/run.log" 2>&1; then cat "$tmp/run.log"; fail "run without restic.exe succeeded under Wine"; fi
grep -q "restic was not found" "$tmp/run.log" || { cat "$tmp/run.log"; fail "run under Wine did not say that restic is missing"; }
cargo build --locked --quiet
linux_bin=$(scripts/target-dir.sh)/debug/restic-fleet
"$linux_bin" status --database-url "$db_url" > "$tmp/status.log" || true
grep -Eq 'failing +win1 +documents +failed' "$tmp/status.log" || { cat "$tmp/status.log"; fail "status from Linux does not show the failed run of the Windows device"; }

echo "== sync (not a dry run) registers the tasks with Wine's schtasks"
win sync > "$tmp/sync-real.log" 2>&1 || { cat "$tmp/sync-real.log"; fail "sync under Wine failed"; }
grep -q "added     restic-fleet-job-$job" "$tmp/sync-real.log" || { cat "$tmp/sync-real.log"; fail "sync under Wine did not register the job's task"; }
echo "tests/wine.sh: ok"
