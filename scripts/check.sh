#!/usr/bin/env bash
# What a developer runs before committing: the same gates as the first steps of .ci/run.
#   scripts/check.sh          check formatting, lint with clippy (warnings are errors), test
#   scripts/check.sh --fix    format the code first (cargo fmt), then the same
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--fix" ]; then
  cargo fmt
fi
cargo fmt --check || { echo "check: formatting differs; run scripts/check.sh --fix" >&2; exit 1; }
cargo clippy --all-targets -- -D warnings
cargo test
