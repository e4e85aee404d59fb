#!/usr/bin/env bash
# amqp-publish with publisher confirms into a real RabbitMQ on loopback (Debian's
# rabbitmq-server, started here in a temporary directory on free ports), beside oslo.messaging's
# own oslo-messaging-send-notification (Debian's python3-oslo.messaging: one message per
# process run, as its CLI works), in the same run.
#
#   benches/amqp-publish.sh [MESSAGES] [ORACLE_RUNS]     (defaults 200000 and 50)
#
# Prints messages/s (wall) and per CPU second of amqp-publish, the broker's CPU time over
# the same run (both share the machine's cores), and oslo's messages/s over ORACLE_RUNS
# process runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
messages=${1:-200000}
oracle_runs=${2:-50}
[ -n "${MEASPIPE_BIN_DIR:-}" ] || cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --bin amqp-publish --bin notigen-emit
bin=${MEASPIPE_BIN_DIR:-$root/target/release}
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); dist=$(free_port); epmd=$(free_port)
mkdir -p "$work/home"
echo '[].' > "$work/enabled_plugins"
# MEASPIPE_BENCH_RABBITMQ_CONF: lines for the broker's rabbitmq.conf (a site's settings).
printf '%s\n' "${MEASPIPE_BENCH_RABBITMQ_CONF:-}" > "$work/rabbitmq.conf"
export HOME="$work/home" RABBITMQ_NODENAME="bench-$port@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT=$port RABBITMQ_DIST_PORT=$dist ERL_EPMD_PORT=$epmd ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_MNESIA_BASE="$work/mnesia" RABBITMQ_LOG_BASE="$work/log" \
    RABBITMQ_CONFIG_FILE="$work/rabbitmq.conf" RABBITMQ_PID_FILE="$work/rabbit.pid" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$work/enabled_plugins" RABBITMQ_LOGS=-
cleanup() {
    kill "$(cat "$work/rabbit.pid" 2>/dev/null)" 2>/dev/null || true
    wait 2>/dev/null || true
    epmd -kill >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
/usr/lib/rabbitmq/bin/rabbitmq-server > "$work/server.log" 2>&1 &
for _ in $(seq 300); do grep -q 'Server startup complete' "$work/server.log" && break; sleep 0.2; done
grep -q 'Server startup complete' "$work/server.log" || { echo "rabbitmq-server did not start" >&2; exit 1; }
url="amqp://guest:guest@127.0.0.1:$port/%2f"

# Three inputs: legacy notifications with a small payload (~950 bytes a message), legacy and
# versioned with a small legacy payload (~1.7 KB), and both with the full payload (~2.3 KB).
for input in ${MEASPIPE_BENCH_INPUTS:-unversioned,seed both,seed both,full}; do
format=${input%,*}; payload=${input#*,}
"$bin/notigen-emit" --seed 1 --count "$messages" --format "$format" --payload "$payload" > "$work/in.ndjson"
bytes=$(wc -c < "$work/in.ndjson")
echo "input: $messages notifications (--format $format --payload $payload), $bytes bytes"
for run in 1 2 3; do
    # Each run starts with empty queues (nothing consumes here; a broker holding the
    # previous runs' messages is slower).
    for queue in $(/usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBITMQ_NODENAME" -q list_queues name | tail -n +2); do
        /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBITMQ_NODENAME" -q purge_queue "$queue" > /dev/null
    done
    broker_before=$(awk '{print $14 + $15}' "/proc/$(cat "$work/rabbit.pid")/stat")
    times=$( { TIMEFORMAT='%R %U %S'; time "$bin/amqp-publish" --url "$url" --exchange "bench-$format-$payload-$run" --quiet ${MEASPIPE_BENCH_ARGS:-} "$work/in.ndjson"; } 2>&1 | tail -1)
    broker_after=$(awk '{print $14 + $15}' "/proc/$(cat "$work/rabbit.pid")/stat")
    awk -v t="$times" -v n="$messages" -v b="$bytes" -v k="$(( broker_after - broker_before ))" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { split(t, x, " "); w = x[1]; c = x[2] + x[3]; if (c <= 0) c = 0.001;
                 printf "amqp-publish (confirms): %d messages in %.3f s (CPU %.3f s; broker CPU %.2f s): %.0f messages/s, %.0f MB/s, %.0f per CPU second\n",
                        n, w, c, k / hz, n / w, b / w / 1e6, n / c }'
done
done

# oslo.messaging's CLI: one notification per process run.
start=$(date +%s.%N)
for _ in $(seq "$oracle_runs"); do
    oslo-messaging-send-notification --transport-url "rabbit://guest:guest@127.0.0.1:$port/" \
        --publisher-id nova-compute:host1 --event-type instance.create.start --topic notifications \
        --driver messagingv2 '{"a": 1}' > /dev/null 2>&1
done
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v n="$oracle_runs" \
    'BEGIN { printf "oslo-messaging-send-notification: %d messages in %.3f s: %.1f messages/s\n", n, e - s, n / (e - s) }'
