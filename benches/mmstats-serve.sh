#!/usr/bin/env bash
# Issue 17's /metrics target on the server itself: mmstats-serve's /metrics over 10,000
# stats files of which 9,000 belong to exited writers, ≤ 100 ms (Prometheus' Python
# multiprocess mode takes 40 s on 6,800 files). The server's CPU time per scrape (user +
# system of the whole process, from /proc/PID/stat, over SCRAPES scrapes after the first),
# beside `cat` of the same files and one-shot `mmstats-slurp --format prom` in the same run.
#
#   benches/mmstats-serve.sh [FILES] [DEAD] [SCRAPES]     (defaults 10000, 9000 and 50;
#                                                          SCRAPES 0: no server)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
files=${1:-10000}
dead=${2:-9000}
scrapes=${3:-50}
[ -n "${MEASPIPE_BIN_DIR:-}" ] || cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --bin mmstats-serve --bin mmstats-slurp --example mmstats-files
bin=${MEASPIPE_BIN_DIR:-$root/target/release}
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
# shellcheck source=benches/timing.sh
. "$root/benches/timing.sh"

# Ten live writers own the live files (their pids are alive for the whole run).
live=()
for _ in $(seq 10); do
    sleep 3600 &
    pids+=($!)
    live+=($!)
done
"$root/target/release/examples/mmstats-files" "$work" "$files" "$dead" "${live[@]}"
bytes=$(cat "$work"/*.mmstats | wc -c)
time_runs 3 "cat" files "$files" "$bytes" -- sh -c "cat '$work'/*.mmstats"
time_runs 5 "mmstats-slurp --format prom" files "$files" "$bytes" -- "$bin/mmstats-slurp" --format prom "$work/*.mmstats"
if [ "$scrapes" = 0 ]; then
    "$bin/mmstats-slurp" --format prom "$work/*.mmstats" | awk '/^# TYPE/ { t++ } !/^#/ { s++ } END { printf "exposition: %d families, %d samples\n", t, s }'
    exit 0
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
taskset -c 0 "$bin/mmstats-serve" --dir "$work" --listen "127.0.0.1:$port" 2>/dev/null &
server=$!
pids+=("$server")
until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.05; done

# Process CPU time in clock ticks (utime + stime: fields 14 and 15, after the command).
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$server/stat"; }
hz=$(getconf CLK_TCK)
before=$(cpu_ticks)
start=$(date +%s.%N)
curl -sf "http://127.0.0.1:$port/metrics" >"$work/first.prom"
end=$(date +%s.%N)
after=$(cpu_ticks)
awk -v t0="$before" -v t1="$after" -v hz="$hz" -v w0="$start" -v w1="$end" \
    'BEGIN { printf "mmstats-serve /metrics, first scrape (reads every file): %.1f ms wall, %.0f ms CPU\n", (w1 - w0) * 1e3, (t1 - t0) * 1e3 / hz }'
before=$(cpu_ticks)
start=$(date +%s.%N)
for _ in $(seq "$scrapes"); do
    curl -sf "http://127.0.0.1:$port/metrics" >"$work/again.prom"
done
end=$(date +%s.%N)
after=$(cpu_ticks)
awk -v t0="$before" -v t1="$after" -v hz="$hz" -v w0="$start" -v w1="$end" -v n="$scrapes" \
    'BEGIN { printf "mmstats-serve /metrics, %d later scrapes: %.1f ms wall and %.1f ms CPU per scrape\n", n, (w1 - w0) * 1e3 / n, (t1 - t0) * 1e3 / hz / n }'
cmp -s <(grep -v '^web_queue' "$work/first.prom") <(grep -v '^web_queue' "$work/again.prom") \
    && echo "the later scrapes expose what the first did" || echo "the later scrapes differ from the first"
awk '/^# TYPE/ { t++ } !/^#/ { s++ } END { printf "exposition: %d families, %d samples\n", t, s }' "$work/again.prom"
