complete -c esmond-metadata -s u -l url -d 'The archive: scheme://host[:port] (the default is where esmond-serve listens). A URL ending in /esmond/perfsonar/archive/ is trimmed to its base' -r
complete -c esmond-metadata -l script-alias -d 'The path before perfsonar/archive (`esmond` on perfSONAR hosts); `/` for none' -r
complete -c esmond-metadata -s s -l src -d 'Only measurements from this source (an address, IPv6 too, or a name the archive resolves)' -r
complete -c esmond-metadata -s d -l dest -d 'Only measurements to this destination' -r
complete -c esmond-metadata -s a -l agent -d 'Only measurements by this measurement agent' -r
complete -c esmond-metadata -s e -l event-type -d 'Only this event type (any the archive has; -L lists esmond\'s)' -r
complete -c esmond-metadata -s t -l tool -d 'Only measurements by this tool (tool-name, e.g. bwctl/iperf3)' -r
complete -c esmond-metadata -s S -l start-time -d 'Start of the window: 2015-04-01, \'Jan 1 2015 13:00\', ISO 8601, -7d, yesterday, @EPOCH (naive times are UTC) [default: 24 hours before the end]' -r
complete -c esmond-metadata -s E -l end-time -d 'End of the window, in the same forms [default: now]' -r
complete -c esmond-metadata -s F -l filter -d 'Any other metadata search parameter, e.g. ip-transport-protocol:tcp, input-source:host.example.net, or a free-form parameter of the archive\'s; the value may contain \':\'. Repeatable; later ones override the options above' -r
complete -c esmond-metadata -s T -l summary-type -d 'Read this summary instead of the base data (numeric and histogram event types)' -r -f -a "aggregation\t'Sums per window'
average\t'Means per window'
statistics\t'Histogram statistics per window'"
complete -c esmond-metadata -s W -l summary-window -d 'The summary\'s window in seconds (with -T)' -r
complete -c esmond-metadata -l timeout -d 'Seconds before a request is abandoned' -r
complete -c esmond-metadata -s o -l output-format -d 'human, csv (not with -M), json, or ndjson (one JSON object per metadata)' -r -f -a "human\t'`column: value` lines, rows separated by `= + = + …`'
csv\t'A header row and CRLF rows'
json\t'One JSON array of rows'
ndjson\t'Measurement records (records.md), one per line, for esmond-post'"
complete -c esmond-metadata -s L -l list-events -d 'List esmond\'s event types and exit'
complete -c esmond-metadata -s M -l metadata-extended -d 'Extended metadata: every field of each metadata (esmond-metadata)'
complete -c esmond-metadata -l resolve -d 'Look addresses up in reverse DNS and print host names (the originals did so unless -I; here DNS is used only when asked)'
complete -c esmond-metadata -s I -l ip -d 'Print addresses, not names (the default; the originals\' flag, kept for scripts)'
complete -c esmond-metadata -s v -l verbose -d 'Print each URL fetched on stderr'
complete -c esmond-metadata -l insecure -d 'Do not check the archive\'s TLS certificate (the originals checked nothing unless --ssl-verify; here certificates are checked unless this is given)'
complete -c esmond-metadata -l ssl-verify -d 'Check the archive\'s TLS certificate (the default; the originals\' flag)'
complete -c esmond-metadata -l line-buffered -d 'Flush after every record (the default when stdout is a terminal); use it behind `tail -f` so each record reaches the next filter at once'
complete -c esmond-metadata -s h -l help -d 'Print help (see more with \'--help\')'
complete -c esmond-metadata -s V -l version -d 'Print version'
