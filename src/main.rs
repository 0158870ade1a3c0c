//! The `mpm-aggregate` command: parse, dispatch, exit status.

fn main() {
    std::process::exit(mpm_aggregate::cli::run());
}
