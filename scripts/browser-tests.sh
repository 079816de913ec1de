#!/usr/bin/env bash
# Runs the web page's real-browser tests (tests/browser) on a fresh Debian machine: installs
# Debian's Chromium if /usr/bin/chromium is missing and playwright-core from the lock file,
# builds the release binary, then runs node's test runner. CI calls this; so can a developer.
#   scripts/browser-tests.sh            run the tests
#   scripts/browser-tests.sh --screenshots   also retake docs/screenshot-{light,dark}.png
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
    echo "browser-tests: installing Debian's chromium" >&2
    sudo_=""
    [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "browser-tests: node and npm are needed (apt-get install -y nodejs npm)" >&2
    exit 1
fi

# playwright-core only drives the browser; it must not download one of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

cargo build --release --quiet

cd tests/browser
node --test --test-concurrency=1 page.test.mjs
if [ "${1:-}" = "--screenshots" ]; then
    node screenshots.mjs
fi
