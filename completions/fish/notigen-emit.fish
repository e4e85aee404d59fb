complete -c notigen-emit -l ops-per-minute -d 'New operations per minute [default: 100]' -r
complete -c notigen-emit -l ops-per-hour -d 'New operations per hour (instead of --ops-per-minute)' -r
complete -c notigen-emit -l start -d 'Simulated start: RFC 3339, \'YYYY-MM-DD HH:MM:SS\' (UTC), YYYY-MM-DD or now. [default: now; 2026-01-01T00:00:00Z for a --seed run in fast mode]' -r
complete -c notigen-emit -l count -d 'Stop after this many notifications' -r
complete -c notigen-emit -l duration -d 'Stop after this much simulated time, e.g. 24h, 90min, 2days' -r
complete -c notigen-emit -l seed -d 'Seed the random generator: the same seed (and start) gives byte-identical output' -r
complete -c notigen-emit -l payload -d 'Payload detail: the full legacy Nova payload, or a few fields (same operations, events, times and ids either way)' -r -f -a "seed\t'A few fields: instance_id, tenant_id, state, old_state (and the audit period on exists events)'
full\t'The whole legacy Nova instance payload'"
complete -c notigen-emit -l format -d 'Which notifications, as Nova\'s [notifications]notification_format: the legacy ones, Nova\'s versioned ones (publisher nova-compute:<host>, event types like instance.create.start, nova_object payloads), or both, each legacy notification followed by its versioned twin. Events Nova sends only in the legacy form (the scheduler\'s, RPC names published as INFO) have no versioned twin' -r -f -a "unversioned\t'Legacy notifications (topic notifications), as Ceilometer reads them'
versioned\t'Nova\'s versioned notifications (topic versioned_notifications; nova_object payloads)'
both\t'Each legacy notification followed by its versioned twin, when Nova sends one'"
complete -c notigen-emit -l envelope -d 'Message envelope: the flat v1 dict or the v2 {"oslo.version","oslo.message"} form' -r -f -a "v1\t'The flat oslo.messaging v1 dict (driver `messaging`)'
v2\t'`{"oslo.version":"2.0","oslo.message":"<v1 dict as a JSON string>"}` (driver `messagingv2`)'"
complete -c notigen-emit -l timestamp-format -d 'Timestamp format: python is \'YYYY-MM-DD HH:MM:SS.ffffff\' as oslo.messaging sends it' -r -f -a "python\t'`YYYY-MM-DD HH:MM:SS.ffffff`, Python\'s `str(datetime)` as oslo.messaging sends it, always with the fraction'
rfc3339\t'`YYYY-MM-DDTHH:MM:SS.ffffffZ`'"
complete -c notigen-emit -l realtime -d 'Follow the wall clock: write each notification when its time comes (flushed at once). Without it, simulated time runs as fast as possible'
complete -c notigen-emit -l line-buffered -d 'Flush after every record (the default when stdout is a terminal); use it behind `tail -f` so each record reaches the next filter at once'
complete -c notigen-emit -s h -l help -d 'Print help (see more with \'--help\')'
complete -c notigen-emit -s V -l version -d 'Print version'
