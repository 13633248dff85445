#!/usr/bin/env bash
# Clean release build of the README's first command, for each revision given:
#   bench/clean-build.sh REV [REV...]
# Each revision is checked out into its own worktree and built with
# `cargo build --release -p kondate` into an empty target directory (crates fetched first, so
# the download is not timed). Prints one line per revision: wall time and peak RSS, as
# measured by /usr/bin/time -v. Run it on an otherwise idle machine; revisions run one after
# the other in the same session so their numbers compare. With CLEAN_BUILD_KEEP=1 the
# target directories are kept (the release binary is TARGET/release/kondate).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bench/clean-build.sh REV [REV...]" >&2; exit 2; }
repo=$(git rev-parse --show-toplevel)
base=${CLEAN_BUILD_DIR:-/var/cache/kondate/clean-build}
mkdir -p "$base"
for rev in "$@"; do
  sha=$(git -C "$repo" rev-parse --short "$rev")
  tree="$base/tree-$sha"
  target="$base/target-$sha"
  rm -rf "$tree" "$target"
  git -C "$repo" worktree prune
  git -C "$repo" worktree add -q --detach "$tree" "$sha"
  (cd "$tree" && cargo fetch -q)
  log="$base/time-$sha.txt"
  (cd "$tree" && CARGO_TARGET_DIR="$target" CARGO_INCREMENTAL=0 \
     /usr/bin/time -v -o "$log" cargo build --release -q -p kondate)
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$log")
  rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")
  echo "$sha wall=$wall peak_rss=$((rss_kb / 1024))MiB"
  git -C "$repo" worktree remove --force "$tree"
  if [ -n "${CLEAN_BUILD_KEEP:-}" ]; then
    echo "$sha kept: $target/release/kondate"
  else
    rm -rf "$target"
  fi
done
