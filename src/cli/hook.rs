//! `hook`: one Claude Code `command` hook payload on standard input, handed
//! to a background writer (or, `--wait`, stored before the process exits) by
//! [`crate::import::hook`]. Whatever happens it prints nothing and
//! exits 0: Claude Code acts on a hook's exit status and standard output.
//! Problems go to `hook.log` next to the database.

use std::io::Read;
use std::path::PathBuf;

use super::Cli;

// What the `hook` command is told on its command line: `mpm-aggregate`'s
// global options and `hook --wait`, or `mpm-aggregate-hook`'s own command
// line, parsed into this (the derive is that program's parser and `--help`;
// the doc comment below is its `--help` text).
/// A Claude Code `command` hook: stores the payload on standard input (never fails, prints nothing; problems go to hook.log next to the database)
#[derive(clap::Parser, Debug, Clone, Default)]
#[command(
    name = "mpm-aggregate-hook",
    version,
    after_help = "By default the payload is spooled and the process exits at once (Claude Code waits for its hooks); a background writer stores it within milliseconds.\n\nExample (what Claude Code runs; `mpm-aggregate hooks install` writes it):\n  mpm-aggregate-hook --db /abs/.claude-mpm/aggregator.db < payload.json"
)]
pub struct HookOptions {
    /// Configuration file (default: .claude-mpm/config.toml when it exists)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// SQLite database (default: .claude-mpm/aggregator.db)
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Where session files are written (default: .claude-mpm/activity)
    #[arg(long, value_name = "DIR")]
    pub activity_dir: Option<PathBuf>,
    /// Store the payload before exiting (for scripts that read the database next)
    #[arg(long)]
    pub wait: bool,
}

impl HookOptions {
    fn database_or_default(&self) -> PathBuf {
        self.db
            .clone()
            .unwrap_or_else(|| crate::config::Config::default().database)
    }
}

pub fn run(cli: &Cli, wait: bool) -> ! {
    run_with(&HookOptions {
        config: cli.config.clone(),
        db: cli.db.clone(),
        activity_dir: cli.activity_dir.clone(),
        wait,
    })
}

/// The `hook` command (also the whole of `mpm-aggregate-hook`).
pub fn run_with(options: &HookOptions) -> ! {
    // A panic message would reach standard error: keep it for the log.
    std::panic::set_hook(Box::new(|_| {}));
    let received_at = chrono::Utc::now();
    let result = std::panic::catch_unwind(|| {
        let overrides = crate::config::Overrides {
            database: options.db.clone(),
            activity_directory: options.activity_dir.clone(),
            ..Default::default()
        };
        let config = match super::load_config_with(options.config.as_deref(), &overrides) {
            Ok(c) => c,
            Err(e) => {
                let fallback = options.database_or_default();
                crate::import::hook::log_line(&fallback, &format!("configuration: {e}"));
                // The payload is still stored where the defaults say, if it can be.
                crate::config::Config {
                    database: fallback,
                    ..Default::default()
                }
            }
        };
        let mut input = Vec::new();
        let limit = config.max_event_bytes as u64 + 1;
        if let Err(e) = std::io::stdin().lock().take(limit).read_to_end(&mut input) {
            crate::import::hook::log_line(&config.database, &format!("standard input: {e}"));
        }
        if options.wait {
            crate::import::hook::handle(&config, &input, received_at);
        } else {
            crate::import::hook::hand_off(&config, &input, received_at);
        }
    });
    if result.is_err() {
        crate::import::hook::log_line(
            &options.database_or_default(),
            "internal error (panic); payload may be lost",
        );
    }
    exit_0()
}

/// A `hook` command line that cannot be read: one line in the default hook
/// log, status 0, nothing printed (see [`run_with`]).
pub fn refuse_arguments(error: &str) -> ! {
    let first = error.lines().next().unwrap_or(error);
    crate::import::hook::log_line(
        &crate::config::Config::default().database,
        &format!("hook arguments not understood, payload not read: {first}"),
    );
    exit_0()
}

/// Status 0 whatever happened. `_exit`: no flushing to do (nothing was
/// printed, files are closed), and it skips the allocator's sweep of every
/// heap at exit, a process that lives milliseconds having nothing to give back.
fn exit_0() -> ! {
    // SAFETY: ends the process; no Rust state outlives it.
    unsafe { nix::libc::_exit(0) }
}
