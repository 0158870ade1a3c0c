//! `mpm-aggregate-hook`: `mpm-aggregate hook` as a program of its own, the
//! command `hooks install` gives Claude Code. Claude Code starts it for every
//! hook event and waits for it; without the other commands' parser, their
//! allocator (mimalloc) and their TLS library, it starts in about half the
//! time (see the README's performance section). Same options, same behaviour:
//! the payload on standard input, status 0, nothing printed.

use clap::Parser;
use mpm_aggregate::cli::hook::HookOptions;

fn main() {
    let options = match HookOptions::try_parse() {
        Ok(options) => options,
        // Asked at a terminal.
        Err(e) if !e.use_stderr() => e.exit(),
        // Claude Code would take status 2 for "block this tool call": a
        // broken command line is logged, and the hook ends as every hook does.
        Err(e) => mpm_aggregate::cli::hook::refuse_arguments(&e.to_string()),
    };
    mpm_aggregate::cli::hook::run_with(&options)
}
