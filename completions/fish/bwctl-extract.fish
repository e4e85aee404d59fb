complete -c bwctl-extract -l on-error -d 'What to do with a line that is not a valid record' -r -f -a "fail\t'Stop at the first bad line with exit status 1'
skip\t'Skip bad lines, count them, and report the count on stderr at exit'"
complete -c bwctl-extract -l max-line -d 'The longest input line accepted, in bytes; a longer line is a bad line (see --on-error) and costs no more memory than this' -r
complete -c bwctl-extract -l input-source -d 'The sender\'s name for input-source (default: bwctl\'s sender address, else the source address from the JSON)' -r
complete -c bwctl-extract -l input-destination -d 'The receiver\'s name for input-destination (default: bwctl\'s receiver address, else the destination address from the JSON)' -r
complete -c bwctl-extract -l measurement-agent -d 'The measurement-agent address (default: the iperf3 client\'s own address)' -r
complete -c bwctl-extract -l resolve-agent -d 'Find the measurement agent as esmond-ps-pipe did: the local address this host uses to reach the destination (a routing lookup, and a DNS lookup for a name)'
complete -c bwctl-extract -l legacy-shapes -d 'Write streams-*-subintervals as the original did: interval-major lists keyed retransmits/throughput instead of stream-major lists keyed val'
complete -c bwctl-extract -l line-buffered -d 'Flush after every record (the default when stdout is a terminal); use it behind `tail -f` so each record reaches the next filter at once'
complete -c bwctl-extract -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bwctl-extract -s V -l version -d 'Print version'
