//! A Python with python-socketio and aiohttp (the stack claude-mpm's monitor is
//! built on) for the interoperability tests, set up by the tests themselves:
//! a virtualenv under the target directory (`target/py-venv`), created with
//! `python3 -m venv` and filled with pip on first use, then reused by later
//! runs. Nothing is skipped: when it cannot be set up, the test fails and says
//! why.
//!
//! Once per process (a `OnceLock`, however many test threads ask) and once
//! across processes (an exclusive `flock` on `target/py-venv.lock`, so two
//! test binaries or two `cargo test` runs never build it at the same time).
//! `PYTHON` names the interpreter the virtualenv is made from (default
//! `python3`).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The packages the interoperability tests import, and the import that checks them.
const PACKAGES: &[&str] = &["python-socketio", "aiohttp"];
const CHECK: &str = "import socketio, aiohttp";

/// The virtualenv's directory: `py-venv` in the target directory.
pub fn venv_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target dir>/tmp`, wherever CARGO_TARGET_DIR puts it.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("py-venv")
}

/// The virtualenv's interpreter, with python-socketio and aiohttp importable;
/// sets the virtualenv up on first use. Panics with the reason when it cannot.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON.get_or_init(|| set_up(&venv_dir())) {
        Ok(python) => python,
        Err(why) => {
            panic!("cannot set up the Python virtualenv for the interoperability tests: {why}")
        }
    }
}

fn set_up(venv: &Path) -> Result<PathBuf, String> {
    let parent = venv.parent().expect("the target directory");
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let lock_path = venv.with_extension("lock");
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("{}: {e}", lock_path.display()))?;
    // Held until this function returns (dropping it unlocks); another process
    // waits here, then finds the virtualenv ready.
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("lock {}: {e}", lock_path.display()))?;

    let python = venv.join("bin/python");
    if python.is_file() && run(Command::new(&python).args(["-c", CHECK])).is_ok() {
        return Ok(python);
    }
    if !python.is_file() {
        let base = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        eprintln!(
            "setting up {} ({base} -m venv, pip install {})",
            venv.display(),
            PACKAGES.join(" ")
        );
        // --clear: a half-made virtualenv from an interrupted run is started over.
        run(Command::new(&base)
            .args(["-m", "venv", "--clear"])
            .arg(venv))
        .map_err(|e| format!("{base} -m venv {}: {e}", venv.display()))?;
    }
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PACKAGES))
    .map_err(|e| format!("pip install {}: {e}", PACKAGES.join(" ")))?;
    run(Command::new(&python).args(["-c", CHECK]))
        .map_err(|e| format!("after pip install, `{CHECK}` fails: {e}"))?;
    Ok(python)
}

/// Runs `command` to completion; its stderr (and stdout) when it fails.
fn run(command: &mut Command) -> Result<Output, String> {
    let out = command.output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
