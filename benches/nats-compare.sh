#!/usr/bin/env bash
# Two builds of nats-pub and nats-sub, one record a message (their default), alternating on
# one nats-server (Debian's, JetStream file storage, started here on a free loopback port):
# for a change that must not cost the default path.
#
#   benches/nats-compare.sh OLD_BIN_DIR NEW_BIN_DIR [RECORDS] [RUNS]   (defaults 1000000, 3)
#
# Prints records/s and the CPU seconds of nats-pub, nats-sub and the server for each.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
old=$1 new=$2 records=${3:-1000000} runs=${4:-3}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nats-server -js -a 127.0.0.1 -p "$port" -sd "$work/js" > "$work/server.log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 300); do grep -q 'Server is ready' "$work/server.log" && break; sleep 0.05; done
url="nats://127.0.0.1:$port"
# The records of benches/nats.sh.
python3 "$root/benches/gridftp-records.py" "$records" > "$work/in.ndjson"
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
for run in $(seq "$runs"); do
    for which in old new; do
        bin=$old
        [ "$which" = new ] && bin=$new
        subject="compare${run}$which"
        before=$(cpu "$server")
        start=$(date +%s.%N)
        { /usr/bin/time -f '%U %S' "$bin/nats-pub" -s "$url" --max-bytes $((1 << 30)) --quiet "$subject.h1" "$work/in.ndjson" 2> "$work/pub.time"; } &
        pub=$!
        /usr/bin/time -f '%U %S' "$bin/nats-sub" -s "$url" --max-bytes $((1 << 30)) --durable bench --count "$records" "$subject.>" > "$work/out.ndjson" 2> "$work/sub.time"
        end=$(date +%s.%N)
        wait "$pub"
        after=$(cpu "$server")
        cmp -s "$work/in.ndjson" "$work/out.ndjson" || { echo "$which: the output is not the input" >&2; exit 1; }
        awk -v s="$start" -v e="$end" -v n="$records" -v p="$(tail -1 "$work/pub.time")" -v q="$(tail -1 "$work/sub.time")" \
            -v k="$((after - before))" -v hz="$hz" -v w="$which" \
            'BEGIN { split(p, a, " "); split(q, b, " ");
                     printf "%s: %.0f records/s (CPU: nats-pub %.2f s, nats-sub %.2f s, nats-server %.2f s)\n",
                            w, n / (e - s), a[1] + a[2], b[1] + b[2], k / hz }'
    done
done
