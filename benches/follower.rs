//! The transcript follower (`start --no-monitor --transcripts DIR`): how long
//! from a line appended to a followed transcript until its event is in the
//! store. The real recorder follows a copy of a real main transcript; each
//! round appends one prompt line (its own prompt id and text) and polls the
//! database (a read-only connection, every millisecond) until that prompt's
//! event is there. Prints p50/p90/max over the rounds and the recorder's CPU.
//!
//! `cargo bench --bench follower [-- ROUNDS]` (default 50).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SESSION: &str = "1a6c62fb-bc6c-5284-a701-147209c3d822";

fn wait_for(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

fn count(db: &Path, sql: &str, arg: &str) -> i64 {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    conn.query_row(sql, [arg], |r| r.get(0)).unwrap_or(0)
}

/// The recorder's user+system CPU so far, from /proc (clock ticks of 10 ms).
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').collect())
        .unwrap_or_default();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) * 10.0
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(50);
    let work = common::bench_dir();
    let project = work.path().join("projects/-home-dev-work-a-fast-proj");
    std::fs::create_dir_all(&project).unwrap();
    let fixture = common::fixture(&format!(
        "claude-code-2.1/a-mpm-fast/transcripts/-home-dev-work-a-fast-proj/{SESSION}.jsonl"
    ));
    let file = project.join(format!("{SESSION}.jsonl"));
    std::fs::copy(&fixture, &file).unwrap();
    let db = work.path().join("agg.db");
    let mut rec = Command::new(common::binary())
        .arg("--db")
        .arg(&db)
        .arg("--activity-dir")
        .arg(work.path().join("activity"))
        .args(["start", "--no-monitor", "--transcripts"])
        .arg(work.path().join("projects"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("recorder starts");
    // Stopped however this ends (a failed round panics).
    struct Stop(u32);
    impl Drop for Stop {
        fn drop(&mut self) {
            // SAFETY: signals our own child.
            unsafe { libc::kill(self.0 as libc::pid_t, libc::SIGTERM) };
        }
    }
    let stop = Stop(rec.id());
    // The copy is read whole first.
    let ready = wait_for(Duration::from_secs(30), || {
        count(
            &db,
            "SELECT count(*) FROM events WHERE session_id = ?1",
            SESSION,
        ) >= 20
    });
    assert!(ready, "the recorder did not read the transcript");
    std::thread::sleep(Duration::from_millis(1500));
    let cpu_before = cpu_ms(rec.id());
    let started = Instant::now();
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let prompt_id = format!("0b5e1d3c-0000-4000-8000-{i:012}");
        let line = serde_json::json!({
            "parentUuid": null, "isSidechain": false, "promptId": prompt_id, "type": "user",
            "message": {"role": "user", "content": format!("follower bench prompt {i}")},
            "uuid": format!("0b5e1d3c-1111-4000-8000-{i:012}"),
            "timestamp": format!("2026-11-24T11:{:02}:{:02}.000Z", i / 60, i % 60),
            "cwd": "/home/dev/work/a-fast/proj", "sessionId": SESSION, "version": "2.1.328",
            "gitBranch": "feature/greeting", "userType": "external", "promptSource": "sdk",
        });
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        let t0 = Instant::now();
        f.write_all(format!("{line}\n").as_bytes()).unwrap();
        drop(f);
        let seen = wait_for(Duration::from_secs(10), || {
            count(
                &db,
                "SELECT count(*) FROM events WHERE event_type = 'UserPromptSubmit' AND identity LIKE '%' || ?1 || '%'",
                &prompt_id,
            ) > 0
        });
        assert!(seen, "round {i}: the appended prompt was not stored");
        times.push(t0.elapsed());
        // Lines of a real session come seconds apart; the next one after a pause.
        std::thread::sleep(Duration::from_millis(100));
    }
    let elapsed = started.elapsed();
    let cpu = cpu_ms(rec.id()) - cpu_before;
    drop(stop);
    let _ = rec.wait();
    times.sort();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "follower: {rounds} appended lines, each stored after p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms; recorder CPU {:.0} ms over {:.1} s",
        at(0.5).as_secs_f64() * 1e3,
        at(0.9).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3,
        cpu,
        elapsed.as_secs_f64(),
    );
}
