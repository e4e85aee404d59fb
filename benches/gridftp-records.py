#!/usr/bin/env python3
"""N GridFTP-like measurement records (~350 bytes each, each distinct) as NDJSON on
stdout: the input of benches/nats.sh and benches/nats-compare.sh.

    benches/gridftp-records.py N
"""
import json
import sys

for i in range(int(sys.argv[1])):
    print(json.dumps({"kind": "measurement", "metadata": {"subject-type": "point-to-point",
        "source": "10.0.%d.1" % (i % 200), "destination": "10.1.0.2", "tool-name": "gridftp",
        "input-source": "gridftp-a.example.net", "input-destination": "gridftp-b.example.net"},
        "ts": 1796000000 + i, "values": {"throughput": 1.0e9 + i, "gridftp-bytes-transferred": 2**30 + i},
        "cursor": "/var/log/gridftp.log:%d" % (i * 330)}, separators=(",", ":")))
