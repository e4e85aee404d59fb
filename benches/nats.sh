#!/usr/bin/env bash
# nats-pub -> nats-sub over a real nats-server with JetStream (Debian's; file storage),
# started here in a temporary directory on a free loopback port, beside the same records
# through a plain pipe (cat | cat), in one run.
#
#   benches/nats.sh [RECORDS] [RUNS]          (defaults 1000000 and 3)
#   MEASPIPE_BENCH_PACKS="1 64"               nats-pub --pack values, each run (default)
#
# Each run publishes to a new subject (its own stream) while nats-sub reads it on a
# durable consumer until it has every record; the wall time is from both starting to
# nats-sub's exit. Prints records/s, the CPU seconds of nats-pub, nats-sub and the server,
# and checks that the output is the input, line for line.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
records=${1:-1000000}
runs=${2:-3}
[ -n "${MEASPIPE_BIN_DIR:-}" ] || cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --bin nats-pub --bin nats-sub
bin=${MEASPIPE_BIN_DIR:-$root/target/release}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nats-server -js -a 127.0.0.1 -p "$port" -sd "$work/js" > "$work/server.log" 2>&1 &
server=$!
cleanup() { rc=$?; [ "$rc" = 0 ] || { echo "failed ($rc); the server's log ends:" >&2; tail -n 15 "$work/server.log" "$work/pub.time" "$work/sub.time" >&2; }; kill "$server" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 300); do grep -q 'Server is ready' "$work/server.log" && break; sleep 0.05; done
url="nats://127.0.0.1:$port"
# Each run has its own stream, and JetStream reserves a stream's --max-bytes (10 GiB by
# default) of the server's storage: 1 GiB each lets several fit.
limit=(--max-bytes $((1 << 30)))
# GridFTP-like measurement records (~330 bytes), each distinct.
python3 "$root/benches/gridftp-records.py" "$records" > "$work/in.ndjson"
bytes=$(wc -c < "$work/in.ndjson")
echo "input: $records records, $bytes bytes"
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
for run in $(seq "$runs"); do
    start=$(date +%s.%N)
    cat "$work/in.ndjson" | cat > "$work/pipe.ndjson"
    end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" -v n="$records" 'BEGIN { printf "plain pipe (cat | cat): %.3f s, %.0f records/s\n", e - s, n / (e - s) }'
    for pack in ${MEASPIPE_BENCH_PACKS:-1 64}; do
        subject="bench${run}p$pack"
        server_before=$(cpu "$server")
        start=$(date +%s.%N)
        { /usr/bin/time -f '%U %S' "$bin/nats-pub" -s "$url" "${limit[@]}" --quiet --pack "$pack" --ack "$work/$subject.ack" "$subject.h1" "$work/in.ndjson" 2> "$work/pub.time"; } &
        pub=$!
        /usr/bin/time -f '%U %S' "$bin/nats-sub" -s "$url" "${limit[@]}" --durable bench --count "$records" "$subject.>" > "$work/out.ndjson" 2> "$work/sub.time"
        end=$(date +%s.%N)
        wait "$pub"
        server_after=$(cpu "$server")
        if ! cmp -s "$work/in.ndjson" "$work/out.ndjson"; then
            if cmp -s <(sort "$work/in.ndjson") <(sort "$work/out.ndjson"); then
                echo "run $run, --pack $pack: the output is the input's records in another order" >&2
            else
                echo "run $run, --pack $pack: the output is not the input" >&2
            fi
            tail -n 5 "$work/server.log" "$work/pub.time" "$work/sub.time" >&2
            exit 1
        fi
        awk -v s="$start" -v e="$end" -v n="$records" -v p="$(tail -1 "$work/pub.time")" -v q="$(tail -1 "$work/sub.time")" \
            -v k="$(( server_after - server_before ))" -v hz="$hz" -v pack="$pack" \
            'BEGIN { split(p, a, " "); split(q, b, " ");
                     printf "nats-pub --pack %d -> nats-sub (JetStream, file storage): %.3f s, %.0f records/s (CPU: nats-pub %.2f s, nats-sub %.2f s, nats-server %.2f s)\n",
                            pack, e - s, n / (e - s), a[1] + a[2], b[1] + b[2], k / hz }'
    done
done
