#!/usr/bin/env bash
# Checks the systemd user unit in scripts/ with `systemd-analyze verify --user`: its syntax,
# its specifiers and that ExecStart names an executable. It runs against a throwaway home
# whose ~/.cargo/bin holds the built relay, which is where `cargo install --path .` puts it.
# Usage: scripts/check-unit.sh [RELAY_BINARY]   (default: target/release, else target/debug)
set -euo pipefail
cd "$(dirname "$0")/.."
unit=scripts/claude-codex-relay.service
bin=${1:-}
if [[ -z $bin ]]; then
  for candidate in target/release/claude-codex-relay target/debug/claude-codex-relay; do
    [[ -x $candidate ]] && { bin=$candidate; break; }
  done
fi
[[ -n $bin && -x $bin ]] || { echo "check-unit: build the relay first (cargo build)" >&2; exit 1; }
command -v systemd-analyze >/dev/null || {
  echo "check-unit: systemd-analyze is missing (apt-get install systemd)" >&2
  exit 1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/home/.cargo/bin" "$work/run"
chmod 700 "$work/run"
ln -s "$(realpath "$bin")" "$work/home/.cargo/bin/claude-codex-relay"
# verify exits 0 on some problems it only prints, so any output is a failure too.
if ! out=$(HOME="$work/home" XDG_RUNTIME_DIR="$work/run" \
  systemd-analyze verify --user "$unit" 2>&1) || [[ -n $out ]]; then
  echo "check-unit: $unit does not verify:" >&2
  echo "$out" >&2
  exit 1
fi
echo "check-unit: $unit verifies"
