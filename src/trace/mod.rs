//! Traces: a run's traffic written to a versioned JSONL file (`run --record`), and read back
//! to be replayed against a server (`mcpstorm replay`), whose answers are compared with the
//! recorded ones.
//!
//! Format, version 1. Line 1 is the header:
//! `{"format":"mcpstorm-trace","version":1,"tool_version":"0.1.0","target":"...",
//!   "transport":"streamable_http","protocol_version":"2025-11-25",
//!   "server":{"name":"...","version":"..."},"started_at":"RFC 3339"}`.
//! Every other line is one message of one session:
//! `{"session":3,"dir":"send","t":0.0123,"msg":{JSON-RPC request or notification}}`,
//! `{"session":3,"dir":"recv","t":0.0131,"msg":{JSON-RPC response}}`, or, when no response
//! came (timeout, HTTP error, dropped connection), `{"session":3,"dir":"fail","t":...,
//! "id":2,"kind":"timeout","message":"..."}`. `t` is seconds since the recording started;
//! ids are the session's own (1 is `initialize`).
//!
//! The writer lives in `record`, the replay in `replay`, the comparison of answers in `diff`.
//! Reading a trace validates every line; a bad one is an error naming the file and line.

pub mod diff;
pub mod record;
pub mod replay;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

pub const FORMAT: &str = "mcpstorm-trace";
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub tool_version: String,
    pub target: String,
    pub transport: String,
    pub protocol_version: String,
    #[serde(default)]
    pub server: Value,
    #[serde(default)]
    pub started_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub session: u64,
    pub dir: Dir,
    pub t: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<Value>,
    /// For `fail`: the request id that got no response, the error kind and message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Dir {
    Send,
    Recv,
    Fail,
}

/// What the recording saw in answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    Result(Value),
    /// A JSON-RPC error response.
    Error {
        code: i64,
        message: String,
    },
    /// No response: the kind of failure (`timeout`, `http_503`, ...).
    Failed {
        kind: String,
        message: String,
    },
    /// The trace ends before the answer (it was cut at its size limit, or the run ended).
    Missing,
}

/// One request of a recorded session and what came back.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Where the request is in the trace file (1-based), for messages.
    pub line: usize,
    pub method: String,
    pub params: Option<Value>,
    /// Seconds since the recording started.
    pub sent_at: f64,
    pub recorded: Recorded,
    /// How long the recorded answer took, when there was one.
    pub recorded_latency: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Trace {
    pub header: Header,
    /// Recorded sessions by their number, each its requests in order (the handshake left
    /// out: a replay shakes hands itself).
    pub sessions: BTreeMap<u64, Vec<Exchange>>,
}

/// Read and validate a trace; errors name the file and line.
pub fn load(path: &Path) -> Result<Trace, String> {
    let name = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{name}: cannot read the trace: {e}"))?;
    parse(&text, &name)
}

pub fn parse(text: &str, name: &str) -> Result<Trace, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, first)) = lines.next() else {
        return Err(format!(
            "{name}: the trace is empty; record one with `mcpstorm run SCENARIO --record {name}`"
        ));
    };
    let head: Value = serde_json::from_str(first)
        .map_err(|e| format!("{name}:1: the header is not JSON ({e})"))?;
    if head.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(format!(
            "{name}:1: not an mcpstorm trace: the first line must be a header with \"format\": \"{FORMAT}\""
        ));
    }
    match head.get("version").and_then(Value::as_u64) {
        Some(v) if v == VERSION as u64 => {}
        Some(v) => {
            return Err(format!(
                "{name}:1: trace format version {v} is not supported; this mcpstorm reads version {VERSION} (record the trace again with this version)"
            ));
        }
        None => return Err(format!("{name}:1: the header has no numeric \"version\"")),
    }
    let header: Header =
        serde_json::from_value(head).map_err(|e| format!("{name}:1: bad header: {e}"))?;
    // Requests waiting for their answer: (session, id) -> exchange index in its session.
    let mut pending: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    let mut sessions: BTreeMap<u64, Vec<Exchange>> = BTreeMap::new();
    for (i, raw) in lines {
        let n = i + 1;
        let line: Line = serde_json::from_str(raw).map_err(|e| format!("{name}:{n}: {e}"))?;
        let list = sessions.entry(line.session).or_default();
        match line.dir {
            Dir::Send => {
                let Some(msg) = &line.msg else {
                    return Err(format!("{name}:{n}: a \"send\" line needs \"msg\""));
                };
                let Some(method) = msg.get("method").and_then(Value::as_str) else {
                    return Err(format!("{name}:{n}: the message sent has no \"method\""));
                };
                let Some(id) = msg.get("id") else {
                    continue; // a notification: nothing to compare
                };
                if method == "initialize" {
                    continue;
                }
                let Some(id) = id.as_u64() else {
                    return Err(format!("{name}:{n}: request id {id} is not a number"));
                };
                pending.insert((line.session, id), list.len());
                list.push(Exchange {
                    line: n,
                    method: method.to_string(),
                    params: msg.get("params").cloned(),
                    sent_at: line.t,
                    recorded: Recorded::Missing,
                    recorded_latency: None,
                });
            }
            Dir::Recv | Dir::Fail => {
                let id = match (&line.dir, &line.msg) {
                    (Dir::Recv, Some(m)) => m.get("id").and_then(Value::as_u64),
                    (Dir::Recv, None) => {
                        return Err(format!("{name}:{n}: a \"recv\" line needs \"msg\""));
                    }
                    _ => line.id,
                };
                let Some(id) = id else {
                    return Err(format!(
                        "{name}:{n}: the answer names no numeric request id"
                    ));
                };
                let Some(at) = pending.remove(&(line.session, id)) else {
                    continue; // the handshake's answer, or one to a request we don't replay
                };
                let ex = &mut list[at];
                ex.recorded_latency = Some((line.t - ex.sent_at).max(0.0));
                ex.recorded = match (line.dir, line.msg) {
                    (Dir::Recv, Some(m)) => match (m.get("result"), m.get("error")) {
                        (Some(r), None) => Recorded::Result(r.clone()),
                        (None, Some(e)) => Recorded::Error {
                            code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
                            message: e
                                .get("message")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                        },
                        _ => {
                            return Err(format!(
                                "{name}:{n}: the response must have exactly one of \"result\" and \"error\""
                            ));
                        }
                    },
                    _ => Recorded::Failed {
                        kind: line.kind.unwrap_or_default(),
                        message: line.message.unwrap_or_default(),
                    },
                };
            }
        }
    }
    sessions.retain(|_, v| !v.is_empty());
    Ok(Trace { header, sessions })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = r#"{"format":"mcpstorm-trace","version":1,"tool_version":"0.1.0","target":"t","transport":"stdio","protocol_version":"2025-11-25"}"#;

    #[test]
    fn pairs_requests_with_answers_per_session() {
        let text = format!(
            "{HEAD}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
            r#"{"session":0,"dir":"send","t":0.0,"msg":{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}}"#,
            r#"{"session":0,"dir":"recv","t":0.01,"msg":{"jsonrpc":"2.0","id":1,"result":{}}}"#,
            r#"{"session":0,"dir":"send","t":0.02,"msg":{"jsonrpc":"2.0","method":"notifications/initialized"}}"#,
            r#"{"session":0,"dir":"send","t":0.03,"msg":{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add"}}}"#,
            r#"{"session":1,"dir":"send","t":0.031,"msg":{"jsonrpc":"2.0","id":2,"method":"ping"}}"#,
            r#"{"session":0,"dir":"recv","t":0.05,"msg":{"jsonrpc":"2.0","id":2,"result":{"content":[]}}}"#,
            r#"{"session":1,"dir":"fail","t":1.031,"id":2,"kind":"timeout","message":"no answer"}"#,
        );
        let t = parse(&text, "t.jsonl").unwrap();
        assert_eq!(t.sessions.len(), 2);
        let s0 = &t.sessions[&0];
        assert_eq!(s0.len(), 1);
        assert_eq!(s0[0].method, "tools/call");
        assert_eq!(s0[0].line, 5);
        assert!(matches!(s0[0].recorded, Recorded::Result(_)));
        assert!((s0[0].recorded_latency.unwrap() - 0.02).abs() < 1e-9);
        assert!(
            matches!(&t.sessions[&1][0].recorded, Recorded::Failed { kind, .. } if kind == "timeout")
        );
    }

    #[test]
    fn bad_traces_name_file_and_line() {
        let v2 = HEAD.replace("\"version\":1", "\"version\":2");
        let e = parse(&v2, "old.jsonl").unwrap_err();
        assert!(
            e.starts_with("old.jsonl:1: trace format version 2 is not supported"),
            "{e}"
        );
        let e = parse("{\"format\":\"x\"}", "f").unwrap_err();
        assert!(e.contains("f:1: not an mcpstorm trace"), "{e}");
        let e = parse(
            &format!("{HEAD}\n\n{{\"session\":0,\"dir\":\"sideways\",\"t\":0}}"),
            "f",
        )
        .unwrap_err();
        assert!(e.starts_with("f:3: "), "{e}");
        let e = parse(&format!("{HEAD}\nnot json"), "f").unwrap_err();
        assert!(e.starts_with("f:2: "), "{e}");
        assert!(parse("", "f").unwrap_err().contains("empty"));
    }
}
