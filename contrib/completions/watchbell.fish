# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_watchbell_global_optspecs
    string join \n config= db= log-format= h/help V/version
end

function __fish_watchbell_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_watchbell_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_watchbell_using_subcommand
    set -l cmd (__fish_watchbell_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c watchbell -n "__fish_watchbell_needs_command" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_needs_command" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_needs_command" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_needs_command" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_needs_command" -s V -l version -d 'Print version'
complete -c watchbell -n "__fish_watchbell_needs_command" -f -a "run" -d 'The daemon, in the foreground (systemd runs this)'
complete -c watchbell -n "__fish_watchbell_needs_command" -f -a "check" -d 'Validate the job file: exit 0 if it is good, 2 with every error listed'
complete -c watchbell -n "__fish_watchbell_needs_command" -f -a "next" -d 'The next fire times per job (or for --cron), local and UTC, DST cases marked'
complete -c watchbell -n "__fish_watchbell_needs_command" -f -a "trigger" -d 'Fire one run of JOB now, in this process, with progress; recorded like any run'
complete -c watchbell -n "__fish_watchbell_needs_command" -f -a "runs" -d 'Look at recorded runs'
complete -c watchbell -n "__fish_watchbell_needs_command" -f -a "status" -d 'One line per job: its last runs as a strip, success rate, median duration, next tick; with JOB, that job in full'
complete -c watchbell -n "__fish_watchbell_needs_command" -f -a "export" -d 'Results of many runs'
complete -c watchbell -n "__fish_watchbell_needs_command" -f -a "sync" -d 'Bring the account\'s remote schedules in line with the file'
complete -c watchbell -n "__fish_watchbell_needs_command" -f -a "ticks" -d 'Fired and skipped ticks, with reasons'
complete -c watchbell -n "__fish_watchbell_needs_command" -f -a "actions" -d 'The action catalog: what each action takes and returns'
complete -c watchbell -n "__fish_watchbell_needs_command" -f -a "prune" -d 'Delete finished runs older than [daemon] retain, and give the space back'
complete -c watchbell -n "__fish_watchbell_needs_command" -f -a "backfill" -d 'Fire, once each, the past ticks of JOB in [--from, --to) that have no run'
complete -c watchbell -n "__fish_watchbell_needs_command" -f -a "completions" -d 'Shell completions, printed for SHELL (bash, zsh, fish)'
complete -c watchbell -n "__fish_watchbell_needs_command" -f -a "man" -d 'The man page (roff), generated from this CLI; read it with: watchbell man | man -l -'
complete -c watchbell -n "__fish_watchbell_needs_command" -f -a "lanes" -d 'Identity lanes: requests today against the daily caps, pauses'
complete -c watchbell -n "__fish_watchbell_needs_command" -f -a "inputs" -d 'A chained job\'s inputs from its source job: pending, held by a run, consumed, failed'
complete -c watchbell -n "__fish_watchbell_needs_command" -f -a "sandbox" -d 'A local Captain Data simulator: v4 actions, runs and schedules, and v1 endpoints'
complete -c watchbell -n "__fish_watchbell_needs_command" -f -a "store" -d 'The state\'s database'
complete -c watchbell -n "__fish_watchbell_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c watchbell -n "__fish_watchbell_using_subcommand run" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand run" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand run" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand run" -l sandbox -d 'Talk to a built-in simulator instead of the API (no account or key needed)'
complete -c watchbell -n "__fish_watchbell_using_subcommand run" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand check" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand check" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand check" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand check" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand next" -s n -d 'How many fire times' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand next" -l after -d 'Start after this instant (RFC 3339) instead of now' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand next" -l cron -d 'An expression typed here instead of the job file' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand next" -l timezone -d 'The zone for --cron' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand next" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand next" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand next" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand next" -l json -d 'One JSON object per fire time'
complete -c watchbell -n "__fish_watchbell_using_subcommand next" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand trigger" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand trigger" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand trigger" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand trigger" -l sandbox -d 'Against an in-process simulator instead of the API, in watchbell-sandbox.db unless --db is given; webhooks, notify and ping go only to loopback URLs'
complete -c watchbell -n "__fish_watchbell_using_subcommand trigger" -l wait -d 'For an async job: wait until the run ends instead of exiting once it is sent (the daemon\'s receiver stores its results; with --sandbox this process does)'
complete -c watchbell -n "__fish_watchbell_using_subcommand trigger" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and not __fish_seen_subcommand_from list show inputs results resume help" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and not __fish_seen_subcommand_from list show inputs results resume help" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and not __fish_seen_subcommand_from list show inputs results resume help" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and not __fish_seen_subcommand_from list show inputs results resume help" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and not __fish_seen_subcommand_from list show inputs results resume help" -f -a "list" -d 'Runs, newest first'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and not __fish_seen_subcommand_from list show inputs results resume help" -f -a "show" -d 'One run with its transitions, pages and callbacks'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and not __fish_seen_subcommand_from list show inputs results resume help" -f -a "inputs" -d 'The inputs of a run over a list: outcome, pages, items, error'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and not __fish_seen_subcommand_from list show inputs results resume help" -f -a "results" -d 'A run\'s results'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and not __fish_seen_subcommand_from list show inputs results resume help" -f -a "resume" -d 'Continue a stopped, blocked, failed or partially succeeded run from its cursor'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and not __fish_seen_subcommand_from list show inputs results resume help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from list" -l job -d 'Only this job\'s runs' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from list" -l status -d 'Only runs in this status' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from list" -l since -d 'Runs created from this instant on (RFC 3339)' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from list" -l limit -r
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from list" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from list" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from list" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from list" -l json -d 'As JSON lines: one object per line, no line when nothing matched'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from show" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from show" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from show" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from show" -l json -d 'As JSON lines: one object per line, no line when nothing matched'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from inputs" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from inputs" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from inputs" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from inputs" -l json -d 'As JSON lines: one object per line, no line when nothing matched'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from inputs" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from results" -l format -r -f -a "jsonl\t''
csv\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from results" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from results" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from results" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from results" -l new -d 'Only items no earlier run of the same job returned'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from results" -l raw -d 'CSV: keep cells that start like a formula as they are (by default they get a leading \')'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from results" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from resume" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from resume" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from resume" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from resume" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "list" -d 'Runs, newest first'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "show" -d 'One run with its transitions, pages and callbacks'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "inputs" -d 'The inputs of a run over a list: outcome, pages, items, error'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "results" -d 'A run\'s results'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "resume" -d 'Continue a stopped, blocked, failed or partially succeeded run from its cursor'
complete -c watchbell -n "__fish_watchbell_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c watchbell -n "__fish_watchbell_using_subcommand status" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand status" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand status" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand status" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand export" -l job -d 'Only this job\'s runs' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand export" -l since -d 'Runs created from this instant on (RFC 3339)' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand export" -l format -r -f -a "jsonl\t''
csv\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand export" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand export" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand export" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand export" -l new -d 'Only items no earlier run of the same job returned'
complete -c watchbell -n "__fish_watchbell_using_subcommand export" -l raw -d 'CSV: keep cells that start like a formula as they are (by default they get a leading \')'
complete -c watchbell -n "__fish_watchbell_using_subcommand export" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand sync" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand sync" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand sync" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand sync" -l dry-run -d 'Print the plan and change nothing'
complete -c watchbell -n "__fish_watchbell_using_subcommand sync" -l prune -d 'Also cancel remote schedules watchbell created whose job left the file'
complete -c watchbell -n "__fish_watchbell_using_subcommand sync" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand ticks" -l job -d 'Only this job\'s ticks' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand ticks" -l since -d 'From this instant on (RFC 3339)' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand ticks" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand ticks" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand ticks" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand ticks" -l json -d 'As JSON lines: one object per line, no line when nothing matched'
complete -c watchbell -n "__fish_watchbell_using_subcommand ticks" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand actions" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand actions" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand actions" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand actions" -l json -d 'As JSON lines: one object per line, no line when nothing matched'
complete -c watchbell -n "__fish_watchbell_using_subcommand actions" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand prune" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand prune" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand prune" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand prune" -l dry-run -d 'Say what would be removed; remove nothing'
complete -c watchbell -n "__fish_watchbell_using_subcommand prune" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand backfill" -l from -d 'The first instant of the range (RFC 3339), included' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand backfill" -l to -d 'The end of the range (RFC 3339), excluded; not in the future' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand backfill" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand backfill" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand backfill" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand backfill" -l yes -d 'Go ahead with more than 100 ticks'
complete -c watchbell -n "__fish_watchbell_using_subcommand backfill" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand completions" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand completions" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand completions" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand completions" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand man" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand man" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand man" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand man" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand lanes; and not __fish_seen_subcommand_from resume help" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand lanes; and not __fish_seen_subcommand_from resume help" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand lanes; and not __fish_seen_subcommand_from resume help" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand lanes; and not __fish_seen_subcommand_from resume help" -l json -d 'As JSON lines: one object per line, no line when nothing matched'
complete -c watchbell -n "__fish_watchbell_using_subcommand lanes; and not __fish_seen_subcommand_from resume help" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand lanes; and not __fish_seen_subcommand_from resume help" -f -a "resume" -d 'Lift a lane\'s pause before its time (the identity was fixed)'
complete -c watchbell -n "__fish_watchbell_using_subcommand lanes; and not __fish_seen_subcommand_from resume help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c watchbell -n "__fish_watchbell_using_subcommand lanes; and __fish_seen_subcommand_from resume" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand lanes; and __fish_seen_subcommand_from resume" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand lanes; and __fish_seen_subcommand_from resume" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand lanes; and __fish_seen_subcommand_from resume" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand lanes; and __fish_seen_subcommand_from help" -f -a "resume" -d 'Lift a lane\'s pause before its time (the identity was fixed)'
complete -c watchbell -n "__fish_watchbell_using_subcommand lanes; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c watchbell -n "__fish_watchbell_using_subcommand inputs" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand inputs" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand inputs" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand inputs" -l json -d 'As one JSON object'
complete -c watchbell -n "__fish_watchbell_using_subcommand inputs" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand sandbox" -l listen -d 'Where to listen (port 0: any free port; the first stdout line says which)' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand sandbox" -l api-key -d 'The only API key accepted' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand sandbox" -l pages -d 'Pages per live run' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand sandbox" -l page-size -d 'Items per page (default: the action\'s page size in the catalog, else 10)' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand sandbox" -l rate-limit -d 'Requests per second per key, e.g. "2/s" (default: unlimited)' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand sandbox" -l daily-quota -d 'Live requests per key per UTC day' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand sandbox" -l fail-rate -d 'Probability of a 500/503 answer' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand sandbox" -l latency -d 'Delay before each answer, e.g. "50ms"' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand sandbox" -l new-per-run -d 'Items never served before that each live run of a paginated action also returns, first on its first page (a search that finds something new each time, for chains)' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand sandbox" -l seed -d 'Seed for the fault injection' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand sandbox" -l credits -d 'The account\'s credits for the billing period; each item returned costs one' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand sandbox" -l cursor-ttl -d 'How long a v1 pagination cursor stays valid, e.g. "24h"' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand sandbox" -l callbacks -d 'Async callbacks misbehaving, e.g. "duplicate=1,reorder=2,drop=1,drop-replays=3,lose-create=1"' -r
complete -c watchbell -n "__fish_watchbell_using_subcommand sandbox" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand sandbox" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand sandbox" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand sandbox" -l fire-schedules -d 'Remote schedules fire on their cron (the sandbox\'s clock), their callbacks sent'
complete -c watchbell -n "__fish_watchbell_using_subcommand sandbox" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand store; and not __fish_seen_subcommand_from copy help" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand store; and not __fish_seen_subcommand_from copy help" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand store; and not __fish_seen_subcommand_from copy help" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand store; and not __fish_seen_subcommand_from copy help" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand store; and not __fish_seen_subcommand_from copy help" -f -a "copy" -d 'Copy the SQLite state (--db, else [daemon] database) into the empty PostgreSQL database [store] names, in one transaction'
complete -c watchbell -n "__fish_watchbell_using_subcommand store; and not __fish_seen_subcommand_from copy help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c watchbell -n "__fish_watchbell_using_subcommand store; and __fish_seen_subcommand_from copy" -l config -d 'The job file' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand store; and __fish_seen_subcommand_from copy" -l db -d 'The SQLite database (default: the job file\'s [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)' -r -F
complete -c watchbell -n "__fish_watchbell_using_subcommand store; and __fish_seen_subcommand_from copy" -l log-format -d 'Log line format on stderr' -r -f -a "text\t''
json\t''"
complete -c watchbell -n "__fish_watchbell_using_subcommand store; and __fish_seen_subcommand_from copy" -l to-postgres -d 'Into PostgreSQL ([store] url_env or url_file)'
complete -c watchbell -n "__fish_watchbell_using_subcommand store; and __fish_seen_subcommand_from copy" -s h -l help -d 'Print help'
complete -c watchbell -n "__fish_watchbell_using_subcommand store; and __fish_seen_subcommand_from help" -f -a "copy" -d 'Copy the SQLite state (--db, else [daemon] database) into the empty PostgreSQL database [store] names, in one transaction'
complete -c watchbell -n "__fish_watchbell_using_subcommand store; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and not __fish_seen_subcommand_from run check next trigger runs status export sync ticks actions prune backfill completions man lanes inputs sandbox store help" -f -a "run" -d 'The daemon, in the foreground (systemd runs this)'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and not __fish_seen_subcommand_from run check next trigger runs status export sync ticks actions prune backfill completions man lanes inputs sandbox store help" -f -a "check" -d 'Validate the job file: exit 0 if it is good, 2 with every error listed'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and not __fish_seen_subcommand_from run check next trigger runs status export sync ticks actions prune backfill completions man lanes inputs sandbox store help" -f -a "next" -d 'The next fire times per job (or for --cron), local and UTC, DST cases marked'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and not __fish_seen_subcommand_from run check next trigger runs status export sync ticks actions prune backfill completions man lanes inputs sandbox store help" -f -a "trigger" -d 'Fire one run of JOB now, in this process, with progress; recorded like any run'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and not __fish_seen_subcommand_from run check next trigger runs status export sync ticks actions prune backfill completions man lanes inputs sandbox store help" -f -a "runs" -d 'Look at recorded runs'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and not __fish_seen_subcommand_from run check next trigger runs status export sync ticks actions prune backfill completions man lanes inputs sandbox store help" -f -a "status" -d 'One line per job: its last runs as a strip, success rate, median duration, next tick; with JOB, that job in full'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and not __fish_seen_subcommand_from run check next trigger runs status export sync ticks actions prune backfill completions man lanes inputs sandbox store help" -f -a "export" -d 'Results of many runs'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and not __fish_seen_subcommand_from run check next trigger runs status export sync ticks actions prune backfill completions man lanes inputs sandbox store help" -f -a "sync" -d 'Bring the account\'s remote schedules in line with the file'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and not __fish_seen_subcommand_from run check next trigger runs status export sync ticks actions prune backfill completions man lanes inputs sandbox store help" -f -a "ticks" -d 'Fired and skipped ticks, with reasons'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and not __fish_seen_subcommand_from run check next trigger runs status export sync ticks actions prune backfill completions man lanes inputs sandbox store help" -f -a "actions" -d 'The action catalog: what each action takes and returns'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and not __fish_seen_subcommand_from run check next trigger runs status export sync ticks actions prune backfill completions man lanes inputs sandbox store help" -f -a "prune" -d 'Delete finished runs older than [daemon] retain, and give the space back'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and not __fish_seen_subcommand_from run check next trigger runs status export sync ticks actions prune backfill completions man lanes inputs sandbox store help" -f -a "backfill" -d 'Fire, once each, the past ticks of JOB in [--from, --to) that have no run'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and not __fish_seen_subcommand_from run check next trigger runs status export sync ticks actions prune backfill completions man lanes inputs sandbox store help" -f -a "completions" -d 'Shell completions, printed for SHELL (bash, zsh, fish)'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and not __fish_seen_subcommand_from run check next trigger runs status export sync ticks actions prune backfill completions man lanes inputs sandbox store help" -f -a "man" -d 'The man page (roff), generated from this CLI; read it with: watchbell man | man -l -'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and not __fish_seen_subcommand_from run check next trigger runs status export sync ticks actions prune backfill completions man lanes inputs sandbox store help" -f -a "lanes" -d 'Identity lanes: requests today against the daily caps, pauses'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and not __fish_seen_subcommand_from run check next trigger runs status export sync ticks actions prune backfill completions man lanes inputs sandbox store help" -f -a "inputs" -d 'A chained job\'s inputs from its source job: pending, held by a run, consumed, failed'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and not __fish_seen_subcommand_from run check next trigger runs status export sync ticks actions prune backfill completions man lanes inputs sandbox store help" -f -a "sandbox" -d 'A local Captain Data simulator: v4 actions, runs and schedules, and v1 endpoints'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and not __fish_seen_subcommand_from run check next trigger runs status export sync ticks actions prune backfill completions man lanes inputs sandbox store help" -f -a "store" -d 'The state\'s database'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and not __fish_seen_subcommand_from run check next trigger runs status export sync ticks actions prune backfill completions man lanes inputs sandbox store help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "list" -d 'Runs, newest first'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "show" -d 'One run with its transitions, pages and callbacks'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "inputs" -d 'The inputs of a run over a list: outcome, pages, items, error'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "results" -d 'A run\'s results'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "resume" -d 'Continue a stopped, blocked, failed or partially succeeded run from its cursor'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and __fish_seen_subcommand_from lanes" -f -a "resume" -d 'Lift a lane\'s pause before its time (the identity was fixed)'
complete -c watchbell -n "__fish_watchbell_using_subcommand help; and __fish_seen_subcommand_from store" -f -a "copy" -d 'Copy the SQLite state (--db, else [daemon] database) into the empty PostgreSQL database [store] names, in one transaction'
