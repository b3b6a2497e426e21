#!/usr/bin/env bash
# The .deb checked the way Debian checks packages, then installed for real on this machine:
# builds it (scripts/package.sh --deb), runs lintian (no error, no warning without an override),
# dpkg -i, checks the binary, its man pages and completions, runs scripts/demo.sh against the
# installed binary, then dpkg -r (config and state kept) and dpkg -P (config removed; the state
# directory kept while its spool holds a record, removed once it is empty). It installs into
# the real /usr/bin, so it refuses to run where restic-fleet is already installed as a package,
# and removes the package at the end whatever happens. Needs root (dpkg).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "SKIPPED tests/package.sh: dpkg -i needs root (run it as root, as CI does)"
  exit 0
fi
if dpkg-query -W -f '${Status}' restic-fleet 2>/dev/null | grep -q 'installed\|config-files'; then
  echo "FAILED: restic-fleet is already installed as a package here; this test would replace it (dpkg -P restic-fleet first)" >&2
  exit 1
fi
fail() { echo "FAILED (tests/package.sh): $*" >&2; exit 1; }
state=/var/lib/restic-fleet
conf=/etc/restic-fleet
tmp=$(mktemp -d /tmp/restic-fleet-package-test.XXXXXX)
# A state or config directory left by an earlier run as root (the demo) is set aside and put
# back afterwards.
for d in "$state" "$conf"; do
  if [ -e "$d" ]; then mv "$d" "$tmp/saved$(echo "$d" | tr / _)"; fi
done
cleanup() {
  dpkg -P restic-fleet >/dev/null 2>&1 || true
  rm -rf "$state" "$conf"
  for d in "$state" "$conf"; do
    saved="$tmp/saved$(echo "$d" | tr / _)"
    if [ -e "$saved" ]; then mv "$saved" "$d"; fi
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

scripts/package.sh --deb
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
deb=dist/restic-fleet_${version}_amd64.deb
[ -f "$deb" ] || fail "scripts/package.sh did not produce $deb"

echo "== lintian"
lintian --fail-on error,warning --info "$deb" | tee "$tmp/lintian.txt" \
  || fail "lintian reports errors or warnings without an override (above)"

echo "== package contents"
dpkg-deb -f "$deb" Depends | grep -qw restic || fail "Depends does not name restic"
dpkg-deb -c "$deb" > "$tmp/contents.txt"
n_cmds=$(grep -c '/usr/share/man/man1/restic-fleet-.*\.1\.gz$' "$tmp/contents.txt" || true)
[ "$n_cmds" -ge 10 ] || fail "expected a man page per subcommand, found $n_cmds"

echo "== dpkg -i"
dpkg -i "$deb" >/dev/null || fail "dpkg -i failed"
[ "$(command -v restic-fleet)" = /usr/bin/restic-fleet ] || fail "restic-fleet is not /usr/bin/restic-fleet"
out=$(restic-fleet --version)
echo "$out"
echo "$out" | grep -Eq "^restic-fleet $version \(git ([0-9a-f]{7,}|unknown)\)$" \
  || fail "--version printed '$out', not the version and git revision"
man -w restic-fleet | grep -q '^/usr/share/man/man1/restic-fleet.1.gz$' || fail "man -w restic-fleet finds no page"
man -w restic-fleet-sync >/dev/null || fail "no man page for the sync subcommand"
for f in /usr/share/bash-completion/completions/restic-fleet /usr/share/zsh/vendor-completions/_restic-fleet \
         /usr/share/fish/vendor_completions.d/restic-fleet.fish; do
  [ -s "$f" ] || fail "completion file $f is missing"
done
for f in README.md ARCHITECTURE.md changelog.gz copyright LICENSE-MIT LICENSE-APACHE; do
  [ -s "/usr/share/doc/restic-fleet/$f" ] || fail "/usr/share/doc/restic-fleet/$f is missing"
done
[ "$(stat -c %a "$state")" = 700 ] || fail "$state is not mode 0700 after install"
if ls /etc/systemd/system/restic-fleet* >/dev/null 2>&1; then fail "the package installed a unit"; fi

echo "== scripts/demo.sh against the installed binary"
scripts/demo.sh --bin /usr/bin/restic-fleet > "$tmp/demo.log" 2>&1 || { cat "$tmp/demo.log"; fail "the demo failed with the installed binary"; }
grep -q '^== demo complete' "$tmp/demo.log" || { cat "$tmp/demo.log"; fail "the demo did not complete"; }
grep -q "restic-fleet: /usr/bin/restic-fleet" "$tmp/demo.log" || fail "the demo did not use the installed binary"

echo "== dpkg -r keeps the config and the state"
mkdir -p "$conf" && echo '# test' > "$conf/config.toml"
mkdir -p "$state/spool" && echo '{}' > "$state/spool/19700101T000000Z-test.json"
dpkg -r restic-fleet >/dev/null || fail "dpkg -r failed"
[ ! -e /usr/bin/restic-fleet ] || fail "/usr/bin/restic-fleet is still there after dpkg -r"
[ -f "$conf/config.toml" ] || fail "dpkg -r removed the config"
[ -d "$state" ] || fail "dpkg -r removed the state directory"

echo "== dpkg -P with a record in the spool keeps the state directory and says so"
dpkg -P restic-fleet > "$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log"; fail "dpkg -P failed"; }
cat "$tmp/purge.log"
[ ! -e "$conf" ] || fail "dpkg -P left $conf"
[ -f "$state/spool/19700101T000000Z-test.json" ] || fail "dpkg -P removed a spool that held a record"
grep -q "spool holds 1 run record" "$tmp/purge.log" || fail "dpkg -P did not say why $state is kept"

echo "== dpkg -P with an empty spool removes the state directory"
dpkg -i "$deb" >/dev/null
rm -f "$state"/spool/*.json
dpkg -P restic-fleet >/dev/null 2>&1 || fail "dpkg -P failed"
[ ! -e "$state" ] || fail "dpkg -P left $state with an empty spool"
[ ! -e /usr/share/doc/restic-fleet ] || fail "dpkg -P left /usr/share/doc/restic-fleet"
echo "tests/package.sh: ok"
