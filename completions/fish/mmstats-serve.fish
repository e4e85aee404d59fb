complete -c mmstats-serve -l listen -d 'Address and port to listen on (loopback unless you say otherwise; mmash\'s port)' -r
complete -c mmstats-serve -l dir -d 'The stats directory; request patterns are taken inside it. Default: $MMSTATS_PATH, else the temp dir' -r -F
complete -c mmstats-serve -l glob -d 'The files served when a request names none, inside --dir unless absolute. Default: $MMSTATS_GLOB, else *.mmstats in --dir' -r
complete -c mmstats-serve -l metric-prefix -d 'Prepended to every metric name on /metrics (e.g. `web_`)' -r
complete -c mmstats-serve -l interval -d 'Milliseconds between the live page\'s polls, unless its address says otherwise' -r
complete -c mmstats-serve -l max-connections -d 'Connections served at once; more are closed at once and logged. The open-file limit is raised to its hard limit at start' -r
complete -c mmstats-serve -l request-timeout -d 'Seconds for a request\'s headers to arrive, and again for its body (then 408 or the connection is closed)' -r
complete -c mmstats-serve -l idle-timeout -d 'Seconds an idle keep-alive connection is kept open' -r
complete -c mmstats-serve -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mmstats-serve -s V -l version -d 'Print version'
