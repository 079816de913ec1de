#!/usr/bin/env bash
# Runs `cargo test` on this source tree as an ordinary user, so the suite is known to need no
# root: no test may depend on powers (chattr, writing anywhere, ignoring file modes) that only
# root has. Run as root on a machine with a Rust toolchain (CI does); it creates the user if
# missing, copies the tree (without target/ and .git/) into the user's home, makes the
# toolchain and the crates already downloaded reachable for the user, and runs the tests there.
#
#   scripts/test-as-user.sh [USER]      (default relay-tester)
#
# Extra arguments after USER go to `cargo test` (e.g. `scripts/test-as-user.sh tester --lib`).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TEST_USER=${1:-relay-tester}
shift || true

if [ "$(id -u)" -ne 0 ]; then
  echo "test-as-user: run this as root: it creates the user and copies the toolchain" >&2
  exit 2
fi
id "$TEST_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$TEST_USER"
HOME_DIR=$(getent passwd "$TEST_USER" | cut -d: -f6)
GROUP=$(id -gn "$TEST_USER")
as_user() { su "$TEST_USER" -s /bin/bash -c "$1"; }

# The toolchain: used where it is if the user can run it (a system-wide install), else linked
# (or copied) into the user's home: rustup's usual home under /root is closed to other users.
SYSROOT=$(rustc --print sysroot)
TOOLCHAIN=$SYSROOT
if ! as_user "test -x '$SYSROOT/bin/cargo' && test -x '$SYSROOT/bin/rustc'"; then
  TOOLCHAIN=$HOME_DIR/.relay-test-toolchain
  STAMP="$SYSROOT $(rustc --version)"
  if [ "$(cat "$TOOLCHAIN/.source" 2>/dev/null)" != "$STAMP" ]; then
    rm -rf "$TOOLCHAIN"
    # Hard links are instant on one file system and still readable behind /root's mode.
    cp -al "$SYSROOT" "$TOOLCHAIN" 2>/dev/null || {
      rm -rf "$TOOLCHAIN"
      cp -a "$SYSROOT" "$TOOLCHAIN"
    }
    echo "$STAMP" >"$TOOLCHAIN/.source"
  fi
fi

# The crates already downloaded, so nothing is fetched twice; cargo downloads what is missing.
USER_CARGO=$HOME_DIR/.cargo
mkdir -p "$USER_CARGO"
SOURCE_CARGO=${CARGO_HOME:-$HOME/.cargo}
if [ -d "$SOURCE_CARGO/registry" ] && [ "$SOURCE_CARGO" != "$USER_CARGO" ]; then
  cp -a "$SOURCE_CARGO/registry" "$USER_CARGO/"
fi
chown -R "$TEST_USER:$GROUP" "$USER_CARGO"

# The tree under test, as it is on disk (uncommitted changes included).
TREE=$HOME_DIR/relay
rm -rf "$TREE"
mkdir -p "$TREE"
tar -C "$ROOT" --exclude=./target --exclude=./.git --exclude=node_modules -cf - . |
  tar -C "$TREE" -xf -
chown -R "$TEST_USER:$GROUP" "$TREE"

echo "test-as-user: cargo test as $TEST_USER (uid $(id -u "$TEST_USER")) in $TREE"
quoted=
if [ "$#" -gt 0 ]; then quoted=$(printf ' %q' "$@"); fi
as_user "cd '$TREE' && exec env -i HOME='$HOME_DIR' USER='$TEST_USER' LOGNAME='$TEST_USER' \
  PATH='$TOOLCHAIN/bin:/usr/local/bin:/usr/bin:/bin' CARGO_HOME='$USER_CARGO' \
  CARGO_TERM_COLOR='${CARGO_TERM_COLOR:-auto}' cargo test$quoted"
