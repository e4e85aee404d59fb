complete -c nats-sub -s s -l server -d 'NATS server URLs, comma-separated (nats://HOST:PORT; tls://HOST:PORT for TLS)' -r
complete -c nats-sub -l creds -d 'A credentials file (user JWT and NKey seed)' -r -F
complete -c nats-sub -l user -d 'User name (with --password)' -r
complete -c nats-sub -l password -d 'Password for --user' -r
complete -c nats-sub -l token -d 'An authentication token' -r
complete -c nats-sub -l tlsca -d 'CA certificates to trust (PEM)' -r -F
complete -c nats-sub -l tlscert -d 'A client certificate (PEM; with --tlskey)' -r -F
complete -c nats-sub -l tlskey -d 'The client certificate\'s key (PEM)' -r -F
complete -c nats-sub -l retry-for -d 'Keep trying this long when no server answers (or confirms) before giving up' -r
complete -c nats-sub -l stream -d 'The stream; by default the subject\'s first token upper-cased (gridftp.host1 is kept in GRIDFTP, which takes gridftp and gridftp.>)' -r
complete -c nats-sub -l max-age -d 'Messages older than this are dropped from a new stream' -r
complete -c nats-sub -l max-bytes -d 'A new stream\'s size limit in bytes; the oldest messages go first' -r
complete -c nats-sub -l duplicate-window -d 'How long a new stream remembers message ids to drop re-sends: a rerun after a crash must come within it' -r
complete -c nats-sub -l replicas -d 'Copies of a new stream\'s messages in a cluster' -r
complete -c nats-sub -l durable -d 'A durable consumer: acknowledged messages are not delivered to it again' -r
complete -c nats-sub -l batch -d 'Messages written before their output is flushed and they are acknowledged' -r
complete -c nats-sub -l ack-wait -d 'How long the server waits for a batch\'s acknowledgement before delivering it again (after a crash, the unacknowledged batch comes again after this)' -r
complete -c nats-sub -l idle -d 'Stop (exit 0) when no message came for this long' -r
complete -c nats-sub -l count -d 'Stop (exit 0) after writing this many records (the message that reaches N is written whole)' -r
complete -c nats-sub -l ack -d 'The sink\'s ack file (esmond-post --ack FILE): each record gets a cursor of this run\'s, and its message is acknowledged only when the sink has written that cursor (or a later one) there. A record in the pipe when the sink fails comes again. Lines that are not JSON objects cannot carry a cursor: they are acknowledged once written. At the end the output is closed and the sink\'s last acknowledgement is waited for, up to --ack-wait' -r -F
complete -c nats-sub -l tls -d 'Require TLS, whatever the URL says'
complete -c nats-sub -l new -d 'Start a new consumer at messages published from now on'
complete -c nats-sub -s q -l quiet -d 'No status line on a terminal'
complete -c nats-sub -s h -l help -d 'Print help (see more with \'--help\')'
complete -c nats-sub -s V -l version -d 'Print version'
