#!/usr/bin/env bash
# NDJSON read/validate/write throughput of the shared reader and writer, measured through
# record-check (classify + pass-through) on generated measurement records, one core.
#
#   benches/ndjson-throughput.sh [LINES]     (default 1,000,000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lines=${1:-1000000}
[ -n "${MEASPIPE_BIN_DIR:-}" ] || cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
line=$(head -1 "$root/tests/fixtures/records/mixed.ndjson")
LINE=$line awk -v n="$lines" 'BEGIN { for (i = 0; i < n; i++) print ENVIRON["LINE"] }' > "$work/in.ndjson"
bytes=$(stat -c %s "$work/in.ndjson")
# shellcheck source=benches/timing.sh
. "$root/benches/timing.sh"
bin=${MEASPIPE_BIN_DIR:-$root/target/release}/record-check
time_runs 3 "record-check" lines "$lines" "$bytes" -- "$bin" "$work/in.ndjson"
time_runs 3 "record-check --quiet" lines "$lines" "$bytes" -- "$bin" --quiet "$work/in.ndjson"
