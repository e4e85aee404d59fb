#!/usr/bin/env bash
# bwctl-extract throughput: iperf3 -J documents per second turned into measurement records on
# one core (taskset -c 0), written to /dev/null, three runs.
#
#   benches/bwctl.sh [ROUNDS]     (default 4,000 rounds of 5 documents: 20,000 documents)
#
# Each round appends five real iperf3 3.12 outputs from tests/fixtures/iperf3 (TCP 1 and 4
# streams, reverse, UDP 1 and 2 streams; 4.8 KB on average), as a loop of runs would.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-4000}
[ -n "${MEASPIPE_BIN_DIR:-}" ] || cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --bin bwctl-extract
bin=${MEASPIPE_BIN_DIR:-$root/target/release}/bwctl-extract
input=$(mktemp)
trap 'rm -f "$input"' EXIT
f=$root/tests/fixtures/iperf3
for _ in $(seq "$rounds"); do
    cat "$f/tcp_1stream.json" "$f/tcp_4streams.json" "$f/tcp_reverse.json" "$f/udp_1stream.json" "$f/udp_2streams.json"
done > "$input"
# shellcheck source=benches/timing.sh
. "$root/benches/timing.sh"
time_runs 3 bwctl-extract documents $((rounds * 5)) "$(wc -c < "$input")" -- "$bin" "$input"
