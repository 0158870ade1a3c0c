//! `sessions --since/--project/--status/--agent`: each alone and combined, on
//! real runs imported through the CLI; what passes is checked against each
//! session's own document, not against hard-coded ids.

use crate::common;

use std::path::Path;

use assert_cmd::Command;
use common::*;
use serde_json::Value;

fn mpm(db: &Path, args: &[&str]) -> Command {
    Command::from_std(cli_on(db, args))
}

fn ids(db: &Path, args: &[&str]) -> Vec<String> {
    let mut all = vec!["sessions", "--json"];
    all.extend_from_slice(args);
    let out = mpm(db, &all).assert().success().get_output().stdout.clone();
    let mut ids: Vec<String> = serde_json::from_slice::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

struct Doc {
    id: String,
    start: String,
    dir: String,
    status: String,
    agents: Vec<String>,
}

fn docs(db: &Path) -> Vec<Doc> {
    ids(db, &[])
        .into_iter()
        .map(|id| {
            let out = mpm(db, &["view", &id, "--json"])
                .assert()
                .success()
                .get_output()
                .stdout
                .clone();
            let v: Value = serde_json::from_slice(&out).unwrap();
            Doc {
                start: v["start_time"].as_str().unwrap().to_string(),
                dir: v["working_directory"].as_str().unwrap_or("").to_string(),
                status: if v["end_time"].is_null() {
                    "active"
                } else {
                    "completed"
                }
                .into(),
                agents: v["delegations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d["agent_type"].as_str().unwrap().to_string())
                    .collect(),
                id,
            }
        })
        .collect()
}

fn expect(docs: &[Doc], keep: impl Fn(&Doc) -> bool) -> Vec<String> {
    let mut ids: Vec<String> = docs
        .iter()
        .filter(|d| keep(d))
        .map(|d| d.id.clone())
        .collect();
    ids.sort();
    ids
}

#[test]
fn each_filter_alone_and_all_combined() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("agg.db");
    let run = fixture("claude-code-2.1/a-mpm-fast");
    let files = [
        run.join("transcripts").to_string_lossy().into_owned(),
        ours("nest-mpm-fast"),
        ours("compact-mpm-fast"),
        fixture(CAPTURE).to_string_lossy().into_owned(),
        fixture(PYTHON_SESSION).to_string_lossy().into_owned(),
    ];
    let mut args = vec!["import"];
    args.extend(files.iter().map(String::as_str));
    mpm(&db, &args).assert().success();
    // One session left active: a prompt with no end, by the hook command.
    let payload = serde_json::json!({
        "hook_event_name": "UserPromptSubmit", "session_id": "0ac71fe0-0000-4000-8000-000000000001",
        "cwd": dir.path().join("proj/sub"), "prompt": "still going", "prompt_id": "p-1"
    });
    mpm(&db, &["hook"])
        .write_stdin(payload.to_string())
        .assert()
        .success();
    crate::common::wait_for_hooks(&db);
    let docs = docs(&db);
    assert!(docs.len() >= 6);

    let cut = "2026-11-24T11:00:00.000Z";
    let since = ids(&db, &["--since", "2026-11-24T11:00:00Z"]);
    assert_eq!(since, expect(&docs, |d| d.start.as_str() >= cut));
    assert!(!since.is_empty() && since.len() < docs.len());
    // A day: midnight UTC.
    assert_eq!(
        ids(&db, &["--since", "2026-11-24"]),
        expect(&docs, |d| d.start.as_str() >= "2026-11-24")
    );
    // A duration: only the session stored just now by the hook.
    assert_eq!(
        ids(&db, &["--since", "1h"]),
        vec!["0ac71fe0-0000-4000-8000-000000000001".to_string()]
    );

    let project = "/home/dev/work/a-fast/proj";
    let in_project = expect(&docs, |d| {
        d.dir == project || d.dir.starts_with(&format!("{project}/"))
    });
    assert_eq!(in_project.len(), 1);
    assert_eq!(ids(&db, &["--project", project]), in_project);
    assert_eq!(ids(&db, &["--project", &format!("{project}/")]), in_project);
    // A prefix of a name is not a parent directory.
    assert!(ids(&db, &["--project", "/home/dev/work/a-fa"]).is_empty());
    // Relative to where it runs (the tests run `mpm` in the database's folder).
    assert_eq!(
        ids(&db, &["--project", "proj"]),
        vec!["0ac71fe0-0000-4000-8000-000000000001".to_string()]
    );

    for status in ["active", "completed"] {
        assert_eq!(
            ids(&db, &["--status", status]),
            expect(&docs, |d| d.status == status),
            "{status}"
        );
    }
    assert_eq!(ids(&db, &["--status", "active"]).len(), 1);

    for agent in ["engineer", "qa", "research"] {
        let want = expect(&docs, |d| d.agents.iter().any(|a| a == agent));
        assert!(!want.is_empty(), "{agent}");
        assert_eq!(ids(&db, &["--agent", agent]), want, "{agent}");
    }
    assert!(ids(&db, &["--agent", "nobody"]).is_empty());

    // Combined: every condition holds.
    let combined = ids(
        &db,
        &[
            "--since",
            cut,
            "--agent",
            "engineer",
            "--status",
            "completed",
            "--project",
            "/home/dev/work",
        ],
    );
    let want = expect(&docs, |d| {
        d.start.as_str() >= cut
            && d.agents.iter().any(|a| a == "engineer")
            && d.status == "completed"
            && d.dir.starts_with("/home/dev/work/")
    });
    assert_eq!(combined, want);
    assert!(!combined.is_empty());
    assert_eq!(ids(&db, &["--project", project, "--agent", "qa"]).len(), 1);
    assert!(ids(&db, &["--project", project, "--status", "active"]).is_empty());
    assert!(ids(&db, &["--project", "proj", "--agent", "qa"]).is_empty());

    // The table says so when nothing passes; a bad value is a usage error.
    let out = mpm(&db, &["sessions", "--agent", "nobody"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(
        String::from_utf8(out).unwrap().trim(),
        "no session passes these filters"
    );
    mpm(&db, &["sessions", "--status", "paused"])
        .assert()
        .failure()
        .code(2);
    let err = failure_stderr(&mut mpm(&db, &["sessions", "--since", "3 days"]));
    assert!(
        err.starts_with("error: invalid format: --since '3 days'"),
        "{err}"
    );
}
