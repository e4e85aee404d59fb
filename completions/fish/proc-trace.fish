complete -c proc-trace -l pid -d 'A process to trace (repeatable)' -r
complete -c proc-trace -l pidfile -d 'A file holding the PID of a process to trace, read at every sample (repeatable)' -r -F
complete -c proc-trace -l cgroup -d 'A cgroup v2 whose processes to trace: a directory, absolute or under /sys/fs/cgroup (repeatable)' -r -F
complete -c proc-trace -l match -d 'Keep processes whose command line (arguments joined by spaces) matches REGEX' -r
complete -c proc-trace -l user -d 'Keep processes running as USER (a name or a numeric uid)' -r
complete -c proc-trace -l tracer -d 'The tracer name the records carry' -r
complete -c proc-trace -l task -d 'The task every record names (a supervisor sets MEASPIPE_TASK for the tracers it starts)' -r
complete -c proc-trace -s i -l interval -d 'Seconds between samples; fractions allowed' -r
complete -c proc-trace -s c -l count -d 'Take COUNT samples, then exit (default: until interrupted)' -r
complete -c proc-trace -l line-buffered -d 'Flush after every record (the default when stdout is a terminal); use it behind `tail -f` so each record reaches the next filter at once'
complete -c proc-trace -s h -l help -d 'Print help (see more with \'--help\')'
complete -c proc-trace -s V -l version -d 'Print version'
