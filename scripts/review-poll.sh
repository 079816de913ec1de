#!/usr/bin/env bash
# Watches one relay channel and prints a line per new message, for a human (or an agent's
# terminal) to act on. The environment contract and the output lines are the original
# poller's; the difference is that each poll is one blocking fetch (since_id + wait), so a new
# message shows up at once and an idle poll downloads nothing.
#
#   BASE_URL      relay URL, e.g. http://127.0.0.1:8010              (required)
#   LASTFILE      file keeping the last seen message id               (required)
#   TARGET        channel                                             [proj-x]
#   INTERVAL      seconds one poll waits for a message (at most 50)   [20]
#   WATCH_SENDER  only show messages from this sender; empty = all    [claude]
#   CLAUDE_CODEX_TOKEN   bearer token, if the relay requires one
#
# Output: `TIME poller_start ...`, then for each poll that brings messages `TIME new_messages`
# and `#id [sender] first line` per message, `TIME heartbeat last=N` every third poll, and
# `TIME poller_term` on SIGINT/SIGTERM/SIGHUP (it then exits).
#
# It talks to the relay with the claude-codex-relay binary when that is on PATH (or named by
# RELAY_BIN), else with curl and jq. A poll that fails prints `TIME poll_failed ...` and is
# retried after INTERVAL seconds.
#
#   BASE_URL=http://127.0.0.1:8010 LASTFILE=/tmp/last_id TARGET=proj-x bash scripts/review-poll.sh
set -u -o pipefail
now() { date -Iseconds; }

BASE_URL="${BASE_URL:?BASE_URL not set}"
LASTFILE="${LASTFILE:?LASTFILE not set}"
TARGET="${TARGET:-proj-x}"
INTERVAL="${INTERVAL:-20}"
WATCH_SENDER="${WATCH_SENDER-claude}"
RELAY_BIN="${RELAY_BIN:-$(command -v claude-codex-relay || true)}"
BASE_URL="${BASE_URL%/}"

if ! [[ "$INTERVAL" =~ ^[0-9]+$ ]] || [ "$INTERVAL" -lt 1 ]; then
  echo "review-poll: INTERVAL must be a whole number of seconds, 1 or more" >&2
  exit 2
fi
WAIT=$((INTERVAL > 50 ? 50 : INTERVAL))
if [ -n "$RELAY_BIN" ]; then
  VIA="$RELAY_BIN"
elif command -v curl >/dev/null && command -v jq >/dev/null; then
  VIA=curl
else
  echo "review-poll: needs claude-codex-relay on PATH (or RELAY_BIN), or curl and jq" >&2
  exit 2
fi

LAST=0
if [ -f "$LASTFILE" ]; then
  LAST=$(cat "$LASTFILE" 2>/dev/null || echo 0)
fi
if ! [[ "$LAST" =~ ^[0-9]+$ ]]; then LAST=0; fi

PAGE_FILE=$(mktemp "${TMPDIR:-/tmp}/review-poll.XXXXXX") || exit 1
CHILD=""
# The terminal (or log) the lines go to, for the trap: it may run while stdout is redirected.
exec 3>&1
# Each poll runs in the background and is waited for, so a signal is handled at once rather
# than after the poll's wait ends.
stop() {
  echo "$(now) poller_term pid=$$" >&3
  if [ -n "$CHILD" ]; then kill "$CHILD" 2>/dev/null; fi
  rm -f "$PAGE_FILE" "$PAGE_FILE.json"
  exit 0
}
trap stop TERM INT HUP
echo "$(now) poller_start pid=$$ ppid=$PPID interval=${INTERVAL}s base=$BASE_URL target=$TARGET last=$LAST sender=${WATCH_SENDER:-*}"

# Runs a command in the background and waits for it (see stop).
in_background() {
  "$@" &
  CHILD=$!
  wait "$CHILD"
  local status=$?
  CHILD=""
  return "$status"
}

# Writes `#id [sender] first line` to PAGE_FILE for each message after $LAST (the oldest 200),
# waiting up to $WAIT seconds for the first; fails when the relay cannot be asked. The program
# that waits is the background job itself, so `stop` ends it rather than a subshell above it.
fetch_page() {
  if [ "$VIA" = curl ]; then
    local auth=()
    if [ -n "${CLAUDE_CODEX_TOKEN:-}" ]; then
      auth=(-H "Authorization: Bearer $CLAUDE_CODEX_TOKEN")
    fi
    in_background curl -fsS -m $((WAIT + 15)) "${auth[@]}" -o "$PAGE_FILE.json" \
      -G "$BASE_URL/api/messages" --data-urlencode "target=$TARGET" \
      -d "since_id=$LAST" -d limit=200 -d "wait=$WAIT" &&
      jq -r '.messages[] | "#\(.id) [\(.sender)] \(.text | split("\n")
             | map(gsub("^\\s+|\\s+$"; "")) | map(select(length > 0)) | .[0] // "")"' \
        "$PAGE_FILE.json" >"$PAGE_FILE"
  else
    in_background "$VIA" fetch --url "$BASE_URL" --target "$TARGET" --since-id "$LAST" \
      --limit 200 --wait "$WAIT" >"$PAGE_FILE"
  fi
}

# Replaces LASTFILE in one step, so a kill never leaves it half written.
save_last() {
  printf '%s\n' "$LAST" >"$LASTFILE.tmp.$$" && mv -f "$LASTFILE.tmp.$$" "$LASTFILE"
}

ITER=0
while true; do
  STARTED=$SECONDS
  if fetch_page; then
    NOW="$(now)"
    SHOWN=0
    BEFORE=$LAST
    while IFS= read -r line; do
      [[ "$line" =~ ^#([0-9]+)\ \[([^]]*)\] ]] || continue
      ID="${BASH_REMATCH[1]}"
      SENDER="${BASH_REMATCH[2]}"
      if [ "$ID" -gt "$LAST" ]; then LAST="$ID"; fi
      if [ -z "$WATCH_SENDER" ] || [ "$SENDER" = "$WATCH_SENDER" ]; then
        if [ "$SHOWN" -eq 0 ]; then echo "$NOW new_messages"; fi
        SHOWN=$((SHOWN + 1))
        printf '%s\n' "$line"
      fi
    done <"$PAGE_FILE"
    if [ "$LAST" != "$BEFORE" ]; then save_last; fi
    # A relay that cannot wait answers at once: never poll faster than once a second.
    if [ "$LAST" = "$BEFORE" ] && [ $((SECONDS - STARTED)) -lt 1 ]; then
      in_background sleep 1
    fi
  else
    NOW="$(now)"
    echo "$NOW poll_failed base=$BASE_URL (retrying in ${INTERVAL}s)"
    in_background sleep "$INTERVAL"
  fi

  ITER=$((ITER + 1))
  if ((ITER % 3 == 0)); then
    echo "$NOW heartbeat last=$LAST"
  fi
done
