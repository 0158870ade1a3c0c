//! Our fixtures from the real Claude Code 2.1 CLI (`tests/fixtures/claude-code/`) and the script that
//! records them (`tests/real-claude/run-scenario.sh`, see `tests/real-claude/README.md`).
//!
//! - Always: each fixture's `expected.json` is what `../shared/real-claude/truth.py` computes from the
//!   fixture's own files, and no fixture names a path of the machine it was recorded on.
//! - With `REAL_CLAUDE=1` (or `CI=true`): our scenarios run end to end through the real CLI (installed
//!   from npm into `target/real-claude-cache` on first use; about a minute in all) and rebuild the same
//!   reconstruction as the committed fixtures, up to what varies between runs (agent ids, tokens, paths).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shared_harness() -> PathBuf {
    repo().join("../shared/real-claude")
}

fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/fixtures/claude-code"))
        .expect("tests/fixtures/claude-code exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expected.json").exists())
        .collect();
    v.sort();
    v
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn truth(dir: &Path) -> Value {
    let out = Command::new("python3")
        .arg(shared_harness().join("truth.py"))
        .arg(dir)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "truth.py {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("truth.py prints JSON")
}

#[test]
fn fixtures_hold_their_truth_and_no_machine_paths() {
    let dirs = fixtures();
    assert!(
        dirs.len() >= 2,
        "want at least two fixtures of our own, found {dirs:?}"
    );
    let here = repo().canonicalize().unwrap();
    for dir in dirs {
        for f in [
            "hooks.jsonl",
            "monitor-capture.jsonl",
            "settings.json",
            "stream-1.jsonl",
            "transcripts",
        ] {
            assert!(dir.join(f).exists(), "{} lacks {f}", dir.display());
        }
        assert_eq!(
            truth(&dir),
            read_json(&dir.join("expected.json")),
            "{}: expected.json is not truth.py's",
            dir.display()
        );
        let hooks = std::fs::read_to_string(dir.join("hooks.jsonl")).unwrap();
        assert!(
            !hooks.contains(here.to_str().unwrap()),
            "{} names this checkout",
            dir.display()
        );
        assert!(
            hooks.contains("\"cwd\":\"/home/dev/work/"),
            "{}: recorded outside /home/dev/work",
            dir.display()
        );
    }
}

/// The fields of a truth.py reconstruction that are the same on every run of a scenario: agent ids,
/// tokens and Claude Code's own account vary (token counts follow the length of the project's path);
/// the project dir is replaced by PROJ.
fn stable(truth: &Value, proj: &str) -> Value {
    let text = serde_json::to_string(truth).unwrap().replace(proj, "PROJ");
    let mut v: Value = serde_json::from_str(&text).unwrap();
    for s in v.as_object_mut().unwrap().values_mut() {
        let s = s.as_object_mut().unwrap();
        for k in ["tokens", "claude_code"] {
            s.remove(k);
        }
        for d in s["delegations"].as_array_mut().unwrap() {
            let d = d.as_object_mut().unwrap();
            d.remove("agent_id");
            d.remove("tokens");
            if let Some(p) = d.remove("parent_agent_id") {
                d.insert("nested".into(), Value::Bool(p.is_string()));
            }
        }
    }
    v
}

#[test]
fn real_claude_scenarios_rebuild_the_fixtures() {
    let on = std::env::var("REAL_CLAUDE").as_deref() == Ok("1")
        || std::env::var("CI").as_deref() == Ok("true");
    if !on {
        eprintln!("skipped: set REAL_CLAUDE=1 to run the real Claude Code CLI (npm install into target/ on first use)");
        return;
    }
    // One scenario after the other: two Claude Code processes at once would slow the scripted
    // background agent on a 2-core machine for no gain.
    for (scenario, fixture) in [("nest", "nest-mpm-fast"), ("compact", "compact-mpm-fast")] {
        let out = repo().join("target/real-claude/test-out").join(scenario);
        let status = Command::new("bash")
            .arg(repo().join("tests/real-claude/run-scenario.sh"))
            .arg(scenario)
            .env("OUT", &out)
            .env("WORKROOT", out.with_extension("work"))
            .env("NO_MONITOR", "1")
            .env("MPM_HOOK", "none")
            .env_remove("EXTRA_HOOK_CMD")
            .env_remove("PRE_RUN")
            .env_remove("AFTER_MONITOR")
            .status()
            .expect("bash runs");
        assert!(
            status.success(),
            "run-scenario.sh {scenario} failed (its output above says why)"
        );
        let got = read_json(&out.join("expected.json"));
        let want = read_json(
            &repo()
                .join("tests/fixtures/claude-code")
                .join(fixture)
                .join("expected.json"),
        );
        let proj = out
            .with_extension("work")
            .join(format!("{scenario}-none/proj"));
        assert_eq!(
            stable(&got, proj.to_str().unwrap()),
            stable(&want, &format!("/home/dev/work/{scenario}-fast/proj")),
            "scenario {scenario}: this run's reconstruction differs from the fixture {fixture}"
        );
    }
}
