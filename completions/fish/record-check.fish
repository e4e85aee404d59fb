complete -c record-check -l on-error -d 'What to do with a line that is not a valid record' -r -f -a "fail\t'Stop at the first bad line with exit status 1'
skip\t'Skip bad lines, count them, and report the count on stderr at exit'"
complete -c record-check -l max-line -d 'The longest input line accepted, in bytes; a longer line is a bad line (see --on-error) and costs no more memory than this' -r
complete -c record-check -l kind -d 'Pass only records of these families (comma-separated or repeated); valid records of other families are dropped' -r -f -a "measurement\t'A measurement run bound for an esmond archive (measpipe-records(7))'
notification\t'An OpenStack-like notification, v1 dict or v2 envelope (measpipe-records(7))'
stat\t'One field read from an mmstats file (measpipe-records(7))'
trace\t'One sample from a tracer (measpipe-records(7))'"
complete -c record-check -l line-buffered -d 'Flush after every record (the default when stdout is a terminal); use it behind `tail -f` so each record reaches the next filter at once'
complete -c record-check -l summary -d 'Print how many valid records of each family were seen, on stderr at exit'
complete -c record-check -s q -l quiet -d 'Check only: write nothing to stdout'
complete -c record-check -s h -l help -d 'Print help (see more with \'--help\')'
complete -c record-check -s V -l version -d 'Print version'
