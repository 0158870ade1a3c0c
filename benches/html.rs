//! The HTML page: a session of 100,000 events exported as a page by the
//! real binary (time and the process's peak RSS), then a page of 100,000
//! events opened in headless Chromium (the time until the page is drawn, as
//! the page itself measures it from the start of the navigation, and
//! Chromium's wall time from start to exit).
//!
//! cargo bench --bench html [-- EVENTS]

#[path = "../tests/it/common/chromium.rs"]
mod chromium_flags;
mod common;

use std::process::{Command, Stdio};

fn export(db: &std::path::Path, session: &str, out: &std::path::Path) -> (f64, f64) {
    let (wall, _, peak, output) = common::run_measured(
        Command::new(common::binary())
            .arg("--db")
            .arg(db)
            .args(["export", session, "--format", "html", "--force", "-o"])
            .arg(out),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (wall.as_secs_f64(), peak)
}

/// A `data-…` attribute of the rendered page's `<body>`.
fn body_attr(dom: &str, name: &str) -> f64 {
    let body = &dom[dom.find("<body").expect("a body")..];
    let body = &body[..body.find('>').unwrap()];
    let at = body
        .find(&format!("{name}=\""))
        .unwrap_or_else(|| panic!("no {name}"))
        + name.len()
        + 2;
    body[at..at + body[at..].find('"').unwrap()]
        .parse()
        .unwrap()
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = common::bench_dir();
    let session = "bench-one-long-session";
    let (import_wall, _, _) = common::import_with_binary(
        dir.path(),
        "html.db",
        &common::one_session_lines(n, session),
    );
    println!(
        "html: one session of {n} events (imported in {:.1} s)",
        import_wall.as_secs_f64()
    );
    let (mut times, mut rss, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..3 {
        let out = dir.path().join(format!("page-{run}.html"));
        let (wall, peak) = export(&dir.path().join("html.db"), session, &out);
        times.push(wall);
        rss.push(peak);
        sizes.push(std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) as f64 / 1e6);
        let _ = std::fs::remove_file(&out);
    }
    println!(
        "  export     : {:>7.2} s (median of 3), {:.0} MB written, peak RSS {:.1} MB",
        common::median(times),
        common::median(sizes),
        common::median(rss)
    );

    let chromium = std::path::Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        println!(
            "  (no /usr/bin/chromium: apt-get install -y chromium to time the page in a browser)"
        );
        return;
    }
    // 100,000 lines; the capture repeats some payloads exactly, stored once.
    let m = 100_000;
    common::import_with_binary(
        dir.path(),
        "page.db",
        &common::one_session_lines(m, session),
    );
    let page = dir.path().join("page.html");
    export(&dir.path().join("page.db"), session, &page);
    let size = std::fs::metadata(&page).unwrap().len() as f64 / 1e6;
    let (mut ready, mut script, mut walls, mut events) = (Vec::new(), Vec::new(), Vec::new(), 0.0);
    for run in 0..3 {
        let profile = dir.path().join(format!("chromium-{run}"));
        let started = std::time::Instant::now();
        let out = Command::new(chromium)
            .args(chromium_flags::HEADLESS)
            .arg("--dump-dom")
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("file://{}", page.display()))
            .stderr(Stdio::null())
            .output()
            .expect("chromium runs");
        walls.push(started.elapsed().as_secs_f64());
        let dom = String::from_utf8_lossy(&out.stdout);
        events = body_attr(&dom, "data-events");
        ready.push(body_attr(&dom, "data-ready-ms"));
        script.push(body_attr(&dom, "data-render-ms"));
    }
    println!(
        "  in Chromium: a page of {events} events ({size:.0} MB) drawn {:.0} ms after the navigation started \
         (its script {:.0} ms), Chromium {:.1} s from start to exit (medians of 3)",
        common::median(ready),
        common::median(script),
        common::median(walls)
    );
}
