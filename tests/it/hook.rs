//! `mpm-aggregate hook`: one process per Claude Code hook payload. It always
//! exits 0 and prints nothing; problems go to `hook.log` next to the database;
//! a busy database spools the payload for the next writer; at a stop it reads
//! what the transcripts added.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{count, open};

const RECORDED_PROJECTS: &str = "/home/dev/work/a-fast/home/.claude/projects/";

fn run_dir() -> PathBuf {
    crate::common::fixture("claude-code-2.1/a-mpm-fast")
}

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("mpm-aggregate")
}

/// How a test runs the hook: `mpm-aggregate … hook`, or the program of its
/// own that `hooks install` gives Claude Code, `mpm-aggregate-hook …`.
#[derive(Clone, Copy, Debug)]
enum Form {
    Subcommand,
    Program,
}

/// Runs `hook` with `input` on stdin and waits for its background writer;
/// returns (status, stdout, stderr, time to the hook's exit).
fn hook_with(
    args: &[&std::ffi::OsStr],
    input: &[u8],
    env: &[(&str, &Path)],
) -> (i32, Vec<u8>, Vec<u8>, Duration) {
    let r = hook_no_wait(args, input, env);
    if let Some(db) = args.iter().position(|a| *a == "--db").map(|i| args[i + 1]) {
        crate::common::wait_for_hooks(Path::new(db));
    }
    r
}

/// Runs `hook`; returns as soon as the hook exits (its payload may not be stored yet).
fn hook_no_wait(
    args: &[&std::ffi::OsStr],
    input: &[u8],
    env: &[(&str, &Path)],
) -> (i32, Vec<u8>, Vec<u8>, Duration) {
    hook_no_wait_as(Form::Subcommand, args, input, env)
}

fn hook_no_wait_as(
    form: Form,
    args: &[&std::ffi::OsStr],
    input: &[u8],
    env: &[(&str, &Path)],
) -> (i32, Vec<u8>, Vec<u8>, Duration) {
    run_hook(form, args, &[], input, env)
}

/// Runs the hook in `form`, `args` before the subcommand and `hook_args`
/// after it; returns as soon as it exits.
fn run_hook(
    form: Form,
    args: &[&std::ffi::OsStr],
    hook_args: &[&str],
    input: &[u8],
    env: &[(&str, &Path)],
) -> (i32, Vec<u8>, Vec<u8>, Duration) {
    let started = Instant::now();
    let mut cmd = match form {
        Form::Subcommand => Command::new(bin()),
        Form::Program => Command::new(assert_cmd::cargo::cargo_bin("mpm-aggregate-hook")),
    };
    cmd.args(args);
    if let Form::Subcommand = form {
        cmd.arg("hook");
    }
    cmd.args(hook_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn hook");
    {
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(input);
    }
    let out = child.wait_with_output().expect("hook ends");
    let elapsed = started.elapsed();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        out.stderr,
        elapsed,
    )
}

fn db_args(dir: &Path) -> Vec<std::ffi::OsString> {
    vec![
        "--db".into(),
        dir.join("agg.db").into_os_string(),
        "--activity-dir".into(),
        dir.join("activity").into_os_string(),
    ]
}

fn hook(dir: &Path, input: &[u8]) -> (i32, Vec<u8>, Vec<u8>, Duration) {
    let args = db_args(dir);
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    hook_with(&refs, input, &[])
}

/// `hook --wait`: stored before it exits, or spooled after a short wait
/// for a busy database.
fn hook_wait(dir: &Path, input: &[u8]) -> (i32, Vec<u8>, Vec<u8>, Duration) {
    let args = db_args(dir);
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    run_hook(Form::Subcommand, &refs, &["--wait"], input, &[])
}

fn assert_silent_success(r: &(i32, Vec<u8>, Vec<u8>, Duration), ctx: &str) {
    assert_eq!(r.0, 0, "{ctx}: exit status");
    assert!(
        r.1.is_empty(),
        "{ctx}: stdout {:?}",
        String::from_utf8_lossy(&r.1)
    );
    assert!(
        r.2.is_empty(),
        "{ctx}: stderr {:?}",
        String::from_utf8_lossy(&r.2)
    );
}

fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn spooled(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("hook-spool"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".hook.json"))
                .count()
        })
        .unwrap_or(0)
}

fn payload(session: &str, event: &str) -> Vec<u8> {
    serde_json::json!({"session_id": session, "hook_event_name": event, "cwd": "/tmp/p",
        "prompt": "hello", "transcript_path": "/nonexistent.jsonl"})
    .to_string()
    .into_bytes()
}

#[test]
fn bad_input_and_unusable_databases_exit_0_silently_with_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    // Not JSON: rejected in the database, and a line in the log.
    let r = hook(dir.path(), b"this is not json");
    assert_silent_success(&r, "bad input");
    let log = dir.path().join("hook.log");
    assert_eq!(log_lines(&log).len(), 1, "{:?}", log_lines(&log));
    assert!(log_lines(&log)[0].contains("not JSON"));
    assert_eq!(
        count(
            &dir.path().join("agg.db"),
            "SELECT count(*) FROM rejected_events"
        ),
        1
    );
    // Empty input too.
    assert_silent_success(&hook(dir.path(), b""), "empty input");
    assert_eq!(log_lines(&log).len(), 2);

    // A database folder that does not exist yet is made.
    let missing = dir.path().join("not/yet/there");
    let r = hook(&missing, &payload("s-missing", "UserPromptSubmit"));
    assert_silent_success(&r, "missing folder");
    assert_eq!(
        count(&missing.join("agg.db"), "SELECT count(*) FROM events"),
        1
    );

    // A database folder that cannot be made (its parent is a file): the log
    // goes to the temporary folder.
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "x").unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let db = blocker.join("sub/agg.db");
    let r = hook_with(
        &["--db".as_ref(), db.as_os_str()],
        &payload("s", "Stop"),
        &[("TMPDIR", &tmp)],
    );
    assert_silent_success(&r, "uncreatable folder");
    let fallback = log_lines(&tmp.join("mpm-aggregate-hook.log"));
    assert!(
        fallback.iter().any(|l| l.contains("payload lost")),
        "{fallback:?}"
    );

    // A file that is not a database: spooled, logged.
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("agg.db"), vec![b'z'; 8192]).unwrap();
    let r = hook(&bad, &payload("s-bad", "UserPromptSubmit"));
    assert_silent_success(&r, "not a database");
    assert_eq!(spooled(&bad), 1);
    assert!(log_lines(&bad.join("hook.log"))[0].contains("spooled"));

    // A read-only database (not enforceable for root).
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    assert_silent_success(&hook(&ro, &payload("s-ro", "UserPromptSubmit")), "first");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let is_root = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false);
        for f in ["agg.db", "agg.db-wal", "agg.db-shm"] {
            let p = ro.join(f);
            if p.exists() {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).unwrap();
            }
        }
        let r = hook(&ro, &payload("s-ro", "Stop"));
        assert_silent_success(&r, "read-only database");
        if !is_root {
            assert_eq!(spooled(&ro), 1);
            assert!(!log_lines(&ro.join("hook.log")).is_empty());
        }
        for f in ["agg.db", "agg.db-wal", "agg.db-shm"] {
            let p = ro.join(f);
            if p.exists() {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
    }
}

#[test]
fn a_command_line_it_cannot_read_is_logged_and_still_exits_0_silently() {
    // Claude Code takes status 2 for "block this tool call", so a usage error
    // must not reach it as clap's usual status 2.
    let dir = tempfile::tempdir().unwrap();
    for (program, args) in [
        ("mpm-aggregate-hook", vec!["--no-such-option"]),
        ("mpm-aggregate", vec!["--no-such-option", "hook"]),
        ("mpm-aggregate", vec!["hook", "extra"]),
    ] {
        let out = assert_cmd::Command::new(assert_cmd::cargo::cargo_bin(program))
            .current_dir(dir.path())
            .args(&args)
            .write_stdin(payload("s", "Stop"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{program} {args:?}");
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "{program} {args:?}"
        );
    }
    let log = log_lines(&dir.path().join(".claude-mpm/hook.log"));
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(log.iter().all(|l| l.contains("not understood")), "{log:?}");
    // Asked for at a terminal, help is still help.
    let help = assert_cmd::Command::new(assert_cmd::cargo::cargo_bin("mpm-aggregate-hook"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("--wait"));
}

/// The run's hook payloads with their transcript paths pointing at the
/// fixture's transcripts.
fn run_payloads(run: &Path) -> Vec<String> {
    let transcripts = format!("{}/", run.join("transcripts").display());
    std::fs::read_to_string(run.join("hooks.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.replace(RECORDED_PROJECTS, &transcripts))
        .collect()
}

#[test]
fn one_process_per_payload_rebuilds_the_run_tokens_included() {
    for form in [Form::Program, Form::Subcommand] {
        one_process_per_payload_rebuilds_the_run(form);
    }
}

fn one_process_per_payload_rebuilds_the_run(form: Form) {
    let run = run_dir();
    let dir = tempfile::tempdir().unwrap();
    let args = db_args(dir.path());
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    for (i, line) in run_payloads(&run).iter().enumerate() {
        let r = hook_no_wait_as(form, &refs, line.as_bytes(), &[]);
        assert_silent_success(&r, &format!("{form:?}: payload {i}"));
        // As Claude Code runs them (back to back) with the program; one
        // stored at a time with the subcommand.
        if let Form::Subcommand = form {
            crate::common::wait_for_hooks(&dir.path().join("agg.db"));
        }
    }
    crate::common::wait_for_hooks(&dir.path().join("agg.db"));
    let db = dir.path().join("agg.db");
    assert!(
        log_lines(&dir.path().join("hook.log")).is_empty(),
        "{:?}",
        log_lines(&dir.path().join("hook.log"))
    );
    crate::claude_code::check_store(&run, &db, true, "hook a-mpm-fast");
    // Every transcript file read to its end, remembered.
    let read: i64 = count(&db, "SELECT count(*) FROM transcript_offsets");
    assert!(read >= 1, "offsets remembered");
    // Feeding the stops again reads nothing new and stores nothing twice.
    let before = crate::common::table_counts(&db);
    let again: Vec<String> = run_payloads(&run)
        .into_iter()
        .filter(|l| l.contains("\"Stop\"") || l.contains("\"SubagentStop\""))
        .collect();
    assert!(!again.is_empty());
    let events_before = count(
        &db,
        "SELECT count(*) FROM events WHERE source = 'transcript'",
    );
    for line in &again {
        assert_silent_success(&hook(dir.path(), line.as_bytes()), "stop again");
    }
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events WHERE source = 'transcript'"
        ),
        events_before
    );
    let _ = before;
}

/// The run's payloads for session `n`: its id rewritten, no transcripts.
fn session_payloads(run: &Path, n: usize) -> Vec<String> {
    let original = "1a6c62fb-bc6c-5284-a701-147209c3d822";
    std::fs::read_to_string(run.join("hooks.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut v: Value =
                serde_json::from_str(&l.replace(original, &format!("{original:.28}{n:08}")))
                    .unwrap();
            let m = v.as_object_mut().unwrap();
            m.remove("transcript_path");
            m.remove("agent_transcript_path");
            v.to_string()
        })
        .collect()
}

fn per_session(db: &Path) -> Vec<(String, i64, i64, i64, String, String, i64)> {
    let c = open(db);
    let mut stmt = c
        .prepare(
            "SELECT m.session_id, m.prompts, m.tool_calls, m.tool_failures, m.tools_used, m.files_modified,
                    (SELECT count(*) FROM events e WHERE e.session_id = m.session_id)
             FROM metrics m ORDER BY m.session_id",
        )
        .unwrap();
    // Lists as sets: two tool calls finishing in the same millisecond may be told in either order.
    let set = |s: String| -> String {
        let mut v: Vec<String> = serde_json::from_str(&s).unwrap_or_default();
        v.sort();
        v.join(",")
    };
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            set(r.get(4)?),
            set(r.get(5)?),
            r.get(6)?,
        ))
    })
    .unwrap()
    .collect::<Result<Vec<_>, _>>()
    .unwrap()
}

fn event_types(db: &Path) -> Vec<(String, String, i64)> {
    let c = open(db);
    let mut stmt = c
        .prepare("SELECT coalesce(session_id, ''), event_type, count(*) FROM events GROUP BY 1, 2 ORDER BY 1, 2")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[test]
fn sixteen_hooks_at_once_an_import_and_the_recorder_store_what_one_sequential_import_stores() {
    let run = run_dir();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    std::fs::create_dir(&live).unwrap();
    let sessions: Vec<Vec<String>> = (0..16).map(|n| session_payloads(&run, n)).collect();
    // A 17th session arrives by import meanwhile.
    let imported = dir.path().join("imported.jsonl");
    std::fs::write(&imported, session_payloads(&run, 16).join("\n") + "\n").unwrap();
    // And the recorder writes too: it follows the run's transcripts (an 18th session).
    let live_args = db_args(&live);
    let transcripts = run.join("transcripts");
    let mut recorder = Command::new(bin())
        .args(&live_args)
        .args(["start", "--no-monitor", "--transcripts"])
        .arg(&transcripts)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let recorder_stored = || {
        count(
            &live.join("agg.db"),
            "SELECT count(*) FROM events WHERE session_id = '1a6c62fb-bc6c-5284-a701-147209c3d822'",
        )
    };
    std::thread::scope(|s| {
        for payloads in &sessions {
            let live_args = &live_args;
            s.spawn(move || {
                let refs: Vec<&std::ffi::OsStr> = live_args.iter().map(|a| a.as_os_str()).collect();
                for line in payloads {
                    // The program `hooks install` gives Claude Code.
                    let r = hook_no_wait_as(Form::Program, &refs, line.as_bytes(), &[]);
                    assert_silent_success(&r, "concurrent hook");
                }
            });
        }
        s.spawn(|| {
            let out = Command::new(bin())
                .args(&live_args)
                .arg("import")
                .arg(&imported)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        });
    });
    crate::common::wait_for_hooks(&live.join("agg.db"));
    // The recorder has followed every transcript line; stopped, it has stored them all.
    assert!(crate::common::wait_until(
        Duration::from_secs(20),
        || recorder_stored() > 0
    ));
    let stop = Command::new(bin())
        .args(&live_args)
        .arg("stop")
        .output()
        .unwrap();
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    let _ = recorder.wait();
    // Whatever is still spooled is drained by an explicit import of the spool.
    eprintln!(
        "16 at once: {} payloads spooled and not yet drained; hook.log: {} lines",
        spooled(&live),
        log_lines(&live.join("hook.log")).len()
    );
    if spooled(&live) > 0 {
        let spool = live.join("hook-spool");
        crate::common::cli_stdout(&live.join("agg.db"), &["import", spool.to_str().unwrap()]);
    }
    assert_eq!(spooled(&live), 0);

    // The reference: one sequential import of the same payloads.
    let reference = dir.path().join("ref");
    std::fs::create_dir(&reference).unwrap();
    let all = dir.path().join("all.jsonl");
    let mut text = String::new();
    for payloads in &sessions {
        text += &(payloads.join("\n") + "\n");
    }
    std::fs::write(&all, text).unwrap();
    crate::common::import_with(
        &crate::common::test_config(&reference),
        &[all, imported, transcripts],
    );

    let (got, want) = (live.join("agg.db"), reference.join("agg.db"));
    assert_eq!(per_session(&got).len(), 18);
    assert_eq!(per_session(&got), per_session(&want));
    assert_eq!(event_types(&got), event_types(&want));
    assert_eq!(
        count(&got, "SELECT count(*) FROM events"),
        count(&want, "SELECT count(*) FROM events")
    );
    assert_eq!(count(&got, "SELECT count(*) FROM rejected_events"), 0);
}

/// A database whose session `s0` has started, and a connection holding its
/// write lock (as a long import or prune does), for the hooks that follow.
fn started_then_held(dir: &Path) -> (PathBuf, Vec<std::ffi::OsString>, rusqlite::Connection) {
    let db = dir.join("agg.db");
    assert_silent_success(&hook(dir, &payload("s0", "SessionStart")), "first");
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    (db, db_args(dir), holder)
}

#[test]
fn a_hook_exits_at_once_and_its_background_writer_stores_the_burst_in_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    // While another process holds the database, hooks still return at once,
    // their pipes closed (Claude Code waits for both): the writer they fork
    // waits for the lock in the background.
    let (db, args, holder) = started_then_held(dir.path());
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let prompts: Vec<String> = (0..6).map(|i| format!("prompt {i}")).collect();
    for prompt in &prompts {
        let body = serde_json::json!({"session_id": "s0", "hook_event_name": "UserPromptSubmit",
            "cwd": "/tmp/p", "prompt": prompt})
        .to_string();
        let r = hook_no_wait(&refs, body.as_bytes(), &[]);
        assert_silent_success(&r, "while busy");
        assert!(
            r.3 < Duration::from_millis(1500),
            "the hook waited {:?} (its writer waits up to {:?})",
            r.3,
            mpm_aggregate::import::hook::DRAIN_BUSY_WAIT
        );
    }
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    crate::common::wait_for_hooks(&db);
    assert_eq!(spooled(dir.path()), 0);
    assert!(log_lines(&dir.path().join("hook.log")).is_empty());
    let stored: Vec<String> = open(&db)
        .prepare("SELECT json_extract(data, '$.prompt') FROM events WHERE event_type = 'UserPromptSubmit' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(stored, prompts, "stored once each, in the order they came");

    // `--wait`: stored before the process exits.
    let r = hook_wait(dir.path(), &payload("s-wait", "UserPromptSubmit"));
    assert_silent_success(&r, "--wait");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events WHERE session_id = 's-wait'"
        ),
        1
    );
}

#[test]
fn a_background_writer_outlasts_a_database_busy_for_longer_than_one_wait() {
    let dir = tempfile::tempdir().unwrap();
    // Held past one busy wait of the writer, as a long import or prune may:
    // the payload is still stored once the database is free, with no hook
    // after it to drain the spool.
    let (db, args, holder) = started_then_held(dir.path());
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let r = hook_no_wait(&refs, &payload("s0", "UserPromptSubmit"), &[]);
    assert_silent_success(&r, "while busy");
    let held = mpm_aggregate::import::hook::DRAIN_BUSY_WAIT * 2;
    std::thread::sleep(held);
    let waiting = std::fs::read_dir(dir.path().join("hook-spool"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.ends_with(".hook.json") || name.ends_with(".draining")
        })
        .count();
    assert_eq!(waiting, 1, "not stored while the database is held");
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    crate::common::wait_for_hooks(&db);
    assert_eq!(spooled(dir.path()), 0);
    assert_eq!(
        count(&db, "SELECT count(*) FROM events WHERE session_id = 's0'"),
        2
    );
    assert!(log_lines(&dir.path().join("hook.log")).is_empty());
}

#[test]
fn a_busy_database_spools_at_once_and_the_next_writers_drain_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("agg.db");
    assert_silent_success(&hook(dir.path(), &payload("s1", "SessionStart")), "first");
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    for event in ["UserPromptSubmit", "Notification"] {
        let r = hook_wait(dir.path(), &payload("s1", event));
        assert_silent_success(&r, "busy");
        assert!(
            r.3 < Duration::from_secs(3),
            "a busy database made the hook wait {:?}",
            r.3
        );
    }
    assert_eq!(spooled(dir.path()), 2);
    assert!(log_lines(&dir.path().join("hook.log"))
        .iter()
        .all(|l| l.contains("spooled")));
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    // `status` tells what waits, and where, in words and in JSON.
    let status = |json: bool| {
        let args: &[&str] = if json {
            &["status", "--json"]
        } else {
            &["status"]
        };
        crate::common::cli_stdout(&db, args)
    };
    let text = status(false);
    let line = text
        .lines()
        .find(|l| l.starts_with("hook spool:"))
        .unwrap_or_else(|| panic!("no spool line in:\n{text}"));
    assert!(line.contains("2 payloads waiting since 20"), "{line}");
    assert!(
        line.contains(&format!(
            "import {}",
            dir.path().join("hook-spool").display()
        )),
        "{line}"
    );
    let json: serde_json::Value = serde_json::from_str(&status(true)).unwrap();
    assert_eq!(json["hook_spool"]["waiting"], 2, "{json}");
    assert_eq!(
        json["total_events"], 1,
        "the status fields stay at the top: {json}"
    );
    // The next hook drains the spool: nothing lost, arrival times kept.
    assert_silent_success(&hook(dir.path(), &payload("s1", "Stop")), "drains");
    assert_eq!(spooled(dir.path()), 0);
    assert_eq!(
        count(&db, "SELECT count(*) FROM events WHERE session_id = 's1'"),
        4
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events WHERE session_id = 's1' AND event_type = 'UserPromptSubmit'
               AND timestamp < (SELECT timestamp FROM events WHERE event_type = 'Stop')"
        ),
        1
    );

    assert!(
        !status(false).contains("hook spool:"),
        "nothing waits once drained"
    );
    assert!(status(true).contains("\"hook_spool\": null"));

    // An explicit import of the spool folder drains it too.
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    assert_silent_success(
        &hook_wait(dir.path(), &payload("s2", "UserPromptSubmit")),
        "busy again",
    );
    assert_eq!(spooled(dir.path()), 1);
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    let out = Command::new(bin())
        .args(db_args(dir.path()))
        .arg("import")
        .arg(dir.path().join("hook-spool"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(spooled(dir.path()), 0);
    assert_eq!(
        count(&db, "SELECT count(*) FROM events WHERE session_id = 's2'"),
        1
    );
}

/// What a transcript read at stops stores, for comparisons.
fn transcript_figures(db: &Path) -> (i64, Option<String>, i64, i64) {
    let c = open(db);
    let (api_calls, tokens): (i64, Option<String>) = c
        .query_row("SELECT api_calls, tokens FROM metrics", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    (
        api_calls,
        tokens,
        count(db, "SELECT count(*) FROM events"),
        count(db, "SELECT count(*) FROM rejected_events"),
    )
}

#[test]
fn a_growing_transcript_is_read_from_where_the_last_stop_left_it() {
    let run = run_dir();
    let session = "1a6c62fb-bc6c-5284-a701-147209c3d822";
    let full = std::fs::read(
        run.join("transcripts/-home-dev-work-a-fast-proj")
            .join(format!("{session}.jsonl")),
    )
    .unwrap();
    let stop = run_payloads(&run)
        .into_iter()
        .find(|l| l.contains("\"hook_event_name\":\"Stop\""))
        .unwrap();
    let with_path = |path: &Path| -> Vec<u8> {
        let mut v: Value = serde_json::from_str(&stop).unwrap();
        v["transcript_path"] = path.display().to_string().into();
        v.to_string().into_bytes()
    };
    // A first stop at the end of the first turn, with half of the next line written.
    let text = String::from_utf8(full.clone()).unwrap();
    let line_end = text
        .find("{\"type\":\"queue-operation\",\"operation\":\"enqueue\"")
        .and_then(|first| {
            Some(
                first
                    + 1
                    + text[first + 1..]
                        .find("{\"type\":\"queue-operation\",\"operation\":\"enqueue\"")?,
            )
        })
        .expect("a second turn");
    let next_end = line_end + full[line_end..].iter().position(|b| *b == b'\n').unwrap();
    let partial = line_end + (next_end - line_end) / 2;

    let growing = tempfile::tempdir().unwrap();
    let file = growing.path().join(format!("{session}.jsonl"));
    std::fs::write(&file, &full[..partial]).unwrap();
    assert_silent_success(&hook(growing.path(), &with_path(&file)), "first stop");
    let db = growing.path().join("agg.db");
    assert_eq!(
        count(&db, "SELECT offset FROM transcript_offsets"),
        line_end as i64,
        "the partial last line is left for next time"
    );
    std::fs::write(&file, &full).unwrap();
    assert_silent_success(&hook(growing.path(), &with_path(&file)), "second stop");
    assert_eq!(
        count(&db, "SELECT offset FROM transcript_offsets"),
        full.len() as i64
    );

    let whole = tempfile::tempdir().unwrap();
    let file = whole.path().join(format!("{session}.jsonl"));
    std::fs::write(&file, &full).unwrap();
    for _ in 0..2 {
        assert_silent_success(&hook(whole.path(), &with_path(&file)), "whole");
    }
    assert_eq!(event_types(&db), event_types(&whole.path().join("agg.db")));
    assert_eq!(
        transcript_figures(&db),
        transcript_figures(&whole.path().join("agg.db"))
    );
    assert!(log_lines(&growing.path().join("hook.log")).is_empty());
}

/// Claude Code fires `SubagentStop` before it writes the sub-agent's last message, and sometimes
/// `Stop` before the turn's last response reaches the transcript (seen with the real CLI, see
/// `real_claude_sources`): the late lines are read at the next stop of the session, the turn's
/// end still carries its prompt, and the run is rebuilt exactly all the same.
#[test]
fn transcript_lines_written_after_their_stop_hook_are_read_at_the_next_stop() {
    let run = run_dir();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("transcripts");
    let src = run.join("transcripts");
    let lines_of = |p: &Path| -> Vec<Vec<u8>> {
        std::fs::read(p)
            .unwrap()
            .split_inclusive(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    };
    // (path in the copy, all its lines, how many are written before the late ones)
    let mut files: Vec<(PathBuf, Vec<Vec<u8>>, usize)> = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let to = copy.join(p.strip_prefix(&src).unwrap());
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            if !p.to_string_lossy().ends_with(".jsonl") {
                std::fs::copy(&p, &to).unwrap();
                continue;
            }
            let lines = lines_of(&p);
            let early = if p.to_string_lossy().contains("/subagents/") {
                // Without its last message.
                lines
                    .iter()
                    .rposition(|l| l.windows(11).any(|w| w == b"\"assistant\""))
                    .unwrap()
            } else {
                // Up to the first turn's last response.
                let summary = lines
                    .iter()
                    .position(|l| l.windows(17).any(|w| w == b"stop_hook_summary"))
                    .unwrap();
                lines[..summary]
                    .iter()
                    .rposition(|l| l.windows(10).any(|w| w == b"\"end_turn\""))
                    .unwrap()
            };
            std::fs::write(&to, lines[..early].concat()).unwrap();
            files.push((to, lines, early));
        }
    }
    let complete = |sub: bool| {
        for (to, lines, _) in &files {
            if to.to_string_lossy().contains("/subagents/") == sub {
                std::fs::write(to, lines.concat()).unwrap();
            }
        }
    };
    let transcripts = format!("{}/", copy.display());
    let payloads: Vec<String> = std::fs::read_to_string(run.join("hooks.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.replace(RECORDED_PROJECTS, &transcripts))
        .collect();
    let mut stops = 0;
    for (i, line) in payloads.iter().enumerate() {
        let event = serde_json::from_str::<Value>(line).unwrap()["hook_event_name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if event == "Stop" && stops == 0 {
            complete(true); // the sub-agents' last messages, after their SubagentStop
        }
        assert_silent_success(&hook(dir.path(), line.as_bytes()), &format!("payload {i}"));
        if event == "Stop" {
            stops += 1;
            if stops == 1 {
                complete(false); // the first turn's last response, after its Stop
            }
        }
    }
    assert!(stops >= 2);
    assert!(files.iter().all(|(_, lines, early)| *early < lines.len()));
    let db = dir.path().join("agg.db");
    assert!(log_lines(&dir.path().join("hook.log")).is_empty());
    crate::claude_code::check_store(&run, &db, true, "late transcript lines");
}

/// Whether this machine's C compiler finds a static glibc (as build.rs asks).
fn static_glibc_installed() -> bool {
    std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .arg("-print-file-name=libc.a")
        .output()
        .is_ok_and(|o| Path::new(String::from_utf8_lossy(&o.stdout).trim()).is_file())
}

/// Whether an ELF64 program asks for a dynamic loader (a `PT_INTERP` header).
fn has_interpreter(program: &Path) -> bool {
    let elf = std::fs::read(program).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).any(|i| {
        let at = phoff + i * size;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3
    })
}

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn the_hook_program_is_linked_statically_where_a_static_glibc_is_installed() {
    let hook = assert_cmd::cargo::cargo_bin("mpm-aggregate-hook");
    let other = bin();
    assert!(has_interpreter(&other), "mpm-aggregate stays dynamic");
    assert_eq!(
        has_interpreter(&hook),
        !static_glibc_installed(),
        "{} (static glibc installed: {})",
        hook.display(),
        static_glibc_installed()
    );
    // And it works: a payload stored, as by the dynamic program.
    let dir = tempfile::tempdir().unwrap();
    let args = db_args(dir.path());
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let r = hook_no_wait_as(
        Form::Program,
        &refs,
        &payload("s-static", "SessionStart"),
        &[],
    );
    assert_silent_success(&r, "static program");
    crate::common::wait_for_hooks(&dir.path().join("agg.db"));
    assert_eq!(
        count(
            &dir.path().join("agg.db"),
            "SELECT count(*) FROM events WHERE session_id = 's-static'"
        ),
        1
    );
}
