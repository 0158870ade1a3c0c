//! Claude Code transcripts at real sizes: generates a corpus of about 1 GiB
//! (the real transcripts of `../shared/fixtures/claude-code-2.1/*/transcripts`,
//! `tests/fixtures/claude-code/*/transcripts` and `tests/transcript-fixtures/*/transcripts`
//! replicated with fresh session ids, uuids, message, request, tool-use and
//! agent ids, each copy an hour later) in Claude Code's projects-folder layout,
//! then imports it with the real binary into a new database (cold) and again
//! (nothing changed). Prints wall time, CPU (user+sys) and peak RSS of each,
//! and times `stats` on the result when the binary has that command.
//!
//! `cargo bench --bench transcripts [-- MIB]` (default 1024). The corpus is
//! kept (it is regenerated only when missing) in `$BENCH_DIR` or target/.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The fixture runs' transcript folders (each a projects folder).
fn sources() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for parent in [
        root.join("../shared/fixtures/claude-code-2.1"),
        root.join("tests/fixtures/claude-code"),
        root.join("tests/transcript-fixtures"),
    ] {
        let mut runs: Vec<PathBuf> = std::fs::read_dir(&parent)
            .expect("fixture folder")
            .map(|e| e.expect("entry").path().join("transcripts"))
            .filter(|p| p.is_dir())
            .collect();
        runs.sort();
        out.extend(runs);
    }
    assert!(!out.is_empty(), "no transcript fixtures");
    out
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).expect("prefix").to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn is_hex(b: &[u8]) -> bool {
    b.iter()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Replaces `len` hex digits at `at` by themselves XOR the copy's mask: a
/// bijection per copy, so distinct ids stay distinct and every copy differs.
fn remap_hex(out: &mut [u8], at: usize, len: usize, mask: u64) {
    let text = std::str::from_utf8(&out[at..at + len]).expect("hex");
    let v = u64::from_str_radix(text, 16).expect("hex") ^ (mask & ((1u64 << (4 * len)) - 1));
    let s = format!("{v:0len$x}");
    out[at..at + len].copy_from_slice(s.as_bytes());
}

/// `text` with fresh ids for copy `copy` of run `run` (two fixture runs may
/// share ids) and every ISO time `copy` hours later.
fn remap(text: &[u8], run: u64, copy: u64) -> Vec<u8> {
    // A different mask per copy and run; never 0 (copy 0 is not the fixture either).
    let mask = (copy * 64 + run + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = text.to_vec();
    let n = out.len();
    let mut i = 0;
    while i < n {
        let rest = &text[i..];
        let boundary = i == 0 || !is_word(text[i - 1]);
        // A uuid: 8-4-4-4-12 hex digits.
        if boundary && rest.len() >= 36 {
            let u = &rest[..36];
            if [8, 13, 18, 23].iter().all(|&d| u[d] == b'-')
                && is_hex(&u[..8])
                && is_hex(&u[9..13])
                && is_hex(&u[14..18])
                && is_hex(&u[19..23])
                && is_hex(&u[24..36])
                && rest.get(36).is_none_or(|c| !is_word(*c))
            {
                remap_hex(&mut out, i, 8, mask);
                i += 36;
                continue;
            }
        }
        // toolu_/msg_/req_ followed by hex digits: digits 2..10 changed.
        if boundary {
            let prefix = [&b"toolu_"[..], b"msg_", b"req_"]
                .into_iter()
                .find(|p| rest.starts_with(p));
            if let Some(p) = prefix {
                let tail = rest[p.len()..].iter().take_while(|c| is_word(**c)).count();
                if tail >= 10 && is_hex(&rest[p.len()..p.len() + 10]) {
                    remap_hex(&mut out, i + p.len() + 2, 8, mask >> 7);
                }
                i += p.len() + tail;
                continue;
            }
        }
        // An agent id: `a` and 16 hex digits (file names and lines alike).
        if boundary
            && rest.len() >= 17
            && rest[0] == b'a'
            && is_hex(&rest[1..17])
            && rest.get(17).is_none_or(|c| !is_word(*c))
        {
            remap_hex(&mut out, i + 1, 8, mask >> 13);
            i += 17;
            continue;
        }
        // An ISO time with milliseconds: 2026-11-24T10:48:34.380Z.
        if rest.len() >= 24
            && rest[4] == b'-'
            && rest[10] == b'T'
            && rest[23] == b'Z'
            && rest[..4].iter().all(u8::is_ascii_digit)
        {
            if let Ok(t) = chrono::NaiveDateTime::parse_from_str(
                std::str::from_utf8(&rest[..23]).unwrap_or(""),
                "%Y-%m-%dT%H:%M:%S%.3f",
            ) {
                let t = t + chrono::Duration::hours(copy as i64);
                out[i..i + 23]
                    .copy_from_slice(t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string().as_bytes());
                i += 24;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Generates the corpus (unless a complete one is there) and returns its
/// projects folder, file count and size in bytes.
fn corpus(base: &Path, target_bytes: u64) -> (PathBuf, u64, u64) {
    let dir = base.join(format!("transcripts-corpus-{}mib", target_bytes >> 20));
    let projects = dir.join("projects");
    let stamp = dir.join("complete");
    if let Ok(s) = std::fs::read_to_string(&stamp) {
        let mut it = s.split_whitespace().filter_map(|w| w.parse().ok());
        if let (Some(files), Some(bytes)) = (it.next(), it.next()) {
            return (projects, files, bytes);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    // Per fixture run: its files (path relative to the run, content).
    let runs: Vec<Vec<(PathBuf, Vec<u8>)>> = sources()
        .into_iter()
        .map(|run| {
            files_under(&run)
                .into_iter()
                .map(|rel| {
                    let bytes = std::fs::read(run.join(&rel)).expect("fixture");
                    (rel, bytes)
                })
                .collect()
        })
        .collect();
    let set_bytes: u64 = runs
        .iter()
        .flat_map(|f| f.iter().map(|(_, b)| b.len() as u64))
        .sum();
    let copies = target_bytes.div_ceil(set_bytes);
    let (mut files, mut bytes) = (0u64, 0u64);
    for copy in 0..copies {
        for (run, run_files) in runs.iter().enumerate() {
            for (rel, content) in run_files {
                // Copies spread over 20 projects per fixture project, as a
                // user's folder holds many projects of many sessions.
                let mut parts = rel.components();
                let project = parts.next().expect("project").as_os_str().to_string_lossy();
                let rest: PathBuf = parts.collect();
                let rest =
                    String::from_utf8(remap(rest.to_string_lossy().as_bytes(), run as u64, copy))
                        .expect("utf8");
                let path = projects.join(format!("{project}-{}", copy % 20)).join(rest);
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                let out = remap(content, run as u64, copy);
                bytes += out.len() as u64;
                files += 1;
                std::fs::write(&path, out).expect("write");
            }
        }
    }
    std::fs::write(&stamp, format!("{files} {bytes}\n")).expect("stamp");
    (projects, files, bytes)
}

fn import(db_dir: &Path, corpus: &Path) -> (f64, f64, f64, String) {
    let (wall, cpu, rss, out) = common::run_measured(
        Command::new(common::binary())
            .arg("--db")
            .arg(db_dir.join("agg.db"))
            .arg("--activity-dir")
            .arg(db_dir.join("activity"))
            .arg("import")
            .arg(corpus),
    );
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    (
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        rss,
        said.lines().next().unwrap_or("").to_string(),
    )
}

fn main() {
    let mib: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1024);
    let base = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).expect("bench dir");
    let started = std::time::Instant::now();
    let (projects, files, bytes) = corpus(&base, mib << 20);
    println!(
        "corpus: {files} files, {:.1} MiB in {} ({:.1} s to make or find)",
        bytes as f64 / (1 << 20) as f64,
        projects.display(),
        started.elapsed().as_secs_f64()
    );
    let db = common::bench_dir();
    let (wall, cpu, rss, said) = import(db.path(), &projects);
    println!("  {said}");
    println!(
        "import, new database : {wall:>7.2} s wall, {cpu:>7.2} s CPU, peak RSS {rss:.1} MB ({:.0} MiB/s)",
        bytes as f64 / (1 << 20) as f64 / wall
    );
    let (wall, cpu, rss, said) = import(db.path(), &projects);
    println!("  {said}");
    println!("import, unchanged    : {wall:>7.3} s wall, {cpu:>7.3} s CPU, peak RSS {rss:.1} MB");

    let db_file = db.path().join("agg.db");
    println!(
        "stats                : {:>7.3} s wall (median of 5)",
        common::median_wall(&db_file, &["stats"], 5)
    );
    // The queries `stats` makes, each through `query` (process included): the
    // kept figures of `metrics` and `delegations` (one row per session or
    // delegation), per day, project, model, agent, and tool calls by tool.
    let queries = [
        ("totals", "SELECT count(*), sum(m.tool_calls), sum(m.tool_failures), sum(m.api_calls), sum(m.cost_usd), sum(json_extract(m.tokens, '$.input')), sum(json_extract(m.tokens, '$.output')) FROM metrics m"),
        ("by day", "SELECT substr(s.start_time, 1, 10) AS day, count(*), sum(m.tool_calls), sum(m.cost_usd) FROM sessions s JOIN metrics m USING (session_id) GROUP BY day"),
        ("by project", "SELECT s.working_directory, count(*), sum(m.tool_calls), sum(m.cost_usd) FROM sessions s JOIN metrics m USING (session_id) GROUP BY s.working_directory"),
        ("by model", "SELECT j.key, sum(json_extract(j.value, '$.output')) FROM metrics m, json_each(m.tokens_by_model) j GROUP BY j.key"),
        ("by agent", "SELECT agent_type, count(*), sum(success), sum(tool_calls), sum(cost_usd) FROM delegations GROUP BY agent_type"),
        ("by tool", "SELECT tool_name, count(*) FROM events WHERE event_type = 'PreToolUse' GROUP BY tool_name"),
    ];
    for (name, sql) in queries {
        println!(
            "stats query {name:<10}: {:>7.3} s wall (median of 5, process included)",
            common::median_wall(&db_file, &["query", sql, "--format", "csv"], 5)
        );
    }
}
