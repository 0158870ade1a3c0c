//! The `mpm-aggregate` command: parse, dispatch, exit status.

// Events are allocated by the socket or import thread and freed by the writer
// thread; mimalloc handles that pattern far better than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (see its `mimalloc.h`, v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // Give freed memory back to the OS at once instead of after a second:
    // events are freed in bulk by the writer, so this bounds the peak RSS
    // (see the README's performance section).
    // SAFETY: sets a plain integer option, read by mimalloc when it purges.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    // No transparent huge pages: mimalloc asks for them, and the kernel then
    // zeroes 2 MiB at a thread's first allocation, a third of a `hook`
    // process's CPU; the other commands gain nothing measurable from them.
    let _ = nix::sys::prctl::set_thp_disable(true);
    // Past a file-size limit (ulimit -f) a write must fail with an error the
    // store reports, not kill the process halfway through a transaction.
    // SAFETY: ignoring a signal installs no handler code.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGXFSZ,
            nix::sys::signal::SigHandler::SigIgn,
        );
    }
    std::process::exit(mpm_aggregate::cli::run());
}
