complete -c mmstats-clean -l format -d 'Output layout' -r -f -a "ndjson\t'NDJSON, one object per line'
text\t'Text in the layout of the Python original (slurpstats, pollstats, cleanstats)'"
complete -c mmstats-clean -s n -l dry-run -d 'Decide and print, but remove nothing'
complete -c mmstats-clean -l force -d 'Also remove files that are not stats files, or have no pid to check'
complete -c mmstats-clean -l line-buffered -d 'Flush after every record (the default when stdout is a terminal); use it behind `tail -f` so each record reaches the next filter at once'
complete -c mmstats-clean -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mmstats-clean -s V -l version -d 'Print version'
