# Sourced by the benchmark scripts: time a command on one core.
#
#   time_runs RUNS LABEL UNIT COUNT BYTES -- COMMAND...
#
# runs COMMAND (stdout to /dev/null) RUNS times pinned to CPU 0 and prints, per run,
# "LABEL: COUNT UNITs in T s: N UNITs/s, M MB/s" (BYTES is the input or output size).
time_runs() {
    local runs=$1 label=$2 unit=$3 count=$4 bytes=$5 start end
    shift 6
    for _ in $(seq "$runs"); do
        start=$(date +%s.%N)
        taskset -c 0 "$@" > /dev/null
        end=$(date +%s.%N)
        awk -v s="$start" -v e="$end" -v n="$count" -v b="$bytes" -v l="$label" -v u="$unit" \
            'BEGIN { t = e - s; printf "%s: %d %s in %.3f s: %.0f %s/s, %.0f MB/s\n", l, n, u, t, n / t, u, b / t / 1e6 }'
    done
}
