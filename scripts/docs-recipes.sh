#!/usr/bin/env bash
# Runs the README's quick start and every ```sh command of docs/unattended.md as written, the
# way a reader would, and fails on the first one that does not do what the text says.
#
#   scripts/docs-recipes.sh [RELAY_BINARY]   (default: target/debug, else target/release)
#   PORT=18010 scripts/docs-recipes.sh       the port the relay gets [a free one]
#
# What the runner provides, in a throwaway HOME and project directory:
# - `cargo install --path .` copies the already built binary to ~/.cargo/bin (a stand-in for
#   the build, not for the relay), and ~/.cargo/bin is on PATH as rustup sets it up;
# - a fake `codex` on PATH: `codex exec ... PROMPT` posts "fake codex reviewed #ID" as codex
#   for the message the prompt names; `my-reviewer.sh` does the same from watch's environment;
# - the relay's port: CLAUDE_CODEX_PORT and CLAUDE_CODEX_URL point at PORT, and a literal
#   127.0.0.1:8010 in a command becomes 127.0.0.1:PORT. Nothing else in a command changes.
# How a command is run follows from what it is:
# - ending in `&` (starting the relay): run, then wait until the relay answers;
# - a watcher (`watch` without --count, auto-review-loop.sh, review-poll.sh): started in its own
#   process group; once it is waiting, a message from claude is posted and the watcher must act
#   on it (a reply from codex, or a printed line) before it is stopped with SIGTERM;
# - `post ... --await SENDER`: started, answered as SENDER once its post is made, and it must
#   print that answer and exit 0;
# - anything else: run, and it must exit 0.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-}
if [[ -z $bin ]]; then
  for candidate in "$repo/target/debug/claude-codex-relay" "$repo/target/release/claude-codex-relay"; do
    [[ -x $candidate ]] && { bin=$candidate; break; }
  done
fi
[[ -n $bin && -x $bin ]] || { echo "docs-recipes: build the relay first (cargo build)" >&2; exit 1; }
bin=$(realpath "$bin")
PORT=${PORT:-$((20000 + RANDOM % 20000))}
url="http://127.0.0.1:$PORT"

work=$(mktemp -d)
daemons=()
cleanup() {
  for pid in "${daemons[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  local jobs_left
  mapfile -t jobs_left < <(jobs -p)
  ((${#jobs_left[@]} == 0)) || kill "${jobs_left[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "docs-recipes: FAIL $*" >&2; exit 1; }

export HOME="$work/home" RELAY_BIN_BUILT="$bin" CLAUDE_CODEX_PORT="$PORT" CLAUDE_CODEX_URL="$url"
mkdir -p "$HOME" "$work/fakes" "$work/project" "$work/logs"
ln -s "$repo/scripts" "$work/project/scripts"
export PATH="$HOME/.cargo/bin:$work/fakes:$PATH"

cat >"$work/fakes/cargo" <<'EOF'
#!/usr/bin/env bash
# Stands in for the build: `cargo install --path .` installs the binary already built.
[[ "$*" == "install --path ." ]] || { echo "fake cargo: only 'install --path .'" >&2; exit 2; }
mkdir -p "$HOME/.cargo/bin"
cp "$RELAY_BIN_BUILT" "$HOME/.cargo/bin/claude-codex-relay"
EOF
cat >"$work/fakes/codex" <<'EOF'
#!/usr/bin/env bash
# A fake Codex CLI: `codex exec [FLAGS] [resume ID] PROMPT` answers the message PROMPT names.
[[ ${1:-} == exec ]] || { echo "fake codex: only 'exec'" >&2; exit 2; }
prompt=${!#}
id=$(grep -o '#[0-9][0-9]*' <<<"$prompt" | head -n 1 | tr -d '#' || true)
[[ -n $id ]] || exit 0
target=$(sed -n 's/.*target="\([^"]*\)".*/\1/p' <<<"$prompt" | head -n 1)
claude-codex-relay post --target "${target:-proj-x}" --sender codex "fake codex reviewed #$id ($*)" >/dev/null
EOF
cat >"$work/fakes/my-reviewer.sh" <<'EOF'
#!/usr/bin/env bash
# The reviewer of the watch --exec example: reads the message, answers as codex.
cat >/dev/null
claude-codex-relay post --target "$RELAY_TARGET" --sender codex "my-reviewer.sh reviewed #$RELAY_MESSAGE_ID" >/dev/null
EOF
chmod +x "$work/fakes/"*

# The ```sh commands of FILE (from the section titled SECTION, if given), one per line as
# FILE:LINE<TAB>COMMAND, continuation lines joined and comment lines dropped.
commands() {
  awk -v file="$1" -v section="${2:-}" '
    /^## / { in_section = (section == "" || $0 == "## " section) }
    /^```/ { if (fence) { fence = 0 } else if ($0 == "```sh" && in_section) { fence = 1 }; next }
    !fence { next }
    /^[[:space:]]*(#|$)/ && cmd == "" { next }
    {
      line = $0
      if (cmd == "") start = NR
      if (sub(/\\$/, "", line)) { cmd = cmd line; next }
      print file ":" start "\t" cmd line
      cmd = ""
    }' "$repo/$1"
}

# Waits up to 20 s until FILE has a line matching REGEX.
wait_for_line() {
  local file=$1 regex=$2 i
  for ((i = 0; i < 200; i++)); do
    grep -Eq "$regex" "$file" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# Waits up to 20 s until state file $1 holds an id of at least $2.
state_saved() {
  local i
  for ((i = 0; i < 200; i++)); do
    [[ -f $1 && $(cat "$1") -ge $2 ]] && return 0
    sleep 0.1
  done
  return 1
}

# Waits up to 30 s for a message from codex after id $1 that mentions "#$1".
reply_after() {
  "$bin" watch --url "$url" --target proj-x --since-id "$1" --from codex --count 1 --timeout 30 \
    --json 2>/dev/null | grep -q "#$1\\b"
}

trigger() {
  "$bin" post --url "$url" --target proj-x --sender claude --json "docs-recipes trigger $1" |
    sed -n 's/.*"posted":\([0-9]*\).*/\1/p'
}

# Runs a command in this shell (so `cd` stays) with an interactive shell's leniency: no -e, -u
# or pipefail, which a reader's shell does not have either.
as_reader() {
  local rc=0
  set +euo pipefail
  eval "$1" </dev/null
  rc=$?
  set -euo pipefail
  return $rc
}

ran=0
run_one() {
  local where=$1 cmd=${2//127.0.0.1:8010/127.0.0.1:$PORT} log
  log="$work/logs/$ran.log"
  echo "docs-recipes: $where: $cmd"
  local bare=${cmd%%#*}
  bare=${bare%"${bare##*[![:space:]]}"}
  if [[ $bare == *"&" ]]; then
    as_reader "$cmd"
    local i
    for ((i = 0; i < 300; i++)); do
      "$bin" channels --url "$url" >/dev/null 2>&1 && break
      sleep 0.1
    done
    "$bin" channels --url "$url" >/dev/null || fail "$where: the relay did not start"
  elif [[ $cmd == *"--await "* ]]; then
    local from=${cmd#*--await } out="$work/logs/$ran.out"
    from=${from%% *}
    setsid bash -c "$cmd" >"$out" 2>"$log" &
    local pid=$!
    daemons+=("$pid")
    wait_for_line "$log" '^posted #' || fail "$where: no 'posted' line: $(cat "$log")"
    "$bin" post --url "$url" --target proj-x --sender "$from" "docs-recipes answer" >/dev/null
    wait "$pid" || fail "$where: exited $? : $(cat "$log")"
    grep -q "docs-recipes answer" "$out" || fail "$where: the answer was not printed: $(cat "$out")"
  elif [[ $cmd == *"review-poll.sh"* || $cmd == *"auto-review-loop.sh"* ||
    ($cmd == *" watch "* && $cmd != *"--count"*) ]]; then
    setsid bash -c "$cmd" >"$log" 2>&1 &
    local pid=$!
    daemons+=("$pid")
    if [[ $cmd == *"review-poll.sh"* ]]; then
      wait_for_line "$log" 'poller_start' || fail "$where: did not start: $(cat "$log")"
      local id
      id=$(trigger "$ran")
      wait_for_line "$log" "^#$id \\[claude\\] docs-recipes trigger" ||
        fail "$where: #$id was not printed: $(cat "$log")"
    else
      wait_for_line "$log" 'watch: watching' || fail "$where: did not start: $(cat "$log")"
      local id
      id=$(trigger "$ran")
      reply_after "$id" || fail "$where: no review of #$id: $(cat "$log")"
      # The watcher records a message as handled after its CMD ends; stopping it before then
      # would (rightly) have the next watcher on the same state file handle it again.
      if [[ $cmd == *"auto-loop.last_id"* || $cmd == *"auto-review-loop.sh"* ]]; then
        state_saved .codex/auto-loop.last_id "$id" ||
          fail "$where: #$id was never recorded as handled: $(cat "$log")"
      fi
    fi
    kill -TERM -- "-$pid"
    wait "$pid" 2>/dev/null || true
  else
    as_reader "$cmd" || fail "$where: exited $?"
  fi
  ran=$((ran + 1))
}

cd "$repo"
while IFS=$'\t' read -r where cmd; do run_one "$where" "$cmd"; done < <(commands README.md "Quick start")
# The quick start's relay keeps running for the recipes, as it would for the reader.
cd "$work/project"
while IFS=$'\t' read -r where cmd; do run_one "$where" "$cmd"; done < <(commands docs/unattended.md)
[[ $ran -ge 10 ]] || fail "only $ran commands found"
echo "docs-recipes: all $ran commands ran as written"
