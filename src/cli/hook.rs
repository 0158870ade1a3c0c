//! `hook`: one Claude Code `command` hook payload on standard input, stored
//! (or spooled) by [`crate::import::hook`]. Whatever happens it prints nothing and
//! exits 0: Claude Code acts on a hook's exit status and standard output.
//! Problems go to `hook.log` next to the database.

use std::io::Read;

use super::Cli;

pub fn run(cli: &Cli) {
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
        crate::import::hook::handle(&config, &input, received_at);
        config.database
    });
    if result.is_err() {
        let db = cli
            .db
            .clone()
            .unwrap_or_else(|| crate::config::Config::default().database);
        crate::import::hook::log_line(&db, "internal error (panic); payload may be lost");
    }
}
