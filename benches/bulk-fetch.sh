#!/usr/bin/env bash
# Bulk fetch of 1,000,000 points (issue 15: >= 500,000 points/s with peak RSS <= 50 MB),
# beside esmond-client 4.2.1's esmond-ps-get-bulk on the same archive when pyenv's Python
# 2.7 has it (it does ~40,000 rows/s). The archive: a fresh release esmond-serve on
# loopback holding METADATA metadata of throughput with POINTS/METADATA points each, loaded
# with esmond-post. Each reader writes CSV files into its own directory; /usr/bin/time gives
# wall time, CPU time and peak RSS. The server's CPU is reported too (it shares the 2 cores).
#
#   benches/bulk-fetch.sh [POINTS] [METADATA]     (default 1,000,000 and 10)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
points=${1:-1000000}
metadata=${2:-10}
[ -n "${MEASPIPE_BIN_DIR:-}" ] || cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
bin=${MEASPIPE_BIN_DIR:-$root/target/release}
python27=${MEASPIPE_PYTHON27:-$HOME/.pyenv/versions/2.7.18/bin/python}
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

key=$("$bin/esmond-serve" --data "$work/archive" token add bench)
"$bin/esmond-serve" --data "$work/archive" --listen 127.0.0.1:0 2> "$work/archive.log" &
server=$!
for _ in $(seq 100); do grep -q 'listening on' "$work/archive.log" && break; sleep 0.1; done
url=$(sed -n 's|.*listening on \(http://[^/]*\)/.*|\1|p' "$work/archive.log")

# One value per record, the metadata's points one second apart from 2026-01-01.
per=$((points / metadata))
awk -v m="$metadata" -v per="$per" 'BEGIN { for (j = 0; j < m; j++) for (i = 0; i < per; i++)
    printf "{\"kind\":\"measurement\",\"metadata\":{\"subject-type\":\"point-to-point\",\"source\":\"10.0.%d.1\",\"destination\":\"10.0.%d.2\",\"measurement-agent\":\"10.0.%d.1\",\"tool-name\":\"bwctl/iperf3\",\"event-types\":[{\"event-type\":\"throughput\",\"summaries\":[]}]},\"ts\":%d,\"values\":{\"throughput\":%d}}\n", j, j, j, 1767225600 + i, 9000000000 + i }' \
    | ESMOND_KEY=$key "$bin/esmond-post" --url "$url" --cache "$work/keys.db" 2> "$work/post.err"
echo "loaded: $(tail -1 "$work/post.err")"
end=$((1767225600 + per))
# ISO dates, which both readers take (the window is inclusive: one second past the last).
window=(-S 2026-01-01T00:00:00 -E "$(date -u -d "@$end" +%Y-%m-%dT%H:%M:%S)")

server_cpu() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$server/stat"; }
measure() {
    local label=$1; shift
    local before after
    before=$(server_cpu)
    /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$@" > "$work/out" 2>&1 || { cat "$work/out" >&2; return 1; }
    after=$(server_cpu)
    read -r wall user sys rss < "$work/time"
    awk -v l="$label" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v n="$points" -v b="$before" -v a="$after" \
        'BEGIN { printf "%-22s %9.0f points/s  wall %6.2f s  CPU %6.2f s  peak RSS %6.1f MB  server CPU %6.2f s\n", l, n / w, w, u + s, r / 1024, a - b }'
}

mkdir "$work/measpipe" "$work/original"
measure "esmond-bulk-fetch" "$bin/esmond-bulk-fetch" -u "$url" "${window[@]}" -o csv -D "$work/measpipe"
OUT=$work/records.ndjson measure "esmond-bulk-fetch ndjson" sh -c 'exec "$@" > "$OUT"' sh \
    "$bin/esmond-bulk-fetch" -u "$url" "${window[@]}" -o ndjson
echo "records written by esmond-bulk-fetch -o ndjson: $(wc -l < "$work/records.ndjson")"
rows=$(cat "$work"/measpipe/*.csv | grep -c ',throughput,' || true)
echo "rows written by esmond-bulk-fetch: $rows"
if "$python27" -c 'import esmond_client' 2>/dev/null; then
    measure "esmond-ps-get-bulk" "$python27" "$(dirname "$python27")/esmond-ps-get-bulk" -u "$url" -I "${window[@]}" -o csv -D "$work/original"
    echo "rows written by esmond-ps-get-bulk: $(cat "$work"/original/*.csv | grep -c ',throughput,' || true)"
else
    echo "esmond-ps-get-bulk: no Python 2.7 with esmond-client 4.2.1 at $python27; not run"
fi
