//! Pushing to PostgreSQL: the team's schema (`migrations_pg/`, applied by
//! refinery, one machine at a time under an advisory lock) and batched
//! upserts keyed by what rows are, so that a batch sent twice, or the same
//! imported file pushed from two machines, makes one copy.
//!
//! Order of a push: events not sent yet (in id order, a transaction per
//! batch), events sent before that changed since, then sessions whose row,
//! figures or delegations changed (a session's delegations are replaced
//! whole: a rebuild may fold two into one). The local cursor moves after each
//! remote commit; a push cut short replays at most one batch, harmlessly.

use std::borrow::Cow;

use postgres::{Client, Transaction};

use super::local::{delegation_keys, EventRow, Local, SessionBundle};
use super::{Progress, PushOptions, PushReport};
use crate::error::{AggregatorError, Result};

mod embedded {
    refinery::embed_migrations!("migrations_pg");
}

/// The advisory lock held while migrating (any fixed number of ours).
const MIGRATION_LOCK: i64 = 0x6d70_6d61_6767;

/// Sessions per transaction.
const SESSION_BATCH: usize = 100;

fn pg_error(url: &str) -> impl Fn(postgres::Error) -> AggregatorError + '_ {
    move |e| {
        // The server's own message (with its detail) says the most.
        let reason = match e.as_db_error() {
            Some(db) => match db.detail() {
                Some(detail) => format!("{}: {detail}", db.message()),
                None => db.message().to_string(),
            },
            None => super::with_causes(&e),
        };
        AggregatorError::Recorder(format!(
            "PostgreSQL {}: {}",
            super::redact(url),
            crate::error::one_line(&reason)
        ))
    }
}

/// Connects (TLS when the server offers it, as `sslmode=prefer`; the URL's
/// `sslmode` decides) and brings the schema up to date.
pub fn connect(url: &str) -> Result<Client> {
    let err = pg_error(url);
    let config: postgres::Config = url
        .parse()
        .map_err(|e| AggregatorError::Config(format!("push URL {}: {e}", super::redact(url))))?;
    let tls = native_tls::TlsConnector::new()
        .map_err(|e| AggregatorError::Recorder(format!("TLS: {e}")))?;
    let mut config = config;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    let mut client = config
        .connect(postgres_native_tls::MakeTlsConnector::new(tls))
        .map_err(&err)?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .map_err(&err)?;
    let migrated = embedded::migrations::runner().run(&mut client);
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .map_err(&err)?;
    migrated.map_err(|e| {
        AggregatorError::Recorder(format!(
            "PostgreSQL {}: migration failed: {e}",
            super::redact(url)
        ))
    })?;
    Ok(client)
}

/// One push of what is new in `local` to the database at `url`.
pub fn push(
    local: &mut Local,
    url: &str,
    opts: &PushOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<PushReport> {
    let err = pg_error(url);
    let mut client = connect(url)?;
    local.register()?;
    let mut report = PushReport::default();
    let batch = opts.batch_size.max(1);
    let host = text(&opts.host_id).into_owned();

    let (mut sent, mut change) = local.cursor()?;
    let (pending, upto) = local.pending_events(sent)?;
    let changes_upto = local.last_change()?;
    let changed = local.changed_sessions()?;
    let total = pending + changed.len() as u64;
    let mut done = 0;
    progress(Progress { done, total });

    loop {
        let events = local.events_after(sent, upto, batch)?;
        let Some(last) = events.last().map(|e| e.id) else {
            break;
        };
        let mut tx = client.transaction().map_err(&err)?;
        upsert_events(&mut tx, &host, &events).map_err(&err)?;
        tx.commit().map_err(&err)?;
        local.advance(last, change)?;
        sent = last;
        report.events += events.len() as u64;
        done += events.len() as u64;
        progress(Progress { done, total });
    }

    loop {
        let rows = local.changed_events(change, changes_upto, sent, batch)?;
        let Some(last) = rows.last().map(|(seq, _)| *seq) else {
            break;
        };
        let events: Vec<EventRow> = rows.into_iter().map(|(_, e)| e).collect();
        let mut tx = client.transaction().map_err(&err)?;
        upsert_events(&mut tx, &host, &events).map_err(&err)?;
        tx.commit().map_err(&err)?;
        local.advance(sent, last)?;
        change = last;
        report.changed_events += events.len() as u64;
    }
    // Nothing left to send up to the changes seen: the cursor says so, so that
    // the change log can be trimmed.
    local.advance(sent, changes_upto)?;

    for chunk in changed.chunks(SESSION_BATCH) {
        let mut marks = Vec::with_capacity(chunk.len());
        let mut tx = client.transaction().map_err(&err)?;
        for c in chunk {
            // Gone meanwhile (pruned): what the team has stays.
            if let Some(bundle) = local.bundle(&c.session_id)? {
                report.delegations += upsert_session(&mut tx, &host, &bundle).map_err(&err)?;
                report.sessions += 1;
            }
            marks.push((c.session_id.clone(), c.fingerprint.clone()));
        }
        tx.commit().map_err(&err)?;
        local.mark_sent(&marks)?;
        done += chunk.len() as u64;
        progress(Progress { done, total });
    }
    Ok(report)
}

/// PostgreSQL text cannot hold NUL; a stored NUL (a hostile session id)
/// becomes U+FFFD there.
fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

fn opt(s: &Option<String>) -> Option<String> {
    s.as_deref().map(|s| text(s).into_owned())
}

fn own(s: &str) -> String {
    text(s).into_owned()
}

/// One statement per batch: the rows as arrays, unnested on the server.
fn upsert_events(
    tx: &mut Transaction<'_>,
    host: &str,
    events: &[EventRow],
) -> std::result::Result<(), postgres::Error> {
    // One row per key in a statement (ON CONFLICT may not touch a row twice):
    // the later observation wins, as it would in two batches.
    let mut by_key: Vec<(String, &EventRow)> = Vec::with_capacity(events.len());
    let mut index = std::collections::HashMap::new();
    for e in events {
        let key = e.key();
        match index.get(&key) {
            Some(&i) => by_key[i] = (key, e),
            None => {
                index.insert(key.clone(), by_key.len());
                by_key.push((key, e));
            }
        }
    }
    let col = |f: fn(&EventRow) -> Option<String>| -> Vec<Option<String>> {
        by_key.iter().map(|(_, e)| f(e)).collect()
    };
    let keys: Vec<String> = by_key.iter().map(|(k, _)| k.clone()).collect();
    let ids: Vec<i64> = by_key.iter().map(|(_, e)| e.id).collect();
    let dedup: Vec<Vec<u8>> = by_key.iter().map(|(_, e)| e.dedup_key.clone()).collect();
    let session_id = col(|e| opt(&e.session_id));
    let timestamp = col(|e| Some(own(&e.timestamp)));
    let event_type = col(|e| Some(own(&e.event_type)));
    let category = col(|e| Some(own(&e.category)));
    let tool_name = col(|e| opt(&e.tool_name));
    let socket_event = col(|e| Some(own(&e.socket_event)));
    let raw_type = col(|e| opt(&e.raw_type));
    let subtype = col(|e| opt(&e.subtype));
    let source = col(|e| opt(&e.source));
    let correlation_id = col(|e| opt(&e.correlation_id));
    let data = col(|e| Some(e.data.clone()));
    let envelope = col(|e| e.envelope.clone());
    let received_at = col(|e| Some(own(&e.received_at)));
    let identity = col(|e| opt(&e.identity));
    let origin = col(|e| opt(&e.origin));
    let agent_id = col(|e| opt(&e.agent_id));
    let statement = tx.prepare(
        "INSERT INTO events (event_key, host_id, local_id, session_id, timestamp, event_type, category, tool_name,
             socket_event, raw_type, subtype, source, correlation_id, data, envelope, received_at, dedup_key,
             identity, origin, agent_id)
         SELECT k, $1, l, s, ts, et, c, tn, se, rt, st, src, ci, d::json, env::json, ra, dk, idn, o, a
         FROM unnest($2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
             $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::bytea[],
             $18::text[], $19::text[], $20::text[])
             AS t(k, l, s, ts, et, c, tn, se, rt, st, src, ci, d, env, ra, dk, idn, o, a)
         ON CONFLICT (event_key) DO UPDATE SET session_id = excluded.session_id, timestamp = excluded.timestamp,
             event_type = excluded.event_type, category = excluded.category, tool_name = excluded.tool_name,
             socket_event = excluded.socket_event, raw_type = excluded.raw_type, subtype = excluded.subtype,
             source = excluded.source, correlation_id = excluded.correlation_id, data = excluded.data,
             envelope = excluded.envelope, received_at = excluded.received_at, dedup_key = excluded.dedup_key,
             identity = excluded.identity, origin = excluded.origin, agent_id = excluded.agent_id",
    )?;
    tx.execute(
        &statement,
        &[
            &host,
            &keys,
            &ids,
            &session_id,
            &timestamp,
            &event_type,
            &category,
            &tool_name,
            &socket_event,
            &raw_type,
            &subtype,
            &source,
            &correlation_id,
            &data,
            &envelope,
            &received_at,
            &dedup,
            &identity,
            &origin,
            &agent_id,
        ],
    )?;
    Ok(())
}

/// A session, its figures and its delegations (replaced whole); returns the
/// delegations written.
fn upsert_session(
    tx: &mut Transaction<'_>,
    host: &str,
    b: &SessionBundle,
) -> std::result::Result<u64, postgres::Error> {
    let s = &b.session;
    let id = own(&s.session_id);
    tx.execute(
        "INSERT INTO sessions (session_id, host_id, pushed_by, start_time, end_time, last_event_time, status,
             working_directory, git_branch, launch_method, claude_pid, initial_prompt, final_response, event_count,
             metadata, stored_at, claude_version, sources, id_aware)
         VALUES ($1, $2, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::text::json, $15, $16, $17::text::json, $18)
         ON CONFLICT (session_id) DO UPDATE SET pushed_by = excluded.pushed_by, pushed_at = now(),
             start_time = excluded.start_time, end_time = excluded.end_time, last_event_time = excluded.last_event_time,
             status = excluded.status, working_directory = excluded.working_directory, git_branch = excluded.git_branch,
             launch_method = excluded.launch_method, claude_pid = excluded.claude_pid,
             initial_prompt = excluded.initial_prompt, final_response = excluded.final_response,
             event_count = excluded.event_count, metadata = excluded.metadata, stored_at = excluded.stored_at,
             claude_version = excluded.claude_version, sources = excluded.sources, id_aware = excluded.id_aware",
        &[
            &id,
            &host,
            &own(&s.start_time),
            &opt(&s.end_time),
            &own(&s.last_event_time),
            &own(&s.status),
            &opt(&s.working_directory),
            &opt(&s.git_branch),
            &opt(&s.launch_method),
            &s.claude_pid,
            &opt(&s.initial_prompt),
            &opt(&s.final_response),
            &s.event_count,
            &s.metadata,
            &opt(&s.stored_at),
            &opt(&s.claude_version),
            &s.sources,
            &s.id_aware,
        ],
    )?;
    if let Some(m) = &b.metrics {
        tx.execute(
            "INSERT INTO metrics (session_id, host_id, total_events, session_duration_ms, event_breakdown, agents_used,
                 tools_used, files_modified, total_delegations, successful_delegations, failed_delegations, prompts,
                 tool_calls, tool_failures, api_calls, tokens, tokens_by_model, models, cost_usd, claude_code)
             VALUES ($1, $2, $3, $4, $5::text::json, $6::text::json, $7::text::json, $8::text::json, $9, $10, $11, $12,
                 $13, $14, $15, $16::text::json, $17::text::json, $18::text::json, $19, $20::text::json)
             ON CONFLICT (session_id) DO UPDATE SET total_events = excluded.total_events,
                 session_duration_ms = excluded.session_duration_ms, event_breakdown = excluded.event_breakdown,
                 agents_used = excluded.agents_used, tools_used = excluded.tools_used,
                 files_modified = excluded.files_modified, total_delegations = excluded.total_delegations,
                 successful_delegations = excluded.successful_delegations,
                 failed_delegations = excluded.failed_delegations, prompts = excluded.prompts,
                 tool_calls = excluded.tool_calls, tool_failures = excluded.tool_failures,
                 api_calls = excluded.api_calls, tokens = excluded.tokens, tokens_by_model = excluded.tokens_by_model,
                 models = excluded.models, cost_usd = excluded.cost_usd, claude_code = excluded.claude_code",
            &[
                &id,
                &host,
                &m.total_events,
                &m.session_duration_ms,
                &m.event_breakdown,
                &m.agents_used,
                &m.tools_used,
                &m.files_modified,
                &m.total_delegations,
                &m.successful_delegations,
                &m.failed_delegations,
                &m.prompts,
                &m.tool_calls,
                &m.tool_failures,
                &m.api_calls,
                &m.tokens,
                &m.tokens_by_model,
                &m.models,
                &m.cost_usd,
                &m.claude_code,
            ],
        )?;
    }
    tx.execute("DELETE FROM delegations WHERE session_id = $1", &[&id])?;
    let insert = tx.prepare(
        "INSERT INTO delegations (session_id, delegation_key, host_id, local_id, agent_type, instructions, description,
             start_time, end_time, success, error, event_count, tool_operations, files_modified, response_preview,
             start_ref, agent_id, parent_agent_id, background, call_failed, stop_failed, tool_calls, tool_failures,
             api_calls, tokens, model, cost_usd)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::text::json, $14::text::json, $15, $16, $17,
             $18, $19, $20, $21, $22, $23, $24, $25::text::json, $26, $27)",
    )?;
    for (d, key) in b.delegations.iter().zip(delegation_keys(&b.delegations)) {
        tx.execute(
            &insert,
            &[
                &id,
                &own(&key),
                &host,
                &d.id,
                &own(&d.agent_type),
                &opt(&d.instructions),
                &opt(&d.description),
                &own(&d.start_time),
                &opt(&d.end_time),
                &d.success,
                &opt(&d.error),
                &d.event_count,
                &d.tool_operations,
                &d.files_modified,
                &opt(&d.response_preview),
                &opt(&d.start_ref),
                &opt(&d.agent_id),
                &opt(&d.parent_agent_id),
                &d.background,
                &d.call_failed,
                &d.stop_failed,
                &d.tool_calls,
                &d.tool_failures,
                &d.api_calls,
                &d.tokens,
                &opt(&d.model),
                &d.cost_usd,
            ],
        )?;
    }
    Ok(b.delegations.len() as u64)
}
