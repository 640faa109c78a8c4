//! One MCP client session on top of a transport: the handshake (`initialize`, then
//! `notifications/initialized`), request ids, per-request timeouts and cancellation.
//!
//! A session is used by one virtual user at a time and sends one request at a time, so ids
//! never interleave. It reports failures as they are; reconnecting is the caller's decision.

use crate::error::CallError;
use crate::jsonrpc::Outgoing;
use crate::transport::{AnyTransport, Transport};
use serde::Serialize;
use serde_json::{Value, json};
use std::time::Duration;

/// Protocol revisions this client speaks in session mode, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// What the server said about itself in the handshake.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ServerInfo {
    pub name: String,
    pub version: String,
    pub protocol_version: String,
    pub capabilities: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

pub struct Session {
    transport: AnyTransport,
    next_id: u64,
    pub info: ServerInfo,
}

impl Session {
    /// Run the handshake on a fresh transport.
    pub(crate) async fn handshake(
        transport: AnyTransport,
        protocol_version: &str,
        timeout: Duration,
    ) -> Result<Session, CallError> {
        let mut session = Session {
            transport,
            next_id: 1,
            info: ServerInfo::default(),
        };
        let params = json!({
            "protocolVersion": protocol_version,
            "capabilities": {},
            "clientInfo": {"name": "mcpstorm", "version": env!("CARGO_PKG_VERSION")},
        });
        let result = match session.call("initialize", Some(&params), timeout).await {
            Ok(r) => r,
            Err(e) => {
                session.transport.close().await;
                return Err(e);
            }
        };
        let info = match parse_initialize(&result) {
            Ok(i) => i,
            Err(e) => {
                session.transport.close().await;
                return Err(e);
            }
        };
        session.transport.negotiated(&info.protocol_version);
        session.info = info;
        let initialized =
            serde_json::to_vec(&Outgoing::notification("notifications/initialized", None))
                .unwrap_or_default();
        match tokio::time::timeout(timeout, session.transport.notify(initialized)).await {
            Ok(Ok(())) => Ok(session),
            Ok(Err(e)) => {
                session.transport.close().await;
                Err(e)
            }
            Err(_) => {
                session.transport.close().await;
                Err(CallError::Timeout { after: timeout })
            }
        }
    }

    /// Send one request and wait at most `timeout` for its answer.
    pub async fn call(
        &mut self,
        method: &str,
        params: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let id = self.next_id;
        self.next_id += 1;
        let body = serde_json::to_vec(&Outgoing::request(id, method, params)).map_err(|e| {
            CallError::Protocol {
                detail: format!("cannot serialize the request: {e}"),
            }
        })?;
        match tokio::time::timeout(timeout, self.transport.request(id, body)).await {
            Ok(r) => r,
            Err(_) => {
                // Tell the server to stop working on it; a hung server won't read this, so
                // don't wait long.
                let cancel = json!({"requestId": id, "reason": "timeout"});
                if let Ok(b) = serde_json::to_vec(&Outgoing::notification(
                    "notifications/cancelled",
                    Some(&cancel),
                )) {
                    let _ =
                        tokio::time::timeout(Duration::from_millis(500), self.transport.notify(b))
                            .await;
                }
                Err(CallError::Timeout { after: timeout })
            }
        }
    }

    /// Can this session still be used after `err`?
    pub fn survives(&self, err: &CallError) -> bool {
        self.transport.session_survives(err)
    }

    /// End the session politely (HTTP DELETE; stdio close stdin, then end the process tree).
    pub async fn close(self) {
        self.transport.close().await;
    }
}

pub(crate) fn parse_initialize(result: &Value) -> Result<ServerInfo, CallError> {
    let Some(version) = result.get("protocolVersion").and_then(Value::as_str) else {
        return Err(CallError::Protocol {
            detail: "the initialize result has no `protocolVersion`".into(),
        });
    };
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err(CallError::Protocol {
            detail: format!(
                "protocol version mismatch: the server answered `{version}`, mcpstorm speaks {}",
                SUPPORTED_VERSIONS.join(", ")
            ),
        });
    }
    let server = result.get("serverInfo");
    let text = |k: &str| {
        server
            .and_then(|s| s.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Ok(ServerInfo {
        name: text("name"),
        version: text("version"),
        protocol_version: version.to_string(),
        capabilities: result.get("capabilities").cloned().unwrap_or(Value::Null),
        instructions: result
            .get("instructions")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_protocol_versions() {
        let err = parse_initialize(&json!({"protocolVersion": "1999-01-01"})).unwrap_err();
        assert!(
            err.to_string().contains("protocol version mismatch"),
            "{err}"
        );
        let ok = parse_initialize(&json!({"protocolVersion": "2025-06-18",
            "serverInfo": {"name": "s", "version": "1"}, "capabilities": {"tools": {}}}))
        .unwrap();
        assert_eq!(ok.name, "s");
        assert_eq!(ok.protocol_version, "2025-06-18");
    }
}
