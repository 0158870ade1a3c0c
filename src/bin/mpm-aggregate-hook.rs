//! `mpm-aggregate-hook`: `mpm-aggregate hook` as a program of its own, the
//! command `hooks install` gives Claude Code. Claude Code starts it for every
//! hook event and waits for it; without the other commands' parser, their
//! allocator (mimalloc) and their TLS library, it starts in about half the
//! time (see the README's performance section). Same options, same behaviour:
//! the payload on standard input, status 0, nothing printed.

use std::path::PathBuf;

use clap::Parser;

/// A Claude Code `command` hook: stores the payload on standard input (never fails, prints nothing; problems go to hook.log next to the database)
#[derive(Parser, Debug)]
#[command(
    name = "mpm-aggregate-hook",
    version,
    after_help = "By default the payload is spooled and the process exits at once (Claude Code waits for its hooks); a background writer stores it within milliseconds.\n\nExample (what Claude Code runs; `mpm-aggregate hooks install` writes it):\n  mpm-aggregate-hook --db /abs/.claude-mpm/aggregator.db < payload.json"
)]
struct Args {
    /// Configuration file (default: .claude-mpm/config.toml when it exists)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// SQLite database (default: .claude-mpm/aggregator.db)
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Where session files are written (default: .claude-mpm/activity)
    #[arg(long, value_name = "DIR")]
    activity_dir: Option<PathBuf>,
    /// Store the payload before exiting (for scripts that read the database next)
    #[arg(long)]
    wait: bool,
}

fn main() {
    let args = match Args::try_parse() {
        Ok(args) => args,
        // Asked at a terminal.
        Err(e) if !e.use_stderr() => e.exit(),
        // Claude Code would take status 2 for "block this tool call": a
        // broken command line is logged, and the hook ends as every hook does.
        Err(e) => mpm_aggregate::cli::hook::refuse_arguments(&e.to_string()),
    };
    mpm_aggregate::cli::hook::run_with(&mpm_aggregate::cli::hook::HookOptions {
        config: args.config,
        db: args.db,
        activity_dir: args.activity_dir,
        wait: args.wait,
    })
}
