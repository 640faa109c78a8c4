//! Requests rmcp could not read, answered as JSON-RPC errors.
//!
//! rmcp answers a POST it cannot read with a plain-text body: 415 for a body that is not a
//! JSON-RPC message ("fail to deserialize request body ..."), 400 for a bad
//! `MCP-Protocol-Version` or header, 406 for a missing `Accept`. A JSON-RPC client reads
//! error bodies as JSON-RPC, and JSON-RPC has codes for exactly these: -32700 (the body is
//! not JSON), -32600 (JSON, but not a valid request), -32602 (a known method with params of
//! the wrong shape). This module turns those answers, after the fact, into HTTP 400 (or the
//! status rmcp chose) with a JSON-RPC error whose message says what was wrong and what to
//! send instead.
//!
//! It reads the body the pipeline already buffered, and only when rmcp refused: a request
//! rmcp served costs nothing here. It must never touch rmcp's 404 for an unknown session
//! (the session-binding contract answers exactly that) nor its 403 for a foreign Origin.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Response, StatusCode, header};
use serde_json::Value;

use super::reject::Rejection;

pub(crate) const PARSE_ERROR: i64 = -32700;
pub(crate) const INVALID_REQUEST: i64 = -32600;
pub(crate) const INVALID_PARAMS: i64 = -32602;

/// The most of rmcp's own message kept in ours.
const MAX_RMCP_TEXT: usize = 300;

/// Is this rmcp's plain-text refusal of a request it could not read?
pub(crate) fn is_unread(response: &Response<Body>) -> bool {
    let status = response.status();
    let plain = !response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    plain
        && matches!(
            status,
            StatusCode::BAD_REQUEST
                | StatusCode::NOT_ACCEPTABLE
                | StatusCode::UNSUPPORTED_MEDIA_TYPE
        )
}

/// Did the request say its body is JSON? Then rmcp's 415 means it could not read the body.
pub(crate) fn content_type_is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// The JSON-RPC refusal that replaces rmcp's `status` + `text` for a request whose body is
/// `body` (declared JSON or not).
pub(crate) fn refusal(status: StatusCode, text: &str, json_body: bool, body: &Bytes) -> Rejection {
    let said = crate::error::excerpt(text, MAX_RMCP_TEXT);
    match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE if json_body => unreadable(body),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => invalid(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type",
            "the request's Content-Type is not application/json; send the JSON-RPC message with Content-Type: application/json".into(),
        ),
        StatusCode::NOT_ACCEPTABLE => invalid(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            "the request's Accept header must list both application/json and text/event-stream; send Accept: application/json, text/event-stream".into(),
        ),
        _ => invalid(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!(
                "{said}; fix the request's MCP headers (MCP-Protocol-Version: one this server speaks, Mcp-Session-Id from initialize) and send it again"
            ),
        )
        .id(request_id(body).as_ref()),
    }
}

fn invalid(status: StatusCode, reason: &'static str, message: String) -> Rejection {
    Rejection::new(status, "malformed", reason, message).code(INVALID_REQUEST)
}

/// The id of a body that is a JSON object with a usable id.
fn request_id(body: &[u8]) -> Option<Value> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: Option<Value>,
    }
    let id = serde_json::from_slice::<Id>(body).ok()?.id?;
    usable_id(&id).then_some(id)
}

fn usable_id(id: &Value) -> bool {
    id.is_string() || id.is_i64() || id.is_u64()
}

/// Why a JSON-RPC message could not be read from `body`: 400 with -32700, -32600 or -32602.
pub(crate) fn unreadable(body: &[u8]) -> Rejection {
    let value = match serde_json::from_slice::<Value>(body) {
        Ok(v) => v,
        Err(e) => {
            return Rejection::new(
                StatusCode::BAD_REQUEST,
                "malformed",
                "parse_error",
                format!(
                    "parse error: the request body is not valid JSON ({e}); send one JSON-RPC 2.0 message as UTF-8 JSON, nested at most 128 deep"
                ),
            )
            .code(PARSE_ERROR);
        }
    };
    let bad = |what: String| {
        invalid(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("invalid request: {what}"),
        )
    };
    let Some(message) = value.as_object() else {
        return bad(if value.is_array() {
            "a JSON array (a batch); MCP takes one JSON-RPC message per request since 2025-06-18: send them one by one".into()
        } else {
            "the body is JSON but not a JSON-RPC message; send an object like {\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"ping\"}".into()
        });
    };
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return bad("\"jsonrpc\" must be \"2.0\"; send an object like {\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"ping\"}".into());
    }
    if let Some(id) = message.get("id")
        && !id.is_null()
        && !usable_id(id)
    {
        return bad(
            "the id must be a string or an integer that fits in 64 bits; send one of those".into(),
        );
    }
    let id = message.get("id").filter(|id| usable_id(id));
    match message.get("method") {
        Some(Value::String(method)) => Rejection::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            "invalid_params",
            format!(
                "invalid params: the params of `{}` do not have the shape that method takes; see the MCP schema for it and send them again",
                crate::error::excerpt(method, 100)
            ),
        )
        .code(INVALID_PARAMS)
        .id(id),
        Some(_) => bad("\"method\" must be a string; send the method's name".into()).id(id),
        None if message.contains_key("result") || message.contains_key("error") => bad(
            "a response this server did not ask for, or one it cannot read; answer only the server's own requests, with their id".into(),
        )
        .id(id),
        None => bad("no \"method\"; a request names its method, like \"ping\" or \"tools/call\"".into()).id(id),
    }
}

/// rmcp's refusal of a request it could not read, as a JSON-RPC error; what it said is kept
/// in the message.
pub(crate) async fn rewrite(response: Response<Body>, json_body: bool, body: &Bytes) -> Rejection {
    let status = response.status();
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    refusal(status, &text, json_body, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code_and_reason(r: &Rejection) -> (i64, String) {
        let b = r.body();
        (
            b["error"]["code"].as_i64().unwrap(),
            b["error"]["data"]["reason"].as_str().unwrap().to_string(),
        )
    }

    #[test]
    fn unparsable_bodies_are_parse_errors() {
        for body in [
            &br#"{"jsonrpc":"2.0","id":11,"method":"ping","#[..],
            b"mcpstorm probe: this is not JSON",
            b"{\"a\":\"\xff\xfe\"}",
        ] {
            let r = unreadable(body);
            assert_eq!(r.status, StatusCode::BAD_REQUEST);
            assert_eq!(code_and_reason(&r), (PARSE_ERROR, "parse_error".into()));
            assert!(
                r.message.contains("send one JSON-RPC 2.0 message"),
                "{}",
                r.message
            );
            assert_eq!(r.body()["id"], Value::Null);
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(code_and_reason(&unreadable(deep.as_bytes())).0, PARSE_ERROR);
    }

    #[test]
    fn json_that_is_not_a_request_is_invalid() {
        for body in [
            &br#"{"hello":"mcpstorm","id":12}"#[..],
            b"42",
            br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
            br#"{"jsonrpc":"2.0","id":1234567890123456789012345678901234567890,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":-1.5,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":3,"method":7}"#,
        ] {
            let r = unreadable(body);
            assert_eq!(
                code_and_reason(&r),
                (INVALID_REQUEST, "invalid_request".into()),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(unreadable(b"[]").message.contains("batch"));
    }

    #[test]
    fn a_known_method_with_bad_params_is_invalid_params_with_its_id() {
        let r = unreadable(br#"{"jsonrpc":"2.0","id":"x1","method":"tools/call","params":"no"}"#);
        assert_eq!(
            code_and_reason(&r),
            (INVALID_PARAMS, "invalid_params".into())
        );
        assert_eq!(r.body()["id"], json!("x1"));
        assert!(r.message.contains("`tools/call`"), "{}", r.message);
    }

    #[test]
    fn rmcps_other_refusals_keep_their_status_and_say_what_to_send() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        let json_request = content_type_is_json(&headers);
        assert!(json_request);
        let body = Bytes::from_static(br#"{"jsonrpc":"2.0","id":16,"method":"ping"}"#);
        let r = refusal(
            StatusCode::BAD_REQUEST,
            "Bad Request: Unsupported MCP-Protocol-Version: 1999-01-01",
            json_request,
            &body,
        );
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.body()["id"], 16);
        assert!(
            r.message
                .starts_with("Bad Request: Unsupported MCP-Protocol-Version"),
            "{}",
            r.message
        );
        let r = refusal(StatusCode::UNSUPPORTED_MEDIA_TYPE, "", false, &body);
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(r.message.contains("Content-Type: application/json"));
        let r = refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "fail to deserialize request body",
            json_request,
            &Bytes::from_static(b"{"),
        );
        assert_eq!((r.status, r.code), (StatusCode::BAD_REQUEST, PARSE_ERROR));
    }
}
