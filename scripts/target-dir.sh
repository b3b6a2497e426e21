#!/usr/bin/env bash
# Prints cargo's target directory for this repository (CARGO_TARGET_DIR, build.target-dir in a
# cargo config, or target/), so that scripts find the binary cargo built wherever it went.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --locked --no-deps --format-version 1 \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
