//! `stats` on real runs imported through the CLI: every grouping's figures
//! add up to the sessions' own metrics and delegations, read back with
//! `view --json` (nothing here is a hard-coded figure), and `--since` counts
//! only the sessions of its window.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use assert_cmd::Command;
use common::*;
use serde_json::Value;

fn mpm(db: &Path, args: &[&str]) -> Command {
    Command::from_std(cli_on(db, args))
}

fn json(db: &Path, args: &[&str]) -> Value {
    let out = mpm(db, args).assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap()
}

/// Four Claude Code sessions with tokens (one with hooks too) and three without
/// (claude-mpm's monitor capture and the Python original's file).
fn store(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("agg.db");
    let run = fixture("claude-code-2.1/a-mpm-fast");
    let files = [
        run.join("hooks.jsonl").to_string_lossy().into_owned(),
        run.join("transcripts").to_string_lossy().into_owned(),
        ours("nest-mpm-fast"),
        ours("compact-mpm-fast"),
        fixture(CAPTURE).to_string_lossy().into_owned(),
        fixture(PYTHON_SESSION).to_string_lossy().into_owned(),
    ];
    let mut args = vec!["import"];
    args.extend(files.iter().map(String::as_str));
    mpm(&db, &args).assert().success();
    db
}

/// Each session's own document (`view --json`), started at or after `since`.
fn sessions(db: &Path, since: &str) -> Vec<Value> {
    json(db, &["sessions", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["start_time"].as_str().unwrap() >= since)
        .map(|s| json(db, &["view", s["session_id"].as_str().unwrap(), "--json"]))
        .collect()
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

const TOKEN_KINDS: [&str; 4] = ["input", "output", "cache_creation", "cache_read"];

/// The figures `stats` shows, summed over documents: (prompts, tool calls,
/// failures, delegations, succeeded, failed, API calls, tokens…, cost).
fn figures_of_sessions(docs: &[Value]) -> (Vec<i64>, f64) {
    let mut f = vec![0; 7 + TOKEN_KINDS.len()];
    let mut cost = 0.0;
    for d in docs {
        let m = &d["metrics"];
        for (i, k) in [
            "prompts",
            "tool_calls",
            "tool_failures",
            "total_delegations",
            "successful_delegations",
            "failed_delegations",
            "api_calls",
        ]
        .iter()
        .enumerate()
        {
            f[i] += int(&m[k]);
        }
        for (i, k) in TOKEN_KINDS.iter().enumerate() {
            f[7 + i] += int(&m["tokens"][k]);
        }
        cost += m["cost_usd"].as_f64().unwrap_or(0.0);
    }
    (f, cost)
}

fn figures_of_rows<'a>(rows: impl IntoIterator<Item = &'a Value>) -> (Vec<i64>, f64) {
    let mut f = vec![0; 7 + TOKEN_KINDS.len()];
    let mut cost = 0.0;
    for r in rows {
        for (i, k) in [
            "prompts",
            "tool_calls",
            "tool_failures",
            "delegations",
            "delegations_succeeded",
            "delegations_failed",
            "api_calls",
        ]
        .iter()
        .enumerate()
        {
            f[i] += int(&r[k]);
        }
        for (i, k) in TOKEN_KINDS.iter().enumerate() {
            f[7 + i] += int(&r["tokens"][k]);
        }
        cost += r["cost_usd"].as_f64().unwrap_or(0.0);
    }
    (f, cost)
}

fn assert_same(what: &str, (a, ca): (Vec<i64>, f64), (b, cb): (Vec<i64>, f64)) {
    assert_eq!(a, b, "{what}");
    assert!((ca - cb).abs() < 1e-9, "{what}: cost {ca} vs {cb}");
}

#[test]
fn every_grouping_adds_up_to_the_sessions_own_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path());
    let docs = sessions(&db, "");
    let own = figures_of_sessions(&docs);
    assert!(own.0[1] > 0 && own.0[7] > 0 && own.1 > 0.0, "{own:?}");

    for by in ["day", "project", "agent"] {
        let s = json(&db, &["stats", "--by", by, "--json"]);
        assert_eq!(s["total"]["sessions"], docs.len());
        assert_same(
            &format!("{by}: total"),
            figures_of_rows([&s["total"]]),
            own.clone(),
        );
        assert_same(
            &format!("{by}: groups"),
            figures_of_rows(s["groups"].as_array().unwrap()),
            own.clone(),
        );
    }

    // Per day and per project: each group is its sessions.
    let s = json(&db, &["stats", "--by", "project", "--json"]);
    for g in s["groups"].as_array().unwrap() {
        let mine: Vec<Value> = docs
            .iter()
            .filter(|d| d["working_directory"].as_str().unwrap_or("-") == g["group"])
            .cloned()
            .collect();
        assert_eq!(g["sessions"], mine.len(), "{g}");
        assert_same(
            &format!("project {}", g["group"]),
            figures_of_rows([g]),
            figures_of_sessions(&mine),
        );
    }

    // Per agent: each type is its delegations (as `view` shows them).
    let s = json(&db, &["stats", "--by", "agent", "--json"]);
    let mut by_agent: BTreeMap<String, (i64, i64, i64, i64, f64)> = BTreeMap::new();
    for d in docs
        .iter()
        .flat_map(|d| d["delegations"].as_array().unwrap())
    {
        let e = by_agent
            .entry(d["agent_type"].as_str().unwrap().to_string())
            .or_default();
        e.0 += 1;
        e.1 += int(&d["tool_calls"]);
        e.2 += int(&d["tool_failures"]);
        e.3 += int(&d["tokens"]["output"]);
        e.4 += d["cost_usd"].as_f64().unwrap_or(0.0);
    }
    let groups = s["groups"].as_array().unwrap();
    assert_eq!(groups.len(), by_agent.len() + 1, "{groups:#?}");
    for (agent, (n, calls, failures, out, cost)) in &by_agent {
        let g = groups
            .iter()
            .find(|g| g["group"] == agent.as_str())
            .unwrap();
        assert_eq!(
            (
                int(&g["delegations"]),
                int(&g["tool_calls"]),
                int(&g["tool_failures"]),
                int(&g["tokens"]["output"])
            ),
            (*n, *calls, *failures, *out),
            "{agent}"
        );
        assert!((g["cost_usd"].as_f64().unwrap_or(0.0) - cost).abs() < 1e-9);
    }
    assert_eq!(groups[0]["group"], "(main)");

    // Per model: tokens and cost.
    let s = json(&db, &["stats", "--by", "model", "--json"]);
    let rows = s["groups"].as_array().unwrap();
    let (f, cost) = figures_of_rows(rows);
    assert_eq!(f[7..], own.0[7..]);
    assert!((cost - own.1).abs() < 1e-9);

    // Per tool: calls and failures, as each session's events tell them.
    let s = json(&db, &["stats", "--by", "tool", "--json"]);
    let mut per_tool: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for d in &docs {
        let id = d["session_id"].as_str().unwrap();
        let events = json(&db, &["export", id, "--format", "events", "-o", "-"]);
        for e in events.as_array().unwrap() {
            let tool = e["data"]["tool_name"]
                .as_str()
                .unwrap_or("(unnamed)")
                .to_string();
            match e["event_type"].as_str().unwrap() {
                "PreToolUse" => per_tool.entry(tool).or_default().0 += 1,
                "PostToolUseFailure" => per_tool.entry(tool).or_default().1 += 1,
                _ => {}
            }
        }
    }
    let shown: BTreeMap<String, (i64, i64)> = s["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["group"].as_str().unwrap().to_string(),
                (int(&g["tool_calls"]), int(&g["tool_failures"])),
            )
        })
        .collect();
    assert_eq!(shown, per_tool);
    assert_eq!(shown.values().map(|v| v.0).sum::<i64>(), own.0[1]);
}

#[test]
fn since_counts_only_the_sessions_of_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path());
    let all = sessions(&db, "");
    // Between the first and the last start: some sessions in, some out.
    let mut starts: Vec<String> = all
        .iter()
        .map(|d| d["start_time"].as_str().unwrap().to_string())
        .collect();
    starts.sort();
    let cut = &starts[starts.len() / 2];
    let inside = sessions(&db, cut);
    assert!(!inside.is_empty() && inside.len() < all.len());
    for by in ["day", "agent", "tool"] {
        let s = json(&db, &["stats", "--by", by, "--since", cut, "--json"]);
        assert_eq!(s["total"]["sessions"], inside.len(), "{by}");
        assert_same(
            by,
            figures_of_rows([&s["total"]]),
            figures_of_sessions(&inside),
        );
        let groups = figures_of_rows(s["groups"].as_array().unwrap());
        assert_eq!(
            groups.0[1],
            figures_of_sessions(&inside).0[1],
            "{by}: tool calls"
        );
    }
    // A duration: the fixtures are from 2026-11-24, so 1 hour ago holds none.
    let s = json(&db, &["stats", "--since", "1h", "--json"]);
    assert_eq!(s["total"]["sessions"], 0);
    let out = mpm(&db, &["stats", "--since", "1h"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(String::from_utf8(out)
        .unwrap()
        .starts_with("no sessions started since "));
    let err = failure_stderr(&mut mpm(&db, &["stats", "--since", "last week"]));
    assert!(
        err.starts_with("error: invalid format: --since 'last week': expected a date"),
        "{err}"
    );
}

#[test]
fn the_table_has_a_row_per_group_and_a_total() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path());
    let s = json(&db, &["stats", "--by", "agent", "--json"]);
    let out = mpm(&db, &["stats", "--by", "agent"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].trim_start().starts_with("AGENT"), "{text}");
    assert_eq!(
        lines.len(),
        s["groups"].as_array().unwrap().len() + 2,
        "{text}"
    );
    assert!(
        lines.last().unwrap().trim_start().starts_with("total"),
        "{text}"
    );
    let total_calls = s["total"]["tool_calls"].to_string();
    assert!(
        lines
            .last()
            .unwrap()
            .split_whitespace()
            .any(|w| w == total_calls),
        "{text}"
    );
}
