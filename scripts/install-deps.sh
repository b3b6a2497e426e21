#!/usr/bin/env bash
# Installs what the demo and the tests need when it is missing: PostgreSQL server, restic,
# systemd-analyze, xmllint, sftp-server, pgbouncer, python3-cryptography (the benchmarks' restic
# snapshots), python3 with the cron oracles and the Prometheus text parser, headless Chromium
# (--tests), and the Windows target for cargo check.
# With --tests, also the restic versions the tests run against (RESTIC_VERSIONS, default
# "0.14 0.18 0.19"; see scripts/restic.sh), beside the system's restic, which stays as it is.
# --package: what scripts/package.sh and tests/package.sh need besides (cargo-deb, lintian, the
# mingw-w64 linker, zip and unzip, man-db, dpkg-dev, and wine64 for running the Windows binary).
set -euo pipefail
tests=0 package=0
for arg in "$@"; do
  case "$arg" in
    --tests) tests=1 ;;
    --package) package=1 ;;
    *) echo "usage: scripts/install-deps.sh [--tests] [--package]" >&2; exit 2 ;;
  esac
done
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v restic >/dev/null || need+=(restic)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v runuser >/dev/null || need+=(util-linux)
command -v script >/dev/null || need+=(bsdutils)
# xmllint validates every generated task XML against tests/schema/task.xsd; sftp-server gives the
# tests a real SFTP backend without an sshd; bash drives the completion test.
command -v xmllint >/dev/null || need+=(libxml2-utils)
[ -x /usr/lib/openssh/sftp-server ] || need+=(openssh-sftp-server)
command -v bash >/dev/null || need+=(bash)
command -v pgbouncer >/dev/null || need+=(pgbouncer)
# scripts/bench/snapshots.py encrypts restic snapshot files (AES-CTR, Poly1305) with it.
python3 -c "import cryptography.hazmat.primitives.poly1305" 2>/dev/null || need+=(python3-cryptography)
# Headless Chromium loads the HTML report in tests/report.rs (the test says so and skips the
# browser part where Chromium is missing or cannot start).
if [ "$tests" = 1 ]; then
  command -v chromium >/dev/null || need+=(chromium)
fi
if [ "$package" = 1 ]; then
  command -v lintian >/dev/null || need+=(lintian)
  command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64)
  command -v zip >/dev/null || need+=(zip)
  command -v unzip >/dev/null || need+=(unzip)
  command -v man >/dev/null || need+=(man-db)
  command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
  [ -x /usr/lib/wine/wine64 ] || command -v wine64 >/dev/null || need+=(wine64)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing packages: ${need[*]}; install them (apt-get install ${need[*]}) and run again" >&2
    exit 1
  fi
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ "$tests" = 1 ]; then
  python3 -c "import cronsim" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check cronsim
  python3 -c "import prometheus_client" 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check prometheus_client
  . "$(dirname "$0")/restic.sh"
  for v in ${RESTIC_VERSIONS:-0.14 0.18 0.19}; do
    restic_fetch "$v"
  done
fi
if [ "$package" = 1 ]; then
  # cargo-deb pinned: its metadata keys and output naming are what Cargo.toml and package.sh use.
  cargo_deb_version=3.8.0
  if ! cargo deb --version 2>/dev/null | grep -qF "$cargo_deb_version"; then
    echo "installing: cargo-deb $cargo_deb_version"
    cargo install --quiet --locked --version "$cargo_deb_version" cargo-deb
  fi
  if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-pc-windows-gnu; then
    rustup target add x86_64-pc-windows-gnu
  fi
fi
