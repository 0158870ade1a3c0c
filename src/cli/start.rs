//! `start`: record in the foreground (Ctrl-C or SIGTERM stops cleanly), or
//! `--daemon` in the background.

use std::io::Write;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::output::Invocation;
use super::{say, StartArgs};
use crate::config::Config;
use crate::error::{AggregatorError, Result};
use crate::recorder::{self, client::monitor_url, daemon, RecorderOptions};

/// How long `start --daemon` waits for the daemon to report that it records.
const DAEMON_READY_TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(
    config: &Config,
    args: &StartArgs,
    global: Vec<std::ffi::OsString>,
    invocation: &Invocation,
    out: &mut dyn Write,
) -> Result<()> {
    if !config.enabled {
        return Err(AggregatorError::Config(
            "event_aggregator.enabled is false: recording is switched off".into(),
        ));
    }
    recorder::check_activity_dir(&config.activity_directory)?;
    if !config.push_url.trim().is_empty() {
        crate::push::Target::parse(&config.push_url)?;
    }
    if let Some(pid) = daemon::running_pid(&config.activity_directory) {
        return Err(AggregatorError::Recorder(format!(
            "a recorder is already running (pid {pid}, PID file {}); stop it with `{}`",
            daemon::pid_file(&config.activity_directory).display(),
            invocation.command("stop")
        )));
    }
    if args.daemon && !args.daemon_child {
        return start_daemon(config, args, global, invocation, out);
    }
    record(config, args, out)
}

fn start_daemon(
    config: &Config,
    args: &StartArgs,
    mut child_args: Vec<std::ffi::OsString>,
    invocation: &Invocation,
    out: &mut dyn Write,
) -> Result<()> {
    child_args.extend(["start".into(), "--daemon-child".into(), "--daemon".into()]);
    child_args.extend(["--host".into(), config.dashboard_host.clone().into()]);
    child_args.extend(["--port".into(), config.dashboard_port.to_string().into()]);
    if args.force {
        child_args.push("--force".into());
    }
    if args.no_monitor {
        child_args.push("--no-monitor".into());
    }
    if let Some(addr) = args.listen {
        child_args.push("--listen".into());
        child_args.push(addr.to_string().into());
    }
    if args.listen_any {
        child_args.push("--listen-any".into());
    }
    if let Some(dir) = transcripts_dir(args)? {
        child_args.push("--transcripts".into());
        child_args.push(dir.into());
    }
    let mut child = daemon::spawn_detached(&config.activity_directory, &child_args)?;
    let pid =
        daemon::wait_until_recording(&mut child, &config.activity_directory, DAEMON_READY_TIMEOUT)?;
    let mut from = Vec::new();
    if !args.no_monitor {
        from.push(monitor_url(&config.dashboard_host, config.dashboard_port));
    }
    if let Some(dir) = transcripts_dir(args)? {
        from.push(format!("the transcripts in {}", dir.display()));
    }
    if let Some(addr) = args.listen {
        from.push(format!("http hooks on {addr}"));
    }
    say!(
        out,
        "recording in the background (pid {pid}) from {} into {}\nlog: {}\nstop with: {}",
        from.join(" and "),
        config.database.display(),
        daemon::log_file(&config.activity_directory).display(),
        invocation.command("stop")
    );
    Ok(())
}

fn record(config: &Config, args: &StartArgs, out: &mut dyn Write) -> Result<()> {
    // One worker: the socket reader is the only busy task, and a second worker
    // would be woken to steal work at every event (a context switch each).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| AggregatorError::Recorder(format!("cannot start the async runtime: {e}")))?;
    let foreground = !args.daemon_child;
    runtime.block_on(async {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = shutdown_tx.send(true);
        });
        let (ready_tx, ready_rx) = oneshot::channel();
        let options = RecorderOptions {
            force: args.force,
            status_lines: foreground,
            no_monitor: args.no_monitor,
            transcripts: transcripts_dir(args)?,
            listen: args.listen,
            listen_any: args.listen_any,
        };
        let task = tokio::spawn(recorder::run(config.clone(), options, shutdown_rx, ready_tx));
        let _running = match ready_rx.await {
            Ok(Ok(shared)) => {
                let pid_file = daemon::PidFile::create(&config.activity_directory)?;
                // Its own thread and connections: a target that is down never slows recording.
                let pusher = crate::push::spawn_background(config)?;
                let url = monitor_url(&config.dashboard_host, config.dashboard_port);
                // The first state is announced here, once; the recorder logs every change after it.
                let state = if args.no_monitor {
                    "the monitor disabled".to_string()
                } else if shared.is_connected() {
                    format!("connected to the monitor at {url}")
                } else {
                    format!("waiting for the monitor at {url}")
                };
                let state = match transcripts_dir(args)? {
                    Some(dir) => format!("following transcripts in {}; {state}", dir.display()),
                    None => state,
                };
                let state = match shared.listener.get() {
                    Some(l) => format!("http hooks on {}; {state}", l.address),
                    None => state,
                };
                if foreground {
                    // A closed output must not stop a recording that has begun.
                    let _ = writeln!(out, "recording: {state} → {} (Ctrl-C to stop)", config.database.display());
                } else {
                    tracing::info!("recording (pid {}): {state}, database {}", std::process::id(), config.database.display());
                }
                (pid_file, pusher)
            }
            Ok(Err(e)) => {
                let _ = task.await;
                return Err(e);
            }
            Err(_) => {
                return match task.await {
                    Ok(Err(e)) => Err(e),
                    _ => Err(AggregatorError::Recorder("the recorder stopped before it started".into())),
                };
            }
        };
        let report = task.await.map_err(|e| AggregatorError::Recorder(format!("the recorder failed: {e}")))??;
        let s = report.stats;
        let summary = format!(
            "stopped: {} events stored this run ({} duplicates, {} rejected), {} sessions finalized at stop, session files in {}",
            s.stored,
            s.duplicates,
            s.rejected,
            report.finalized_at_stop,
            config.activity_directory.display()
        );
        // In the foreground stdout and stderr share the terminal: one of them.
        if foreground {
            let _ = writeln!(out, "{summary}");
        } else {
            tracing::info!("{summary}");
        }
        Ok(())
    })
}

/// The folder `--transcripts` names, made absolute (the daemon runs elsewhere),
/// or Claude Code's projects folder when it names none.
fn transcripts_dir(args: &StartArgs) -> Result<Option<std::path::PathBuf>> {
    let Some(dir) = &args.transcripts else {
        return Ok(None);
    };
    let dir = match dir {
        Some(d) => d.clone(),
        None => crate::ingest::transcript_files::default_projects_dir().ok_or_else(|| {
            AggregatorError::Config(
                "no home folder to find ~/.claude/projects in: name the folder, --transcripts DIR"
                    .into(),
            )
        })?,
    };
    Ok(Some(if dir.is_absolute() {
        dir
    } else {
        std::env::current_dir()
            .map_err(|e| AggregatorError::io(".", e))?
            .join(dir)
    }))
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
