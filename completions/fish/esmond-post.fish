complete -c esmond-post -l on-error -d 'What to do with a line that is not a valid record' -r -f -a "fail\t'Stop at the first bad line with exit status 1'
skip\t'Skip bad lines, count them, and report the count on stderr at exit'"
complete -c esmond-post -l max-line -d 'The longest input line accepted, in bytes; a longer line is a bad line (see --on-error) and costs no more memory than this' -r
complete -c esmond-post -s U -l url -d 'The archive: scheme://host[:port] (the default is where esmond-serve listens)' -r
complete -c esmond-post -s s -l script-alias -d 'The path before perfsonar/archive (`esmond` on perfSONAR hosts); `/` for none' -r
complete -c esmond-post -s k -l key -d 'API key, sent as `Authorization: Token KEY` (or `ApiKey USER:KEY` with --user)' -r
complete -c esmond-post -s u -l user -d 'Use the legacy Tastypie `ApiKey USER:KEY` header' -r
complete -c esmond-post -l timeout -d 'Seconds before a request is abandoned (then retried); at most 86400' -r
complete -c esmond-post -l retries -d 'Retries of a failed request (connection error or 5xx) before giving up' -r
complete -c esmond-post -l backoff -d 'First retry delay in seconds; it doubles (with jitter) up to 30 s' -r
complete -c esmond-post -l batch-size -d 'Points per bulk PUT' -r
complete -c esmond-post -l in-flight -d 'Batch-API requests under way at once (kept-alive connections; the archive writes them together). Their answers, and so the ack, are taken in order. 1: one at a time. The esmond API always sends one at a time' -r
complete -c esmond-post -l ack -d 'Write the cursor of the last delivered record here, atomically' -r -F
complete -c esmond-post -l linger -d 'When the input pauses this long, send (and acknowledge) what is waiting instead of holding it for a full batch: a stream that never ends (nats-sub) is delivered as it comes' -r
complete -c esmond-post -l reject -d 'Append every record that is not delivered (bad lines, refused metadata or points) here as {"location","cause","line"} NDJSON, with the archive\'s message' -r -F
complete -c esmond-post -l cache -d 'Metadata-key cache, a SQLite file (default: $XDG_CACHE_HOME/measpipe/esmond-post-keys.db)' -r -F
complete -c esmond-post -l progress-every -d 'Say "N records processed" every N records (esmond-ps-load-gridftp\'s progress)' -r
complete -c esmond-post -s l -l log-dir -d 'Write messages to DIR/esmond-post.log instead of stderr' -r -F
complete -c esmond-post -l dry-run -d 'Print the requests as NDJSON on stdout and send nothing'
complete -c esmond-post -l esmond-api -d 'Speak only esmond\'s API (a metadata POST and a bulk PUT per metadata), even to an esmond-serve, whose batch API (many metadata per request and transaction) is used otherwise'
complete -c esmond-post -l insecure -d 'Do not check the archive\'s TLS certificate'
complete -c esmond-post -l line-buffered -d 'Flush after every record (the default when stdout is a terminal); use it behind `tail -f` so each record reaches the next filter at once'
complete -c esmond-post -s h -l help -d 'Print help (see more with \'--help\')'
complete -c esmond-post -s V -l version -d 'Print version'
