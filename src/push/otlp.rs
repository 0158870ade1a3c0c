//! Pushing traces over OTLP/HTTP (protobuf, the official definitions of
//! `opentelemetry-proto`): each ended session is one trace following the
//! OpenTelemetry GenAI conventions. An `invoke_agent` span for the session,
//! one per sub-agent (its child, or its parent sub-agent's), one
//! `execute_tool` per tool call (under the agent that made it), with the
//! `gen_ai.*` attributes and the events' own start and end times.
//!
//! Ids are derived, never random: the trace id from the session id, span ids
//! from the session, the sub-agent's identity and the tool call's identity,
//! so a session sent again (it changed: reopened, merged with another
//! source) carries the same ids. A session is sent once it has ended and
//! again only when it changed.

use std::collections::{HashMap, VecDeque};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;

use super::local::{delegation_keys, EventRow, Local, SessionBundle};
use super::{hash128, hash64, Progress, PushOptions, PushReport};
use crate::error::{AggregatorError, Result};

/// Sessions per request.
const SESSION_BATCH: usize = 20;

/// The longest status message (a tool's error output can be long).
const MAX_MESSAGE: usize = 1024;

/// One push of the ended sessions not sent yet (or changed since) to `endpoint`.
pub fn push(
    local: &mut Local,
    endpoint: &str,
    headers: &[(String, String)],
    opts: &PushOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<PushReport> {
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| AggregatorError::Recorder(format!("OTLP client: {e}")))?;
    let mut report = PushReport::default();
    let changed = local.changed_sessions()?;
    let (ended, active): (Vec<_>, Vec<_>) = changed.into_iter().partition(|c| c.completed);
    report.waiting = active.len() as u64;
    let total = ended.len() as u64;
    let mut done = 0;
    progress(Progress { done, total });
    for chunk in ended.chunks(SESSION_BATCH) {
        let mut spans = Vec::new();
        let mut marks = Vec::with_capacity(chunk.len());
        for c in chunk {
            if let Some(bundle) = local.bundle(&c.session_id)? {
                let tools = local.tool_events(&c.session_id)?;
                spans.extend(session_spans(&bundle, &tools));
                report.traces += 1;
            }
            marks.push((c.session_id.clone(), c.fingerprint.clone()));
        }
        let sent = spans.len() as u64;
        if !spans.is_empty() {
            let request = request(&opts.host_id, spans);
            report.rejected_spans += post(&client, endpoint, headers, &request)?;
        }
        report.spans += sent;
        local.mark_sent(&marks)?;
        done += chunk.len() as u64;
        progress(Progress { done, total });
    }
    Ok(report)
}

/// Sends one request; returns the spans the collector says it rejected.
fn post(
    client: &reqwest::blocking::Client,
    endpoint: &str,
    headers: &[(String, String)],
    request: &ExportTraceServiceRequest,
) -> Result<u64> {
    let failed = |reason: String| {
        AggregatorError::Recorder(format!("OTLP {}: {reason}", super::redact(endpoint)))
    };
    let mut call = client
        .post(endpoint)
        .header("content-type", "application/x-protobuf")
        .body(request.encode_to_vec());
    for (k, v) in headers {
        call = call.header(k.as_str(), v.as_str());
    }
    let response = call
        .send()
        .map_err(|e| failed(super::with_causes(&e.without_url())))?;
    let status = response.status();
    let body = response
        .bytes()
        .map_err(|e| failed(super::with_causes(&e)))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        let text = crate::error::one_line(text.trim());
        return Err(failed(format!(
            "the collector answered {status}{}",
            if text.is_empty() {
                String::new()
            } else {
                format!(": {}", clip(&text, 200))
            }
        )));
    }
    // An empty body is a full success; a partial one says how many it dropped.
    let rejected = ExportTraceServiceResponse::decode(body.as_ref())
        .ok()
        .and_then(|r| r.partial_success)
        .map(|p| {
            if p.rejected_spans > 0 {
                tracing::warn!(
                    "OTLP {}: the collector rejected {} spans: {}",
                    super::redact(endpoint),
                    p.rejected_spans,
                    p.error_message
                );
            }
            p.rejected_spans.max(0) as u64
        })
        .unwrap_or(0);
    Ok(rejected)
}

/// The request for `spans`: one resource (this machine), one scope (us).
pub fn request(host_id: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "claude-code"), kv("host.id", host_id)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "mpm-aggregate".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The trace id of a session.
pub fn trace_id(session_id: &str) -> [u8; 16] {
    hash128(&["trace", session_id]).to_be_bytes()
}

fn span_id(parts: &[&str]) -> Vec<u8> {
    hash64(parts).to_be_bytes().to_vec()
}

/// The spans of one session: the session, its sub-agents, its tool calls.
pub fn session_spans(b: &SessionBundle, tools: &[EventRow]) -> Vec<Span> {
    let s = &b.session;
    let sid = s.session_id.as_str();
    let trace = trace_id(sid).to_vec();
    let root = span_id(&["session", sid]);
    let end_text = s.end_time.as_deref().unwrap_or(&s.last_event_time);
    let mut spans = Vec::new();

    let mut attrs = vec![
        kv("gen_ai.operation.name", "invoke_agent"),
        kv("gen_ai.provider.name", "anthropic"),
        kv("gen_ai.conversation.id", sid),
        kv("gen_ai.agent.name", "claude-code"),
    ];
    if let Some(m) = &b.metrics {
        if let Some(model) = serde_json::from_str::<Vec<String>>(&m.models)
            .ok()
            .and_then(|v| v.into_iter().next())
        {
            attrs.push(kv("gen_ai.request.model", &model));
        }
        usage(&mut attrs, m.tokens.as_deref());
        if let Some(cost) = m.cost_usd {
            attrs.push(kv_f64("mpm_aggregate.cost_usd", cost));
        }
        attrs.push(kv_i64("mpm_aggregate.tool_calls", m.tool_calls));
        attrs.push(kv_i64("mpm_aggregate.tool_failures", m.tool_failures));
    }
    if let Some(dir) = &s.working_directory {
        attrs.push(kv("mpm_aggregate.working_directory", dir));
    }
    if let Some(branch) = &s.git_branch {
        attrs.push(kv("vcs.ref.head.name", branch));
    }
    if let Some(version) = &s.claude_version {
        attrs.push(kv("mpm_aggregate.claude_version", version));
    }
    spans.push(Span {
        trace_id: trace.clone(),
        span_id: root.clone(),
        name: "invoke_agent claude-code".into(),
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: nanos(&s.start_time),
        end_time_unix_nano: nanos(end_text),
        attributes: attrs,
        ..Default::default()
    });

    // Sub-agents: their spans by agent id and by local row id (events without
    // agent ids are attributed by the delegation running when they arrived).
    let keys = delegation_keys(&b.delegations);
    let ids: Vec<Vec<u8>> = keys.iter().map(|k| span_id(&["agent", sid, k])).collect();
    let by_agent: HashMap<&str, usize> = b
        .delegations
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.agent_id.as_deref().map(|a| (a, i)))
        .collect();
    let by_row: HashMap<i64, usize> = b
        .delegations
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id, i))
        .collect();
    for (i, d) in b.delegations.iter().enumerate() {
        let parent = d
            .parent_agent_id
            .as_deref()
            .and_then(|p| by_agent.get(p))
            .filter(|&&p| p != i)
            .map(|&p| ids[p].clone())
            .unwrap_or_else(|| root.clone());
        let mut attrs = vec![
            kv("gen_ai.operation.name", "invoke_agent"),
            kv("gen_ai.provider.name", "anthropic"),
            kv("gen_ai.conversation.id", sid),
            kv("gen_ai.agent.name", &d.agent_type),
        ];
        if let Some(a) = &d.agent_id {
            attrs.push(kv("gen_ai.agent.id", a));
        }
        if let Some(desc) = &d.description {
            attrs.push(kv("gen_ai.agent.description", desc));
        }
        if let Some(call) = &d.start_ref {
            attrs.push(kv("gen_ai.tool.call.id", call));
        }
        if let Some(model) = &d.model {
            attrs.push(kv("gen_ai.request.model", model));
        }
        usage(&mut attrs, d.tokens.as_deref());
        if let Some(cost) = d.cost_usd {
            attrs.push(kv_f64("mpm_aggregate.cost_usd", cost));
        }
        let status = match d.success {
            Some(1) => Some(Status {
                code: status::StatusCode::Ok as i32,
                ..Default::default()
            }),
            Some(_) => {
                attrs.push(kv("error.type", "delegation_failed"));
                Some(Status {
                    code: status::StatusCode::Error as i32,
                    message: clip(
                        d.error.as_deref().unwrap_or("the sub-agent failed"),
                        MAX_MESSAGE,
                    ),
                })
            }
            None => None,
        };
        spans.push(Span {
            trace_id: trace.clone(),
            span_id: ids[i].clone(),
            parent_span_id: parent,
            name: format!("invoke_agent {}", d.agent_type),
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: nanos(&d.start_time),
            end_time_unix_nano: nanos(d.end_time.as_deref().unwrap_or(end_text)),
            attributes: attrs,
            status,
            ..Default::default()
        });
    }

    // Tool calls: each start with its end, by tool_use_id, else the next end
    // of the same tool by the same agent.
    let agent_of = |e: &EventRow| -> Option<usize> {
        if let Some(a) = e.agent_id.as_deref() {
            return by_agent.get(a).copied();
        }
        // An Agent/Task call is made by its caller, not by the sub-agent it starts.
        let starts_agent = matches!(e.tool_name.as_deref(), Some("Task" | "Agent"));
        if e.identity.is_some() || starts_agent {
            return None;
        }
        e.delegation_id.and_then(|id| by_row.get(&id).copied())
    };
    let mut ends_by_call: HashMap<String, &EventRow> = HashMap::new();
    let mut ends_by_tool: HashMap<(Option<usize>, Option<&str>), VecDeque<&EventRow>> =
        HashMap::new();
    for e in tools.iter().filter(|e| e.event_type != "PreToolUse") {
        match call_id(e) {
            Some(call) => {
                ends_by_call.insert(call, e);
            }
            None => ends_by_tool
                .entry((agent_of(e), e.tool_name.as_deref()))
                .or_default()
                .push_back(e),
        }
    }
    for pre in tools.iter().filter(|e| e.event_type == "PreToolUse") {
        let call = call_id(pre);
        let end = match &call {
            Some(c) => ends_by_call.get(c).copied(),
            None => ends_by_tool
                .get_mut(&(agent_of(pre), pre.tool_name.as_deref()))
                .and_then(|q| {
                    // The first end after this start.
                    let at = q.iter().position(|e| e.id > pre.id)?;
                    q.remove(at)
                }),
        };
        let tool = pre.tool_name.as_deref().unwrap_or("unknown");
        let parent = agent_of(pre)
            .map(|i| ids[i].clone())
            .unwrap_or_else(|| root.clone());
        let identity = pre
            .identity
            .clone()
            .or_else(|| call.clone())
            .unwrap_or_else(|| super::hex(&pre.dedup_key));
        let mut attrs = vec![
            kv("gen_ai.operation.name", "execute_tool"),
            kv("gen_ai.conversation.id", sid),
            kv("gen_ai.tool.name", tool),
            kv("gen_ai.tool.type", "function"),
        ];
        if let Some(c) = &call {
            attrs.push(kv("gen_ai.tool.call.id", c));
        }
        let status = match end {
            Some(e) if e.event_type == "PostToolUseFailure" => {
                attrs.push(kv("error.type", "tool_error"));
                Some(Status {
                    code: status::StatusCode::Error as i32,
                    message: clip(&tool_error(e), MAX_MESSAGE),
                })
            }
            Some(_) => Some(Status {
                code: status::StatusCode::Ok as i32,
                ..Default::default()
            }),
            None => None,
        };
        let start = nanos(&pre.timestamp);
        spans.push(Span {
            trace_id: trace.clone(),
            span_id: span_id(&["tool", sid, &identity]),
            parent_span_id: parent,
            name: format!("execute_tool {tool}"),
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end.map(|e| nanos(&e.timestamp)).unwrap_or(start).max(start),
            attributes: attrs,
            status,
            ..Default::default()
        });
    }
    spans
}

/// The tool_use_id of a tool event (from its identity, else its data).
fn call_id(e: &EventRow) -> Option<String> {
    if let Some(id) = e.identity.as_deref() {
        if let Some((_, call)) = id.split_once(':') {
            return Some(call.to_string());
        }
    }
    serde_json::from_str::<serde_json::Value>(&e.data)
        .ok()?
        .get("tool_use_id")?
        .as_str()
        .map(str::to_string)
}

/// What a failed tool call said.
fn tool_error(e: &EventRow) -> String {
    let data: serde_json::Value = serde_json::from_str(&e.data).unwrap_or_default();
    for key in ["error", "tool_response"] {
        match data.get(key) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => return s.clone(),
            Some(v @ serde_json::Value::Object(_)) => {
                if let Some(s) = v.get("error").and_then(|x| x.as_str()) {
                    return s.to_string();
                }
            }
            _ => {}
        }
    }
    "tool call failed".into()
}

/// `gen_ai.usage.*` from a tokens object (`{"input","output","cache_creation","cache_read"}`).
fn usage(attrs: &mut Vec<KeyValue>, tokens: Option<&str>) {
    let Some(t) = tokens.and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok()) else {
        return;
    };
    for (key, name) in [
        ("input", "gen_ai.usage.input_tokens"),
        ("output", "gen_ai.usage.output_tokens"),
        ("cache_creation", "gen_ai.usage.cache_creation.input_tokens"),
        ("cache_read", "gen_ai.usage.cache_read.input_tokens"),
    ] {
        if let Some(n) = t.get(key).and_then(|v| v.as_i64()) {
            attrs.push(kv_i64(name, n));
        }
    }
}

/// Nanoseconds since the epoch of a stored timestamp (0 when it is not one).
fn nanos(ts: &str) -> u64 {
    chrono::DateTime::parse_from_rfc3339(ts)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .map(|n| n.max(0) as u64)
        .unwrap_or(0)
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn kv_i64(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

fn kv_f64(key: &str, value: f64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::DoubleValue(value)),
        }),
        ..Default::default()
    }
}

fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
