# Sourced by the benchmark scripts: time a command on one core.
#
#   time_runs RUNS LABEL UNIT COUNT BYTES -- COMMAND...
#
# runs COMMAND (stdout to /dev/null) RUNS times pinned to CPU 0 and prints, per run,
# "LABEL: COUNT UNITs in T s (CPU C s): N UNITs/s, M MB/s, N' UNITs per CPU second"
# (BYTES is the input or output size). CPU time (user + system) is the figure to compare
# on a shared, noisy machine.
#
# Binaries come from target/release unless MEASPIPE_BIN_DIR names another build (e.g. the
# previous commit's, to compare before and after in one run).
time_runs() {
    local runs=$1 label=$2 unit=$3 count=$4 bytes=$5 times
    shift 6
    for _ in $(seq "$runs"); do
        times=$( { TIMEFORMAT='%R %U %S'; time taskset -c 0 "$@" > /dev/null; } 2>&1 | tail -1)
        awk -v t="$times" -v n="$count" -v b="$bytes" -v l="$label" -v u="$unit" \
            'BEGIN { split(t, x, " "); w = x[1]; c = x[2] + x[3]; if (c <= 0) c = 0.001;
                     printf "%s: %d %s in %.3f s (CPU %.3f s): %.0f %s/s, %.0f MB/s, %.0f %s per CPU second\n",
                            l, n, u, w, c, n / w, u, b / w / 1e6, n / c, u }'
    done
}
