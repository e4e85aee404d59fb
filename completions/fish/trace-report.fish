complete -c trace-report -l tracer -d 'Only this tracer\'s series' -r
complete -c trace-report -l format -d 'How to write the statistics on stdout' -r -f -a "text\t'An aligned table after a line naming the task'
csv\t'A header, then a row per series'
json\t'NDJSON, an object per series'"
complete -c trace-report -l html -d 'Also write a self-contained HTML page (no external scripts or fonts) with a chart per series to FILE (`-`: to stdout, instead of the statistics)' -r -F
complete -c trace-report -l dir -d 'The agent\'s data directory: its socket (agent.sock), lock, registry (tracers.toml) and store (traces.sqlite). Default: $XDG_STATE_HOME/measpipe/trace, else ~/.local/state/measpipe/trace' -r -F
complete -c trace-report -l last -d 'The latest task (the default)'
complete -c trace-report -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trace-report -s V -l version -d 'Print version'
