complete -c netdev-trace -l dev -d 'A network device to trace (repeatable)' -r
complete -c netdev-trace -l tracer -d 'The tracer name the records carry' -r
complete -c netdev-trace -l task -d 'The task every record names (a supervisor sets MEASPIPE_TASK for the tracers it starts)' -r
complete -c netdev-trace -s i -l interval -d 'Seconds between samples; fractions allowed' -r
complete -c netdev-trace -s c -l count -d 'Take COUNT samples, then exit (default: until interrupted)' -r
complete -c netdev-trace -l line-buffered -d 'Flush after every record (the default when stdout is a terminal); use it behind `tail -f` so each record reaches the next filter at once'
complete -c netdev-trace -s h -l help -d 'Print help (see more with \'--help\')'
complete -c netdev-trace -s V -l version -d 'Print version'
