complete -c nats-pub -l on-error -d 'What to do with a line that is not a valid record' -r -f -a "fail\t'Stop at the first bad line with exit status 1'
skip\t'Skip bad lines, count them, and report the count on stderr at exit'"
complete -c nats-pub -l max-line -d 'The longest input line accepted, in bytes; a longer line is a bad line (see --on-error) and costs no more memory than this' -r
complete -c nats-pub -s s -l server -d 'NATS server URLs, comma-separated (nats://HOST:PORT; tls://HOST:PORT for TLS)' -r
complete -c nats-pub -l creds -d 'A credentials file (user JWT and NKey seed)' -r -F
complete -c nats-pub -l user -d 'User name (with --password)' -r
complete -c nats-pub -l password -d 'Password for --user' -r
complete -c nats-pub -l token -d 'An authentication token' -r
complete -c nats-pub -l tlsca -d 'CA certificates to trust (PEM)' -r -F
complete -c nats-pub -l tlscert -d 'A client certificate (PEM; with --tlskey)' -r -F
complete -c nats-pub -l tlskey -d 'The client certificate\'s key (PEM)' -r -F
complete -c nats-pub -l retry-for -d 'Keep trying this long when no server answers (or confirms) before giving up' -r
complete -c nats-pub -l stream -d 'The stream; by default the subject\'s first token upper-cased (gridftp.host1 is kept in GRIDFTP, which takes gridftp and gridftp.>)' -r
complete -c nats-pub -l max-age -d 'Messages older than this are dropped from a new stream' -r
complete -c nats-pub -l max-bytes -d 'A new stream\'s size limit in bytes; the oldest messages go first' -r
complete -c nats-pub -l duplicate-window -d 'How long a new stream remembers message ids to drop re-sends: a rerun after a crash must come within it' -r
complete -c nats-pub -l replicas -d 'Copies of a new stream\'s messages in a cluster' -r
complete -c nats-pub -l id-from -d 'What message ids are made from' -r -f -a "hash\t'A SHA-256 of the line: the same record sent again is dropped'
cursor\t'The subject and the record\'s cursor (the hash when it has none)'"
complete -c nats-pub -l max-in-flight -d 'At most this many messages published and not yet confirmed (and at most 32 MiB of them)' -r
complete -c nats-pub -l pack -d 'Up to N records in one message, newline-separated (nats-sub writes them as lines; other consumers see N lines in a message). Several times the throughput, since the server\'s work is per message. A message is also cut before 256 KiB, and early when the input pauses for --linger or ends. A rerun sends what a killed run sent and did not count in the same messages, so that the stream drops them: it reads them from the subject, past the stream sequence kept in FILE.seq beside --ack or --ack-cursor FILE (hence one of them is needed). One publisher per subject, as gridftp.HOST' -r
complete -c nats-pub -l linger -d 'With --pack: how long a message that is not full waits for more input' -r
complete -c nats-pub -l ack -d 'Write the number of input records confirmed (or refused as bad lines) to FILE, atomically, while the run goes on and at its end' -r -F
complete -c nats-pub -l ack-cursor -d 'Write the cursor of the last record the stream confirmed (every one before it confirmed too) to FILE, as esmond-post\'s --ack does, each second and at the end: the producer\'s --ack FILE goes on after it (gridftp-parse --ack FILE | nats-pub --ack-cursor FILE), across log rotations, which a count of records cannot follow' -r -F
complete -c nats-pub -l tls -d 'Require TLS, whatever the URL says'
complete -c nats-pub -l resume -d 'Skip the input records the --ack file already counts (a rerun over the same input)'
complete -c nats-pub -s q -l quiet -d 'No status line on a terminal'
complete -c nats-pub -s h -l help -d 'Print help (see more with \'--help\')'
complete -c nats-pub -s V -l version -d 'Print version'
