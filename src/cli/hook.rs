//! `hook`: one Claude Code `command` hook payload on standard input, handed
//! to a background writer (or, `--wait`, stored before the process exits) by
//! [`crate::import::hook`]. Whatever happens it prints nothing and
//! exits 0: Claude Code acts on a hook's exit status and standard output.
//! Problems go to `hook.log` next to the database.

use std::io::Read;

use super::Cli;

pub fn run(cli: &Cli, wait: bool) -> ! {
    // A panic message would reach standard error: keep it for the log.
    std::panic::set_hook(Box::new(|_| {}));
    let received_at = chrono::Utc::now();
    let result = std::panic::catch_unwind(|| {
        let config = match super::load_config(cli) {
            Ok(c) => c,
            Err(e) => {
                let fallback = cli
                    .db
                    .clone()
                    .unwrap_or_else(|| crate::config::Config::default().database);
                crate::import::hook::log_line(&fallback, &format!("configuration: {e}"));
                // The payload is still stored where the defaults say, if it can be.
                crate::config::Config {
                    database: fallback,
                    ..Default::default()
                }
            }
        };
        let mut input = Vec::new();
        let limit = config.max_event_bytes as u64 + 1;
        if let Err(e) = std::io::stdin().lock().take(limit).read_to_end(&mut input) {
            crate::import::hook::log_line(&config.database, &format!("standard input: {e}"));
        }
        if wait {
            crate::import::hook::handle(&config, &input, received_at);
        } else {
            crate::import::hook::hand_off(&config, &input, received_at);
        }
        config.database
    });
    if result.is_err() {
        let db = cli
            .db
            .clone()
            .unwrap_or_else(|| crate::config::Config::default().database);
        crate::import::hook::log_line(&db, "internal error (panic); payload may be lost");
    }
    // Status 0 whatever happened. `_exit`: no flushing to do (nothing was
    // printed, files are closed), and it skips the allocator's sweep of every
    // heap at exit, a process that lives milliseconds having nothing to give back.
    // SAFETY: ends the process; no Rust state outlives it.
    unsafe { nix::libc::_exit(0) }
}
