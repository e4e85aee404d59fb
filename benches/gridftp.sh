#!/usr/bin/env bash
# gridftp-parse throughput: transfer-log ("netlogger") lines per second turned into
# measurement records on one core (taskset -c 0), written to /dev/null, three runs.
#
#   benches/gridftp.sh [LINES]     (default 2,000,000 lines of about 290 bytes)
#
# The lines are real-shaped: alternating RETR/STOR with 226, four streams with retransmits.
# --host-ip keeps name resolution out of the measurement (it happens once per run anyway).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lines=${1:-2000000}
[ -n "${MEASPIPE_BIN_DIR:-}" ] || cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --bin gridftp-parse
bin=${MEASPIPE_BIN_DIR:-$root/target/release}/gridftp-parse
log=$(mktemp)
trap 'rm -f "$log"' EXIT
awk -v n="$lines" 'BEGIN { for (i = 0; i < n; i++) printf "DATE=20261122222712.%06d HOST=vm PROG=globus-gridftp-server NL.EVNT=FTP_INFO START=20261122222711.%06d USER=anonymous FILE=/data/gftp/src%d.bin BUFFER=131072 BLOCK=262144 NBYTES=%d VOLUME=/ STREAMS=4 STRIPES=1 DEST=[127.0.0.1] TYPE=%s CODE=226 TASKID=none retrans=0,1,2,3\n", i % 1000000, (i * 7) % 1000000, i, 50000000 + i, (i % 2 ? "RETR" : "STOR") }' > "$log"
# shellcheck source=benches/timing.sh
. "$root/benches/timing.sh"
time_runs 3 gridftp-parse lines "$lines" "$(wc -c < "$log")" -- "$bin" --host-ip 127.0.0.1 "$log"
