#!/usr/bin/env bash
# Builds the release packages into dist/: restic-fleet_<version>_amd64.deb (cargo-deb, metadata
# in Cargo.toml's [package.metadata.deb]) and restic-fleet-<version>-windows-x86_64.zip (the exe
# linked with the mingw-w64 toolchain). The man pages and shell completions are generated from
# the CLI definition by the freshly built binary, into dist/.build/. Needs cargo-deb, the
# mingw-w64 linker and zip (scripts/install-deps.sh --package installs them).
#   --deb   only the .deb      --zip   only the Windows zip
set -euo pipefail
cd "$(dirname "$0")/.."
want_deb=1 want_zip=1
case "${1:-}" in
  --deb) want_zip=0 ;;
  --zip) want_deb=0 ;;
  "") ;;
  *) echo "usage: scripts/package.sh [--deb|--zip]" >&2; exit 2 ;;
esac
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
if ! grep -q "^## \[$version\]" CHANGELOG.md; then
  echo "CHANGELOG.md has no '## [$version]' section for the version in Cargo.toml; add it" >&2
  exit 1
fi
target_dir=$(scripts/target-dir.sh)
build=dist/.build
rm -rf "$build"
mkdir -p "$build/man" "$build/completions" "$build/doc"

if [ "$want_deb" = 1 ]; then
  echo "== release build (linux)"
  cargo build --release --locked --quiet
  bin=$target_dir/release/restic-fleet
  "$bin" man --out-dir "$build/man" >/dev/null
  gzip -9n "$build"/man/*.1
  "$bin" completions bash > "$build/completions/restic-fleet"
  "$bin" completions zsh > "$build/completions/_restic-fleet"
  "$bin" completions fish > "$build/completions/restic-fleet.fish"
  # Debian reads changelog.gz of a native package as a Debian changelog: one entry pointing to
  # CHANGELOG.md, dated by the last commit (or now, outside git) so rebuilds are identical.
  date=$(git log -1 --format=%aD 2>/dev/null || date -R)
  maintainer=$(sed -n 's/^maintainer = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
  printf '%s\n' "restic-fleet ($version) unstable; urgency=medium" "" \
    "  * Release $version; CHANGELOG.md in this directory says what it contains." "" \
    " -- $maintainer  $date" | gzip -9n > "$build/doc/changelog.gz"
  echo "== cargo deb"
  rm -f dist/restic-fleet_*.deb
  cargo deb --no-build --locked --quiet --output "dist/restic-fleet_${version}_amd64.deb"
  ls -l "dist/restic-fleet_${version}_amd64.deb"
fi

if [ "$want_zip" = 1 ]; then
  echo "== release build (windows, mingw-w64)"
  CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=${CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER:-x86_64-w64-mingw32-gcc} \
    cargo build --release --locked --quiet --target x86_64-pc-windows-gnu
  stage=$build/win/restic-fleet-$version-windows-x86_64
  mkdir -p "$stage"
  cp "$target_dir/x86_64-pc-windows-gnu/release/restic-fleet.exe" "$stage/"
  x86_64-w64-mingw32-strip "$stage/restic-fleet.exe" 2>/dev/null || true
  # Windows readers expect CRLF line ends in the text files.
  for f in README.md CHANGELOG.md LICENSE-MIT LICENSE-APACHE packaging/INSTALL-windows.txt; do
    sed 's/\r*$/\r/' "$f" > "$stage/$(basename "$f")"
  done
  zip_file=$PWD/dist/restic-fleet-$version-windows-x86_64.zip
  rm -f "$zip_file"
  (cd "$build/win" && zip -q -r -X "$zip_file" "restic-fleet-$version-windows-x86_64")
  ls -l "$zip_file"
fi
