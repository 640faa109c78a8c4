//! One shape for every refusal: an HTTP status, `Retry-After` when waiting helps, a JSON-RPC
//! error body whose message says what happened and what to do, a security event in the log
//! and a count in `/metrics`.
//!
//! It must never put a secret, a token, a stack trace or a file path in the body.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::server::log::SecurityEvent;
use crate::server::metrics::ServerMetrics;

/// The JSON-RPC code of every refusal: "server error", implementation-defined. The reason
/// is in `error.data.reason`, so clients need not learn a table of invented codes.
pub(crate) const REFUSED: i64 = -32000;

/// A refusal, built by a layer and turned into a response by [`Rejection::respond`].
#[derive(Debug, Clone)]
pub(crate) struct Rejection {
    pub status: StatusCode,
    /// `denied`, `throttled`, `overloaded`, `too_large`, `circuit_open`, `memory_guard`,
    /// `shutting_down`: the log's `event` and the metric's `reason` family.
    pub event: &'static str,
    /// The precise cause: `expired_token`, `per_ip`, `queue_full`...
    pub reason: &'static str,
    /// What happened and what to do, in plain words.
    pub message: String,
    pub retry_after_s: Option<u64>,
    /// More figures for the client (`error.data`), merged with `reason` and `retry_after_s`.
    pub data: Value,
    pub www_authenticate: Option<String>,
    /// JSON-RPC id of the refused request, when a layer parsed it.
    pub id: Value,
    /// The JSON-RPC error code: [`REFUSED`], or one JSON-RPC defines for a request that
    /// could not be read (-32700, -32600, -32602).
    pub code: i64,
}

impl Rejection {
    pub(crate) fn new(
        status: StatusCode,
        event: &'static str,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Rejection {
        Rejection {
            status,
            event,
            reason,
            message: message.into(),
            retry_after_s: None,
            data: Value::Null,
            www_authenticate: None,
            id: Value::Null,
            code: REFUSED,
        }
    }

    pub(crate) fn code(mut self, code: i64) -> Rejection {
        self.code = code;
        self
    }

    pub(crate) fn retry_after(mut self, seconds: u64) -> Rejection {
        self.retry_after_s = Some(seconds.max(1));
        self
    }

    pub(crate) fn data(mut self, data: Value) -> Rejection {
        self.data = data;
        self
    }

    pub(crate) fn www_authenticate(mut self, value: String) -> Rejection {
        self.www_authenticate = Some(value);
        self
    }

    pub(crate) fn id(mut self, id: Option<&Value>) -> Rejection {
        self.id = id.cloned().unwrap_or(Value::Null);
        self
    }

    /// The JSON-RPC error body.
    pub(crate) fn body(&self) -> Value {
        let mut data = match &self.data {
            Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        };
        data.insert("reason".into(), json!(self.reason));
        if let Some(s) = self.retry_after_s {
            data.insert("retry_after_s".into(), json!(s));
        }
        json!({
            "jsonrpc": "2.0",
            "id": self.id,
            "error": { "code": self.code, "message": self.message, "data": data },
        })
    }

    /// Logs the security event, counts it, and builds the response.
    pub(crate) fn respond(
        self,
        who: &SecurityEvent<'_>,
        metrics: Option<&ServerMetrics>,
    ) -> Response<Body> {
        who.log(self.event, self.reason, &self.message);
        if let Some(m) = metrics {
            m.rejected(self.event, self.reason);
        }
        self.into_response()
    }

    pub(crate) fn into_response(self) -> Response<Body> {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(s) = self.retry_after_s
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            headers.insert(header::RETRY_AFTER, v);
        }
        if let Some(w) = self.www_authenticate
            && let Ok(v) = HeaderValue::from_str(&w)
        {
            headers.insert(header::WWW_AUTHENTICATE, v);
        }
        response
    }
}

/// Seconds to tell a client to wait: at least 1, rounded up.
pub(crate) fn ceil_seconds(wait: std::time::Duration) -> u64 {
    let whole = wait.as_secs();
    let s = if wait.subsec_nanos() > 0 {
        whole + 1
    } else {
        whole
    };
    s.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn body_is_a_json_rpc_error_with_reason_and_retry_after() {
        let r = Rejection::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            "per_ip",
            "slow down",
        )
        .retry_after(2)
        .data(json!({ "rate_per_s": 100 }))
        .id(Some(&json!(7)));
        let b = r.body();
        assert_eq!(b["jsonrpc"], "2.0");
        assert_eq!(b["id"], 7);
        assert_eq!(b["error"]["code"], REFUSED);
        assert_eq!(b["error"]["message"], "slow down");
        assert_eq!(b["error"]["data"]["reason"], "per_ip");
        assert_eq!(b["error"]["data"]["retry_after_s"], 2);
        assert_eq!(b["error"]["data"]["rate_per_s"], 100);
        let resp = r.into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(ceil_seconds(Duration::from_millis(1)), 1);
        assert_eq!(ceil_seconds(Duration::ZERO), 1);
        assert_eq!(ceil_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(ceil_seconds(Duration::from_secs(3)), 3);
    }
}
