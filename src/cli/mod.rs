//! The `mpm-aggregate` command line: argument parsing, logging, configuration,
//! dispatch to one module per command, and the exit status. Every error
//! reaches the user as one `error: …` line and exit status 1; a reader of our
//! output going away (`| head`) ends the command quietly with status 0.

mod completions;
mod export;
pub mod hook;
mod hooks;
mod import;
mod man;
mod output;
mod prune;
mod push;
mod query;
mod search;
mod sessions;
mod start;
mod stats;
mod status;
mod stop;
mod tail;
mod view;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Config, Overrides};
use crate::documents::ExportFormat;
use crate::error::{AggregatorError, Result};
use crate::store::queries::SessionSort;
use output::Invocation;

/// `writeln!` to a command's output; a failed write (a closed pipe included)
/// becomes the command's error, so it is handled once, in [`run`].
macro_rules! say {
    ($out:expr) => {
        writeln!($out).map_err($crate::cli::output::stdout_error)?
    };
    ($out:expr, $($arg:tt)*) => {
        writeln!($out, $($arg)*).map_err($crate::cli::output::stdout_error)?
    };
}
pub(crate) use say;

/// The command line: global options and one command.
#[derive(Parser, Debug)]
#[command(
    name = "mpm-aggregate",
    version,
    about = "Record claude-mpm's agent activity into SQLite; query and export sessions.",
    after_help = "Examples:\n  mpm-aggregate import ~/.claude/projects\n  mpm-aggregate sessions --since 3d\n  mpm-aggregate search 'cannot access'\n  mpm-aggregate stats --by agent\n  mpm-aggregate tail"
)]
pub struct Cli {
    /// Configuration file (default: .claude-mpm/config.toml when it exists)
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// SQLite database (default: .claude-mpm/aggregator.db)
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Where session files are written (default: .claude-mpm/activity)
    #[arg(long, global = true, value_name = "DIR")]
    activity_dir: Option<PathBuf>,
    /// Verbose logging
    #[arg(long, global = true)]
    debug: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Connect to the monitor and record until stopped
    #[command(
        after_help = "Examples:\n  mpm-aggregate start\n  mpm-aggregate start --daemon\n  mpm-aggregate start --no-monitor --transcripts --listen 127.0.0.1:8766"
    )]
    Start(StartArgs),
    /// Stop the running recorder (active sessions are finalized and saved)
    #[command(after_help = "Example:\n  mpm-aggregate stop")]
    Stop,
    /// Show what the recorder and the store are doing
    #[command(
        after_help = "Examples:\n  mpm-aggregate status\n  mpm-aggregate status --json | jq .events_received"
    )]
    Status {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List recorded sessions
    #[command(
        after_help = "Examples:\n  mpm-aggregate sessions --since 3d\n  mpm-aggregate sessions --project ~/work/app --status completed\n  mpm-aggregate sessions --agent engineer --sort events --json"
    )]
    Sessions(SessionsArgs),
    /// Show one session: metadata, prompt, metrics, delegations, events
    #[command(
        after_help = "Examples:\n  mpm-aggregate view 1a6c\n  mpm-aggregate view 1a6c --show-events --event-limit 20\n  mpm-aggregate view 1a6c --json"
    )]
    View(ViewArgs),
    /// Export a session as JSON (full, summary or events) or as a self-contained HTML page
    #[command(after_help = "Examples:
  mpm-aggregate export 1a6c
  mpm-aggregate export 1a6c --format summary -o -
  mpm-aggregate export 1a6c --format html -o session.html
  mpm-aggregate export 1a6c -o shared/ --force")]
    Export {
        /// Session id or unique prefix
        session: String,
        /// Output file, directory, or - for standard output (default: ./session_<id8>_<format>.json, or .html; .gz compresses)
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
        /// full, summary, events (json = full), or html: one page to open offline in a browser
        #[arg(long, value_enum, ignore_case = true, default_value_t = FormatArg::Full)]
        format: FormatArg,
        /// Replace the output file if it exists
        #[arg(long)]
        force: bool,
    },
    /// Run a read-only SQL query on the database
    #[command(
        after_help = "Examples:\n  mpm-aggregate query \"SELECT event_type, count(*) FROM events GROUP BY 1\"\n  mpm-aggregate query \"SELECT * FROM metrics\" --format csv"
    )]
    Query {
        /// The SQL statement (one, read-only)
        #[arg(value_parser = non_blank)]
        sql: String,
        /// table, json or csv
        #[arg(long, value_enum, default_value_t = query::Format::Table)]
        format: query::Format,
    },
    /// Import Claude Code transcripts, hook payloads, monitor captures, session exports or the Python original's files
    #[command(
        after_help = "Examples:\n  mpm-aggregate import\n  mpm-aggregate import ~/.claude/projects hooks.jsonl\n  zcat capture.jsonl.gz | mpm-aggregate import -"
    )]
    Import {
        /// Files or folders to import: a transcript, a session folder or a projects folder;
        /// JSON lines of hook payloads or monitor captures; session documents; - for standard
        /// input (.gz is read transparently). None: Claude Code's projects folder
        /// (~/.claude/projects, or $CLAUDE_CONFIG_DIR/projects)
        files: Vec<PathBuf>,
    },
    /// A Claude Code `command` hook: stores the payload on standard input (never fails, prints nothing; problems go to hook.log next to the database)
    #[command(
        after_help = "By default the payload is spooled and the process exits at once (Claude Code waits for its hooks); a background writer stores it within milliseconds.\n\nExample (what Claude Code runs; `hooks install` writes it):\n  mpm-aggregate --db /abs/.claude-mpm/aggregator.db hook < payload.json"
    )]
    Hook {
        /// Store the payload before exiting (for scripts that read the database next)
        #[arg(long)]
        wait: bool,
    },
    /// Delete sessions (events, delegations, metrics, files) older than N days
    #[command(after_help = "Example:\n  mpm-aggregate prune --older-than-days 30")]
    Prune {
        /// Delete what is older than N days (at least 1)
        #[arg(long, value_name = "N", value_parser = at_least_one_day)]
        older_than_days: u64,
    },
    /// Send this store to a team's PostgreSQL database or an OpenTelemetry collector (only what is new)
    #[command(
        after_help = "Examples:\n  mpm-aggregate push postgres://me@db.example:5432/agents\n  mpm-aggregate push --otlp http://localhost:4318 --otlp-headers 'authorization=Bearer%20TOKEN'\n  mpm-aggregate push postgres://me@db.example:5432/agents --watch"
    )]
    Push(push::PushArgs),
    /// Install, remove or show our hook in Claude Code's settings (records without claude-mpm)
    #[command(subcommand)]
    Hooks(hooks::HooksCommand),
    /// Full-text search over prompts, responses, tool inputs and outputs, errors and file paths
    Search(search::SearchArgs),
    /// Tokens, cost, tool calls, failures and delegations per day, project, agent, model or tool
    Stats(stats::StatsArgs),
    /// Follow events as they are stored (by any process), one line each, until interrupted
    Tail(tail::TailArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(completions::CompletionsArgs),
    /// Print the manual page (roff) of the program or of one command
    Man(man::ManArgs),
}

/// Options of `sessions`.
#[derive(Args, Debug, Clone)]
pub struct SessionsArgs {
    /// Show at most N sessions
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Order: time (newest first), events or duration (largest first)
    #[arg(long, value_enum, default_value_t = SortArg::Time)]
    sort: SortArg,
    /// Only sessions started since a date (2026-11-01), a time, or a duration ago (3d, 12h, 30m)
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Only sessions whose working directory is DIR or inside it (relative: from here)
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,
    /// Only active or only completed sessions
    #[arg(long, value_enum)]
    status: Option<StatusArg>,
    /// Only sessions that delegated to this sub-agent type (e.g. engineer)
    #[arg(long, value_name = "TYPE")]
    agent: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// `--status` of `sessions`.
#[derive(ValueEnum, Debug, Clone, Copy)]
enum StatusArg {
    Active,
    Completed,
}

/// `--sort` of `sessions`.
#[derive(ValueEnum, Debug, Clone, Copy)]
enum SortArg {
    Time,
    Events,
    Duration,
}

impl From<SortArg> for SessionSort {
    fn from(s: SortArg) -> Self {
        match s {
            SortArg::Time => SessionSort::Time,
            SortArg::Events => SessionSort::Events,
            SortArg::Duration => SessionSort::Duration,
        }
    }
}

/// `--format` of `export`.
#[derive(ValueEnum, Debug, Clone, Copy)]
enum FormatArg {
    // Kept from before the choices were checked: the library API takes `json` too.
    #[value(alias = "json")]
    Full,
    Summary,
    Events,
    Html,
}

impl From<FormatArg> for ExportFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Full => ExportFormat::Full,
            FormatArg::Summary => ExportFormat::Summary,
            FormatArg::Events => ExportFormat::Events,
            FormatArg::Html => ExportFormat::Html,
        }
    }
}

/// A number of days for `prune`: 0 would delete everything, so it is a usage error.
fn at_least_one_day(s: &str) -> std::result::Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Refuses an empty or blank argument as a usage error.
fn non_blank(s: &str) -> std::result::Result<String, String> {
    if s.trim().is_empty() {
        Err("an SQL statement is required (it is empty)".into())
    } else {
        Ok(s.to_string())
    }
}

/// Options of `start`.
#[derive(Args, Debug, Clone)]
pub struct StartArgs {
    /// Monitor host (default: localhost, or CLAUDE_MPM_DASHBOARD_HOST)
    #[arg(long)]
    host: Option<String>,
    /// Monitor port (default: 8765, or CLAUDE_MPM_DASHBOARD_PORT)
    #[arg(long)]
    port: Option<u16>,
    /// Run in the background (PID and log files in the activity directory)
    #[arg(long)]
    daemon: bool,
    /// Start even if the monitor is unreachable, and keep retrying
    #[arg(long)]
    force: bool,
    /// Internal: this process is the detached daemon
    #[arg(long, hide = true)]
    daemon_child: bool,
    /// Follow Claude Code's transcripts as they are written (default folder: ~/.claude/projects)
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    transcripts: Option<Option<PathBuf>>,
    /// Run without the claude-mpm monitor connection (transcripts only)
    #[arg(long)]
    no_monitor: bool,
    /// Accept Claude Code http hooks (hooks install --http) on this address, e.g. 127.0.0.1:8766
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Allow a non-loopback --listen address (the listener has no authentication)
    #[arg(long, requires = "listen")]
    listen_any: bool,
}

/// Options of `view`.
#[derive(Args, Debug, Clone)]
pub struct ViewArgs {
    /// Session id or unique prefix
    session: String,
    /// Show full texts (instructions, prompt, response) and event data
    #[arg(short, long)]
    verbose: bool,
    /// List the session's events
    #[arg(long)]
    show_events: bool,
    /// How many events to list
    #[arg(long, value_name = "N", default_value_t = 50)]
    event_limit: u64,
    /// Leave out the final response
    #[arg(long)]
    no_response: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

fn init_logging(debug: bool, command: &Command) {
    use tracing_subscriber::EnvFilter;
    let default = if debug {
        "mpm_aggregate=debug,info"
    } else if matches!(command, Command::Start(_)) {
        "mpm_aggregate=info,warn"
    } else {
        "mpm_aggregate=warn,error"
    };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}

/// The command line, parsed (usage errors exit here, as clap does, except
/// for `hook`: Claude Code takes status 2 for "block this tool call").
pub fn parse() -> Cli {
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() && std::env::args().skip(1).any(|a| a == "hook") => {
            hook::refuse_arguments(&e.to_string())
        }
        Err(e) => e.exit(),
    }
}

impl Cli {
    /// Whether the command moves many events between threads (recording,
    /// importing, exporting, pushing): the binary gives those mimalloc, the
    /// others (a `hook` process, a query) the system allocator, cheaper to start.
    pub fn moves_many_events(&self) -> bool {
        matches!(
            self.command,
            Command::Start(_) | Command::Import { .. } | Command::Export { .. } | Command::Push(_)
        )
    }
}

/// Runs a parsed command and returns the exit status.
pub fn run_parsed(cli: Cli) -> i32 {
    if let Command::Hook { wait } = cli.command {
        // No logging to standard error, no error line, status 0: see `hook`.
        hook::run(&cli, wait);
    }
    let env_debug = std::env::var("CLAUDE_MPM_AGGREGATOR_DEBUG")
        .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes" | "on"));
    init_logging(cli.debug || env_debug, &cli.command);
    match dispatch(cli) {
        Ok(()) => 0,
        // The reader has what it wanted; nothing went wrong.
        Err(e) if output::is_broken_pipe(&e) => 0,
        Err(e) => {
            // Not eprintln!: it panics when standard error is a closed pipe too.
            let _ = writeln!(std::io::stderr(), "error: {e}");
            1
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config> {
    let (host, port) = match &cli.command {
        Command::Start(a) => (a.host.clone(), a.port),
        _ => (None, None),
    };
    let overrides = Overrides {
        database: cli.db.clone(),
        activity_directory: cli.activity_dir.clone(),
        dashboard_host: host,
        dashboard_port: port,
        debug: cli.debug.then_some(true),
    };
    load_config_with(cli.config.as_deref(), &overrides)
}

/// The configuration file (or the defaults) with the command line's
/// overrides, validated.
fn load_config_with(file: Option<&std::path::Path>, overrides: &Overrides) -> Result<Config> {
    let config = Config::load(file, overrides)?;
    config.validate()?;
    Ok(config)
}

fn dispatch(cli: Cli) -> Result<()> {
    // Made from the command line alone: no configuration needed (nor able to break them).
    match &cli.command {
        Command::Completions(args) => return completions::run(args, &mut std::io::stdout().lock()),
        Command::Man(args) => return man::run(args, &mut std::io::stdout().lock()),
        _ => {}
    }
    let config = load_config(&cli)?;
    let invocation = Invocation::new(&file_options(&cli));
    if let Command::Start(args) = &cli.command {
        // Not through a held lock: the recorder prints its status lines from
        // other threads while this one waits.
        return start::run(
            &config,
            args,
            global_args(&file_options(&cli), cli.debug),
            &invocation,
            &mut std::io::stdout(),
        );
    }
    if matches!(
        cli.command,
        Command::Sessions(_)
            | Command::View(_)
            | Command::Search(_)
            | Command::Stats(_)
            | Command::Tail(_)
            | Command::Export { .. }
            | Command::Query { .. }
            | Command::Prune { .. }
            | Command::Push(_)
    ) {
        require_database(&config, &invocation)?;
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    match cli.command {
        Command::Start(_) | Command::Hook { .. } => Ok(()), // ran above
        Command::Stop => stop::run(&config, &mut out),
        Command::Status { json } => status::run(&config, json, &mut out),
        Command::Sessions(args) => sessions::run(&config, &args, &mut out),
        Command::View(args) => view::run(&config, &args, &mut out),
        Command::Export {
            session,
            output,
            format,
            force,
        } => export::run(
            &config,
            &session,
            output.as_deref(),
            format.into(),
            force,
            &mut out,
        ),
        Command::Query { sql, format } => query::run(&config, &sql, format, &mut out),
        Command::Import { files } => import::run(&config, &files, &mut out),
        Command::Prune { older_than_days } => prune::run(&config, older_than_days, &mut out),
        Command::Hooks(command) => hooks::run(&config, &command, &mut out),
        Command::Search(args) => search::run(&config, &args, &mut out),
        Command::Stats(args) => stats::run(&config, &args, &mut out),
        Command::Tail(args) => tail::run(&config, &args, &mut out),
        Command::Completions(_) | Command::Man(_) => Ok(()), // ran above
        Command::Push(args) => push::run(&config, &args, &mut out),
    }?;
    out.flush().map_err(output::stdout_error)
}

/// Fails with a hint that works as typed when there is no database to read.
fn require_database(config: &Config, invocation: &Invocation) -> Result<()> {
    if config.database.is_file() {
        return Ok(());
    }
    let or_db = if invocation.gave_db {
        ""
    } else {
        ", or pass --db"
    };
    Err(AggregatorError::db_message(
        config.database.clone(),
        format!(
            "no database here yet (record with `{}` or `{}` first{or_db})",
            invocation.command("start"),
            invocation.command("import FILE")
        ),
    ))
}

/// The global options that choose the files, as the user gave them: what a
/// daemon child and every hint naming another command repeat.
fn file_options(cli: &Cli) -> Vec<(&'static str, &std::path::Path)> {
    [
        ("--config", cli.config.as_deref()),
        ("--db", cli.db.as_deref()),
        ("--activity-dir", cli.activity_dir.as_deref()),
    ]
    .into_iter()
    .filter_map(|(flag, value)| Some((flag, value?)))
    .collect()
}

/// The global options for a daemon child: absolute, since it runs elsewhere.
fn global_args(files: &[(&'static str, &std::path::Path)], debug: bool) -> Vec<std::ffi::OsString> {
    let mut args = Vec::new();
    for (flag, path) in files {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        args.extend([flag.into(), absolute.into_os_string()]);
    }
    if debug {
        args.push("--debug".into());
    }
    args
}
