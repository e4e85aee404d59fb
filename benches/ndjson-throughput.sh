#!/usr/bin/env bash
# NDJSON read/validate/write throughput of the shared reader and writer, measured through
# record-check (classify + pass-through) on generated measurement records, one core.
#
#   benches/ndjson-throughput.sh [LINES]     (default 1,000,000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lines=${1:-1000000}
cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
line=$(head -1 "$root/tests/fixtures/records/mixed.ndjson")
LINE=$line awk -v n="$lines" 'BEGIN { for (i = 0; i < n; i++) print ENVIRON["LINE"] }' > "$work/in.ndjson"
bytes=$(stat -c %s "$work/in.ndjson")
run() {
    local start end
    start=$(date +%s.%N)
    taskset -c 0 "$root/target/release/record-check" "$@" "$work/in.ndjson" > /dev/null
    end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" -v n="$lines" -v b="$bytes" -v what="$*" \
        'BEGIN { t = e - s; printf "record-check %-10s %d lines in %.3f s: %.0f lines/s, %.0f MB/s\n", what, n, t, n / t, b / t / 1e6 }'
}
for _ in 1 2 3; do run; done
for _ in 1 2 3; do run --quiet; done
