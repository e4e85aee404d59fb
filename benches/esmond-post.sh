#!/usr/bin/env bash
# esmond-post into esmond-serve over loopback: points per second, and the same GridFTP log
# loaded by the original esmond-ps-load-gridftp (Python 2.7, esmond-client 4.2.1) beside it.
#
#   benches/esmond-post.sh [LINES]     (default 200,000 transfers, 2 points each)
#
# The transfers share their metadata (same host, peer, streams, size), as a busy server's
# log does, so the run measures data delivery; --batch-size is the default (1,000 points).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lines=${1:-200000}
[ -n "${MEASPIPE_BIN_DIR:-}" ] || cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
bin=${MEASPIPE_BIN_DIR:-$root/target/release}
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server"; rm -rf "$work"' EXIT
# shellcheck source=benches/timing.sh
. "$root/benches/timing.sh"

awk -v n="$lines" 'BEGIN { for (i = 0; i < n; i++) { t = 1700000000 + i; s = strftime("%Y%m%d%H%M%S", t, 1);
    printf "DATE=%s.900000 HOST=vm PROG=globus-gridftp-server NL.EVNT=FTP_INFO START=%s.100000 USER=anonymous FILE=/data/f.bin BUFFER=131072 BLOCK=262144 NBYTES=50000000 VOLUME=/ STREAMS=4 STRIPES=1 DEST=[127.0.0.1] TYPE=RETR CODE=226 TASKID=none retrans=0,1,2,3\n", s, s } }' > "$work/transfer.log"
"$bin/gridftp-parse" --host-ip 127.0.0.1 "$work/transfer.log" > "$work/records.ndjson"

key=$("$bin/esmond-serve" --data "$work/archive" token add bench)
"$bin/esmond-serve" --data "$work/archive" --listen 127.0.0.1:0 2> "$work/archive.log" &
server=$!
for _ in $(seq 100); do grep -q 'listening on' "$work/archive.log" && break; sleep 0.1; done
url=$(sed -n 's|.*listening on \(http://[^/]*\)/.*|\1|p' "$work/archive.log")

# Each run re-sends the same points (identical data is a no-op for the archive) after the
# first; all three go through the full validate-compare-commit path.
time_runs 3 "esmond-post ($lines records)" points $((lines * 2)) "$(wc -c < "$work/records.ndjson")" -- \
    "$bin/esmond-post" --url "$url" --key "$key" --cache "$work/keys.json" "$work/records.ndjson"

python=${MEASPIPE_PYTHON27:-$HOME/.pyenv/versions/2.7.18/bin/python}
loader=$(dirname "$python")/esmond-ps-load-gridftp
if [ -x "$python" ] && [ -e "$loader" ]; then
    head -n 2000 "$work/transfer.log" > "$work/small.log"
    start=$(date +%s.%N)
    (cd "$work" && "$python" "$loader" -f small.log -U "$url" -s esmond -u bench -k "$key" -P 2> "$work/original.log")
    end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" 'BEGIN { t = e - s; printf "original esmond-ps-load-gridftp: 2000 records (4000 points) in %.2f s: %.0f points/s\n", t, 4000 / t }'
else
    echo "original esmond-ps-load-gridftp: not installed under $python; skipped" >&2
fi
