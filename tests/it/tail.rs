//! `tail` as a child process sees the events another process stores (an
//! import of a real run), in order, one line each, and only its session's
//! when given one; it ends quietly with status 0 on SIGINT and when its
//! reader goes away.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;

fn mpm(db: &Path, args: &[&str]) -> std::process::Command {
    cli_on(db, args)
}

/// `tail` started on `db`, its lines arriving on a channel.
fn tail(db: &Path, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut all = vec!["tail", "--interval-ms", "50"];
    all.extend_from_slice(args);
    let mut child = mpm(db, &all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn lines_until(rx: &mpsc::Receiver<String>, n: usize, timeout: Duration) -> Vec<String> {
    let deadline = std::time::Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => got.push(l),
            Err(_) => break,
        }
    }
    got
}

fn interrupt(child: &mut Child) -> std::process::ExitStatus {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(err, "", "nothing on stderr");
    status
}

#[test]
fn tail_sees_events_another_process_stores() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("agg.db");
    let run = fixture("claude-code-2.1/a-mpm-fast");
    assert!(
        mpm(&db, &["import", &run.join("transcripts").to_string_lossy()])
            .status()
            .unwrap()
            .success()
    );
    let stored_before = count(&db, "SELECT count(*) FROM events");

    let (mut all, all_rx) = tail(&db, &["-n", "3"]);
    let (mut one, one_rx) = tail(&db, &["1a6c", "-n", "0"]);
    // The last 3 events stored before it started.
    let first = lines_until(&all_rx, 3, Duration::from_secs(20));
    assert_eq!(first.len(), 3, "{first:?}");
    std::thread::sleep(Duration::from_millis(300));

    // Another process stores a new session.
    assert!(mpm(&db, &["import", &ours("nest-mpm-fast")])
        .status()
        .unwrap()
        .success());
    let new = count(&db, "SELECT count(*) FROM events") - stored_before;
    assert!(new > 10);
    let seen = lines_until(&all_rx, new as usize, Duration::from_secs(20));
    assert_eq!(seen.len() as i64, new, "{seen:#?}");
    // One line per event, in the order stored: time, session, agent, type, tool, summary.
    let conn = open(&db);
    let mut stmt = conn
        .prepare("SELECT substr(timestamp, 12, 12), substr(session_id, 1, 8), event_type, coalesce(tool_name, '') FROM events WHERE id > (SELECT max(id) FROM events) - ?1 ORDER BY id")
        .unwrap();
    let expected: Vec<(String, String, String, String)> = stmt
        .query_map([new], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (line, (time, session, kind, tool)) in seen.iter().zip(&expected) {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            (words[0], words[1]),
            (time.as_str(), session.as_str()),
            "{line}"
        );
        assert_eq!(words[3], kind, "{line}");
        if !tool.is_empty() {
            assert_eq!(words[4], tool, "{line}");
        }
    }
    assert!(
        seen.iter()
            .any(|l| l.contains(" engineer ") || l.contains(" lead ")),
        "sub-agents named: {seen:#?}"
    );
    assert!(seen
        .iter()
        .any(|l| l.contains("UserPromptSubmit") && l.contains("[scenario-nest turn-1]")));

    // The session filter saw nothing of the other session.
    assert!(lines_until(&one_rx, 1, Duration::from_millis(500)).is_empty());
    assert!(interrupt(&mut one).success());
    assert!(interrupt(&mut all).success());
}

#[test]
fn tail_ends_quietly_when_its_reader_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("agg.db");
    let run = fixture("claude-code-2.1/a-mpm-fast");
    assert!(
        mpm(&db, &["import", &run.join("transcripts").to_string_lossy()])
            .status()
            .unwrap()
            .success()
    );
    // `tail | head -1`: the store stays quiet, yet tail sees its reader gone.
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg("timeout 20 \"$0\" --db \"$1\" tail | head -1; echo \"status ${PIPESTATUS[0]}\"")
        .arg(assert_cmd::cargo::cargo_bin("mpm-aggregate"))
        .arg(&db)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("status 0\n"), "{text}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
