#!/usr/bin/env bash
# The real clients against the release binary: Claude Code's `claude mcp list` health check
# over Streamable HTTP (/mcp), the legacy SSE transport (/sse) and the stdio bridge
# (`claude-codex-relay mcp --listen`, spawned by Claude Code), and Codex CLI's `codex mcp
# list`, which probes for OAuth and must report "Unsupported" (never an auth prompt). Both need
# no account for this. Versions are pinned to the ones observed in docs and protocol notes.
#
#   scripts/real-clients.sh [BINARY]      (default target/release/claude-codex-relay)
#
# Downloads are cached under $RELAY_CI_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/relay-ci).
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${1:-target/release/claude-codex-relay}
CACHE=${RELAY_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/relay-ci}
CLAUDE_VERSION=2.1.197
CODEX_VERSION=0.169.0
[ -x "$BIN" ] || { echo "real-clients: no executable $BIN (run cargo build --release)" >&2; exit 2; }

PREFIX="$CACHE/clients-$CLAUDE_VERSION-$CODEX_VERSION"
if ! [ -x "$PREFIX/node_modules/.bin/claude" ] || ! [ -x "$PREFIX/node_modules/.bin/codex" ]; then
  rm -rf "$PREFIX"
  for attempt in 1 2 3; do
    if npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
      "@anthropic-ai/claude-code@$CLAUDE_VERSION" "@openai/codex@$CODEX_VERSION" </dev/null; then
      break
    fi
    [ "$attempt" -lt 3 ] || exit 1
    sleep $((attempt * 5))
  done
fi
CLAUDE="$PREFIX/node_modules/.bin/claude"
CODEX="$PREFIX/node_modules/.bin/codex"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/real-clients.XXXXXX")
RELAY_PID=
cleanup() {
  if [ -n "$RELAY_PID" ]; then kill "$RELAY_PID" 2>/dev/null || true; wait "$RELAY_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" --port 0 --store memory --log-path "$WORK/tool.log" --channel-log-path "$WORK/ch.log" \
  --addr-file "$WORK/relay.addr" >"$WORK/relay.stdout" 2>"$WORK/relay.stderr" </dev/null &
RELAY_PID=$!
deadline=$((SECONDS + 20))
until [ -s "$WORK/relay.addr" ]; do
  [ "$SECONDS" -lt "$deadline" ] || { echo "real-clients: the relay did not start" >&2; exit 1; }
  sleep 0.1
done
BASE=$(cat "$WORK/relay.addr")
BIN_ABS="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

# Claude Code: both transports and the stdio bridge must show as connected.
export CLAUDE_CONFIG_DIR="$WORK/claude"
mkdir -p "$CLAUDE_CONFIG_DIR" "$WORK/project"
(
  cd "$WORK/project"
  "$CLAUDE" mcp add --transport http relay "$BASE/mcp" >/dev/null
  "$CLAUDE" mcp add --transport sse relay-sse "$BASE/sse" >/dev/null
  "$CLAUDE" mcp add relay-bridge -- "$BIN_ABS" mcp --url "$BASE" --listen proj-x --as claude >/dev/null
  timeout 120 "$CLAUDE" mcp list </dev/null
) >"$WORK/claude.txt" 2>&1 || true
echo "claude $("$CLAUDE" --version 2>/dev/null):"
sed 's/^/  /' "$WORK/claude.txt"
for name in relay relay-sse relay-bridge; do
  grep -q "^$name: .*Connected" "$WORK/claude.txt" || { echo "real-clients: Claude Code did not connect to $name" >&2; exit 1; }
done

# Codex CLI: the server is listed and its OAuth probe finds no auth to do.
export CODEX_HOME="$WORK/codex"
mkdir -p "$CODEX_HOME"
"$CODEX" mcp add relay --url "$BASE/mcp" >/dev/null 2>&1
timeout 120 "$CODEX" mcp list </dev/null >"$WORK/codex.txt" 2>/dev/null || true
echo "codex $("$CODEX" --version 2>/dev/null):"
sed 's/^/  /' "$WORK/codex.txt"
grep -Eq "^relay +$BASE/mcp .*enabled +Unsupported" "$WORK/codex.txt" || {
  echo "real-clients: codex mcp list did not show the relay as enabled with auth Unsupported" >&2
  exit 1
}
echo "real-clients: Claude Code (http, sse, stdio bridge) connected; Codex sees no auth to do"
