#!/usr/bin/env bash
# The credential check, before and after a change: polling GET /v1/queries/{id} with a
# valid token (requests per second, latency), and 200 bad-secret requests at once while
# /healthz is probed (its slowest answer). Both builds are measured by the same program
# (crates/kondate-client/examples/auth_bench.rs) in one run, alternating, ROUNDS times.
#
# Usage: bench/auth.sh [BEFORE_COMMIT] [ROUNDS]   (default: eede0ca, the last commit before
#        the access work; 3 rounds). Builds both in release mode under $CARGO_TARGET_DIR
#        (the older one in a git worktree, its binary copied aside: the dependencies built
#        for one serve the other).
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE=${1:-eede0ca}
ROUNDS=${2:-3}
TARGET=$(realpath "${CARGO_TARGET_DIR:-target}")
WORK=$(mktemp -d)
trap 'git worktree remove --force "$WORK/before" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
git worktree add --detach "$WORK/before" "$BEFORE" >/dev/null
(cd "$WORK/before" && CARGO_TARGET_DIR="$TARGET" cargo build --release -q -p kondate)
cp "$TARGET/release/kondate" "$WORK/kondate-before"
cargo build --release -q -p kondate
cargo build --release -q -p kondate-client --example auth_bench
for round in $(seq 1 "$ROUNDS"); do
  "$TARGET/release/examples/auth_bench" "$WORK/kondate-before" "before ($BEFORE)"
  "$TARGET/release/examples/auth_bench" "$TARGET/release/kondate" "after ($(git rev-parse --short HEAD))"
done
