//! `push postgres://…` against a real PostgreSQL server started by the test
//! (`common::postgres`): stores of real Claude Code runs pushed from several
//! "machines" add up, pushing again changes nothing, the same imported file
//! pushed from two machines is one copy, an interrupted push resumes, the
//! README's team queries give the stores' own figures, and the recorder with
//! `push_url` pushes as it records, also when the database comes up late.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::common::postgres::PgServer;
use crate::common::{count, fixture, import_with, open, push, test_config, wait_until};

fn shared_run(name: &str) -> PathBuf {
    fixture("claude-code-2.1").join(name)
}

fn our_run(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/claude-code")
        .join(name)
}

/// A store in `dir` made from the transcripts and hooks of `runs`.
fn store(dir: &Path, runs: &[PathBuf]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let config = test_config(dir);
    let files: Vec<PathBuf> = runs
        .iter()
        .flat_map(|r| [r.join("transcripts"), r.join("hooks.jsonl")])
        .collect();
    import_with(&config, &files);
    config.database
}

fn push_ok(db: &Path, args: &[&str]) -> String {
    let out = push(db, args);
    assert!(
        out.status.success(),
        "push failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn pg_count(pg: &mut postgres::Client, sql: &str) -> i64 {
    pg.query_one(sql, &[]).unwrap().get(0)
}

/// Every pushed row as text, in key order: what "changes nothing" compares.
fn snapshot(pg: &mut postgres::Client) -> Vec<String> {
    let mut rows = Vec::new();
    for sql in [
        "SELECT row_to_json(t)::text FROM (SELECT * FROM events ORDER BY event_key) t",
        "SELECT (row_to_json(t)::jsonb - 'pushed_at')::text FROM (SELECT * FROM sessions ORDER BY session_id) t",
        "SELECT row_to_json(t)::text FROM (SELECT * FROM delegations ORDER BY session_id, delegation_key) t",
        "SELECT row_to_json(t)::text FROM (SELECT * FROM metrics ORDER BY session_id) t",
    ] {
        for r in pg.query(sql, &[]).unwrap() {
            rows.push(r.get::<_, String>(0));
        }
    }
    rows
}

fn local_sum(dbs: &[&Path], sql: &str) -> i64 {
    dbs.iter().map(|db| count(db, sql)).sum()
}

/// The README's team queries, verbatim there.
const COST_PER_HOST_PER_DAY: &str =
    "SELECT s.host_id, left(s.start_time, 10) AS day, count(*) AS sessions,
       round(sum(m.cost_usd)::numeric, 4) AS cost_usd,
       sum((m.tokens->>'output')::bigint) AS output_tokens
FROM sessions s JOIN metrics m USING (session_id)
GROUP BY 1, 2 ORDER BY 2, 1";

const FAILING_TOOLS: &str =
    "SELECT e.tool_name, count(*) AS failures, count(DISTINCT s.host_id) AS hosts,
       count(DISTINCT e.session_id) AS sessions
FROM events e JOIN sessions s USING (session_id)
WHERE e.event_type = 'PostToolUseFailure'
GROUP BY 1 ORDER BY 2 DESC, 1";

#[test]
fn stores_from_two_machines_add_up_and_pushing_again_changes_nothing() {
    let pg_server = PgServer::start();
    let url = pg_server.create_db("team");
    let tmp = tempfile::tempdir().unwrap();
    let alice = store(&tmp.path().join("alice"), &[shared_run("a-mpm-fast")]);
    let bob = store(
        &tmp.path().join("bob"),
        &[our_run("nest-mpm-fast"), our_run("compact-mpm-fast")],
    );
    // Carol imported the very files Alice did.
    let carol = store(&tmp.path().join("carol"), &[shared_run("a-mpm-fast")]);

    let said = push_ok(
        &alice,
        &[&url, "--host-id", "alice@laptop", "--batch-size", "25"],
    );
    let events_a = count(&alice, "SELECT count(*) FROM events");
    assert_eq!(
        said.trim(),
        format!("pushed {events_a} events (0 changed), 1 session, 2 delegations to {url}")
    );
    push_ok(&bob, &[&url, "--host-id", "bob@desk"]);

    let mut pg = pg_server.client("team");
    let both = [alice.as_path(), bob.as_path()];
    for table in ["events", "sessions", "delegations", "metrics"] {
        assert_eq!(
            pg_count(&mut pg, &format!("SELECT count(*) FROM {table}")),
            local_sum(&both, &format!("SELECT count(*) FROM {table}")),
            "{table}: the team has the sum of both stores"
        );
    }
    assert_eq!(
        pg_count(
            &mut pg,
            "SELECT count(*) FROM sessions WHERE host_id = 'bob@desk'"
        ),
        2
    );
    // The figures came as they are in each store.
    for db in both {
        let c = open(db);
        let mut stmt = c
            .prepare("SELECT session_id, tool_calls, tool_failures, api_calls, tokens, cost_usd FROM metrics")
            .unwrap();
        let local: Vec<(String, i64, i64, i64, String, Option<f64>)> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (id, calls, failures, api, tokens, cost) in local {
            let row = pg
                .query_one(
                    "SELECT tool_calls, tool_failures, api_calls, tokens::text, cost_usd FROM metrics WHERE session_id = $1",
                    &[&id],
                )
                .unwrap();
            assert_eq!(row.get::<_, i64>(0), calls);
            assert_eq!(row.get::<_, i64>(1), failures);
            assert_eq!(row.get::<_, i64>(2), api);
            let pushed: Value = serde_json::from_str(row.get::<_, &str>(3)).unwrap();
            assert_eq!(pushed, serde_json::from_str::<Value>(&tokens).unwrap());
            assert_eq!(row.get::<_, Option<f64>>(4), cost);
        }
    }

    // Again: nothing to send, nothing changes.
    let before = snapshot(&mut pg);
    for (db, host) in [(&alice, "alice@laptop"), (&bob, "bob@desk")] {
        let said = push_ok(db, &[&url, "--host-id", host]);
        assert_eq!(said.trim(), format!("nothing new to push to {url}"));
    }
    assert_eq!(snapshot(&mut pg), before);

    // Carol's copy of Alice's file is the same happenings: no row more.
    let said = push_ok(&carol, &[&url, "--host-id", "carol@box"]);
    assert!(
        said.starts_with(&format!("pushed {events_a} events")),
        "{said}"
    );
    for table in ["events", "sessions", "delegations", "metrics"] {
        assert_eq!(
            pg_count(&mut pg, &format!("SELECT count(*) FROM {table}")),
            local_sum(&both, &format!("SELECT count(*) FROM {table}")),
            "{table} after a second machine pushed the same file"
        );
    }
    assert_eq!(
        pg_count(&mut pg, "SELECT count(*) FROM sessions WHERE host_id = 'alice@laptop' AND pushed_by = 'carol@box'"),
        1,
        "the session stays Alice's, last pushed by Carol"
    );

    // The team queries give what the stores say.
    let mut expected = Vec::new();
    for (db, host) in [(&alice, "alice@laptop"), (&bob, "bob@desk")] {
        let c = open(db);
        let mut stmt = c
            .prepare(
                "SELECT substr(s.start_time, 1, 10), count(*), round(sum(m.cost_usd), 4), sum(json_extract(m.tokens, '$.output'))
                 FROM sessions s JOIN metrics m USING (session_id) GROUP BY 1",
            )
            .unwrap();
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    host.to_string(),
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, f64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .unwrap();
        expected.extend(rows.map(Result::unwrap));
    }
    expected.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
    let got: Vec<(String, String, i64, f64, i64)> = pg
        .query(
            &format!("SELECT host_id, day, sessions, cost_usd::float8, output_tokens::int8 FROM ({COST_PER_HOST_PER_DAY}) q"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(got, expected, "cost per developer per day");
    assert!(
        got.iter().all(|r| r.3 > 0.0),
        "every session has a price: {got:?}"
    );

    let mut failing: std::collections::BTreeMap<String, (i64, i64, i64)> = Default::default();
    for db in both {
        let c = open(db);
        let mut stmt = c
            .prepare(
                "SELECT tool_name, count(*), count(DISTINCT session_id) FROM events
                 WHERE event_type = 'PostToolUseFailure' GROUP BY 1",
            )
            .unwrap();
        for row in stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .unwrap()
        {
            let (tool, n, sessions) = row.unwrap();
            let e = failing.entry(tool).or_default();
            *e = (e.0 + n, e.1 + 1, e.2 + sessions);
        }
    }
    let mut expected: Vec<(String, i64, i64, i64)> = failing
        .into_iter()
        .map(|(t, (n, h, s))| (t, n, h, s))
        .collect();
    expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let got: Vec<(String, i64, i64, i64)> = pg
        .query(FAILING_TOOLS, &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert!(!got.is_empty());
    assert!(
        got.iter().any(|r| r.2 == 2),
        "a tool failed on both machines: {got:?}"
    );
    assert_eq!(got, expected, "failing tools across machines");
}

#[test]
fn an_interrupted_push_resumes_where_it_stopped() {
    let pg_server = PgServer::start();
    let url = pg_server.create_db("team");
    let whole_url = pg_server.create_db("whole");
    let tmp = tempfile::tempdir().unwrap();
    let db = store(
        &tmp.path().join("store"),
        &[shared_run("a-mpm-fast"), our_run("nest-mpm-fast")],
    );
    let total = count(&db, "SELECT count(*) FROM events");
    assert!(total > 60, "{total}");

    // The schema, then a server that refuses every batch once it holds 30 events.
    drop(mpm_aggregate::push::postgres::connect(&url).unwrap());
    let mut pg = pg_server.client("team");
    pg.batch_execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF (SELECT count(*) FROM events) >= 30 THEN RAISE EXCEPTION 'no space left on device (test)'; END IF;
           RETURN NULL;
         END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION refuse();",
    )
    .unwrap();
    let out = push(&db, &[&url, "--host-id", "h1", "--batch-size", "10"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        format!("error: PostgreSQL {url}: no space left on device (test)"),
        "one clear line"
    );
    assert_eq!(
        pg_count(&mut pg, "SELECT count(*) FROM events"),
        30,
        "three batches committed"
    );
    assert_eq!(pg_count(&mut pg, "SELECT count(*) FROM sessions"), 0);

    // The server has room again: the push goes on from the 31st event.
    pg.batch_execute("DROP TRIGGER refuse ON events").unwrap();
    let said = push_ok(&db, &[&url, "--host-id", "h1", "--batch-size", "10"]);
    assert!(
        said.starts_with(&format!(
            "pushed {} events (0 changed), 2 sessions",
            total - 30
        )),
        "{said}"
    );
    // Just as one uninterrupted push.
    push_ok(&db, &[&whole_url, "--host-id", "h1"]);
    let mut whole = pg_server.client("whole");
    assert_eq!(snapshot(&mut pg), snapshot(&mut whole));
    assert_eq!(pg_count(&mut pg, "SELECT count(*) FROM events"), total);
}

/// A child process killed when the test ends, failed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn the_recorder_pushes_as_it_records_and_a_target_down_does_not_stop_it() {
    let pg_server = PgServer::start();
    // The database does not exist yet: every push fails until it does.
    let url = pg_server.url("late");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let expected = {
        let config = test_config(&dir.join("reference"));
        import_with(&config, &[shared_run("a-mpm-fast").join("transcripts")]);
        count(&config.database, "SELECT count(*) FROM events")
    };
    copy_tree(
        &shared_run("a-mpm-fast").join("transcripts"),
        &dir.join("projects"),
    );
    std::fs::write(
        dir.join("cfg.toml"),
        format!("[event_aggregator]\npush_url = \"{url}\"\nhost_id = \"rec@host\"\n"),
    )
    .unwrap();
    let out = std::fs::File::create(dir.join("recorder.out")).unwrap();
    let mut recorder = Killed(
        crate::common::start_command(dir, crate::common::free_port(), &["--config", "cfg.toml"])
            .args(["--no-monitor", "--transcripts", "projects"])
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    );
    let db = dir.join("rec.db");
    let recorded = wait_until(Duration::from_secs(30), || {
        count(&db, "SELECT count(*) FROM events") == expected
    });
    let log = || std::fs::read_to_string(dir.join("recorder.out")).unwrap_or_default();
    assert!(
        recorded,
        "recording goes on while the target is down: {}",
        log()
    );
    assert!(
        wait_until(Duration::from_secs(10), || log()
            .contains("failed (retrying with backoff; recording goes on)")),
        "{}",
        log()
    );

    pg_server.create_db("late");
    let mut pg = pg_server.client("late");
    let pushed = wait_until(Duration::from_secs(45), || {
        pg.query_one("SELECT count(*) FROM sessions", &[])
            .map(|r| r.get::<_, i64>(0) == 1)
            .unwrap_or(false)
    });
    assert!(pushed, "pushed once the database is there: {}", log());
    assert_eq!(pg_count(&mut pg, "SELECT count(*) FROM events"), expected);
    assert_eq!(
        pg_count(
            &mut pg,
            "SELECT count(*) FROM sessions WHERE host_id = 'rec@host'"
        ),
        1
    );
    let pid = nix::unistd::Pid::from_raw(recorder.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = recorder.0.wait().unwrap();
    assert!(status.success(), "{}", log());
    assert!(
        log().contains(&format!("pushed {expected} events")),
        "{}",
        log()
    );
}

#[test]
fn events_changed_by_a_later_source_are_sent_again() {
    let pg_server = PgServer::start();
    let url = pg_server.create_db("team");
    let fresh_url = pg_server.create_db("fresh");
    let tmp = tempfile::tempdir().unwrap();
    let run = shared_run("a-mpm-fast");
    let config = test_config(tmp.path());
    import_with(&config, &[run.join("hooks.jsonl")]);
    let db = config.database.clone();
    let hooks_only = count(&db, "SELECT count(*) FROM events");
    push_ok(&db, &[&url, "--host-id", "h"]);

    // The transcripts bring true times and tokens into the events the hooks made.
    import_with(&config, &[run.join("transcripts")]);
    let merged = count(&db, "SELECT count(*) FROM events WHERE origin LIKE '%,%'");
    assert!(merged > 0);
    let total = count(&db, "SELECT count(*) FROM events");
    let said = push_ok(&db, &[&url, "--host-id", "h"]);
    let changed: i64 = said
        .split(" (")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        said.starts_with(&format!(
            "pushed {} events ({changed} changed), 1 session",
            total - hooks_only
        )),
        "{said}"
    );
    assert!(changed >= merged, "{said}: {merged} events were merged");
    assert_eq!(
        count(&db, "SELECT count(*) FROM push_changes"),
        0,
        "changes every target was sent are forgotten"
    );

    // What the team has is what one push of the final store gives.
    push_ok(&db, &[&fresh_url, "--host-id", "h"]);
    let mut pg = pg_server.client("team");
    let mut fresh = pg_server.client("fresh");
    assert_eq!(snapshot(&mut pg), snapshot(&mut fresh));
}

#[test]
fn push_watch_sends_what_arrives_until_interrupted() {
    let pg_server = PgServer::start();
    let url = pg_server.create_db("team");
    let tmp = tempfile::tempdir().unwrap();
    let config = test_config(tmp.path());
    import_with(&config, &[shared_run("a-mpm-fast").join("transcripts")]);
    let db = config.database.clone();
    let out = std::fs::File::create(tmp.path().join("watch.out")).unwrap();
    let mut watcher = Killed(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("mpm-aggregate"))
            .arg("--db")
            .arg(&db)
            .args(["push", &url, "--watch", "--host-id", "w"])
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    );
    let mut pg = pg_server.client("team");
    // The schema comes with the first push: until then, -1.
    let counted = |pg: &mut postgres::Client, sql: &str| {
        pg.query_one(sql, &[])
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(-1)
    };
    let pg_events = |pg: &mut postgres::Client| counted(pg, "SELECT count(*) FROM events");
    let first = count(&db, "SELECT count(*) FROM events");
    assert!(wait_until(Duration::from_secs(20), || pg_events(&mut pg) == first));

    // Another session arrives while it watches.
    import_with(&config, &[our_run("nest-mpm-fast").join("transcripts")]);
    let all = count(&db, "SELECT count(*) FROM events");
    assert!(all > first);
    assert!(wait_until(Duration::from_secs(20), || counted(
        &mut pg,
        "SELECT count(*) FROM sessions"
    ) == 2
        && pg_events(&mut pg) == all));

    let pid = nix::unistd::Pid::from_raw(watcher.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = watcher.0.wait().unwrap();
    let said = std::fs::read_to_string(tmp.path().join("watch.out")).unwrap();
    assert!(status.success(), "{said}");
    // A line per push that sent something (the import may straddle two).
    let sent: Vec<i64> = said
        .lines()
        .map(|l| {
            l.strip_prefix("pushed ")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("a report line: {l:?} in {said}"))
        })
        .collect();
    assert!(sent.len() >= 2, "{said}");
    assert_eq!(sent[0], first, "{said}");
    assert_eq!(sent.iter().sum::<i64>(), all, "{said}");
}

#[test]
fn a_push_killed_midway_resumes_without_a_duplicate() {
    let pg_server = PgServer::start();
    let url = pg_server.create_db("team");
    let tmp = tempfile::tempdir().unwrap();
    let db = store(
        &tmp.path().join("store"),
        &[shared_run("a-mpm-fast"), our_run("nest-mpm-fast")],
    );
    let total = count(&db, "SELECT count(*) FROM events");

    // A slow server (50 ms a batch), so that the kill lands in the middle.
    drop(mpm_aggregate::push::postgres::connect(&url).unwrap());
    let mut pg = pg_server.client("team");
    pg.batch_execute(
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.05); RETURN NULL; END $$;
         CREATE TRIGGER slow BEFORE INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION slow();",
    )
    .unwrap();
    let mut pusher = Killed(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("mpm-aggregate"))
            .arg("--db")
            .arg(&db)
            .args(["push", &url, "--host-id", "h", "--batch-size", "2"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(wait_until(Duration::from_secs(30), || pg_count(
        &mut pg,
        "SELECT count(*) FROM events"
    ) >= 20));
    pusher.0.kill().unwrap(); // SIGKILL
    pusher.0.wait().unwrap();
    let committed = pg_count(&mut pg, "SELECT count(*) FROM events");
    assert!(committed < total, "killed midway: {committed} of {total}");

    pg.batch_execute("DROP TRIGGER slow ON events").unwrap();
    let said = push_ok(&db, &[&url, "--host-id", "h"]);
    let sent: i64 = said
        .strip_prefix("pushed ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    // The batch in flight when it was killed may go again, no more.
    assert!(
        (total - committed..=total - committed + 2).contains(&sent),
        "{said} after {committed} of {total}"
    );
    assert_eq!(pg_count(&mut pg, "SELECT count(*) FROM events"), total);
    assert_eq!(pg_count(&mut pg, "SELECT count(*) FROM sessions"), 2);
}
