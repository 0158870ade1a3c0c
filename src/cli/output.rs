//! Small formatting helpers shared by the commands.

/// `1h 02m`, `3m 05s`, `4.2s`, `120ms`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

/// `1,234,567`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `117 in · 1,440 out · 43,645 cache write · 209,649 cache read`.
pub fn tokens(t: &crate::core::event::Tokens) -> String {
    format!(
        "{} in · {} out · {} cache write · {} cache read",
        thousands(t.input),
        thousands(t.output),
        thousands(t.cache_creation),
        thousands(t.cache_read)
    )
}

/// A cost in USD, `$0.2485`; `—` when it is not known (a model without a price).
pub fn cost(usd: Option<f64>) -> String {
    match usd {
        Some(c) => format!("${c:.4}"),
        None => "—".into(),
    }
}

/// The first `max` characters of `text` on one line, with `…` when cut.
pub fn clip(text: &str, max: usize) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut s: String = one_line.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// `2026-11-24T04:24:11.480Z` → `2026-11-24 04:24:11`.
pub fn short_time(ts: &str) -> String {
    ts.get(..19)
        .map(|s| s.replacen('T', " ", 1))
        .unwrap_or_else(|| ts.to_string())
}

/// A table without borders, fitted to the terminal.
pub fn table(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

/// Wraps a failed write to standard output. A broken pipe stays recognisable
/// ([`is_broken_pipe`]): the reader going away ends the command quietly.
pub fn stdout_error(e: std::io::Error) -> crate::error::AggregatorError {
    crate::error::AggregatorError::io("<stdout>", e)
}

/// Whether the error is the reader of our output having gone away (`| head`).
pub fn is_broken_pipe(e: &crate::error::AggregatorError) -> bool {
    matches!(e, crate::error::AggregatorError::Io { source, .. }
        if source.kind() == std::io::ErrorKind::BrokenPipe)
}

/// How this command was called, so that a hint naming another command works
/// when pasted: it repeats the global options that choose the files.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// `--config`, `--db`, `--activity-dir`, as given, quoted for a shell.
    globals: String,
    /// Whether `--db` was given (a hint need not suggest it then).
    pub gave_db: bool,
}

impl Invocation {
    /// From the global options as the user gave them (not made absolute: the
    /// hint is for the same shell).
    pub fn new(files: &[(&'static str, &std::path::Path)]) -> Invocation {
        let mut globals = String::new();
        for (flag, value) in files {
            globals.push(' ');
            globals.push_str(flag);
            globals.push(' ');
            globals.push_str(&shell_quote(&value.to_string_lossy()));
        }
        Invocation {
            globals,
            gave_db: files.iter().any(|(flag, _)| *flag == "--db"),
        }
    }

    /// `mpm-aggregate <globals> <command>`, ready to paste.
    pub fn command(&self, command: &str) -> String {
        format!("mpm-aggregate{} {command}", self.globals)
    }
}

/// `text` as one shell word: unchanged when it is plain, else single-quoted.
pub fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The terminal's width in columns, `None` when standard output is not a terminal.
pub fn terminal_width() -> Option<usize> {
    comfy_table::Table::new().width().map(usize::from)
}

/// Ctrl-C and SIGTERM set the returned flag (`tail`, `push --watch`): the
/// command's loop ends and it exits 0.
pub(crate) fn stop_on_signal() -> crate::error::Result<std::sync::Arc<std::sync::atomic::AtomicBool>>
{
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::error::AggregatorError::io("<signal handler>", e))?;
    let mut term = runtime
        .block_on(async {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        })
        .map_err(|e| crate::error::AggregatorError::io("<signal handler>", e))?;
    std::thread::spawn(move || {
        runtime.block_on(async {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    Ok(stop)
}

/// `--since` as the stored timestamp it starts at.
pub fn since_timestamp(since: Option<&str>) -> crate::error::Result<Option<String>> {
    since
        .map(|s| {
            crate::core::time::parse_since(s, chrono::Utc::now())
                .map(|t| crate::core::time::format_timestamp(&t))
                .map_err(|e| crate::error::AggregatorError::InvalidFormat(format!("--since {e}")))
        })
        .transpose()
}
