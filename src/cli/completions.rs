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
    if args.shell == clap_complete::Shell::Bash {
        script = bash_fixed(&script);
    }
    out.write_all(&script).map_err(stdout_error)
}

/// clap_complete's bash script spells a hyphenated program's states two ways
/// (the loop `mpm__aggregate__subcmd__stats`, the arms
/// `mpm__subcmd__aggregate__subcmd__stats`), so no command's options
/// complete (clap-rs/clap#6421, open): the arms are spelled as the loop does.
fn bash_fixed(script: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(script)
        .replace("mpm__subcmd__aggregate", "mpm__aggregate")
        .into_bytes()
}
