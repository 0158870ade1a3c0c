//! `completions`: a shell completion script, generated from the command
//! line's own definition (clap_complete), so it never falls behind it.

use std::io::Write;

use clap::CommandFactory;

use super::output::stdout_error;
use crate::error::Result;

/// Options of `completions`.
#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  source <(mpm-aggregate completions bash)\n  mpm-aggregate completions zsh > ~/.zfunc/_mpm-aggregate\n  mpm-aggregate completions fish > ~/.config/fish/completions/mpm-aggregate.fish"
)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn run(args: &CompletionsArgs, out: &mut dyn Write) -> Result<()> {
    // Into memory first: clap_complete panics on a failed write (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(
        args.shell,
        &mut super::Cli::command(),
        "mpm-aggregate",
        &mut script,
    );
    out.write_all(&script).map_err(stdout_error)
}
