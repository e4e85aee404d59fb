#!/usr/bin/env bash
# Issue 17's mmstats-publish target, ≥ 1,000,000 lines/s: N notification-like lines
# (~230 bytes, 8 event types, a nested payload) through `mmstats-publish --count-by
# event_type --histogram size` on one core, three runs, beside `cat` of the same file.
#
#   benches/mmstats-publish.sh [LINES]     (default 2,000,000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lines=${1:-2000000}
[ -n "${MEASPIPE_BIN_DIR:-}" ] || cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --bin mmstats-publish
bin=${MEASPIPE_BIN_DIR:-$root/target/release}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=benches/timing.sh
. "$root/benches/timing.sh"

awk -v n="$lines" 'BEGIN {
    split("create.start create.end delete.start delete.end resize.prep resize.confirm reboot.start reboot.end", ev, " ");
    for (i = 0; i < n; i++)
        printf "{\"kind\":\"notification\",\"event_type\":\"compute.instance.%s\",\"message_id\":\"%08x-0000\",\"payload\":{\"instance_id\":\"i-%06d\",\"state\":\"active\",\"event_type\":\"nested\"},\"size\":%d,\"ts\":%d.5}\n", ev[i % 8 + 1], i, i % 100000, i % 4096, 1700000000 + i
}' > "$work/lines"
bytes=$(wc -c < "$work/lines")
time_runs 3 cat lines "$lines" "$bytes" -- cat "$work/lines"
for _ in 1 2 3; do
    times=$( { TIMEFORMAT='%R %U %S'; time taskset -c 0 "$bin/mmstats-publish" --count-by event_type --histogram size -o "$work/p.mmstats" < "$work/lines" > /dev/null; } 2>&1 | tail -1)
    awk -v t="$times" -v n="$lines" -v b="$bytes" 'BEGIN { split(t, x, " "); c = x[2] + x[3]; if (c <= 0) c = 0.001;
        printf "mmstats-publish: %d lines in %.3f s (CPU %.3f s): %.0f lines/s, %.0f MB/s, %.0f lines per CPU second\n", n, x[1], c, n / x[1], b / x[1] / 1e6, n / c }'
done
