#!/usr/bin/env bash
# Issue 17's /metrics target through one-shot `mmstats-slurp --format prom` (the exposition
# mmstats-serve's /metrics serves) over 10,000 stats files of which 9,000 belong to exited
# writers, beside `cat` of the same files in the same run: benches/mmstats-serve.sh without
# the server.
#
#   benches/mmstats-prom.sh [FILES] [DEAD]     (defaults 10000 and 9000)
exec "$(dirname "$0")/mmstats-serve.sh" "${1:-10000}" "${2:-9000}" 0
