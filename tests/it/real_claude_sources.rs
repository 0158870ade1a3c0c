//! Issue 11: the real Claude Code CLI (`../shared/real-claude/run.sh` through
//! `tests/real-claude/run-scenario.sh`, `NO_MONITOR=1 MPM_HOOK=none`: no claude-mpm at all) recorded by
//! us three ways, each rebuilding that same run's `truth.py` output exactly, tokens included:
//!
//! - (a) our `hook` command registered on every event (`EXTRA_HOOK_CMD`);
//! - (b) our `hooks install --scope project` run before Claude Code starts (`PRE_RUN`);
//! - (c) no hooks: the recorder (`start --no-monitor --transcripts DIR`) following the run's
//!   `HOME/.claude/projects`, started before that folder (and the run's scratch dir) exists.
//!
//! Run with `REAL_CLAUDE=1` (or `CI=true`); otherwise skipped. Claude Code is installed from npm into
//! `target/real-claude-cache` on first use. The runs go one at a time (2 cores).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::claude_code::check_store;
use crate::common::{count, wait_until};

/// One Claude Code run at a time: several at once slow the scripted agents for no gain.
static ONE_RUN: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mpm-aggregate"))
}

fn enabled() -> bool {
    let on = std::env::var("REAL_CLAUDE").as_deref() == Ok("1")
        || std::env::var("CI").as_deref() == Ok("true");
    if !on {
        eprintln!("skipped: set REAL_CLAUDE=1 to run the real Claude Code CLI (npm install into target/ on first use)");
    }
    on
}

/// Where one test's run goes: `OUT`, its `WORKROOT`, and a folder for our database and activity files;
/// all wiped first.
struct Paths {
    out: PathBuf,
    workroot: PathBuf,
    rec: PathBuf,
}

impl Paths {
    fn new(tag: &str) -> Paths {
        let base = repo().join("target/real-claude/test-out");
        let p = Paths {
            out: base.join(format!("sources-{tag}")),
            workroot: base.join(format!("sources-{tag}.work")),
            rec: base.join(format!("sources-{tag}.rec")),
        };
        for d in [&p.out, &p.workroot, &p.rec] {
            let _ = std::fs::remove_dir_all(d);
        }
        std::fs::create_dir_all(&p.rec).unwrap();
        p
    }

    fn db(&self) -> PathBuf {
        self.rec.join("rec.db")
    }

    /// run.sh's scratch dir for scenario `a` with `MPM_HOOK=none`: `WORKROOT/a-none`.
    fn work(&self) -> PathBuf {
        self.workroot.join("a-none")
    }

    /// Our command line with the database by absolute path, as a shell string.
    fn ours(&self, args: &str) -> String {
        format!(
            "'{}' --db '{}' {args}",
            bin().display(),
            self.db().display()
        )
    }
}

/// Runs scenario `a` without claude-mpm, with `env` added; `OUT/expected.json` is truth.py's.
fn run_scenario(p: &Paths, env: &[(&str, String)]) {
    let t0 = Instant::now();
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("tests/real-claude/run-scenario.sh"))
        .arg("a")
        .env("OUT", &p.out)
        .env("WORKROOT", &p.workroot)
        .env("NO_MONITOR", "1")
        .env("MPM_HOOK", "none")
        .env_remove("EXTRA_HOOK_CMD")
        .env_remove("PRE_RUN")
        .env_remove("AFTER_MONITOR")
        .env_remove("SCENARIO");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.status().expect("bash runs");
    assert!(
        status.success(),
        "run-scenario.sh a failed (its output above says why)"
    );
    eprintln!("scenario a ran in {:?}", t0.elapsed());
    assert!(p.out.join("expected.json").exists());
    // Our hooks' background writers may still be storing the last payloads.
    crate::common::wait_for_hooks(&p.db());
}

/// No hook or recorder problem was logged, nothing rejected, nothing left in the spool.
fn clean_store(p: &Paths, ctx: &str) {
    let log = p.rec.join("hook.log");
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(log.trim().is_empty(), "{ctx}: hook.log:\n{log}");
    assert_eq!(
        count(&p.db(), "SELECT count(*) FROM rejected_events"),
        0,
        "{ctx}: rejected events"
    );
}

/// How many of the run's hook payloads (`OUT/hooks.jsonl`, the harness's own tap on every event).
fn hook_payloads(p: &Paths) -> usize {
    std::fs::read_to_string(p.out.join("hooks.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

#[test]
fn a_our_hook_command_on_every_event_rebuilds_the_run() {
    if !enabled() {
        return;
    }
    let _one = ONE_RUN.lock().unwrap_or_else(|e| e.into_inner());
    let p = Paths::new("hook");
    run_scenario(&p, &[("EXTRA_HOOK_CMD", p.ours("hook"))]);
    let settings = std::fs::read_to_string(p.out.join("settings.json")).unwrap();
    assert!(
        settings.contains(&bin().display().to_string()),
        "our hook is not in the run's settings:\n{settings}"
    );
    assert!(hook_payloads(&p) > 0);
    check_store(
        &p.out,
        &p.db(),
        true,
        "real Claude Code, EXTRA_HOOK_CMD = our hook",
    );
    clean_store(&p, "EXTRA_HOOK_CMD");
}

#[test]
fn b_hooks_install_in_the_project_rebuilds_the_run() {
    if !enabled() {
        return;
    }
    let _one = ONE_RUN.lock().unwrap_or_else(|e| e.into_inner());
    let p = Paths::new("install");
    run_scenario(&p, &[("PRE_RUN", p.ours("hooks install --scope project"))]);
    // run.sh copies the project settings after PRE_RUN: our hook is there, by absolute paths, beside
    // the harness's own tap.
    let settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.out.join("settings.json")).unwrap())
            .unwrap();
    let hooks = settings["hooks"].as_object().expect("hooks in settings");
    let commands = |event: &str| -> Vec<String> {
        hooks[event]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|m| m["hooks"].as_array().unwrap().iter())
            .filter_map(|h| h["command"].as_str().map(str::to_string))
            .collect()
    };
    for event in [
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "PostToolUse",
        "PostToolUseFailure",
        "SubagentStart",
        "SubagentStop",
        "Stop",
        "SessionEnd",
    ] {
        let cmds = commands(event);
        assert!(
            cmds.iter().any(|c| c.contains(&bin().display().to_string())
                && c.contains(&p.db().display().to_string())
                && c.contains("hook")),
            "{event}: our hook is not installed: {cmds:?}"
        );
        assert!(
            cmds.iter().any(|c| c.contains("hook_tap.py")),
            "{event}: the harness's tap is gone: {cmds:?}"
        );
    }
    // Claude Code ran it: every payload the tap saw, we stored.
    assert!(hook_payloads(&p) > 0);
    assert!(
        count(&p.db(), "SELECT count(*) FROM events") > 0,
        "no events stored"
    );
    check_store(
        &p.out,
        &p.db(),
        true,
        "real Claude Code, our hooks install --scope project",
    );
    clean_store(&p, "hooks install");
}

/// The recorder in the foreground, stopped with `mpm-aggregate stop`.
struct Recorder {
    child: Child,
    output: PathBuf,
}

impl Recorder {
    fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ours(p: &Paths) -> Command {
    let mut c = Command::new(bin());
    c.current_dir(&p.rec)
        .env_remove("RUST_LOG")
        .arg("--db")
        .arg(p.db())
        .arg("--activity-dir")
        .arg(p.rec.join("activity"));
    c
}

#[test]
fn c_the_follower_started_before_the_projects_folder_exists_rebuilds_the_run() {
    if !enabled() {
        return;
    }
    let _one = ONE_RUN.lock().unwrap_or_else(|e| e.into_inner());
    let p = Paths::new("follow");
    let projects = p.work().join("home/.claude/projects");
    assert!(!p.workroot.exists());
    let output = p.rec.join("recorder.out");
    let out = std::fs::File::create(&output).unwrap();
    let child = ours(&p)
        .args(["start", "--no-monitor", "--transcripts"])
        .arg(&projects)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("recorder starts");
    let rec = Recorder { child, output };
    let status = || {
        let o = ours(&p).arg("status").output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(
        wait_until(Duration::from_secs(15), || status()
            .contains("waiting for it to exist")),
        "{}\n{}",
        status(),
        rec.output()
    );
    run_scenario(&p, &[]);
    // run.sh has copied the transcripts and exited; give the follower a few seconds for the last lines.
    let settled = |n: i64| count(&p.db(), "SELECT count(*) FROM events") == n;
    let mut last = -1;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_secs(3));
        let n = count(&p.db(), "SELECT count(*) FROM events");
        if (n > 0 && settled(last)) || Instant::now() > deadline {
            break;
        }
        last = n;
    }
    let st = status();
    assert!(st.contains("monitor disabled"), "{st}");
    let stop = ours(&p).arg("stop").output().unwrap();
    assert!(
        stop.status.success(),
        "stop: {}{}\n{}",
        String::from_utf8_lossy(&stop.stdout),
        String::from_utf8_lossy(&stop.stderr),
        rec.output()
    );
    let mut rec = rec;
    assert!(
        wait_until(Duration::from_secs(15), || rec
            .child
            .try_wait()
            .unwrap()
            .is_some()),
        "the recorder did not exit after stop\n{}",
        rec.output()
    );
    assert!(
        rec.output().contains("following transcripts in"),
        "{}",
        rec.output()
    );
    check_store(
        &p.out,
        &p.db(),
        true,
        &format!(
            "real Claude Code, no hooks, recorder following {}",
            projects.display()
        ),
    );
    clean_store(&p, "follower");
    // Every transcript file of the run was followed.
    let files = walk(&p.out.join("transcripts"))
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "jsonl"))
        .count() as i64;
    assert_eq!(
        count(&p.db(), "SELECT count(*) FROM transcript_offsets"),
        files
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            v.extend(walk(&path));
        } else {
            v.push(path);
        }
    }
    v
}
