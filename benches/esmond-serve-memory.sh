#!/usr/bin/env bash
# esmond-serve's memory per in-flight write (issue 14: ≤ 3× the body; 16 writers ≤ 100 MB).
#
#   benches/esmond-serve-memory.sh          (MEASPIPE_BIN_DIR: another build, e.g. before)
#
# A fresh archive takes, in order: one 10,000-point bulk PUT (1.2 MB), 16 such PUTs at once,
# then one 450,000-item PUT (57 MB, under the default 64 MB --max-body). After each step it
# prints the server's peak RSS so far (VmHWM) and its RSS now (VmRSS).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ -n "${MEASPIPE_BIN_DIR:-}" ] || cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
bin=${MEASPIPE_BIN_DIR:-$root/target/release}
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server"; rm -rf "$work"' EXIT
key=$("$bin/esmond-serve" --data "$work/archive" token add bench)
"$bin/esmond-serve" --data "$work/archive" --listen 127.0.0.1:0 2> "$work/archive.log" &
server=$!
for _ in $(seq 100); do grep -q 'listening on' "$work/archive.log" && break; sleep 0.1; done
url=$(sed -n 's|.*listening on \(http://[^/]*\)/.*|\1|p' "$work/archive.log")
python3 - "$url" "$key" "$server" <<'PY'
import json, sys, threading, urllib.request
url, key, pid = sys.argv[1:4]
def memory(label):
    status = {l.split(":")[0]: int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith(("VmHWM", "VmRSS"))}
    print(f"esmond-serve, {label}: peak RSS {status['VmHWM'] / 1024:.1f} MB, RSS now {status['VmRSS'] / 1024:.1f} MB")
def call(method, path, body):
    request = urllib.request.Request(url + path, data=body, method=method,
                                     headers={"Authorization": "Token " + key, "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return response.read()
metadata = {"subject-type": "point-to-point", "source": "10.0.0.1", "destination": "10.0.0.2", "tool-name": "bench",
            "measurement-agent": "10.0.0.1", "input-source": "a", "input-destination": "b",
            "event-types": [{"event-type": "throughput", "summaries": []}, {"event-type": "packet-retransmits", "summaries": []}]}
mk = json.loads(call("POST", "/esmond/perfsonar/archive/", json.dumps(metadata).encode()))["metadata-key"]
def body(n, base):
    return json.dumps({"data": [{"ts": base + i, "val": [{"event-type": "throughput", "val": 1234567.5 + i},
                                                          {"event-type": "packet-retransmits", "val": i}]} for i in range(n)]}).encode()
memory("started")
call("PUT", f"/esmond/perfsonar/archive/{mk}/", body(10000, 1_000_000))
memory("after one 10,000-point PUT (1.2 MB)")
bodies = [body(10000, 3_000_000 + j * 20000) for j in range(16)]
threads = [threading.Thread(target=call, args=("PUT", f"/esmond/perfsonar/archive/{mk}/", b)) for b in bodies]
[t.start() for t in threads]; [t.join() for t in threads]
memory("after 16 such PUTs at once")
big = body(450000, 2_000_000)
call("PUT", f"/esmond/perfsonar/archive/{mk}/", big)
memory(f"after one {len(big) / 1e6:.0f} MB PUT")
PY
