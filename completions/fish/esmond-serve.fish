# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_esmond_serve_global_optspecs
    string join \n data= store= listen= script-alias= trust= max-body= body-budget= max-connections= request-timeout= idle-timeout= retention= keep= hosts= measurement-agent= data-policy= strict-esmond fix-streams fix-spec-map udp-loss-from-streams keep-diags= h/help V/version
end

function __fish_esmond_serve_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_esmond_serve_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_esmond_serve_using_subcommand
    set -l cmd (__fish_esmond_serve_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -l data -d 'Directory holding the archive (archive.sqlite); created if missing. This or --store' -r -F
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -l store -d 'The archive in a PostgreSQL database instead: postgres://USER[:PASSWORD]@HOST[:PORT]/DB (or `host=… user=… dbname=…`). Better given in the environment than on the command line, where `ps` shows a password' -r
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -l listen -d 'Address and port to listen on (loopback unless you say otherwise)' -r
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -l script-alias -d 'URL prefix before /perfsonar/archive/; `/` for none' -r
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -l trust -d 'A network (CIDR) whose clients may write without a key; repeatable' -r
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -l max-body -d 'Largest request body accepted, bytes (a larger one gets 413 unread)' -r
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -l body-budget -d 'Request-body bytes read at once over all connections; more writes wait their turn (up to --request-timeout, then 503). At least --max-body' -r
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -l max-connections -d 'Connections served at once; more are closed at once and logged. The open-file limit is raised to its hard limit at start' -r
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -l request-timeout -d 'Seconds for a request\'s headers to arrive, and again for its body (then 408 or the connection is closed)' -r
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -l idle-timeout -d 'Seconds an idle keep-alive connection is kept open' -r
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -l retention -d 'Delete points older than DAYS (checked at start, then hourly; --keep rules first) and give the space back; runs go with their points, refusals after DAYS' -r
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -l keep -d 'Keep matching series\' points DAYS (or `forever`), before --retention; repeatable, the first match decides. FIELD: event-type, summary-type, tool-name, source, destination, measurement-agent, input-source, input-destination or subject-type (exact values)' -r
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -l hosts -d 'Host names for the tests\' hosts, in /etc/hosts form (ADDRESS NAME...), looked up before the system resolver. A result whose hosts resolve nowhere is refused (422)' -r -F
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -l measurement-agent -d 'The esmond archiver\'s measurement-agent option: this host (in the source\'s address family) instead of each result\'s lead participant' -r
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -l data-policy -d 'The esmond archiver\'s data-formatting-policy' -r -f -a "prefer-mapped\t''
mapped-and-raw\t''
mapped-only\t''
raw-only\t''"
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -l keep-diags -d 'Bytes of each result\'s diags kept with the run (the tool\'s whole output otherwise)' -r
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -l strict-esmond -d 'Store only what esmond stored: drop the event types the archiver sends without registering them (packet-rtt, tcp-windowsize, their stream and subinterval forms, and failures of unmapped test types). By default they are registered and kept'
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -l fix-streams -d 'Keep zeros in the per-stream lists (the archiver drops them, misaligning the list with the streams)'
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -l fix-spec-map -d 'Also map spec ip-tos to ip-tos and flow-label to ip-packet-flowlabel (the archiver looks for names the tests do not use). Changes the metadata of those tests'
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -l udp-loss-from-streams -d 'UDP packet-count-lost and packet-loss-rate from the streams\' losses (iperf3\'s summary says 0 for the sender side)'
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -s V -l version -d 'Print version'
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -f -a "token" -d 'Manage the API keys writers use'
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -f -a "backup" -d 'Copy the live archive into DEST/archive.sqlite: consistent as of one commit, made while the server goes on writing (every write answered before it began is in it). To restore, start a server on it: `esmond-serve --data DEST`'
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -f -a "migrate" -d 'Create or upgrade the archive\'s schema in the PostgreSQL database of --store, and the partitions of this month and the next. Safe to run again, and from several hosts at once; servers refuse a database whose schema it has not brought up to date'
complete -c esmond-serve -n "__fish_esmond_serve_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand token; and not __fish_seen_subcommand_from add list revoke help" -l store -d 'The archive in a PostgreSQL database instead: postgres://USER[:PASSWORD]@HOST[:PORT]/DB (or `host=… user=… dbname=…`). Better given in the environment than on the command line, where `ps` shows a password' -r
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand token; and not __fish_seen_subcommand_from add list revoke help" -s h -l help -d 'Print help'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand token; and not __fish_seen_subcommand_from add list revoke help" -f -a "add" -d 'Create (or replace) USER\'s key and print it once, on stdout'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand token; and not __fish_seen_subcommand_from add list revoke help" -f -a "list" -d 'List users with keys and when each key was made'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand token; and not __fish_seen_subcommand_from add list revoke help" -f -a "revoke" -d 'Delete USER\'s key'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand token; and not __fish_seen_subcommand_from add list revoke help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand token; and __fish_seen_subcommand_from add" -l store -d 'The archive in a PostgreSQL database instead: postgres://USER[:PASSWORD]@HOST[:PORT]/DB (or `host=… user=… dbname=…`). Better given in the environment than on the command line, where `ps` shows a password' -r
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand token; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand token; and __fish_seen_subcommand_from list" -l store -d 'The archive in a PostgreSQL database instead: postgres://USER[:PASSWORD]@HOST[:PORT]/DB (or `host=… user=… dbname=…`). Better given in the environment than on the command line, where `ps` shows a password' -r
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand token; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand token; and __fish_seen_subcommand_from revoke" -l store -d 'The archive in a PostgreSQL database instead: postgres://USER[:PASSWORD]@HOST[:PORT]/DB (or `host=… user=… dbname=…`). Better given in the environment than on the command line, where `ps` shows a password' -r
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand token; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "add" -d 'Create (or replace) USER\'s key and print it once, on stdout'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "list" -d 'List users with keys and when each key was made'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Delete USER\'s key'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand backup" -l store -d 'The archive in a PostgreSQL database instead: postgres://USER[:PASSWORD]@HOST[:PORT]/DB (or `host=… user=… dbname=…`). Better given in the environment than on the command line, where `ps` shows a password' -r
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand backup" -s h -l help -d 'Print help'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand migrate" -l store -d 'The archive in a PostgreSQL database instead: postgres://USER[:PASSWORD]@HOST[:PORT]/DB (or `host=… user=… dbname=…`). Better given in the environment than on the command line, where `ps` shows a password' -r
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand migrate" -s h -l help -d 'Print help'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand help; and not __fish_seen_subcommand_from token backup migrate help" -f -a "token" -d 'Manage the API keys writers use'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand help; and not __fish_seen_subcommand_from token backup migrate help" -f -a "backup" -d 'Copy the live archive into DEST/archive.sqlite: consistent as of one commit, made while the server goes on writing (every write answered before it began is in it). To restore, start a server on it: `esmond-serve --data DEST`'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand help; and not __fish_seen_subcommand_from token backup migrate help" -f -a "migrate" -d 'Create or upgrade the archive\'s schema in the PostgreSQL database of --store, and the partitions of this month and the next. Safe to run again, and from several hosts at once; servers refuse a database whose schema it has not brought up to date'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand help; and not __fish_seen_subcommand_from token backup migrate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "add" -d 'Create (or replace) USER\'s key and print it once, on stdout'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "list" -d 'List users with keys and when each key was made'
complete -c esmond-serve -n "__fish_esmond_serve_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "revoke" -d 'Delete USER\'s key'
