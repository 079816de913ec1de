#!/usr/bin/env bash
# The unattended Codex reviewer: every new message from WATCH_SENDER on TARGET starts one
# headless Codex run (`codex exec`) that fetches the message over MCP, reviews it and posts
# the feedback back to the channel. The waiting, the state file, the retries while the relay
# is down and the loop guard are `claude-codex-relay watch --exec`'s; this script only builds
# the prompt and calls Codex. See docs/unattended.md.
#
#   BASE_URL      relay URL               [$CLAUDE_CODEX_URL, else http://127.0.0.1:8010]
#   TARGET        channel                                          [proj-x]
#   WATCH_SENDER  react to messages from this sender only          [claude]
#   REVIEWER      the name Codex posts its feedback under          [codex]
#   LASTFILE      last handled message id (resumes there)          [.codex/auto-loop.last_id]
#   SINCE_ID      on the first start (no LASTFILE yet), review the messages after this id;
#                 unset = only messages posted from now on          []
#   SESSION_ID    resume this Codex session for every review (keeps its context); empty =
#                 a fresh session per review                       []
#   MAX_RUNS, PER loop guard: at most MAX_RUNS reviews in PER seconds, then stop [20, 600]
#   CODEX_MODE    how Codex may act: the flag given to `codex exec`
#                 [--dangerously-bypass-approvals-and-sandbox; or --full-auto with
#                  sandbox_workspace_write.network_access = true in .codex/config.toml]
#   CODEX_BIN, RELAY_BIN   the programs                            [codex, claude-codex-relay]
#   CLAUDE_CODEX_TOKEN     bearer token, if the relay requires one
#
# Codex needs the relay as an MCP server (docs/codex.md). Start it from the project directory:
#   BASE_URL=http://127.0.0.1:8010 TARGET=proj-x bash scripts/auto-review-loop.sh
#   SESSION_ID=abc123 bash scripts/auto-review-loop.sh
set -u

if [ "${1:-}" = "--review-one" ]; then
  # One review, run by `watch --exec` with the message on stdin and RELAY_* set.
  : "${RELAY_MESSAGE_ID:?run by claude-codex-relay watch}" "${RELAY_TARGET:?}" "${RELAY_SENDER:?}"
  REVIEWER="${REVIEWER:-codex}"
  PROMPT="A new message #$RELAY_MESSAGE_ID from $RELAY_SENDER is on the $RELAY_TARGET channel of the relay MCP server. \
Fetch it with fetch_messages(target=\"$RELAY_TARGET\", since_id=$((RELAY_MESSAGE_ID - 1)), limit=1) and review it \
for correctness, security, test gaps and maintainability. Post your feedback with \
post_message(target=\"$RELAY_TARGET\", sender=\"$REVIEWER\", text=...): Verdict, Major issues, Minor suggestions, \
Tests to add or run, Questions."
  CODEX_MODE="${CODEX_MODE:---dangerously-bypass-approvals-and-sandbox}"
  CODEX_BIN="${CODEX_BIN:-codex}"
  # Codex gets the prompt as an argument and nothing on stdin.
  if [ -n "${SESSION_ID:-}" ]; then
    exec "$CODEX_BIN" exec "$CODEX_MODE" resume "$SESSION_ID" "$PROMPT" </dev/null
  else
    exec "$CODEX_BIN" exec "$CODEX_MODE" "$PROMPT" </dev/null
  fi
fi

BASE_URL="${BASE_URL:-${CLAUDE_CODEX_URL:-http://127.0.0.1:8010}}"
TARGET="${TARGET:-proj-x}"
WATCH_SENDER="${WATCH_SENDER:-claude}"
LASTFILE="${LASTFILE:-.codex/auto-loop.last_id}"
MAX_RUNS="${MAX_RUNS:-20}"
PER="${PER:-600}"
RELAY_BIN="${RELAY_BIN:-claude-codex-relay}"
export REVIEWER="${REVIEWER:-codex}" SESSION_ID="${SESSION_ID:-}"
# The per-message command finds this script through the environment, so no path is quoted
# into a shell command line.
AUTO_REVIEW_SCRIPT="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
export AUTO_REVIEW_SCRIPT

if ! command -v "$RELAY_BIN" >/dev/null; then
  echo "auto-review-loop: $RELAY_BIN not found; put claude-codex-relay on PATH or set RELAY_BIN" >&2
  exit 2
fi
mkdir -p "$(dirname "$LASTFILE")"

echo "$(date -Iseconds) auto-loop started: target=$TARGET sender=$WATCH_SENDER last=$(cat "$LASTFILE" 2>/dev/null || echo new) session=${SESSION_ID:-new} guard=$MAX_RUNS/${PER}s"
# shellcheck disable=SC2016 # expanded by the shell watch starts, not here
exec "$RELAY_BIN" watch --url "$BASE_URL" --target "$TARGET" --from "$WATCH_SENDER" \
  --state "$LASTFILE" ${SINCE_ID:+--since-id "$SINCE_ID"} --max-runs "$MAX_RUNS" --per "$PER" \
  --exec 'exec bash "$AUTO_REVIEW_SCRIPT" --review-one'
