# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_trace_agent_global_optspecs
    string join \n dir= json h/help V/version
end

function __fish_trace_agent_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_trace_agent_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_trace_agent_using_subcommand
    set -l cmd (__fish_trace_agent_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c trace-agent -n "__fish_trace_agent_needs_command" -l dir -d 'The agent\'s data directory: its socket (agent.sock), lock, registry (tracers.toml) and store (traces.sqlite). Default: $XDG_STATE_HOME/measpipe/trace, else ~/.local/state/measpipe/trace' -r -F
complete -c trace-agent -n "__fish_trace_agent_needs_command" -l json -d 'Print the agent\'s reply as one JSON line (clients)'
complete -c trace-agent -n "__fish_trace_agent_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trace-agent -n "__fish_trace_agent_needs_command" -s V -l version -d 'Print version'
complete -c trace-agent -n "__fish_trace_agent_needs_command" -f -a "serve" -d 'Run the agent (in the foreground; see pipelines/trace-agent.service)'
complete -c trace-agent -n "__fish_trace_agent_needs_command" -f -a "start" -d 'Start a task running the named tracers; prints its id'
complete -c trace-agent -n "__fish_trace_agent_needs_command" -f -a "stop" -d 'Stop a task (the latest running one without TASK): every tracer drained'
complete -c trace-agent -n "__fish_trace_agent_needs_command" -f -a "list" -d 'The registry\'s tracers, and the task running each'
complete -c trace-agent -n "__fish_trace_agent_needs_command" -f -a "status" -d 'The running tasks and their tracers'
complete -c trace-agent -n "__fish_trace_agent_needs_command" -f -a "tasks" -d 'Every task in the store'
complete -c trace-agent -n "__fish_trace_agent_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand serve" -l registry -d 'The registry file (default: DIR/tracers.toml, else the built-in one)' -r -F
complete -c trace-agent -n "__fish_trace_agent_using_subcommand serve" -l grace -d 'How long a stopped tracer has to end after SIGTERM before SIGKILL' -r
complete -c trace-agent -n "__fish_trace_agent_using_subcommand serve" -l max-line -d 'The longest tracer line kept whole, in bytes (a longer one is cut)' -r
complete -c trace-agent -n "__fish_trace_agent_using_subcommand serve" -l stdout -d 'Also write every stored record to stdout, as NDJSON, once it is committed. Like tee, the agent waits for a slow reader (and so do its tracers and clients)'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand serve" -l line-buffered -d 'Flush after every record (the default when stdout is a terminal); use it behind `tail -f` so each record reaches the next filter at once'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand serve" -l json -d 'Print the agent\'s reply as one JSON line (clients)'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand serve" -s h -l help -d 'Print help'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand start" -l var -d 'A template variable, overriding the registry\'s [vars] (repeatable)' -r
complete -c trace-agent -n "__fish_trace_agent_using_subcommand start" -l json -d 'Print the agent\'s reply as one JSON line (clients)'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand start" -s h -l help -d 'Print help'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand stop" -l last -d 'The latest running task (the default)'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand stop" -l json -d 'Print the agent\'s reply as one JSON line (clients)'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand stop" -s h -l help -d 'Print help'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand list" -l json -d 'Print the agent\'s reply as one JSON line (clients)'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand list" -s h -l help -d 'Print help'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand status" -l json -d 'Print the agent\'s reply as one JSON line (clients)'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand status" -s h -l help -d 'Print help'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand tasks" -l json -d 'Print the agent\'s reply as one JSON line (clients)'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand tasks" -s h -l help -d 'Print help'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand help; and not __fish_seen_subcommand_from serve start stop list status tasks help" -f -a "serve" -d 'Run the agent (in the foreground; see pipelines/trace-agent.service)'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand help; and not __fish_seen_subcommand_from serve start stop list status tasks help" -f -a "start" -d 'Start a task running the named tracers; prints its id'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand help; and not __fish_seen_subcommand_from serve start stop list status tasks help" -f -a "stop" -d 'Stop a task (the latest running one without TASK): every tracer drained'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand help; and not __fish_seen_subcommand_from serve start stop list status tasks help" -f -a "list" -d 'The registry\'s tracers, and the task running each'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand help; and not __fish_seen_subcommand_from serve start stop list status tasks help" -f -a "status" -d 'The running tasks and their tracers'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand help; and not __fish_seen_subcommand_from serve start stop list status tasks help" -f -a "tasks" -d 'Every task in the store'
complete -c trace-agent -n "__fish_trace_agent_using_subcommand help; and not __fish_seen_subcommand_from serve start stop list status tasks help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
