//! The commands. Each arm calls the library and prints; only this layer chooses exit codes
//! (0 success, 1 runtime failure, 2 bad usage or bad configuration).

/// `println!` for a command's output: a closed stdout (`| head`) ends the command quietly.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::emit(&format!($($arg)*)) };
}

mod actions;
mod backfill;
mod cluster;
mod daemon;
mod inputs;
mod lanes;
mod next;
mod prune;
mod runs;
mod status;
mod store;
mod sync;
mod trigger;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, ConfigError};

#[derive(Parser, Debug)]
#[command(
    name = "watchbell",
    version,
    about = "A local CRON scheduler daemon for Captain Data actions"
)]
pub struct Cli {
    /// The job file.
    #[arg(long, global = true, default_value = "schedules.toml")]
    pub config: PathBuf,
    // A help string, not a doc comment: the doc lint's backticks showed in the help.
    #[arg(
        long,
        global = true,
        help = "The SQLite database (default: the job file's [store] (PostgreSQL), else [daemon] database, else $STATE_DIRECTORY/watchbell.db, else ./watchbell.db)"
    )]
    pub db: Option<PathBuf>,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// The shells completions are generated for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The completion script for `shell`, generated from the CLI definition.
pub fn completions(shell: Shell) -> Vec<u8> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    let target = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(target, &mut cmd, "watchbell", &mut out);
    out
}

/// The man page, generated from the CLI definition.
pub fn man_page() -> Vec<u8> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    let _ = clap_mangen::Man::new(Cli::command()).render(&mut out);
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The daemon, in the foreground (systemd runs this).
    Run {
        /// Talk to a built-in simulator instead of the API (no account or key needed).
        #[arg(long)]
        sandbox: bool,
    },
    /// Validate the job file: exit 0 if it is good, 2 with every error listed.
    Check,
    /// The next fire times per job (or for --cron), local and UTC, DST cases marked.
    Next(next::NextArgs),
    /// Fire one run of JOB now, in this process, with progress; recorded like any run.
    Trigger {
        /// The job, as named in the job file.
        job: String,
        /// Against an in-process simulator instead of the API, in watchbell-sandbox.db unless
        /// --db is given; webhooks, notify and ping go only to loopback URLs.
        #[arg(long)]
        sandbox: bool,
        /// For an async job: wait until the run ends instead of exiting once it is sent (the
        /// daemon's receiver stores its results; with --sandbox this process does).
        #[arg(long)]
        wait: bool,
    },
    /// Look at recorded runs.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// One line per job: its last runs as a strip, success rate, median duration, next tick;
    /// with JOB, that job in full.
    Status {
        /// One job in full: next ticks, last runs, skipped ticks.
        job: Option<String>,
    },
    /// Results of many runs.
    Export {
        /// Only this job's runs.
        #[arg(long)]
        job: Option<String>,
        /// Runs created from this instant on (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        items: runs::ItemsArgs,
    },
    /// Bring the account's remote schedules in line with the file.
    Sync {
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also cancel remote schedules watchbell created whose job left the file.
        #[arg(long)]
        prune: bool,
    },
    /// Fired and skipped ticks, with reasons.
    Ticks {
        /// Only this job's ticks.
        #[arg(long)]
        job: Option<String>,
        /// From this instant on (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// As JSON lines: one object per line, no line when nothing matched.
        #[arg(long)]
        json: bool,
    },
    /// The action catalog: what each action takes and returns.
    Actions {
        /// One action to explain.
        name: Option<String>,
        /// As JSON lines: one object per line, no line when nothing matched.
        #[arg(long)]
        json: bool,
    },
    /// Delete finished runs older than [daemon] retain, and give the space back.
    Prune {
        /// Say what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Fire, once each, the past ticks of JOB in [--from, --to) that have no run.
    Backfill(backfill::BackfillArgs),
    /// Shell completions, printed for SHELL (bash, zsh, fish).
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// The man page (roff), generated from this CLI; read it with: watchbell man | man -l -
    Man,
    /// Identity lanes: requests today against the daily caps, pauses.
    Lanes {
        #[command(subcommand)]
        command: Option<LanesCommand>,
        /// As JSON lines: one object per line, no line when nothing matched.
        #[arg(long)]
        json: bool,
    },
    /// A chained job's inputs from its source job: pending, held by a run, consumed, failed.
    Inputs {
        /// The chained job, as the job file names it.
        job: String,
        /// As one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// A local Captain Data simulator: v4 actions, runs and schedules, and v1 endpoints.
    Sandbox(crate::sandbox::Options),
    /// The state's database.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    // Help strings, not doc comments: the doc lint's backticks would show in the help.
    #[command(
        about = "Copy the SQLite state (--db, else [daemon] database) into the empty PostgreSQL database [store] names, in one transaction"
    )]
    Copy {
        #[arg(long, help = "Into PostgreSQL ([store] url_env or url_file)")]
        to_postgres: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum LanesCommand {
    /// Lift a lane's pause before its time (the identity was fixed).
    Resume {
        /// The lane, as `watchbell lanes` lists it (e.g. `workspace`, `identity:UID`).
        lane: String,
    },
}

/// A command's failure, with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    /// Bad usage or bad configuration (exit 2).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }

    /// Something went wrong while doing what was asked (exit 1).
    pub fn runtime(message: impl std::fmt::Display) -> Failure {
        Failure {
            code: 1,
            message: message.to_string(),
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Failure {
        Failure::usage(e.to_string())
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(e: crate::store::StoreError) -> Failure {
        Failure::runtime(e)
    }
}

pub type Outcome = Result<(), Failure>;

/// Runs one command and maps its outcome to an exit code.
#[allow(clippy::needless_pass_by_value)] // main hands over the parsed CLI
pub fn run(cli: Cli) -> ExitCode {
    // An export's rows on the terminal would share rows with the line; piped, they do not.
    let watched = match &cli.command {
        Command::Export { .. } => !std::io::IsTerminal::is_terminal(&std::io::stdout()),
        Command::Trigger { .. }
        | Command::Backfill(_)
        | Command::Runs(runs::RunsCommand::Resume { .. }) => true,
        _ => false,
    };
    crate::logging::init(cli.log_format, watched);
    let result = match &cli.command {
        Command::Run { sandbox } => daemon::run(&cli, *sandbox),
        Command::Check => check(&cli.config),
        Command::Status { job } => status::run(&cli, job.as_deref()),
        Command::Export { job, since, items } => {
            runs::export(&cli, job.as_deref(), since.as_deref(), *items)
        }
        Command::Sync { dry_run, prune } => sync::run(&cli, *dry_run, *prune),
        Command::Ticks { job, since, json } => {
            runs::ticks(&cli, job.as_deref(), since.as_deref(), *json)
        }
        Command::Next(args) => next::run(&cli, args),
        Command::Trigger { job, sandbox, wait } => trigger::trigger(&cli, job, *sandbox, *wait),
        Command::Runs(runs::RunsCommand::Resume { uid }) => trigger::resume(&cli, uid),
        Command::Runs(cmd) => runs::run(&cli, cmd),
        Command::Actions { name, json } => actions::run(name.as_deref(), *json),
        Command::Backfill(args) => backfill::run(&cli, args),
        Command::Completions { shell } => write_out(&String::from_utf8_lossy(&completions(*shell))),
        Command::Man => write_out(&String::from_utf8_lossy(&man_page())),
        Command::Prune { dry_run } => prune::run(&cli, *dry_run),
        Command::Lanes { command, json } => {
            let resume = command
                .as_ref()
                .map(|LanesCommand::Resume { lane }| lane.as_str());
            lanes::run(&cli, resume, *json)
        }
        Command::Inputs { job, json } => inputs::run(&cli, job, *json),
        Command::Sandbox(opts) => sandbox(opts),
        Command::Store(StoreCommand::Copy { to_postgres }) => store::copy(&cli, *to_postgres),
    };
    crate::progress::finish();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("{}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

fn check(path: &Path) -> Outcome {
    let config = Config::load(path)?;
    for w in &config.warnings {
        eprintln!("{w}");
    }
    out!("{}: ok, {} job(s)", path.display(), config.jobs.len());
    for job in &config.jobs {
        let off = if job.enabled { "" } else { " (disabled)" };
        match &job.schedule {
            Some(s) => out!(
                "  {:<24} {:<16} {:<18} {}{}{off}",
                job.name,
                s.cron.as_str(),
                s.tz.name(),
                s.cron.describe(),
                job.after
                    .as_ref()
                    .map(|a| format!(", and after {a}"))
                    .unwrap_or_default(),
            ),
            None => out!("  {:<24} {}{off}", job.name, job.fires()),
        }
    }
    Ok(())
}

/// One line of output. A reader that went away (`| head -1`) ends the command here with exit 0,
/// as a shell pipeline expects; any other write failure is exit 1.
pub(crate) fn emit(line: &str) {
    use std::io::Write as _;
    let written = crate::progress::above(|| writeln!(std::io::stdout().lock(), "{line}"));
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// Prints `text` on stdout; a closed pipe (`| head`) ends the command quietly.
pub fn write_out(text: &str) -> Outcome {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::runtime(e)),
        _ => Ok(()),
    }
}

fn sandbox(opts: &crate::sandbox::Options) -> Outcome {
    use std::io::Write as _;
    let rt = tokio::runtime::Runtime::new().map_err(Failure::runtime)?;
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        // Handled before the first line says where it listens: a script that signals as soon
        // as it has read that line must not meet the default action (killed, not stopped).
        let mut term = signal(SignalKind::terminate()).map_err(Failure::runtime)?;
        let mut int = signal(SignalKind::interrupt()).map_err(Failure::runtime)?;
        let sb = crate::sandbox::Sandbox::start(opts.clone())
            .await
            .map_err(|e| Failure::runtime(format!("cannot listen on {}: {e}", opts.listen)))?;
        out!("listening on {}", sb.base_url());
        let _ = std::io::stdout().flush();
        tracing::info!(addr = %sb.addr(), pages = opts.pages, page_size = ?opts.page_size, "sandbox ready");
        sb.run_until(async {
            let signal = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            tracing::info!(signal, "sandbox stopping");
        })
        .await;
        tracing::info!("sandbox stopped");
        Ok(())
    })
}

/// The database path: `--db`, else `[daemon] database`, else `$STATE_DIRECTORY`, else `./`.
/// The `SQLite` database a command that writes uses: refused (exit 2) when the job file's
/// `[store]` puts the state in `PostgreSQL`, which this build's `what` does not write yet, so no
/// state is split into a `SQLite` file beside the cluster's.
pub fn database_to_write(cli: &Cli, config: &Config, what: &str) -> Result<PathBuf, Failure> {
    if config.store.is_some() && cli.db.is_none() {
        return Err(Failure::usage(format!(
            "{}: [store] keeps the state in PostgreSQL, which `watchbell {what}` does not write to yet; the cluster's leader does this work (or pass --db for a SQLite file)",
            cli.config.display()
        )));
    }
    Ok(database_path(cli, Some(config)))
}

pub fn database_path(cli: &Cli, config: Option<&Config>) -> PathBuf {
    if let Some(p) = &cli.db {
        return p.clone();
    }
    if let Some(p) = config.and_then(|c| c.daemon.database.clone()) {
        return p;
    }
    match std::env::var_os("STATE_DIRECTORY") {
        // systemd may list several directories, separated by ':'; the first is ours.
        Some(dirs) => {
            let first = dirs
                .to_string_lossy()
                .split(':')
                .next()
                .unwrap_or("")
                .to_string();
            PathBuf::from(first).join("watchbell.db")
        }
        None => PathBuf::from("watchbell.db"),
    }
}

/// Webhook secrets as deliveries will use them: a `whsec_` secret that cannot sign (empty,
/// not base64, shorter than 24 bytes) is refused at start (exit 2); any other value still signs
/// the old way, with a deprecation warning. An unset variable is the deliveries' to report.
pub(crate) fn check_secrets(config: &Config) -> Outcome {
    let mut seen = std::collections::BTreeSet::new();
    for job in &config.jobs {
        let Some(var) = job.webhook.as_ref().and_then(|w| w.secret_env.as_deref()) else {
            continue;
        };
        let Ok(value) = std::env::var(var) else {
            continue;
        };
        match crate::signatures::Secret::parse(&value) {
            Err(e) => {
                return Err(Failure::usage(format!(
                    "job {:?}: webhook.secret_env {var}: {e}",
                    job.name
                )));
            }
            Ok(crate::signatures::Secret::Plain(_)) if seen.insert(var) => tracing::warn!(
                job = %job.name,
                var,
                "webhook secret is not a whsec_ secret: deliveries carry only X-Watchbell-Signature, which is deprecated; a whsec_ secret also signs them as Standard Webhooks"
            ),
            Ok(_) => {}
        }
    }
    Ok(())
}

/// The job file if it exists (read commands work without one), failing if it does not validate.
pub fn optional_config(cli: &Cli) -> Result<Option<Config>, Failure> {
    if cli.db.is_some() || !cli.config.exists() {
        return Ok(None);
    }
    Ok(Some(Config::load(&cli.config)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The files a package installs are generated from this CLI; regenerate them with
    /// `watchbell completions SHELL > contrib/completions/...` and `watchbell man`.
    #[test]
    fn the_committed_completions_and_man_page_match_the_cli() {
        let committed: [(Shell, &[u8], &str); 3] = [
            (
                Shell::Bash,
                include_bytes!("../../contrib/completions/watchbell.bash"),
                "watchbell.bash",
            ),
            (
                Shell::Zsh,
                include_bytes!("../../contrib/completions/_watchbell"),
                "_watchbell",
            ),
            (
                Shell::Fish,
                include_bytes!("../../contrib/completions/watchbell.fish"),
                "watchbell.fish",
            ),
        ];
        for (shell, file, name) in committed {
            assert!(
                completions(shell) == file,
                "contrib/completions/{name} is stale: watchbell completions {shell:?} > it"
            );
        }
        assert!(
            man_page() == include_bytes!("../../contrib/man/watchbell.1"),
            "contrib/man/watchbell.1 is stale: watchbell man > contrib/man/watchbell.1"
        );
    }
}
