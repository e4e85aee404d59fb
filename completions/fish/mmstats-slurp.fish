complete -c mmstats-slurp -l format -d 'Output layout' -r -f -a "ndjson\t'NDJSON, one object per line'
text\t'Text in the layout of the Python original (slurpstats, pollstats, cleanstats)'"
complete -c mmstats-slurp -l line-buffered -d 'Flush after every record (the default when stdout is a terminal); use it behind `tail -f` so each record reaches the next filter at once'
complete -c mmstats-slurp -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mmstats-slurp -s V -l version -d 'Print version'
