complete -c port-trace -l port -d 'A local TCP port to count inbound traffic to (repeatable)' -r
complete -c port-trace -l tracer -d 'The tracer name the records carry' -r
complete -c port-trace -l task -d 'The task every record names (a supervisor sets MEASPIPE_TASK for the tracers it starts)' -r
complete -c port-trace -s i -l interval -d 'Seconds between samples; fractions allowed' -r
complete -c port-trace -s c -l count -d 'Take COUNT samples, then exit (default: until interrupted)' -r
complete -c port-trace -l line-buffered -d 'Flush after every record (the default when stdout is a terminal); use it behind `tail -f` so each record reaches the next filter at once'
complete -c port-trace -s h -l help -d 'Print help (see more with \'--help\')'
complete -c port-trace -s V -l version -d 'Print version'
