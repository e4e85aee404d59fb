complete -c mmstats-poll -s p -l prefix -d 'Prepended to every field name (e.g. `web.stats.`); the header shows the names as given' -r
complete -c mmstats-poll -s f -l filter -d 'Only files that match: KEY keeps files with a field whose label starts with KEY, KEY=VALUE files whose field KEY shows VALUE (as mmstats-slurp --format text prints it). Repeat to require several; unlike pollstats, each -f narrows the files' -r
complete -c mmstats-poll -s c -l count -d 'Print COUNT rows, then exit (default: until interrupted)' -r
complete -c mmstats-poll -s d -l delay -d 'Seconds between rows; fractions allowed' -r
complete -c mmstats-poll -s n -l headers -d 'Repeat the header every N rows of text; 0 prints it once' -r
complete -c mmstats-poll -l format -d 'Output layout: text rows under a header, or one object per tick, {"ts","interval_s","files","deltas":{..},"totals":{..}}. Each row is flushed at once' -r -f -a "ndjson\t'NDJSON, one object per line'
text\t'Text in the layout of the Python original (slurpstats, pollstats, cleanstats)'"
complete -c mmstats-poll -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mmstats-poll -s V -l version -d 'Print version'
