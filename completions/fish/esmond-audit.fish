complete -c esmond-audit -l on-error -d 'What to do with a line that is not a valid record' -r -f -a "fail\t'Stop at the first bad line with exit status 1'
skip\t'Skip bad lines, count them, and report the count on stderr at exit'"
complete -c esmond-audit -l max-line -d 'The longest input line accepted, in bytes; a longer line is a bad line (see --on-error) and costs no more memory than this' -r
complete -c esmond-audit -s U -l url -d 'The archive: scheme://host[:port] (the default is where esmond-serve listens)' -r
complete -c esmond-audit -s s -l script-alias -d 'The path before perfsonar/archive (`esmond` on perfSONAR hosts); `/` for none' -r
complete -c esmond-audit -s k -l key -d 'API key (records are checked with it, as esmond-post writes them)' -r
complete -c esmond-audit -l timeout -d 'Seconds before a request is abandoned' -r
complete -c esmond-audit -l batch-size -d 'Records checked per request' -r
complete -c esmond-audit -l line-buffered -d 'Flush after every record (the default when stdout is a terminal); use it behind `tail -f` so each record reaches the next filter at once'
complete -c esmond-audit -l insecure -d 'Do not check the archive\'s TLS certificate'
complete -c esmond-audit -l all -d 'Write a line for every expected thing, present ones too'
complete -c esmond-audit -s h -l help -d 'Print help (see more with \'--help\')'
complete -c esmond-audit -s V -l version -d 'Print version'
