//! The transcript follower (`start --no-monitor --transcripts DIR`): a real
//! run's transcripts written into a folder line by line while the recorder
//! follows it (the folder created after the recorder started), rebuilt
//! exactly as `expected.json` says; a line stored within a second; a
//! recorder killed with `kill -9` halfway catches up at restart without a
//! duplicate; a truncated file is read again without a duplicate.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::claude_code::check_store;
use crate::common::{count, fixture, free_port, import_with, start_command, wait_until};

const EVENTS: &str = "SELECT count(*) FROM events";

fn run_dir() -> PathBuf {
    fixture("claude-code-2.1").join("a-mpm-fast")
}

/// One step of writing the run's transcripts: a line appended to a file
/// (written in two halves, so the follower may see a partial line), or a
/// whole `.meta.json` written.
enum Step {
    Line(PathBuf, Vec<u8>),
    Meta(PathBuf, Vec<u8>),
}

/// The run's transcripts as steps, relative to the transcripts folder: the
/// main file, then each sub-agent's, its `.meta.json` after its second line.
fn steps() -> Vec<Step> {
    let root = run_dir().join("transcripts");
    let project = root.join("-home-dev-work-a-fast-proj");
    let session = "1a6c62fb-bc6c-5284-a701-147209c3d822";
    let lines = |p: &Path| -> Vec<Vec<u8>> {
        std::fs::read(p)
            .unwrap()
            .split_inclusive(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    };
    let rel = |p: &Path| p.strip_prefix(&root).unwrap().to_path_buf();
    let mut out = Vec::new();
    let main = project.join(format!("{session}.jsonl"));
    for l in lines(&main) {
        out.push(Step::Line(rel(&main), l));
    }
    let subs = project.join(session).join("subagents");
    let mut agents: Vec<PathBuf> = std::fs::read_dir(&subs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    agents.sort();
    for agent in agents {
        let meta = agent.with_extension("meta.json");
        for (i, l) in lines(&agent).into_iter().enumerate() {
            out.push(Step::Line(rel(&agent), l));
            if i == 1 {
                out.push(Step::Meta(rel(&meta), std::fs::read(&meta).unwrap()));
            }
        }
    }
    out
}

fn apply(steps: &[Step], dir: &Path) {
    for step in steps {
        match step {
            Step::Line(rel, line) => {
                let path = dir.join(rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .unwrap();
                let half = line.len() / 2;
                f.write_all(&line[..half]).unwrap();
                f.flush().unwrap();
                std::thread::sleep(Duration::from_millis(2));
                f.write_all(&line[half..]).unwrap();
            }
            Step::Meta(rel, text) => {
                let path = dir.join(rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A foreground recorder following `dir` without the monitor.
struct Follower {
    child: Child,
    output: PathBuf,
}

impl Follower {
    fn start(work: &Path, dir: &Path) -> Follower {
        let output = work.join(format!("recorder-{}.out", fastrand::u32(..)));
        let out = std::fs::File::create(&output).unwrap();
        let child = start_command(work, free_port(), &[])
            .arg("--no-monitor")
            .arg("--transcripts")
            .arg(dir)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("recorder starts");
        Follower { child, output }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    fn stop(mut self) -> String {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{}", self.output());
        self.output()
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many events a plain import of the run's transcripts stores.
fn imported_events() -> i64 {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::common::test_config(dir.path());
    import_with(&config, &[run_dir().join("transcripts")]);
    count(&config.database, EVENTS)
}

/// Waits until the store holds `n` events and no more come.
fn settle_at(db: &Path, n: i64, rec: &Follower) {
    assert!(
        wait_until(Duration::from_secs(20), || count(db, EVENTS) >= n),
        "{} of {n} events stored\n{}",
        count(db, EVENTS),
        rec.output()
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(count(db, EVENTS), n, "{}", rec.output());
}

fn status(work: &Path) -> String {
    let out = assert_cmd::Command::cargo_bin("mpm-aggregate")
        .unwrap()
        .current_dir(work)
        .args(["--db", "rec.db", "--activity-dir", "activity", "status"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_run_written_line_by_line_into_a_folder_made_later_is_rebuilt_exactly() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("projects");
    let db = work.path().join("rec.db");
    let rec = Follower::start(work.path(), &dir);
    assert!(
        wait_until(Duration::from_secs(10), || status(work.path())
            .contains("waiting for it to exist")),
        "{}\n{}",
        status(work.path()),
        rec.output()
    );
    let st = status(work.path());
    assert!(st.contains("monitor disabled"), "{st}");
    apply(&steps(), &dir);
    settle_at(&db, imported_events(), &rec);
    let st = status(work.path());
    assert!(st.contains("3 files followed"), "{st}");
    let out = rec.stop();
    assert!(out.contains("following transcripts in"), "{out}");
    check_store(&run_dir(), &db, true, "followed line by line");
    assert_eq!(count(&db, "SELECT count(*) FROM rejected_events"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM transcript_offsets"), 3);
}

#[test]
fn an_appended_line_is_stored_within_a_second() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("projects");
    std::fs::create_dir_all(&dir).unwrap();
    let db = work.path().join("rec.db");
    let rec = Follower::start(work.path(), &dir);
    let steps = steps();
    // Two bookkeeping lines, then the first prompt.
    apply(&steps[..2], &dir);
    assert!(wait_until(Duration::from_secs(10), || db.exists()));
    std::thread::sleep(Duration::from_millis(1500));
    let before = count(&db, EVENTS);
    let t0 = Instant::now();
    apply(&steps[2..3], &dir);
    assert!(
        wait_until(Duration::from_secs(5), || count(&db, EVENTS) > before),
        "{}",
        rec.output()
    );
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(1), "stored after {took:?}");
    rec.stop();
}

#[test]
fn killed_halfway_the_recorder_catches_up_without_duplicates() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("projects");
    let db = work.path().join("rec.db");
    let steps = steps();
    let half = steps.len() / 2;
    let rec = Follower::start(work.path(), &dir);
    apply(&steps[..half], &dir);
    assert!(wait_until(Duration::from_secs(10), || count(&db, EVENTS) > 10));
    std::thread::sleep(Duration::from_millis(300));
    rec.kill9();
    // Written while it was down.
    apply(&steps[half..], &dir);
    let rec = Follower::start(work.path(), &dir);
    settle_at(&db, imported_events(), &rec);
    rec.stop();
    check_store(&run_dir(), &db, true, "killed and restarted");
    // What the second run read again was dropped as duplicate, and counted as received.
    let (received, stored, duplicates, merged, rejected, control): (i64, i64, i64, i64, i64, i64) =
        crate::common::open(&db)
            .query_row(
                "SELECT events_received, events_stored, duplicates, merged, rejected, control_events
                 FROM recorder_state",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .unwrap();
    assert!(duplicates > 0 && stored > 0, "{duplicates} {stored}");
    assert_eq!(stored + duplicates + merged + rejected + control, received);
    // A third start reads nothing again.
    let before = count(&db, EVENTS);
    let rec = Follower::start(work.path(), &dir);
    std::thread::sleep(Duration::from_millis(1500));
    rec.stop();
    assert_eq!(count(&db, EVENTS), before);
}

#[test]
fn a_truncated_file_is_read_again_without_duplicates() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("projects");
    let db = work.path().join("rec.db");
    // Everything written before the recorder starts: caught up at start.
    apply(&steps(), &dir);
    let rec = Follower::start(work.path(), &dir);
    let n = imported_events();
    settle_at(&db, n, &rec);
    let main = dir
        .join("-home-dev-work-a-fast-proj")
        .join("1a6c62fb-bc6c-5284-a701-147209c3d822.jsonl");
    let content = std::fs::read(&main).unwrap();
    std::fs::write(&main, b"").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(&main, &content).unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(count(&db, EVENTS), n, "{}", rec.output());
    assert!(rec.output().contains("truncated"), "{}", rec.output());
    // A deleted file is forgotten.
    let sub = main.with_extension("").join("subagents");
    std::fs::remove_dir_all(&sub).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || count(
            &db,
            "SELECT count(*) FROM transcript_offsets"
        ) == 1),
        "{}",
        rec.output()
    );
    rec.stop();
    assert_eq!(count(&db, EVENTS), n);
    check_store(&run_dir(), &db, true, "truncated and read again");
}

#[test]
fn a_bad_line_is_rejected_once_even_when_its_file_is_read_again() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("projects");
    let db = work.path().join("rec.db");
    let mut steps = steps();
    let Step::Line(main, _) = &steps[0] else {
        unreachable!()
    };
    let main = main.clone();
    steps.insert(5, Step::Line(main.clone(), b"{not json\n".to_vec()));
    apply(&steps, &dir);
    let n = imported_events();
    let rec = Follower::start(work.path(), &dir);
    settle_at(&db, n, &rec);
    rec.stop();
    let rejected = "SELECT count(*) FROM rejected_events";
    assert_eq!(count(&db, rejected), 1);
    // The file grew while the recorder was down: read again from its start.
    apply(&[Step::Line(main, b"\n".to_vec())], &dir);
    let rec = Follower::start(work.path(), &dir);
    std::thread::sleep(Duration::from_millis(2000));
    rec.stop();
    assert_eq!(count(&db, rejected), 1);
    assert_eq!(count(&db, EVENTS), n);
    assert!(
        count(&db, "SELECT duplicates FROM recorder_state") > 0,
        "the file was read again"
    );
    check_store(&run_dir(), &db, true, "a bad line");
}

#[test]
fn a_sub_agent_file_waits_for_its_meta_json_written_after_it() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("projects");
    let db = work.path().join("rec.db");
    std::fs::create_dir_all(&dir).unwrap();
    let rec = Follower::start(work.path(), &dir);
    let (metas, lines): (Vec<Step>, Vec<Step>) = steps()
        .into_iter()
        .partition(|s| matches!(s, Step::Meta(..)));
    apply(&lines, &dir);
    // Well after its lines (idle), within the wait for it.
    std::thread::sleep(Duration::from_millis(1200));
    apply(&metas, &dir);
    settle_at(&db, imported_events(), &rec);
    rec.stop();
    check_store(&run_dir(), &db, true, "meta.json after its file");
}
