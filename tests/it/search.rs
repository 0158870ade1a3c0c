//! `search` on real Claude Code runs imported through the real CLI: hits in a
//! sub-agent's tool output and in a prompt, queries full of FTS5 syntax that
//! are searched as written, the index following merged observations (FTS5's
//! own integrity check), and a database made before V7 indexed at migration.

use crate::common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use common::*;
use mpm_aggregate::core::searchable::searchable_text;
use serde_json::Value;

fn mpm(db: &Path, args: &[&str]) -> Command {
    Command::from_std(cli_on(db, args))
}

fn run_file(run: &str, file: &str) -> String {
    fixture("claude-code-2.1")
        .join(run)
        .join(file)
        .to_string_lossy()
        .into_owned()
}

fn import(db: &Path, files: &[String]) -> String {
    let args: Vec<&str> = std::iter::once("import")
        .chain(files.iter().map(String::as_str))
        .collect();
    let out = mpm(db, &args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

fn hits(db: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["search", "--json"];
    all.extend_from_slice(args);
    let out = mpm(db, &all).assert().success().get_output().stdout.clone();
    serde_json::from_slice::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The index holds exactly each event's searchable text as its data is now
/// (after every merge), and FTS5's own check of its terms passes.
fn index_is_exact(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute(
        "INSERT INTO event_search (event_search) VALUES ('integrity-check')",
        [],
    )
    .expect("FTS5's integrity check");
    let mut stmt = conn
        .prepare("SELECT e.id, e.event_type, e.data, s.body FROM events e LEFT JOIN event_search s ON s.rowid = e.id")
        .unwrap();
    let rows: Vec<(i64, String, String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut indexed = 0;
    for (id, kind, data, body) in &rows {
        let text = searchable_text(kind, data);
        assert_eq!(
            body.clone().unwrap_or_default(),
            text,
            "event {id} ({kind})"
        );
        indexed += usize::from(body.is_some());
    }
    let entries: usize = conn
        .query_row("SELECT count(*) FROM event_search", [], |r| r.get(0))
        .unwrap();
    assert_eq!(entries, indexed, "no entry of an event that is gone");
    assert!(indexed > 0);
}

/// Events whose searchable text holds `needle`, counted by reading every event.
fn events_holding(db: &Path, needle: &str) -> i64 {
    let conn = open(db);
    let mut stmt = conn.prepare("SELECT event_type, data FROM events").unwrap();
    let rows: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.iter()
        .filter(|(kind, data)| {
            searchable_text(kind, data)
                .to_lowercase()
                .contains(&needle.to_lowercase())
        })
        .count() as i64
}

fn a_fast(dir: &Path) -> PathBuf {
    let db = dir.join("agg.db");
    import(
        &db,
        &[
            run_file("a-mpm-fast", "hooks.jsonl"),
            run_file("a-mpm-fast", "transcripts"),
        ],
    );
    db
}

#[test]
fn hits_in_a_sub_agents_tool_output_and_in_a_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let db = a_fast(dir.path());
    // The engineer sub-agent ran greet.greet('World'); its Bash output is the hit.
    let found = hits(&db, &["Hello, World!"]);
    let output = found
        .iter()
        .find(|h| h["event_type"] == "PostToolUse" && h["tool_name"] == "Bash")
        .unwrap_or_else(|| panic!("no Bash output among {found:#?}"));
    assert_eq!(output["agent_type"], "engineer");
    assert_eq!(output["agent_id"], "aa6325b7ea4b16e1d");
    assert_eq!(output["session_id"], "1a6c62fb-bc6c-5284-a701-147209c3d822");
    assert!(output["snippet"].as_str().unwrap().contains("«Hello»"));
    assert!(output["timestamp"]
        .as_str()
        .unwrap()
        .starts_with("2026-11-24T10:48:"));

    // The qa sub-agent's failed command: its error is a hit too, marked as a failure.
    let failure = hits(&db, &["nonexistent-qa-dir"]);
    assert!(failure
        .iter()
        .any(|h| h["event_type"] == "PostToolUseFailure"
            && h["agent_type"] == "qa"
            && h["snippet"].as_str().unwrap().contains("No such file")));

    // The second prompt, on the main thread.
    let prompt = hits(&db, &["looks", "like", "now"]);
    let p = prompt
        .iter()
        .find(|h| h["event_type"] == "UserPromptSubmit")
        .expect("the prompt is found");
    assert_eq!(p["agent_type"], Value::Null);
    assert!(p["snippet"]
        .as_str()
        .unwrap()
        .starts_with("[scenario-a turn-2] Show me what src/greet.py «looks» «like» «now»"));

    // Every hit holds the words, and every event holding them is a hit.
    assert_eq!(
        hits(&db, &["nonexistent-qa-dir", "--limit", "1000"]).len() as i64,
        events_holding(&db, "nonexistent-qa-dir")
    );

    // The index reads through `query` too (FTS5 reads PRAGMA data_version on each query).
    let sql = mpm(
        &db,
        &[
            "query",
            "SELECT count(*) FROM event_search WHERE event_search MATCH '\"nonexistent-qa-dir\"'",
            "--format",
            "csv",
        ],
    )
    .assert()
    .success()
    .get_output()
    .stdout
    .clone();
    assert_eq!(
        String::from_utf8(sql).unwrap().lines().nth(1),
        Some(
            events_holding(&db, "nonexistent-qa-dir")
                .to_string()
                .as_str()
        )
    );

    // The table: time, session, agent, event, tool and id, then the snippet.
    let table = mpm(&db, &["search", "Hello, World!"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let table = String::from_utf8(table).unwrap();
    assert!(
        table.contains(&format!(
            "1a6c62fb  engineer  PostToolUse Bash  (event {})",
            output["event_id"]
        )),
        "{table}"
    );
}

#[test]
fn queries_with_fts_syntax_are_searched_as_written_and_raw_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = a_fast(dir.path());
    for query in [
        "greet(name)",
        "\"(exit",
        "'/nonexistent-qa-dir':",
        "AND",
        "OR NOT",
        "NEAR(",
        "a:b",
        "-",
        "*",
        "src/greet.py",
        "\"unclosed",
        "col:greet",
        "^x",
        "{body}",
    ] {
        mpm(&db, &["search", "--", query]).assert().success();
        mpm(&db, &["search", "--json", "--", query])
            .assert()
            .success();
    }
    // Written with special characters, still found.
    assert!(!hits(&db, &["greet(name)"]).is_empty());
    assert!(!hits(&db, &["--", "'/nonexistent-qa-dir':"]).is_empty());
    // A prefix.
    assert!(!hits(&db, &["nonexist*"]).is_empty());
    // FTS5's own syntax with --raw; a mistake there is one clear line.
    assert!(!hits(&db, &["--raw", "greet NOT nonexistent"]).is_empty());
    let err = failure_stderr(&mut mpm(&db, &["search", "--raw", "greet AND ("]));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: query: fts5: syntax error"), "{err}");
}

#[test]
fn session_and_limit_narrow_the_hits() {
    let dir = tempfile::tempdir().unwrap();
    let db = a_fast(dir.path());
    import(&db, &[ours("nest-mpm-fast")]);
    let everywhere = hits(&db, &["report", "--limit", "1000"]);
    assert_eq!(hits_sessions(&everywhere).len(), 2, "{everywhere:#?}");
    let only_a = hits(&db, &["report", "--session", "1a6c", "--limit", "1000"]);
    assert!(!only_a.is_empty());
    assert!(only_a
        .iter()
        .all(|h| h["session_id"] == "1a6c62fb-bc6c-5284-a701-147209c3d822"));
    assert!(only_a.len() < everywhere.len());
    assert_eq!(hits(&db, &["greet", "--limit", "2"]).len(), 2);
    let err = failure_stderr(&mut mpm(&db, &["search", "greet", "--session", "ffff"]));
    assert_eq!(err.trim(), "error: no session matches 'ffff'");
}

fn hits_sessions(hits: &[Value]) -> std::collections::BTreeSet<&str> {
    hits.iter()
        .filter_map(|h| h["session_id"].as_str())
        .collect()
}

#[test]
fn the_index_follows_merged_observations_in_either_order() {
    // Transcripts first, then the hooks and claude-mpm's monitor: most of these
    // observations are merged into events already stored (their data changes).
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("agg.db");
    import(&db, &[run_file("a-mpm-full", "transcripts")]);
    let said = import(
        &db,
        &[
            run_file("a-mpm-full", "hooks.jsonl"),
            run_file("a-mpm-full", "monitor-capture.jsonl"),
        ],
    );
    assert!(said.contains("merged into events already stored"), "{said}");
    index_is_exact(&db);
    // The other way round.
    let db2 = dir.path().join("agg2.db");
    import(&db2, &[run_file("a-mpm-full", "monitor-capture.jsonl")]);
    import(&db2, &[run_file("a-mpm-full", "hooks.jsonl")]);
    import(&db2, &[run_file("a-mpm-full", "transcripts")]);
    index_is_exact(&db2);
    for db in [&db, &db2] {
        assert_eq!(
            hits(db, &["nonexistent-qa-dir", "--limit", "1000"]).len() as i64,
            events_holding(db, "nonexistent-qa-dir")
        );
    }
    // Pruning takes events and their index entries away together.
    mpm(&db, &["prune", "--older-than-days", "1"])
        .assert()
        .success();
    index_is_exact(&db);
}

#[test]
fn a_database_made_before_v7_gets_its_index_at_migration() {
    let dir = tempfile::tempdir().unwrap();
    let db = a_fast(dir.path());
    let before = hits(&db, &["nonexistent-qa-dir", "--limit", "1000"]);
    // Back to the schema of V6: what V7 and V8 added is taken away, refinery forgets they ran,
    // and the user_version is an older build's (0: builds before V8 set none).
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "DROP TRIGGER event_search_delete; DROP TABLE event_search; DROP INDEX events_tool_calls;
             DROP TRIGGER push_event_changed; DROP TABLE push_changes; DROP TABLE push_sessions;
             DROP TABLE push_targets;
             DELETE FROM refinery_schema_history WHERE version >= 7; PRAGMA user_version = 0;",
        )
        .unwrap();
    }
    // A read-only command cannot migrate: it says what to do.
    let err = failure_stderr(&mut mpm(&db, &["search", "greet"]));
    assert!(err.contains("no search index yet"), "{err}");
    // Any writer migrates; the events stored before are found.
    import(&db, &[ours("compact-mpm-fast")]);
    index_is_exact(&db);
    let after = hits(&db, &["nonexistent-qa-dir", "--limit", "1000"]);
    assert_eq!(after, before);
}
