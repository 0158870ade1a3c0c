//! `push`: this store to PostgreSQL and/or an OTLP collector, once or
//! (`--watch`) as events arrive until Ctrl-C.

use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;

use clap::Args;

use super::say;
use crate::config::Config;
use crate::error::{AggregatorError, Result};
use crate::push::{self, Progress, PushOptions, Target};

/// Options of `push`.
#[derive(Args, Debug, Clone)]
pub struct PushArgs {
    /// PostgreSQL database, postgres://USER@HOST:PORT/DB (default: push_url from the configuration)
    url: Option<String>,
    /// Send traces over OTLP/HTTP (protobuf) to this collector, e.g. http://localhost:4318
    #[arg(long, value_name = "URL")]
    otlp: Option<String>,
    /// Headers of the OTLP requests, key=value,... (values percent-encoded, e.g. authorization=Bearer%20TOKEN)
    #[arg(long, value_name = "K=V,...", requires = "otlp")]
    otlp_headers: Option<String>,
    /// This machine's name in what it pushes (default: host_id from the configuration, else USER@HOSTNAME)
    #[arg(long, value_name = "ID")]
    host_id: Option<String>,
    /// Keep pushing as events arrive, every 2 s (Ctrl-C stops)
    #[arg(long)]
    watch: bool,
    /// Events per batch; each batch is committed on its own
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
}

pub fn run(config: &Config, args: &PushArgs, out: &mut dyn Write) -> Result<()> {
    let mut targets = Vec::new();
    if let Some(url) = &args.url {
        targets.push(Target::parse(url)?);
    }
    if let Some(url) = &args.otlp {
        let headers = match &args.otlp_headers {
            Some(h) => push::parse_headers(h)?,
            None => Vec::new(),
        };
        targets.push(Target::otlp(url, &headers)?);
    }
    if targets.is_empty() {
        if config.push_url.trim().is_empty() {
            return Err(AggregatorError::Config(
                "push where? name a database (push postgres://USER@HOST:PORT/DB), a collector (push --otlp http://HOST:4318), or set push_url".into(),
            ));
        }
        targets.push(Target::parse(&config.push_url)?);
    }
    let opts = PushOptions {
        host_id: match &args.host_id {
            Some(id) if !id.trim().is_empty() => id.trim().to_string(),
            _ => push::host_id(config),
        },
        batch_size: args.batch_size as usize,
    };
    if args.watch {
        return watch(config, &targets, &opts, out);
    }
    for target in &targets {
        let bar = progress_bar(&target.display());
        let report = push::push_once(&config.database, target, &opts, &mut |p: Progress| {
            bar.set_length(p.total);
            bar.set_position(p.done);
        });
        bar.finish_and_clear();
        say!(out, "{}", report?);
    }
    Ok(())
}

/// Pushes every target on a thread of its own until Ctrl-C or SIGTERM; each
/// push that sent something is one line, each failure one line on stderr.
fn watch(
    config: &Config,
    targets: &[Target],
    opts: &PushOptions,
    out: &mut dyn Write,
) -> Result<()> {
    let stop = super::output::stop_on_signal()?;
    let stop = &*stop;
    let (lines, received) = std::sync::mpsc::channel::<std::result::Result<String, String>>();
    std::thread::scope(|scope| -> Result<()> {
        for target in targets {
            let lines = lines.clone();
            scope.spawn(move || {
                push::watch(&config.database, target, opts, stop, &mut |outcome| {
                    let _ = lines.send(match outcome {
                        Ok(report) => Ok(report.to_string()),
                        Err(e) => Err(format!(
                            "push to {} failed (retrying with backoff): {e}",
                            target.display()
                        )),
                    });
                })
            });
        }
        drop(lines);
        let mut result = Ok(());
        for line in received {
            match line {
                Ok(text) if result.is_ok() => {
                    if let Err(e) = writeln!(out, "{text}").and_then(|_| out.flush()) {
                        // The reader went away: stop pushing too.
                        stop.store(true, Ordering::Relaxed);
                        result = Err(super::output::stdout_error(e));
                    }
                }
                Ok(_) => {}
                Err(text) => {
                    let _ = writeln!(std::io::stderr(), "warning: {text}");
                }
            }
        }
        result
    })
}

fn progress_bar(target: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar =
        indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(format!("pushing to {target}"));
    bar
}
