#!/usr/bin/env bash
# Issue 17's /metrics target: the Prometheus exposition over 10,000 stats files of which
# 9,000 belong to exited writers, ≤ 100 ms (Prometheus' Python multiprocess mode takes 40 s
# on 6,800 files). Measured through `mmstats-slurp --format prom`, which renders the same
# exposition mmstats-serve's /metrics serves, beside `cat` of the same files in the same run.
#
#   benches/mmstats-prom.sh [FILES] [DEAD]     (defaults 10000 and 9000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
files=${1:-10000}
dead=${2:-9000}
[ -n "${MEASPIPE_BIN_DIR:-}" ] || cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --bin mmstats-slurp --example mmstats-files
bin=${MEASPIPE_BIN_DIR:-$root/target/release}
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
# shellcheck source=benches/timing.sh
. "$root/benches/timing.sh"

# Ten live writers own the live files (their pids are alive for the whole run).
live=()
for _ in $(seq 10); do
    sleep 3600 &
    pids+=($!)
    live+=($!)
done
"$root/target/release/examples/mmstats-files" "$work" "$files" "$dead" "${live[@]}"
bytes=$(cat "$work"/*.mmstats | wc -c)
time_runs 3 "cat" files "$files" "$bytes" -- sh -c "cat '$work'/*.mmstats"
time_runs 5 "mmstats-slurp --format prom" files "$files" "$bytes" -- "$bin/mmstats-slurp" --format prom "$work/*.mmstats"
"$bin/mmstats-slurp" --format prom "$work/*.mmstats" | awk '/^# TYPE/ { t++ } !/^#/ { s++ } END { printf "exposition: %d families, %d samples\n", t, s }'
