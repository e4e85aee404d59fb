complete -c mmstats-slurp -l format -d 'Output layout. prom aggregates by label as Prometheus\' multiprocess mode does: counters (as NAME_total), summaries and histograms summed over every file, those of exited writers included; gauges per live pid' -r -f -a "ndjson\t'NDJSON stat records, one per line'
text\t'Text in the layout of Python\'s slurpstats'
prom\t'Prometheus text format, aggregated by label (node_exporter\'s textfile collector)'"
complete -c mmstats-slurp -l metric-prefix -d 'Prepended to every metric name with --format prom (e.g. `myapp_`)' -r
complete -c mmstats-slurp -s o -l output-file -d 'Write to FILE instead of standard output, replacing it atomically (mode 0644) once everything is read, so a collector never reads half a file' -r -F
complete -c mmstats-slurp -l line-buffered -d 'Flush after every record (the default when stdout is a terminal); use it behind `tail -f` so each record reaches the next filter at once'
complete -c mmstats-slurp -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mmstats-slurp -s V -l version -d 'Print version'
