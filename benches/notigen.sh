#!/usr/bin/env bash
# notigen-emit throughput: events per second written to /dev/null on one core (taskset -c 0),
# for both payload modes, three runs each.
#
#   benches/notigen.sh [SIMULATED_SPAN]     (default 96h: about 2.17 million events)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
span=${1:-96h}
[ -n "${MEASPIPE_BIN_DIR:-}" ] || cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
bin=${MEASPIPE_BIN_DIR:-$root/target/release}/notigen-emit
# shellcheck source=benches/timing.sh
. "$root/benches/timing.sh"
for payload in seed full; do
    events=$("$bin" --seed 1 --duration "$span" --payload "$payload" | wc -l)
    bytes=$("$bin" --seed 1 --duration "$span" --payload "$payload" | wc -c)
    time_runs 3 "notigen-emit --payload $payload" events "$events" "$bytes" -- \
        "$bin" --seed 1 --duration "$span" --payload "$payload"
done
