//! The `mpm-aggregate` command: parse, dispatch, exit status.

#[global_allocator]
static GLOBAL: allocator::Switch = allocator::Switch;

/// The system allocator until [`allocator::use_mimalloc`], mimalloc after.
///
/// Events are allocated by the socket or import thread and freed by the
/// writer thread; mimalloc handles that pattern far better than the system
/// allocator (the store path: 120k → 200k events/s). But a process that lives
/// milliseconds (a `hook`, a query) pays mimalloc's start (its arena, a fresh
/// page per size class: a quarter of a `hook` process's CPU) for nothing, so
/// only the commands that move many events switch to it, before they start a
/// thread. Memory is freed by the allocator that gave it: mimalloc knows its
/// own (`mi_is_in_heap_region`, a lookup in its page map).
mod allocator {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Set once, before the command starts a thread; never unset.
    static MIMALLOC: AtomicBool = AtomicBool::new(false);

    pub fn use_mimalloc() {
        MIMALLOC.store(true, Ordering::Relaxed);
    }

    fn on() -> bool {
        MIMALLOC.load(Ordering::Relaxed)
    }

    /// Whether `p` came from mimalloc (none did before the switch).
    fn from_mimalloc(p: *mut u8) -> bool {
        // SAFETY: a page-map lookup of an address; it dereferences nothing of `p`.
        on() && unsafe { libmimalloc_sys::mi_is_in_heap_region(p.cast()) }
    }

    pub struct Switch;

    // SAFETY: each call goes to one of two allocators that uphold
    // `GlobalAlloc`'s contract, and memory is always returned to the one that
    // gave it (a realloc across the switch copies into mimalloc).
    unsafe impl GlobalAlloc for Switch {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if on() {
                mimalloc::MiMalloc.alloc(layout)
            } else {
                System.alloc(layout)
            }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if on() {
                mimalloc::MiMalloc.alloc_zeroed(layout)
            } else {
                System.alloc_zeroed(layout)
            }
        }

        unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
            if from_mimalloc(p) {
                mimalloc::MiMalloc.dealloc(p, layout)
            } else {
                System.dealloc(p, layout)
            }
        }

        unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if from_mimalloc(p) {
                return mimalloc::MiMalloc.realloc(p, layout, new_size);
            }
            if !on() {
                return System.realloc(p, layout, new_size);
            }
            // Allocated before the switch: moved into mimalloc.
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let moved = mimalloc::MiMalloc.alloc(new_layout);
            if !moved.is_null() {
                std::ptr::copy_nonoverlapping(p, moved, layout.size().min(new_size));
                System.dealloc(p, layout);
            }
            moved
        }
    }
}

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
    // zeroes 2 MiB at its first allocation and at each thread's; the commands
    // that use it gain nothing measurable from them. mimalloc also disables them for the
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
    let cli = mpm_aggregate::cli::parse();
    if cli.moves_many_events() {
        allocator::use_mimalloc();
    }
    std::process::exit(mpm_aggregate::cli::run_parsed(cli));
}
