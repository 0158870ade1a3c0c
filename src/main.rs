//! The `mpm-aggregate` command: parse, dispatch, exit status.

// Events are allocated by the socket or import thread and freed by the writer
// thread; mimalloc handles that pattern far better than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(mpm_aggregate::cli::run());
}
