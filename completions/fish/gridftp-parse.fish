complete -c gridftp-parse -l format -d 'Line format' -r -f -a "auto\t'Decide per line: `{` starts JSON, `:: Transfer stats:` marks the main log, a leading `KEY=` token the transfer log; other lines are ignored'
netlogger\t'The transfer log (`-log-transfer`): every line must be `KEY=value` fields'
main\t'The main server log: only `Transfer stats:` lines are read'
json\t'The JSON transfer log: every line must be a JSON object'"
complete -c gridftp-parse -l state -d 'Remember the position here and start from it next time (written atomically, guarded by STATE.lock; saved every 10,000 records or second during the run, after the records before it were flushed, so a killed run repeats at most that much)' -r -F
complete -c gridftp-parse -l ack -d 'Start after the cursor the consumer acknowledged in this file (never written by gridftp-parse; guarded by ACK.lock while it runs: hold a lock over the whole pipe, e.g. with flock, so that a run cannot start before the last one\'s ack is written)' -r -F
complete -c gridftp-parse -l host-ip -d 'The server\'s IP address for source/destination/measurement-agent (default: resolve the logged HOST once; an unresolvable name is recorded as it is, with a warning)' -r
complete -c gridftp-parse -l on-error -d 'What to do with a line that cannot be parsed or turned into a record: skip (the default, as the original did) names it on stderr, counts it and goes on, so the position never sticks at it; fail stops there with exit status 1, and the next run meets it again' -r -f -a "fail\t'Stop at the first bad line with exit status 1'
skip\t'Skip bad lines, count them, and report the count on stderr at exit'"
complete -c gridftp-parse -l reject -d 'Append every bad line here as {"location","cause","line"} NDJSON, to fix and load again' -r -F
complete -c gridftp-parse -l max-line -d 'The longest line read, in bytes; a longer one is a bad line (see --on-error)' -r
complete -c gridftp-parse -s D -l delete-state -d 'Remove the state file at exit, so the next run reads the log from its start (not needed for rotation, which is followed: a rotated file is finished first)'
complete -c gridftp-parse -s d -l dont-write -d 'Read from the saved state but do not update it'
complete -c gridftp-parse -s S -l single -d 'Emit one record, then stop (the state then points just after it)'
complete -c gridftp-parse -l wait -d 'Wait for another run\'s lock instead of exiting with status 75'
complete -c gridftp-parse -s F -l file-attr -d 'Also record the transferred file\'s path as gridftp-file'
complete -c gridftp-parse -s N -l name-attr -d 'Also record the user as gridftp-user'
complete -c gridftp-parse -s V -l volume-attr -d 'Also record the volume as gridftp-volume'
complete -c gridftp-parse -l raw -d 'Write each transfer\'s parsed fields (and its cursor) instead of a measurement'
complete -c gridftp-parse -l line-buffered -d 'Flush after every record (the default when stdout is a terminal); use it behind `tail -f` so each record reaches the next filter at once'
complete -c gridftp-parse -l version -d 'Print version'
complete -c gridftp-parse -s h -l help -d 'Print help (see more with \'--help\')'
