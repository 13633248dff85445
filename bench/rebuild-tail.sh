#!/usr/bin/env bash
# The serial tail of the release build, per revision, in the target directories that
# `CLEAN_BUILD_KEEP=1 bench/clean-build.sh REV...` kept:
#   bench/rebuild-tail.sh REV [REV...]
# Each revision is checked out again at the path clean-build.sh built it from; round 1
# rebuilds every kondate crate (the fresh checkout's sources are newer than their
# artifacts), round 2 only kondate-web and the binary (kondate-web's lib.rs touched).
# Revisions alternate within each round, so a host that slows down slows them all.
# Prints `round N REV wall_seconds user_seconds`.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bench/rebuild-tail.sh REV [REV...]" >&2; exit 2; }
repo=$(git rev-parse --show-toplevel)
base=${CLEAN_BUILD_DIR:-/var/cache/kondate/clean-build}
for round in 1 2; do
  for rev in "$@"; do
    sha=$(git -C "$repo" rev-parse --short "$rev")
    tree="$base/tree-$sha"
    [ -d "$base/target-$sha" ] || { echo "no kept build of $sha: run CLEAN_BUILD_KEEP=1 bench/clean-build.sh $sha" >&2; exit 1; }
    git -C "$repo" worktree prune
    [ -d "$tree" ] || git -C "$repo" worktree add -q --detach "$tree" "$sha"
    touch "$tree/crates/kondate-web/src/lib.rs"
    (cd "$tree" && CARGO_TARGET_DIR="$base/target-$sha" CARGO_INCREMENTAL=0 \
       /usr/bin/time -f "%e %U" -o "$base/tail-$sha-$round.txt" cargo build --release -q -p kondate)
    echo "round $round $sha $(cat "$base/tail-$sha-$round.txt")"
  done
done
for rev in "$@"; do
  git -C "$repo" worktree remove --force "$base/tree-$(git -C "$repo" rev-parse --short "$rev")" 2>/dev/null || true
done
