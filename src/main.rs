//! The `mpm-aggregate` command: parse, dispatch, exit status.

// Events are allocated by the socket or import thread and freed by the writer
// thread; mimalloc handles that pattern far better than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` and `mi_option_allow_thp` (see its `mimalloc.h`, v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// mimalloc's options, set before anything allocates. Rust's runtime
/// allocates before `main`, and mimalloc's own constructor (plain
/// `.init_array`) reads the THP option when it starts: this one has priority
/// 100, so the linker places it before both.
#[used]
#[link_section = ".init_array.00100"]
static SET_ALLOCATOR_OPTIONS: extern "C" fn() = set_allocator_options;

extern "C" fn set_allocator_options() {
    // Give freed memory back to the OS at once instead of after a second:
    // events are freed in bulk by the writer, so this bounds the peak RSS
    // (see the README's performance section).
    // No transparent huge pages: mimalloc asks for them, and the kernel then
    // zeroes 2 MiB at the first allocation (before `main`) and at each
    // thread's, a tenth of a `hook` process's CPU; the other commands gain
    // nothing measurable from them. mimalloc also disables them for the
    // process (`PR_SET_THP_DISABLE`) when this option is off.
    // SAFETY: sets plain integer options, before any other thread exists.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0);
    }
}

fn main() {
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
