//! Request classification: reads a POST body once (bounded by the body limit), notes its
//! JSON-RPC `method`, `id`, the tool name of a `tools/call` and the body's size in an
//! [`RpcCall`] extension, and hands the same bytes on. The memory guard and the circuit
//! breaker decide from it.
//!
//! Every POST body is read here (rmcp reads it whole anyway, and a one-frame body is handed
//! on without a copy), but it is parsed for an [`RpcCall`] only when a layer needs one. A
//! body that is not a single JSON-RPC object (a batch, garbage) is passed on unclassified:
//! rmcp refuses it, and `malformed.rs` turns that refusal into a JSON-RPC error.

use std::borrow::Cow;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::StatusCode;
use serde_json::Value;

use super::body_limit::too_large;
use super::reject::Rejection;

/// What a POST asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RpcCall {
    pub method: Option<String>,
    /// The tool of a `tools/call`.
    pub tool: Option<String>,
    pub id: Option<Value>,
    pub body_bytes: usize,
}

#[derive(serde::Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(borrow, default)]
    params: Option<PeekParams<'a>>,
}

#[derive(serde::Deserialize)]
struct PeekParams<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

impl RpcCall {
    pub(crate) fn of(body: &[u8]) -> RpcCall {
        let Ok(peek) = serde_json::from_slice::<Peek<'_>>(body) else {
            return RpcCall {
                body_bytes: body.len(),
                ..RpcCall::default()
            };
        };
        let method = peek.method.map(Cow::into_owned);
        let tool = match method.as_deref() {
            Some("tools/call") => peek.params.and_then(|p| p.name).map(Cow::into_owned),
            _ => None,
        };
        RpcCall {
            method,
            tool,
            id: peek.id,
            body_bytes: body.len(),
        }
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Reads a POST's body (at most `max_body` bytes) and puts the same bytes back; with `note`,
/// its [`RpcCall`] goes in the request's extensions. The bytes are returned too (a handle on
/// the same buffer, not a copy), to answer a body rmcp could not read (`malformed.rs`).
pub(crate) async fn read_body(
    req: Request,
    max_body: usize,
    note: bool,
) -> Result<(Request, Bytes), Box<Rejection>> {
    let (mut parts, body) = req.into_parts();
    match axum::body::to_bytes(body, max_body).await {
        Ok(bytes) => {
            if note {
                parts.extensions.insert(RpcCall::of(&bytes));
            }
            Ok((Request::from_parts(parts, Body::from(bytes.clone())), bytes))
        }
        Err(e) if is_length_limit(&e) => Err(Box::new(too_large(None, max_body))),
        Err(_) => Err(Box::new(Rejection::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            "unreadable_body",
            "the request body could not be read to its end; resend the request",
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_call_is_classified_by_tool_and_id() {
        let body = br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"alloc","arguments":{"bytes":10,"hold_ms":0}}}"#;
        let c = RpcCall::of(body);
        assert_eq!(c.method.as_deref(), Some("tools/call"));
        assert_eq!(c.tool.as_deref(), Some("alloc"));
        assert_eq!(c.id, Some(serde_json::json!(4)));
        assert_eq!(c.body_bytes, body.len());
    }

    #[test]
    fn other_methods_have_no_tool_and_garbage_is_unclassified() {
        let c = RpcCall::of(
            br#"{"jsonrpc":"2.0","id":"a","method":"prompts/get","params":{"name":"greeting"}}"#,
        );
        assert_eq!(c.method.as_deref(), Some("prompts/get"));
        assert_eq!(c.tool, None);
        let junk = RpcCall::of(b"[1,2");
        assert_eq!(junk.method, None);
        assert_eq!(junk.body_bytes, 4);
        let batch = RpcCall::of(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#);
        assert_eq!(batch.method, None);
    }

    #[test]
    fn escaped_tool_names_are_unescaped() {
        let c = RpcCall::of(br#"{"method":"tools/call","params":{"name":"e\u0063ho"}}"#);
        assert_eq!(c.tool.as_deref(), Some("echo"));
    }
}
