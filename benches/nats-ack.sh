#!/usr/bin/env bash
# What nats-sub's --ack costs: the same GridFTP transfers, already in a JetStream stream,
# through `nats-sub | esmond-post` into a fresh release esmond-serve, once acknowledged
# when written to the pipe and once with `nats-sub --ack A | esmond-post --ack A`
# (acknowledged when the archive has them), each on its own durable consumer and archive,
# in one run. Every transfer its own metadata, as in benches/ingest-realistic.sh.
#
#   benches/nats-ack.sh [TRANSFERS] [RUNS]        (defaults 100,000 and 2)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-100000}
runs=${2:-2}
[ -n "${MEASPIPE_BIN_DIR:-}" ] || cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
bin=${MEASPIPE_BIN_DIR:-$root/target/release}
work=$(mktemp -d)
server=
nats=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null
    [ -n "$nats" ] && kill "$nats" 2>/dev/null
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nats-server -js -a 127.0.0.1 -p "$port" -sd "$work/js" > "$work/nats.log" 2>&1 &
nats=$!
for _ in $(seq 300); do grep -q 'Server is ready' "$work/nats.log" && break; sleep 0.05; done
url="nats://127.0.0.1:$port"

awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) { t = 1700000000 + int(i / 10); s = strftime("%Y%m%d%H%M%S", t, 1);
    printf "DATE=%s.900000 HOST=vm PROG=globus-gridftp-server NL.EVNT=FTP_INFO START=%s.100000 USER=anonymous FILE=/data/f%d.bin BUFFER=131072 BLOCK=262144 NBYTES=%d VOLUME=/ STREAMS=4 STRIPES=1 DEST=[127.0.0.1] TYPE=RETR CODE=226 TASKID=none retrans=0,1,2,3\n", s, s, i % 1000, 50000000 + i } }' \
    > "$work/transfer.log"
"$bin/gridftp-parse" --host-ip 127.0.0.1 "$work/transfer.log" | "$bin/nats-pub" -s "$url" --quiet gridftp.vm

run() {
    local label=$1 consumer=$2; shift 2
    rm -rf "$work/archive" "$work/keys.db" "$work/post.ack"
    key=$("$bin/esmond-serve" --data "$work/archive" token add bench)
    "$bin/esmond-serve" --data "$work/archive" --listen 127.0.0.1:0 2> "$work/archive.log" &
    server=$!
    for _ in $(seq 100); do grep -q 'listening on' "$work/archive.log" && break; sleep 0.1; done
    local archive
    archive=$(sed -n 's|.*listening on \(http://[^/]*\)/.*|\1|p' "$work/archive.log")
    local start end
    start=$(date +%s.%N)
    "$bin/nats-sub" -s "$url" --durable "$consumer" --count "$n" "$@" 'gridftp.>' \
        | ESMOND_KEY=$key "$bin/esmond-post" --url "$archive" --cache "$work/keys.db" \
            --ack "$work/post.ack" 2> "$work/post.err"
    end=$(date +%s.%N)
    kill "$server"; wait "$server" 2>/dev/null || true; server=
    awk -v s="$start" -v e="$end" -v n="$n" -v l="$label" -v sum="$(tail -1 "$work/post.err")" \
        'BEGIN { t = e - s; printf "%s: %d transfers in %.2f s: %.0f transfers/s; %s\n", l, n, t, n / t, sum }'
}
for r in $(seq "$runs"); do
    run "nats-sub | esmond-post (acknowledged once in the pipe)" "plain$r"
    run "nats-sub --ack | esmond-post --ack (acknowledged once archived)" "acked$r" --ack "$work/post.ack"
done
