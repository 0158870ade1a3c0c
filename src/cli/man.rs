//! `man`: the manual page (roff, by clap_mangen) of the program or of one of
//! its commands, made from the command line's own definition.

use std::io::Write;

use clap::CommandFactory;

use super::output::stdout_error;
use crate::error::{AggregatorError, Result};

/// Options of `man`.
#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  mpm-aggregate man | man -l -\n  mpm-aggregate man search > mpm-aggregate-search.1"
)]
pub struct ManArgs {
    /// A command whose page to print (default: the program's page, which lists them all)
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
}

pub fn run(args: &ManArgs, out: &mut dyn Write) -> Result<()> {
    let mut program = super::Cli::command();
    // Built, so that each command's page lists the global options too.
    program.build();
    let page = match &args.command {
        None => program,
        Some(name) => {
            let names: Vec<String> = program
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .collect();
            let Some(sub) = program.find_subcommand(name).cloned() else {
                return Err(AggregatorError::InvalidFormat(format!(
                    "no command '{name}' (one of: {})",
                    names.join(", ")
                )));
            };
            let full = format!("mpm-aggregate-{}", sub.get_name());
            sub.name(full.clone()).bin_name(full)
        }
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .map_err(stdout_error)?;
    out.write_all(&roff).map_err(stdout_error)
}
