#!/usr/bin/env bash
# GridFTP transfers end to end on a realistic log (issue 14: ≥ 20,000 transfers/s): every
# transfer its own metadata (its own size, as on a real server, where
# gridftp-bytes-transferred is part of the identity), through
# `gridftp-parse | esmond-post` into a fresh release esmond-serve on loopback, once with
# esmond's API (--esmond-api: a metadata POST and a PUT per transfer) and once with
# measpipe's batch API (the default against esmond-serve), one request at a time and with
# esmond-post's default requests in flight, each into its own archive.
#
#   benches/ingest-realistic.sh [TRANSFERS]     (default 100,000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-100000}
[ -n "${MEASPIPE_BIN_DIR:-}" ] || cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
bin=${MEASPIPE_BIN_DIR:-$root/target/release}
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) { t = 1700000000 + int(i / 10); s = strftime("%Y%m%d%H%M%S", t, 1);
    printf "DATE=%s.900000 HOST=vm PROG=globus-gridftp-server NL.EVNT=FTP_INFO START=%s.100000 USER=anonymous FILE=/data/f%d.bin BUFFER=131072 BLOCK=262144 NBYTES=%d VOLUME=/ STREAMS=4 STRIPES=1 DEST=[127.0.0.1] TYPE=RETR CODE=226 TASKID=none retrans=0,1,2,3\n", s, s, i % 1000, 50000000 + i } }' \
    > "$work/transfer.log"

run() {
    local label=$1; shift
    rm -rf "$work/archive" "$work/keys.db"
    key=$("$bin/esmond-serve" --data "$work/archive" token add bench)
    "$bin/esmond-serve" --data "$work/archive" --listen 127.0.0.1:0 2> "$work/archive.log" &
    server=$!
    for _ in $(seq 100); do grep -q 'listening on' "$work/archive.log" && break; sleep 0.1; done
    url=$(sed -n 's|.*listening on \(http://[^/]*\)/.*|\1|p' "$work/archive.log")
    local start end
    start=$(date +%s.%N)
    "$bin/gridftp-parse" --host-ip 127.0.0.1 "$work/transfer.log" \
        | ESMOND_KEY=$key "$bin/esmond-post" --url "$url" --cache "$work/keys.db" "$@" 2> "$work/post.err"
    end=$(date +%s.%N)
    local server_cpu
    server_cpu=$(awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$server/stat")
    kill "$server"; wait "$server" 2>/dev/null || true; server=
    awk -v s="$start" -v e="$end" -v n="$n" -v l="$label" -v c="$server_cpu" -v sum="$(tail -1 "$work/post.err")" \
        'BEGIN { t = e - s; printf "%s: %d transfers in %.2f s: %.0f transfers/s (esmond-serve CPU %s s); %s\n", l, n, t, n / t, c, sum }'
}
[ -n "${MEASPIPE_BATCH_ONLY:-}" ] || run "esmond API (--esmond-api)" --esmond-api
run "batch API, one request at a time (--in-flight 1)" --in-flight 1
run "batch API (default: 4 requests in flight)"
