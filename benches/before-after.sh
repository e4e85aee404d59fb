#!/usr/bin/env bash
# Every producer's throughput before and after a change, in one run on the same machine:
# builds REV (default: origin/main, else HEAD~1) in a temporary worktree, then runs each
# shell benchmark with the old binaries and with the new, alternating, so noise hits both.
#
#   benches/before-after.sh [REV]
#
# Compare the "per CPU second" figures (CPU time is what a shared machine measures best).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rev=${1:-$(git -C "$root" rev-parse --verify -q origin/main || git -C "$root" rev-parse HEAD~1)}
old=${MEASPIPE_BEFORE_DIR:-$(mktemp -d)}
if [ ! -x "$old/target/release/gridftp-parse" ]; then
    git -C "$root" worktree add --detach "$old/src" "$rev" > /dev/null
    CARGO_TARGET_DIR=$old/target cargo build --release --locked --quiet --bins \
        --manifest-path "$old/src/Cargo.toml"
    git -C "$root" worktree remove --force "$old/src"
fi
cargo build --release --locked --quiet --bins --manifest-path "$root/Cargo.toml"
for bench in notigen gridftp bwctl ndjson-throughput esmond-post; do
    for side in before after; do
        dir=$old/target/release
        [ "$side" = after ] && dir=$root/target/release
        echo "== $bench, $side ($([ "$side" = before ] && echo "$rev" || echo working tree))"
        MEASPIPE_BIN_DIR=$dir "$root/benches/$bench.sh" 2>&1 | grep -v '^original esmond' || true
    done
done
