#!/usr/bin/env bash
# notigen-emit throughput: events per second written to /dev/null on one core (taskset -c 0),
# for both payload modes, three runs each.
#
#   benches/notigen.sh [SIMULATED_SPAN]     (default 96h: about 2.17 million events)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
span=${1:-96h}
cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
bin=$root/target/release/notigen-emit
for payload in seed full; do
    events=$("$bin" --seed 1 --duration "$span" --payload "$payload" | wc -l)
    bytes=$("$bin" --seed 1 --duration "$span" --payload "$payload" | wc -c)
    for _ in 1 2 3; do
        start=$(date +%s.%N)
        taskset -c 0 "$bin" --seed 1 --duration "$span" --payload "$payload" > /dev/null
        end=$(date +%s.%N)
        awk -v s="$start" -v e="$end" -v n="$events" -v b="$bytes" -v p="$payload" \
            'BEGIN { t = e - s; printf "notigen-emit --payload %-4s %d events in %.3f s: %.0f events/s, %.0f MB/s, %.0f B/event\n", p, n, t, n / t, b / t / 1e6, b / n }'
    done
done
