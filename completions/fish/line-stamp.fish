complete -c line-stamp -l tracer -d 'The tracer name the records carry' -r
complete -c line-stamp -l parse -d 'What a line is' -r -f -a "count\t'An integer per line (stap\'s %d)'
number\t'A number per line'
json\t'A JSON value per line, kept whole as the value (bpftrace -f json)'
raw\t'The line\'s text as the value'
perf-stat\t'perf stat -j: a record per counted event'
pidstat\t'pidstat -h: a record per numeric column of each row'"
complete -c line-stamp -l series -d 'The series of the records (count, number, json and raw; perf-stat names each record by its event, pidstat by its column). Default: the tracer\'s name' -r
complete -c line-stamp -l unit -d 'The unit of the records (count, number, json and raw). Default: count for count, line for raw, none otherwise' -r
complete -c line-stamp -l task -d 'The task every record names (a supervisor sets MEASPIPE_TASK for the tracers it starts)' -r
complete -c line-stamp -l on-error -d 'What to do with a line that does not parse' -r -f -a "fail\t'Stop at the first bad line with exit status 1'
skip\t'Skip bad lines, count them, and report the count on stderr at exit'"
complete -c line-stamp -l max-line -d 'The longest line accepted, in bytes; a longer one is a bad line' -r
complete -c line-stamp -l line-buffered -d 'Flush after every record (the default when stdout is a terminal); use it behind `tail -f` so each record reaches the next filter at once'
complete -c line-stamp -s h -l help -d 'Print help (see more with \'--help\')'
complete -c line-stamp -s V -l version -d 'Print version'
