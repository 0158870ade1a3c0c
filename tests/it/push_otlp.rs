//! `push --otlp` against a real OTLP/HTTP receiver: an axum server in the
//! test that decodes each request with `opentelemetry-proto`'s prost types
//! (the official protobuf definitions). The spans of real Claude Code runs
//! must match their sessions: one trace per session, one `invoke_agent` for
//! it and one per sub-agent, one `execute_tool` per tool call under the agent
//! that made it, the GenAI attributes and tokens as the store counts them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span};
use prost::Message;
use serde_json::Value;

use crate::common::{fixture, import_with, open, push, test_config};

/// A delegation of the store: agent type, agent id, parent agent id, tokens, success.
type Delegation = (String, String, Option<String>, Option<String>, Option<i64>);

/// What the receiver got: each request's authorization header and body.
type Received = Arc<Mutex<Vec<(Option<String>, ExportTraceServiceRequest)>>>;

struct Receiver {
    url: String,
    received: Received,
    /// The HTTP status it answers with.
    status: Arc<AtomicU16>,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    fn start() -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let received: Received = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (got, answer) = (received.clone(), status.clone());
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                    let code = answer.load(Ordering::SeqCst);
                    let status = axum::http::StatusCode::from_u16(code).unwrap();
                    if code != 200 {
                        return (status, Vec::new());
                    }
                    assert_eq!(
                        headers.get("content-type").unwrap(),
                        "application/x-protobuf"
                    );
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    let auth = headers
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_string());
                    got.lock().unwrap().push((auth, request));
                    (
                        status,
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                },
            ),
        );
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            url,
            received,
            status,
            _runtime: runtime,
        }
    }

    fn spans(&self) -> Vec<Span> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, r)| r.resource_spans.iter())
            .flat_map(|r| r.scope_spans.iter())
            .flat_map(|s| s.spans.iter().cloned())
            .collect()
    }
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Any> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text(span: &Span, key: &str) -> Option<String> {
    match attr(span, key) {
        Some(Any::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

fn int(span: &Span, key: &str) -> Option<i64> {
    match attr(span, key) {
        Some(Any::IntValue(n)) => Some(*n),
        _ => None,
    }
}

fn nanos(ts: &str) -> u64 {
    chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap() as u64
}

/// The span's `gen_ai.usage.*` as a tokens object of the store.
fn usage(span: &Span) -> Value {
    serde_json::json!({
        "input": int(span, "gen_ai.usage.input_tokens"),
        "output": int(span, "gen_ai.usage.output_tokens"),
        "cache_creation": int(span, "gen_ai.usage.cache_creation.input_tokens"),
        "cache_read": int(span, "gen_ai.usage.cache_read.input_tokens"),
    })
}

fn runs() -> Vec<PathBuf> {
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude-code");
    vec![
        fixture("claude-code-2.1").join("a-mpm-fast"),
        ours.join("nest-mpm-fast"),
        ours.join("compact-mpm-fast"),
    ]
}

#[test]
fn each_session_is_a_trace_of_its_agents_and_tool_calls() {
    let tmp = tempfile::tempdir().unwrap();
    let config = test_config(tmp.path());
    let files: Vec<PathBuf> = runs()
        .iter()
        .flat_map(|r| [r.join("transcripts"), r.join("hooks.jsonl")])
        .collect();
    import_with(&config, &files);
    let db = config.database.clone();
    let receiver = Receiver::start();
    let endpoint = format!("{}/v1/traces", receiver.url);
    let args = [
        "--otlp",
        receiver.url.as_str(),
        "--otlp-headers",
        "authorization=Bearer%20s3cret",
        "--host-id",
        "dev@box",
    ];

    // A collector that is down: one clear line, nothing marked as sent.
    receiver.status.store(503, Ordering::SeqCst);
    let out = push(&db, &args);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("error: OTLP {endpoint}: the collector answered 503 Service Unavailable")
    );

    receiver.status.store(200, Ordering::SeqCst);
    let out = push(&db, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spans = receiver.spans();
    let said = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        said.trim(),
        format!("pushed 3 traces ({} spans) to {endpoint}", spans.len())
    );
    {
        let got = receiver.received.lock().unwrap();
        assert!(got
            .iter()
            .all(|(auth, _)| auth.as_deref() == Some("Bearer s3cret")));
        let resource = got[0].1.resource_spans[0].resource.as_ref().unwrap();
        assert!(resource.attributes.iter().any(|kv| kv.key == "host.id"
            && kv.value.as_ref().and_then(|v| v.value.clone())
                == Some(Any::StringValue("dev@box".into()))));
    }

    let c = open(&db);
    let sessions: Vec<(String, String, String, String, i64, i64)> = c
        .prepare(
            "SELECT s.session_id, s.start_time, s.end_time, m.tokens, m.tool_calls, m.tool_failures
             FROM sessions s JOIN metrics m USING (session_id)",
        )
        .unwrap()
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
    assert_eq!(sessions.len(), 3);
    let mut traces: HashMap<Vec<u8>, Vec<&Span>> = HashMap::new();
    for s in &spans {
        traces.entry(s.trace_id.clone()).or_default().push(s);
    }
    assert_eq!(traces.len(), 3, "one trace per session");
    let mut nested = 0;
    for (id, start, end, tokens, tool_calls, tool_failures) in &sessions {
        let roots: Vec<&&Span> = traces
            .values()
            .flatten()
            .filter(|s| {
                s.parent_span_id.is_empty()
                    && text(s, "gen_ai.conversation.id").as_deref() == Some(id)
            })
            .collect();
        assert_eq!(roots.len(), 1, "one root span for {id}");
        let root = roots[0];
        let trace = &traces[&root.trace_id];
        assert!(trace
            .iter()
            .all(|s| text(s, "gen_ai.conversation.id").as_deref() == Some(id)));
        assert_eq!(root.name, "invoke_agent claude-code");
        assert_eq!(
            text(root, "gen_ai.operation.name").as_deref(),
            Some("invoke_agent")
        );
        assert_eq!(
            text(root, "gen_ai.request.model").as_deref(),
            Some("claude-sonnet-4-5")
        );
        assert_eq!(
            usage(root),
            serde_json::from_str::<Value>(tokens).unwrap(),
            "session tokens"
        );
        assert_eq!(
            (root.start_time_unix_nano, root.end_time_unix_nano),
            (nanos(start), nanos(end))
        );
        let by_id: HashMap<&[u8], &Span> =
            trace.iter().map(|s| (s.span_id.as_slice(), *s)).collect();
        assert_eq!(by_id.len(), trace.len(), "span ids are unique");
        for s in trace.iter().filter(|s| !s.parent_span_id.is_empty()) {
            assert!(
                by_id.contains_key(s.parent_span_id.as_slice()),
                "{} has its parent in the trace",
                s.name
            );
            assert!(s.start_time_unix_nano <= s.end_time_unix_nano, "{}", s.name);
        }

        // One invoke_agent per sub-agent, under the session or its parent sub-agent.
        let agents: Vec<&&Span> = trace
            .iter()
            .filter(|s| {
                !s.parent_span_id.is_empty()
                    && text(s, "gen_ai.operation.name").as_deref() == Some("invoke_agent")
            })
            .collect();
        let delegations: Vec<Delegation> = c
            .prepare("SELECT agent_type, agent_id, parent_agent_id, tokens, success FROM delegations WHERE session_id = ?1")
            .unwrap()
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(agents.len(), delegations.len(), "sub-agents of {id}");
        let agent_span = |agent: &str| {
            agents
                .iter()
                .find(|s| text(s, "gen_ai.agent.id").as_deref() == Some(agent))
                .copied()
        };
        for (agent_type, agent_id, parent, d_tokens, success) in &delegations {
            let span =
                agent_span(agent_id).unwrap_or_else(|| panic!("a span for sub-agent {agent_id}"));
            assert_eq!(span.name, format!("invoke_agent {agent_type}"));
            assert_eq!(
                text(span, "gen_ai.agent.name").as_deref(),
                Some(agent_type.as_str())
            );
            let expected_parent = match parent.as_deref().and_then(agent_span) {
                Some(p) => {
                    nested += 1;
                    p.span_id.clone()
                }
                None => root.span_id.clone(),
            };
            assert_eq!(span.parent_span_id, expected_parent, "parent of {agent_id}");
            if let Some(t) = d_tokens {
                assert_eq!(
                    usage(span),
                    serde_json::from_str::<Value>(t).unwrap(),
                    "tokens of {agent_id}"
                );
            }
            let code = span.status.as_ref().map(|s| s.code);
            match success {
                Some(1) => assert_eq!(code, Some(StatusCode::Ok as i32)),
                Some(_) => assert_eq!(code, Some(StatusCode::Error as i32)),
                None => assert_eq!(code, None),
            }
        }

        // One execute_tool per tool call, under the agent that made it.
        let tools: Vec<&&Span> = trace
            .iter()
            .filter(|s| text(s, "gen_ai.operation.name").as_deref() == Some("execute_tool"))
            .collect();
        assert_eq!(tools.len() as i64, *tool_calls, "tool calls of {id}");
        let failed = tools
            .iter()
            .filter(|s| s.status.as_ref().map(|st| st.code) == Some(StatusCode::Error as i32))
            .count();
        assert_eq!(failed as i64, *tool_failures, "failed tool calls of {id}");
        let calls: Vec<(String, String, Option<String>, String)> = c
            .prepare("SELECT identity, tool_name, agent_id, timestamp FROM events WHERE session_id = ?1 AND event_type = 'PreToolUse'")
            .unwrap()
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (identity, tool, agent, at) in calls {
            let call = identity.strip_prefix("pre:").unwrap();
            let span = tools
                .iter()
                .find(|s| text(s, "gen_ai.tool.call.id").as_deref() == Some(call))
                .unwrap_or_else(|| panic!("a span for {call}"));
            assert_eq!(text(span, "gen_ai.tool.name"), Some(tool.clone()));
            assert_eq!(span.name, format!("execute_tool {tool}"));
            assert_eq!(span.start_time_unix_nano, nanos(&at));
            let parent = agent
                .as_deref()
                .and_then(agent_span)
                .map(|p| p.span_id.clone())
                .unwrap_or_else(|| root.span_id.clone());
            assert_eq!(span.parent_span_id, parent, "parent of {call} ({tool})");
        }
        let errors: Vec<String> = tools
            .iter()
            .filter_map(|s| {
                s.status
                    .as_ref()
                    .filter(|st| st.code == StatusCode::Error as i32)
            })
            .map(|st| st.message.clone())
            .collect();
        assert!(
            errors.iter().all(|m| !m.is_empty()),
            "failures carry their error: {errors:?}"
        );
    }
    assert!(nested > 0, "a nested sub-agent is its parent's child");

    // Again: nothing new, nothing sent.
    let requests = receiver.received.lock().unwrap().len();
    let out = push(&db, &args);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("nothing new to push to {endpoint}")
    );
    assert_eq!(receiver.received.lock().unwrap().len(), requests);
}

/// claude-mpm's monitor without ids: tool calls paired by tool and agent,
/// work attributed by the delegation running when it arrived.
#[test]
fn sources_without_ids_make_traces_too() {
    let tmp = tempfile::tempdir().unwrap();
    let config = test_config(tmp.path());
    import_with(&config, &[fixture(crate::common::CAPTURE)]);
    let db = config.database.clone();
    let receiver = Receiver::start();
    let out = push(&db, &["--otlp", &receiver.url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spans = receiver.spans();
    let c = open(&db);
    let one = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    let ended = one("SELECT count(*) FROM sessions WHERE status = 'completed'");
    assert!(ended >= 2);
    let roots: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len() as i64, ended);
    let is = |s: &Span, op: &str| text(s, "gen_ai.operation.name").as_deref() == Some(op);
    assert_eq!(
        spans.iter().filter(|s| is(s, "execute_tool")).count() as i64,
        one("SELECT coalesce(sum(m.tool_calls), 0) FROM metrics m JOIN sessions s USING (session_id) WHERE s.status = 'completed'")
    );
    assert_eq!(
        spans.iter().filter(|s| is(s, "invoke_agent") && !s.parent_span_id.is_empty()).count() as i64,
        one("SELECT count(*) FROM delegations d JOIN sessions s USING (session_id) WHERE s.status = 'completed'")
    );
    let root_ids: Vec<&[u8]> = roots.iter().map(|r| r.span_id.as_slice()).collect();
    let under_agents = spans
        .iter()
        .filter(|s| is(s, "execute_tool") && !root_ids.contains(&s.parent_span_id.as_slice()))
        .count() as i64;
    assert_eq!(
        under_agents,
        one("SELECT count(*) FROM events e JOIN sessions s USING (session_id) WHERE s.status = 'completed'
             AND e.event_type = 'PreToolUse' AND e.delegation_id IS NOT NULL AND e.agent_id IS NULL
             AND e.identity IS NULL AND e.tool_name NOT IN ('Task', 'Agent')"),
        "work inside a delegation is its child"
    );
    assert!(under_agents > 0);
    let ids: std::collections::HashSet<&[u8]> =
        spans.iter().map(|s| s.span_id.as_slice()).collect();
    assert_eq!(ids.len(), spans.len(), "span ids are unique");
}
