#!/usr/bin/env bash
# esmond-post's peak RSS against the number of distinct metadata it sees (issue 13: bounded,
# ≤ 64 MB at 1,000,000).
#
#   benches/esmond-post-memory.sh [COUNTS...]     (default: 10000 100000 1000000)
#
# Each GridFTP transfer has its own size, so each is its own metadata (as on a real server:
# gridftp-bytes-transferred is part of the identity). The records are posted twice with one
# key cache: the first run creates every metadata, the second finds every key in the cache.
# The archive is examples/stub-archive (answers every request at once, stores nothing), so
# the figure is esmond-post's alone; esmond-serve would spend ~20 minutes on a million
# creations (issue 14). Peak RSS is GNU time's "Maximum resident set size"; CPU is user +
# system.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(10000 100000 1000000)
if [ -z "${MEASPIPE_BIN_DIR:-}" ]; then
    cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
fi
cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --example stub-archive
bin=${MEASPIPE_BIN_DIR:-$root/target/release}
stub=$root/target/release/examples/stub-archive
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server"; rm -rf "$work"' EXIT

"$stub" > "$work/stub.out" &
server=$!
for _ in $(seq 100); do grep -q 'listening on' "$work/stub.out" && break; sleep 0.1; done
url=$(sed -n 's|listening on \(http://[^/]*\)/|\1|p' "$work/stub.out")

for n in "${counts[@]}"; do
    awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) { t = 1700000000 + int(i / 10); s = strftime("%Y%m%d%H%M%S", t, 1);
        printf "DATE=%s.900000 HOST=vm PROG=globus-gridftp-server NL.EVNT=FTP_INFO START=%s.100000 USER=anonymous FILE=/data/f.bin BUFFER=131072 BLOCK=262144 NBYTES=%d VOLUME=/ STREAMS=4 STRIPES=1 DEST=[127.0.0.1] TYPE=RETR CODE=226 TASKID=none retrans=0\n", s, s, 1000000 + i } }' \
        > "$work/transfer.log"
    "$bin/gridftp-parse" --host-ip 127.0.0.1 "$work/transfer.log" > "$work/records.ndjson"
    rm -f "$work/keys.db"
    for run in create cached; do
        /usr/bin/time -f '%M %U %S %e' -o "$work/time" \
            "$bin/esmond-post" --url "$url" --script-alias / --cache "$work/keys.db" "$work/records.ndjson" 2> "$work/post.err"
        read -r rss user sys wall < "$work/time"
        awk -v n="$n" -v r="$run" -v rss="$rss" -v c="$(echo "$user + $sys" | bc)" -v w="$wall" -v s="$(tail -1 "$work/post.err")" \
            'BEGIN { printf "esmond-post, %d distinct metadata (%s): peak RSS %.1f MB, CPU %.2f s, wall %.2f s; %s\n", n, r, rss / 1024, c, w, s }'
    done
    printf 'key cache: %.1f MB on disk\n' "$(echo "$(stat -c %s "$work/keys.db") / 1048576" | bc -l)"
done
