#!/usr/bin/env bash
# Builds restic-fleet's release binary and prints its path (for the benchmarks, which measure
# the build a device installs).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
echo "$(scripts/target-dir.sh)/release/restic-fleet"
