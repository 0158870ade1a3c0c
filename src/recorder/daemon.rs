//! Running in the background: the PID file, detaching, signalling and waiting.
//!
//! `start --daemon` starts this same program again as a detached child (its
//! own session, output to the log file) and returns once the child has written
//! its PID file, which it does only once it is recording. `stop` sends SIGTERM
//! to the PID in the file and waits for the process to finish its shutdown.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{AggregatorError, Result};

/// The PID file of the recorder recording into `activity_dir`.
pub fn pid_file(activity_dir: &Path) -> PathBuf {
    activity_dir.join("mpm-aggregate.pid")
}

/// The log file of a daemon recorder.
pub fn log_file(activity_dir: &Path) -> PathBuf {
    activity_dir.join("mpm-aggregate.log")
}

/// The PID written in a PID file, if it holds one.
pub fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

/// Whether `pid` is a live mpm-aggregate process (not a zombie, not a
/// process that reused the number).
pub fn process_alive(pid: i32) -> bool {
    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    match kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(Errno::EPERM) => {}
        Err(_) => return false,
    }
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if !proc_dir.exists() {
        // With /proc mounted, a missing entry means the process is gone.
        return !Path::new("/proc/self").exists();
    }
    let zombie = std::fs::read_to_string(proc_dir.join("stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(false);
    if zombie {
        return false;
    }
    std::fs::read(proc_dir.join("cmdline"))
        .map(|c| {
            let c = String::from_utf8_lossy(&c);
            c.contains("mpm-aggregate") || c.contains("mpm_aggregate")
        })
        .unwrap_or(true)
}

/// The PID of the recorder running for `activity_dir`; removes a stale PID file.
pub fn running_pid(activity_dir: &Path) -> Option<i32> {
    let path = pid_file(activity_dir);
    let pid = read_pid(&path)?;
    if process_alive(pid) {
        Some(pid)
    } else {
        tracing::info!(
            "removing stale PID file {} (process {pid} is gone)",
            path.display()
        );
        let _ = std::fs::remove_file(&path);
        None
    }
}

/// Fails when a recorder already runs for this activity directory.
pub fn ensure_not_running(activity_dir: &Path) -> Result<()> {
    match running_pid(activity_dir) {
        Some(pid) => Err(AggregatorError::Recorder(format!(
            // The command line repeats the user's own options in its hint (cli/start.rs).
            "a recorder is already running (pid {pid}, PID file {}); stop it first",
            pid_file(activity_dir).display()
        ))),
        None => Ok(()),
    }
}

/// The PID file of this process; removed when dropped.
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's PID, failing if another live recorder holds the file.
    pub fn create(activity_dir: &Path) -> Result<PidFile> {
        ensure_not_running(activity_dir)?;
        let path = pid_file(activity_dir);
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => AggregatorError::Recorder(format!(
                "a recorder is starting or running (PID file {} exists)",
                path.display()
            )),
            _ => AggregatorError::io(&path, e),
        })?;
        writeln!(file, "{}", std::process::id()).map_err(|e| AggregatorError::io(&path, e))?;
        Ok(PidFile { path })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if read_pid(&self.path) == Some(std::process::id() as i32) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Starts this program again, detached, with `args`; its output goes to the log file.
pub fn spawn_detached(activity_dir: &Path, args: &[std::ffi::OsString]) -> Result<Child> {
    let exe = std::env::current_exe()
        .map_err(|e| AggregatorError::Recorder(format!("cannot find this program: {e}")))?;
    let log_path = log_file(activity_dir);
    let mut opts = OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let log = opts
        .open(&log_path)
        .map_err(|e| AggregatorError::io(&log_path, e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| AggregatorError::io(&log_path, e))?;
    let mut command = Command::new(exe);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // A session of its own: no controlling terminal, no SIGHUP when the shell closes.
        unsafe {
            // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
            command.pre_exec(|| {
                nix::unistd::setsid()
                    .map(|_| ())
                    .map_err(std::io::Error::from)
            });
        }
    }
    command
        .spawn()
        .map_err(|e| AggregatorError::Recorder(format!("cannot start the daemon: {e}")))
}

/// Waits until the detached child has written its PID file (it is recording),
/// or has exited (it failed; the last lines of its log say why).
pub fn wait_until_recording(
    child: &mut Child,
    activity_dir: &Path,
    timeout: Duration,
) -> Result<u32> {
    let pid = child.id();
    let deadline = Instant::now() + timeout;
    loop {
        if read_pid(&pid_file(activity_dir)) == Some(pid as i32) {
            return Ok(pid);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log_file(activity_dir)).unwrap_or_default();
            let reason = log
                .lines()
                .rev()
                .find(|l| l.starts_with("error:"))
                .map(|l| l.trim_start_matches("error:").trim().to_string())
                .unwrap_or_else(|| format!("it exited with {status}"));
            return Err(AggregatorError::Recorder(format!(
                "the daemon did not start: {reason}"
            )));
        }
        if Instant::now() > deadline {
            return Err(AggregatorError::Recorder(format!(
                "the daemon (pid {pid}) did not report ready within {}s; see {}",
                timeout.as_secs(),
                log_file(activity_dir).display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGTERM to `pid` and waits for it to exit.
pub fn terminate_and_wait(pid: i32, timeout: Duration) -> Result<()> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    kill(Pid::from_raw(pid), Signal::SIGTERM).map_err(|e| {
        AggregatorError::Recorder(format!("cannot signal the recorder (pid {pid}): {e}"))
    })?;
    let deadline = Instant::now() + timeout;
    while process_alive(pid) {
        if Instant::now() > deadline {
            return Err(AggregatorError::Recorder(format!(
                "the recorder (pid {pid}) did not stop within {}s",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
