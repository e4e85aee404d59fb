#!/usr/bin/env bash
# The tracers' targets (issue 16), each beside a baseline in the same run:
#   line-stamp ≥ 1,000,000 lines/s: N integer lines (stap's "%d" output) stamped into
#   trace records on one core, three runs, beside `cat` of the same file;
#   proc-trace on 1,000 processes at 1 Hz ≤ 2 % of one core: 1,000 sleeping processes
#   traced for SAMPLES seconds, proc-trace's CPU time (user + system) over the wall time,
#   beside `ps -e` once a second over the same processes.
#
#   benches/tracers.sh [LINES] [SAMPLES]     (defaults 5,000,000 and 20)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lines=${1:-5000000}
samples=${2:-20}
[ -n "${MEASPIPE_BIN_DIR:-}" ] || cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --bin line-stamp --bin proc-trace
bin=${MEASPIPE_BIN_DIR:-$root/target/release}
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
# shellcheck source=benches/timing.sh
. "$root/benches/timing.sh"

awk -v n="$lines" 'BEGIN { for (i = 0; i < n; i++) print i % 1000 }' > "$work/counts"
bytes=$(wc -c < "$work/counts")
time_runs 3 cat lines "$lines" "$bytes" -- cat "$work/counts"
for _ in 1 2 3; do
    # line-stamp reads standard input: time it with the file as stdin.
    times=$( { TIMEFORMAT='%R %U %S'; time taskset -c 0 "$bin/line-stamp" --tracer stap < "$work/counts" > /dev/null; } 2>&1 | tail -1)
    awk -v t="$times" -v n="$lines" 'BEGIN { split(t, x, " "); c = x[2] + x[3]; if (c <= 0) c = 0.001;
        printf "line-stamp: %d lines in %.3f s (CPU %.3f s): %.0f lines/s, %.0f lines per CPU second\n", n, x[1], c, n / x[1], n / c }'
done

marker="measpipe-bench-$$"
for _ in $(seq 1000); do
    bash -c "exec -a '$marker' sleep 3600" &
    pids+=($!)
done
sleep 1
cpu_of() { awk '{ print ($14 + $15) }' "/proc/$1/stat"; }
"$bin/proc-trace" --match "^$marker" -i 1 -c "$samples" > "$work/proc.ndjson" &
tracer=$!
start=$(date +%s.%N)
# proc-trace's own CPU ticks just before it ends: sample its stat while it runs.
ticks=0
while kill -0 "$tracer" 2>/dev/null; do
    t=$(cpu_of "$tracer" 2>/dev/null) && ticks=$t
    sleep 0.2
done
end=$(date +%s.%N)
matched=$(grep -c '"series":"matched","unit":"processes","value":1000}' "$work/proc.ndjson" || true)
records=$(wc -l < "$work/proc.ndjson")
awk -v t="$ticks" -v s="$start" -v e="$end" -v m="$matched" -v n="$samples" -v r="$records" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { w = e - s; c = t / hz; printf "proc-trace: 1000 processes, %d samples (%d of them matched all 1000), %d records in %.1f s: CPU %.2f s = %.2f %% of one core\n", n, m, r, w, c, 100 * c / w }'
ps_start=$(date +%s.%N)
ps_cpu=$( { TIMEFORMAT='%U %S'; time for _ in $(seq "$samples"); do ps -e -o pid,rss,vsz,nlwp,time,comm > /dev/null; sleep 1; done; } 2>&1 | tail -1)
ps_end=$(date +%s.%N)
awk -v t="$ps_cpu" -v s="$ps_start" -v e="$ps_end" 'BEGIN { split(t, x, " "); c = x[1] + x[2]; w = e - s;
    printf "baseline, ps -e once a second: CPU %.2f s in %.1f s = %.2f %% of one core\n", c, w, 100 * c / w }'
