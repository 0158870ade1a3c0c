//! The shareable HTML page (`export --format html`), opened in real headless
//! Chromium: what it shows of a real Claude Code run (each sub-agent in its
//! own lane, the failed tool calls, tokens and cost as the store has them, a
//! tool call's details by link), that it fetches nothing, and that a session
//! of 100,000 events renders without freezing the page.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{fixture, import_with, open, test_config};

/// Chromium, installed with apt-get when it is missing, so that `cargo test`
/// alone works on a fresh machine.
/// `CHROMIUM` names another binary.
fn chromium() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(p) = std::env::var_os("CHROMIUM") {
            return PathBuf::from(p);
        }
        let path = PathBuf::from("/usr/bin/chromium");
        if !path.exists() {
            crate::common::apt::install("chromium", "the HTML tests need Debian's chromium");
        }
        assert!(path.exists(), "{} is missing", path.display());
        path
    })
}

struct Rendered {
    dom: String,
    elapsed: Duration,
    /// The URLs requested by a page (not by Chromium itself), from its net log.
    page_requests: Vec<String>,
}

/// Opens `page` (with `fragment`) in headless Chromium, lets its scripts run
/// and returns the DOM after them. Fails past `limit` of wall time.
fn render(page: &Path, fragment: &str, limit: Duration, screenshot: Option<&Path>) -> Rendered {
    let profile = tempfile::tempdir().unwrap();
    let net_log = profile.path().join("net-log.json");
    let dom_file = profile.path().join("dom.html");
    let url = format!(
        "file://{}{fragment}",
        page.canonicalize().unwrap().display()
    );
    let mut cmd = Command::new(chromium());
    cmd.args(crate::common::chromium::HEADLESS)
        .arg(format!(
            "--user-data-dir={}",
            profile.path().join("profile").display()
        ))
        .arg(format!("--log-net-log={}", net_log.display()));
    match screenshot {
        Some(png) => cmd.arg(format!("--screenshot={}", png.display())),
        None => cmd.arg("--dump-dom"),
    };
    let started = Instant::now();
    let mut child = cmd
        .arg(&url)
        .stdout(std::fs::File::create(&dom_file).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish rendering {url} within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = started.elapsed();
    let dom = std::fs::read_to_string(&dom_file).unwrap();
    Rendered {
        dom,
        elapsed,
        page_requests: page_requests(&net_log),
    }
}

/// URL requests started on behalf of a page: Chromium's own (time, update
/// checks) have no initiator ("not an origin"); a file:// page's are "null".
fn page_requests(net_log: &Path) -> Vec<String> {
    let log: Value = serde_json::from_str(&std::fs::read_to_string(net_log).unwrap())
        .expect("the net log is JSON");
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
        .as_i64()
        .expect("the net log names its event types");
    log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_i64() == Some(start_job))
        .filter_map(|e| {
            let p = &e["params"];
            let url = p["url"].as_str()?;
            (p["initiator"].as_str() != Some("not an origin")).then(|| url.to_string())
        })
        .collect()
}

/// The attributes of the start tag around byte `at` of a serialized DOM
/// (Chromium writes every value in double quotes, `"` escaped).
fn tag_at(dom: &str, at: usize) -> HashMap<String, String> {
    let start = dom[..at].rfind('<').unwrap();
    let end = at + dom[at..].find('>').unwrap();
    let tag = &dom[start + 1..end];
    let mut attrs = HashMap::new();
    let mut rest = tag.split_once(' ').map_or("", |(_, r)| r);
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq].trim().to_string();
        let value_end = rest[eq + 2..].find('"').unwrap();
        let value = rest[eq + 2..eq + 2 + value_end]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        attrs.insert(name, value);
        rest = &rest[eq + 2 + value_end + 1..];
    }
    attrs
}

/// Every start tag carrying `attr="value"`: (position, attributes).
fn tags(dom: &str, attr: &str, value: &str) -> Vec<(usize, HashMap<String, String>)> {
    let needle = format!("{attr}=\"{value}\"");
    dom.match_indices(&needle)
        .map(|(i, _)| (i, tag_at(dom, i)))
        .filter(|(_, a)| a.get(attr).map(String::as_str) == Some(value))
        .collect()
}

/// The `data-value` of the first `data-metric="name"` at or after `from`.
fn metric(dom: &str, name: &str, from: usize) -> String {
    let needle = format!("data-metric=\"{name}\"");
    let at = from
        + dom[from..]
            .find(&needle)
            .unwrap_or_else(|| panic!("no metric {name}"));
    tag_at(dom, at)["data-value"].clone()
}

fn f64_of(s: &str) -> f64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}"))
}

fn thousands(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `export <session> --format html -o <path>` with the real binary.
fn export_page(db: &Path, session: &str, path: &Path) {
    let out = Command::new(assert_cmd::cargo::cargo_bin("mpm-aggregate"))
        .arg("--db")
        .arg(db)
        .args(["export", session, "--format", "html", "-o"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The page's own markup, without the embedded data (which may quote URLs).
fn markup(html: &str) -> String {
    let open = html
        .find("<script type=\"application/json\"")
        .expect("the data script");
    let close = open + html[open..].find("</script>").unwrap();
    format!("{}{}", &html[..open], &html[close..])
}

#[test]
fn the_page_of_a_real_run_shows_lanes_failures_tokens_and_cost_and_fetches_nothing() {
    let run = fixture("claude-code-2.1").join("a-mpm-fast");
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    import_with(&config, &[run.join("hooks.jsonl"), run.join("transcripts")]);
    let db = open(&config.database);
    let session: String = db
        .query_row("SELECT session_id FROM sessions", [], |r| r.get(0))
        .unwrap();
    let page = dir.path().join("page.html");
    export_page(&config.database, &session[..4], &page);
    let html = std::fs::read_to_string(&page).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&page).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "a page is for sharing");
    }

    // Self-contained: a policy that forbids every fetch, and no reference out.
    assert!(html.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
    ));
    let own = markup(&html).to_ascii_lowercase();
    for pattern in ["src=", "href=", "url(", "@import", "http://", "https://"] {
        assert!(!own.contains(pattern), "the page's markup has {pattern}");
    }
    // The embedded data cannot end its script element early.
    let data = &html[html.find("id=\"session-data\">").unwrap()..];
    let data = &data[data.find('>').unwrap() + 1..data.find("</script>").unwrap()];
    assert!(!data.contains('<'));
    let embedded: Value = serde_json::from_str(data).expect("the embedded data is JSON");
    assert_eq!(embedded["events"].as_array().unwrap().len(), 91);

    let shown = render(&page, "", Duration::from_secs(60), None);
    let dom = &shown.dom;
    assert!(dom.contains("data-rendered=\"true\""), "the script ran");
    assert!(
        shown.page_requests.is_empty(),
        "the page fetched {:?}",
        shown.page_requests
    );

    // Lanes: the main thread, then each sub-agent in a lane of its own.
    let lanes: Vec<(usize, HashMap<String, String>)> = dom
        .match_indices("class=\"lane\"")
        .map(|(i, _)| (i, tag_at(dom, i)))
        .collect();
    let keys: Vec<&str> = lanes.iter().map(|(_, a)| a["data-lane"].as_str()).collect();
    let delegations: Vec<(String, String, String, Option<f64>, i64)> = db
        .prepare("SELECT agent_id, agent_type, tokens, cost_usd, tool_failures FROM delegations ORDER BY start_time")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(delegations.len(), 2);
    let mut want_keys = vec!["main"];
    want_keys.extend(delegations.iter().map(|d| d.0.as_str()));
    assert_eq!(keys, want_keys, "one lane per agent");
    let types: HashSet<&str> = lanes
        .iter()
        .filter_map(|(_, a)| a.get("data-agent-type").map(String::as_str))
        .collect();
    assert_eq!(types, HashSet::from(["engineer", "qa"]));
    let tops: HashSet<&str> = lanes.iter().map(|(_, a)| a["style"].as_str()).collect();
    assert_eq!(tops.len(), 3, "lanes at distinct heights");
    let timeline_end = dom.find("class=\"columns\"").unwrap();
    let lane_text = |k: usize| {
        let end = lanes.get(k + 1).map_or(timeline_end, |l| l.0);
        &dom[lanes[k].0..end]
    };
    // The two sub-agents ran at once: their lanes' spans overlap in time.
    let span = |agent: &str| -> (i64, i64) {
        db.query_row(
            "SELECT CAST(strftime('%s', start_time) AS INTEGER) * 1000 + CAST(substr(start_time, 21, 3) AS INTEGER),
                    CAST(strftime('%s', end_time) AS INTEGER) * 1000 + CAST(substr(end_time, 21, 3) AS INTEGER)
             FROM delegations WHERE agent_id = ?1",
            [agent],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    let (a, b) = (span(&delegations[0].0), span(&delegations[1].0));
    assert!(
        a.0 < b.1 && b.0 < a.1,
        "the fixture's sub-agents ran in parallel"
    );
    for k in 1..3 {
        assert!(
            lane_text(k).contains("class=\"span\""),
            "lane {k} draws its sub-agent's span"
        );
    }

    // The failed tool calls: marked in their agent's lane and listed with their error.
    let failed: Vec<(String, String, String)> = db
        .prepare("SELECT json_extract(data, '$.tool_use_id'), agent_id, json_extract(data, '$.error') FROM events WHERE event_type = 'PostToolUseFailure'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(failed.len(), 2);
    for (call, agent, error) in &failed {
        let k = keys.iter().position(|k| k == agent).unwrap();
        let bars = tags(lane_text(k), "data-call", call);
        assert_eq!(
            bars.len(),
            1,
            "the failed call {call} is a bar in {agent}'s lane"
        );
        assert_eq!(bars[0].1["data-status"], "failed");
        assert!(bars[0].1["class"].split(' ').any(|c| c == "failed"));
        let listed = tags(dom, "data-call", call)
            .into_iter()
            .find(|(_, a)| a["class"] == "failure")
            .expect("listed among the failures");
        assert_eq!(listed.1["data-lane"], *agent);
        let first_line = error.lines().next().unwrap();
        assert!(dom[listed.0..]
            .split("</li>")
            .next()
            .unwrap()
            .contains(first_line));
    }
    let bars_failed = dom[..timeline_end]
        .matches("data-status=\"failed\"")
        .count();
    assert_eq!(bars_failed, 2, "only the failed calls are marked failed");

    // Tokens and cost, as the store has them: session, sub-agents, turns.
    let (tokens, cost, failures): (String, f64, i64) = db
        .query_row(
            "SELECT tokens, cost_usd, tool_failures FROM metrics",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let tokens: Value = serde_json::from_str(&tokens).unwrap();
    for kind in ["input", "output", "cache_creation", "cache_read"] {
        assert_eq!(
            metric(dom, &format!("tokens.{kind}"), 0),
            tokens[kind].as_i64().unwrap().to_string(),
            "tokens {kind}"
        );
    }
    assert_eq!(f64_of(&metric(dom, "cost_usd", 0)), cost);
    assert!(
        dom.contains(&format!(">${cost:.4}<")),
        "the cost is shown as ${cost:.4}"
    );
    assert_eq!(metric(dom, "tool_failures", 0), failures.to_string());
    for (agent, _, d_tokens, d_cost, d_failures) in &delegations {
        let card = tags(dom, "data-agent-id", agent)
            .into_iter()
            .find(|(_, a)| a["class"] == "agent-card")
            .expect("a card per sub-agent");
        let t: Value = serde_json::from_str(d_tokens).unwrap();
        let sum: i64 = ["input", "output", "cache_creation", "cache_read"]
            .iter()
            .map(|k| t[k].as_i64().unwrap())
            .sum();
        assert_eq!(metric(dom, "agent.tokens", card.0), sum.to_string());
        assert_eq!(
            f64_of(&metric(dom, "agent.cost_usd", card.0)),
            d_cost.unwrap()
        );
        assert_eq!(
            metric(dom, "agent.tool_failures", card.0),
            d_failures.to_string()
        );
    }
    // Every API call is priced, so the turns add up to the session.
    let turn_costs: Vec<f64> = dom
        .match_indices("data-metric=\"turn.cost\"")
        .map(|(i, _)| f64_of(&tag_at(dom, i)["data-value"]))
        .collect();
    assert_eq!(turn_costs.len(), 2, "one cost per turn");
    assert!((turn_costs.iter().sum::<f64>() - cost).abs() < 1e-9);
    let turn_tokens: i64 = dom
        .match_indices("data-metric=\"turn.tokens\"")
        .map(|(i, _)| f64_of(&tag_at(dom, i)["data-value"]) as i64)
        .sum();
    assert_eq!(turn_tokens, 117 + 1_440 + 43_645 + 209_649);

    // A link to a failed call opens its details, error included.
    let (call, _, error) = &failed[0];
    let opened = render(
        &page,
        &format!("#call={call}"),
        Duration::from_secs(60),
        None,
    );
    let drawer = tags(&opened.dom, "id", "drawer").remove(0);
    assert!(!drawer.1.contains_key("hidden"), "the details are open");
    assert_eq!(drawer.1["data-kind"], "call");
    assert_eq!(drawer.1["data-id"], *call);
    let body = &opened.dom[drawer.0..];
    assert!(body.contains("class=\"error\""));
    assert!(body.contains(error.lines().last().unwrap()));

    // The check above would see a page's fetch: a page that makes some.
    let control = dir.path().join("control.html");
    std::fs::write(
        &control,
        "<!doctype html><img src=\"http://127.0.0.1:9/x.png\"><script>fetch('http://127.0.0.1:9/y').catch(function () {})</script>",
    )
    .unwrap();
    let fetched = render(&control, "", Duration::from_secs(60), None).page_requests;
    assert!(
        fetched.iter().any(|u| u.starts_with("http://127.0.0.1:9/")),
        "the net log shows a page's requests: {fetched:?}"
    );
}

/// The fixture run's transcript events, copied `copies` times into one
/// session as our own export lines: every id (tool calls, sub-agents, API
/// calls, prompts) made new per copy, each copy 6 s after the previous one.
fn replicated_run(dir: &Path, copies: usize) -> (PathBuf, usize) {
    let seed = test_config(&dir.join("seed"));
    std::fs::create_dir_all(dir.join("seed")).unwrap();
    import_with(
        &seed,
        &[fixture("claude-code-2.1").join("a-mpm-fast/transcripts")],
    );
    let conn = mpm_aggregate::store::open_read_only(&seed.database).unwrap();
    let session: String = conn
        .query_row("SELECT session_id FROM sessions", [], |r| r.get(0))
        .unwrap();
    let mut text = Vec::new();
    mpm_aggregate::documents::export::write_export(
        &conn,
        &session,
        mpm_aggregate::ExportFormat::Events,
        &mut text,
    )
    .unwrap();
    let events: Vec<Value> = serde_json::from_slice(&text).unwrap();
    let id_keys = [
        "tool_use_id",
        "agent_id",
        "agentId",
        "message_id",
        "prompt_id",
        "request_id",
        "transcript_uuid",
    ];
    let mut ids = HashSet::new();
    fn collect(v: &Value, keys: &[&str], ids: &mut HashSet<String>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    match x {
                        Value::String(s) if keys.contains(&k.as_str()) => {
                            ids.insert(s.clone());
                        }
                        _ => collect(x, keys, ids),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| collect(x, keys, ids)),
            _ => {}
        }
    }
    events.iter().for_each(|e| collect(e, &id_keys, &mut ids));
    fn rewrite(v: &mut Value, ids: &HashSet<String>, copy: usize, shift: chrono::Duration) {
        match v {
            Value::Object(o) => {
                for (k, x) in o.iter_mut() {
                    if k == "timestamp" {
                        if let Some(t) = x
                            .as_str()
                            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                        {
                            *x = Value::from(
                                (t + shift)
                                    .to_utc()
                                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                            );
                            continue;
                        }
                    }
                    rewrite(x, ids, copy, shift);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| rewrite(x, ids, copy, shift)),
            Value::String(s) if ids.contains(s.as_str()) => *s = format!("{s}-{copy}"),
            _ => {}
        }
    }
    let path = dir.join("replicated.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for copy in 0..copies {
        let shift = chrono::Duration::seconds(6 * copy as i64);
        for e in &events {
            let mut e = e.clone();
            rewrite(&mut e, &ids, copy, shift);
            serde_json::to_writer(&mut out, &e).unwrap();
            std::io::Write::write_all(&mut out, b"\n").unwrap();
        }
    }
    std::io::Write::flush(&mut out).unwrap();
    (path, events.len() * copies)
}

#[test]
fn a_page_of_100000_events_renders_without_freezing() {
    let dir = tempfile::tempdir().unwrap();
    let copies = 100_000usize.div_ceil(65);
    let (lines, total) = replicated_run(dir.path(), copies);
    assert!(total >= 100_000);
    let config = test_config(dir.path());
    // Through the real import path, without session files: a session file
    // is rewritten at each of the 3,000 turns' ends, which is not what this
    // test measures.
    let writer = mpm_aggregate::store::writer::Writer::spawn(
        mpm_aggregate::store::writer::WriterConfig::from_config(&config),
    )
    .unwrap();
    let import_started = Instant::now();
    let report = mpm_aggregate::import::import_files(
        &writer,
        &[lines],
        &mpm_aggregate::ingest::NormalizeOptions::default(),
        false,
    )
    .unwrap();
    writer.shutdown().unwrap();
    eprintln!(
        "imported {total} events in {:.1}s",
        import_started.elapsed().as_secs_f64()
    );
    let db = open(&config.database);
    let (session, events): (String, i64) = db
        .query_row("SELECT session_id, event_count FROM sessions", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(events as usize, total, "{report:?}");
    let (delegations, failures): (i64, i64) = db
        .query_row(
            "SELECT total_delegations, tool_failures FROM metrics",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        delegations as usize,
        2 * copies,
        "every copy's sub-agents are their own"
    );
    assert_eq!(failures as usize, 2 * copies);

    let page = dir.path().join("big.html");
    let started = Instant::now();
    export_page(&config.database, &session, &page);
    let export_time = started.elapsed();
    let size = std::fs::metadata(&page).unwrap().len();
    let shown = render(&page, "", Duration::from_secs(60), None);
    let dom = &shown.dom;
    let attr = |name: &str| {
        let at = dom.find("<body").unwrap();
        tag_at(dom, at + 1)[name].clone()
    };
    eprintln!(
        "100,000-event page: {total} events, {:.1} MB, exported in {:.1}s (debug build); in Chromium: drawn {} ms after the navigation started (script {} ms), Chromium done in {:.1}s",
        size as f64 / 1e6,
        export_time.as_secs_f64(),
        attr("data-ready-ms"),
        attr("data-render-ms"),
        shown.elapsed.as_secs_f64(),
    );
    assert_eq!(attr("data-rendered"), "true");
    assert_eq!(attr("data-events"), total.to_string());
    assert_eq!(attr("data-lanes"), (1 + 2 * copies).to_string());
    // Drawn for the screen only: some lanes and event rows, not all of them.
    let lanes = dom.matches("class=\"lane\"").count();
    let rows = dom.matches("class=\"ev-row").count();
    assert!((3..60).contains(&lanes), "{lanes} lanes in the DOM");
    assert!((10..100).contains(&rows), "{rows} event rows in the DOM");
    let listed = format!(">{} failed tool calls<", thousands(failures));
    assert!(dom.contains(&listed), "the failures are counted: {listed}");
    assert!(shown.page_requests.is_empty());
}
