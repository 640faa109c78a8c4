//! One MCP client session on top of a transport: how it starts (the era's lifecycle), request
//! ids, per-request timeouts and cancellation.
//!
//! Two protocol eras exist. The session revisions (2024-11-05 to 2025-11-25) start with
//! `initialize` + `notifications/initialized` and may keep state in the server (HTTP
//! `Mcp-Session-Id`). The stateless revision 2026-07-28 has no handshake: a session asks
//! `server/discover` once for the server's versions and capabilities, then every request
//! carries the protocol version and client capabilities in `params._meta`. A third start
//! belongs to custom WebSocket framings, whose transport did its own hello already.
//!
//! A session is used by one virtual user at a time and sends one request at a time, so ids
//! never interleave. It reports failures as they are; reconnecting is the caller's decision.

use crate::error::CallError;
use crate::jsonrpc::Outgoing;
use crate::transport::{AnyTransport, Call, Transport};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Protocol revisions this client speaks in session mode, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Stateless protocol revisions (no `initialize`, `server/discover`, `_meta` per request).
pub const STATELESS_VERSIONS: &[&str] = &["2026-07-28"];

/// Every revision, newest first: what `--protocol-matrix` runs by default.
pub fn all_versions() -> Vec<&'static str> {
    STATELESS_VERSIONS
        .iter()
        .chain(SUPPORTED_VERSIONS)
        .copied()
        .collect()
}

const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// JSON-RPC code of "unsupported protocol version" (2026-07-28).
const UNSUPPORTED_VERSION: i64 = -32022;

/// Which protocol a session speaks: one revision, or `auto` (detect).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum Protocol {
    /// Ask `server/discover` at the newest stateless revision; fall back to `initialize`.
    Auto,
    Revision(String),
}

impl From<Protocol> for String {
    fn from(p: Protocol) -> String {
        p.to_string()
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Protocol::Auto => f.write_str("auto"),
            Protocol::Revision(v) => f.write_str(v),
        }
    }
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol::Revision(SUPPORTED_VERSIONS[0].to_string())
    }
}

impl Protocol {
    /// Parse `auto` or a known revision; the error lists what is accepted.
    pub fn parse(s: &str) -> Result<Protocol, String> {
        if s == "auto" {
            return Ok(Protocol::Auto);
        }
        if all_versions().contains(&s) {
            return Ok(Protocol::Revision(s.to_string()));
        }
        Err(format!(
            "\"{s}\" is not a protocol revision mcpstorm speaks; use \"auto\" or one of {}",
            all_versions().join(", ")
        ))
    }
}

/// Is `version` a stateless revision? Revisions are dates, so they compare as text.
pub fn is_stateless(version: &str) -> bool {
    version >= STATELESS_VERSIONS[STATELESS_VERSIONS.len() - 1]
}

/// How a session started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Era {
    /// `initialize` handshake (2024-11-05 to 2025-11-25).
    #[default]
    Session,
    /// `server/discover` and `_meta` on every request (2026-07-28).
    Stateless,
    /// A custom WebSocket framing: no MCP lifecycle, the transport's hello only.
    Framing,
}

/// What the server said about itself in the handshake or discovery.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ServerInfo {
    pub name: String,
    pub version: String,
    pub protocol_version: String,
    pub era: Era,
    pub capabilities: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

pub struct Session {
    transport: AnyTransport,
    next_id: u64,
    /// The stateless revision's per-request `_meta` (version, capabilities, client info).
    meta: Option<Arc<Value>>,
    pub info: ServerInfo,
}

impl Session {
    /// Start a session on a fresh transport, in the era `protocol` names. On failure the
    /// transport is closed.
    pub(crate) async fn open(
        transport: AnyTransport,
        protocol: &Protocol,
        timeout: Duration,
    ) -> Result<Session, CallError> {
        let mut session = Session {
            transport,
            next_id: 1,
            meta: None,
            info: ServerInfo::default(),
        };
        let started = match session.transport.framing_info() {
            Some(info) => {
                session.info = info;
                Ok(())
            }
            None => session.start(protocol, timeout).await,
        };
        match started {
            Ok(()) => Ok(session),
            Err(e) => {
                session.transport.close().await;
                Err(e)
            }
        }
    }

    async fn start(&mut self, protocol: &Protocol, timeout: Duration) -> Result<(), CallError> {
        match protocol {
            Protocol::Revision(v) if is_stateless(v) => self.discover(v, timeout).await,
            Protocol::Revision(v) => self.initialize(v, timeout).await,
            Protocol::Auto => {
                // Stateless first: a server that speaks both eras is reached in the newest,
                // and one that does not answers `server/discover` with an error at once.
                // The other order could never find the stateless era on a dual server,
                // since every such server also accepts `initialize`.
                let newest = STATELESS_VERSIONS[0];
                let probe = timeout.min(AUTO_PROBE_TIMEOUT);
                match self.discover(newest, probe).await {
                    Ok(()) => Ok(()),
                    Err(e) if falls_back(&e) => {
                        self.meta = None;
                        self.transport.negotiated("");
                        self.initialize(SUPPORTED_VERSIONS[0], timeout).await
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// The session revisions' handshake.
    async fn initialize(
        &mut self,
        protocol_version: &str,
        timeout: Duration,
    ) -> Result<(), CallError> {
        let params = json!({
            "protocolVersion": protocol_version,
            "capabilities": {},
            "clientInfo": {"name": "mcpstorm", "version": env!("CARGO_PKG_VERSION")},
        });
        let result = self
            .call("initialize", Some(&params), timeout)
            .await
            .map_err(|e| refused(protocol_version, e, false))?;
        let info = parse_initialize(&result).map_err(|e| refused(protocol_version, e, false))?;
        self.transport.negotiated(&info.protocol_version);
        self.info = info;
        let initialized =
            serde_json::to_vec(&Outgoing::notification("notifications/initialized", None))
                .unwrap_or_default();
        match tokio::time::timeout(timeout, self.transport.notify(initialized)).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout { after: timeout }),
        }
    }

    /// The stateless revision's start: one `server/discover`, then `_meta` on every request.
    async fn discover(&mut self, version: &str, timeout: Duration) -> Result<(), CallError> {
        self.meta = Some(Arc::new(json!({
            META_VERSION: version,
            META_CAPABILITIES: {},
            META_CLIENT_INFO: {"name": "mcpstorm", "version": env!("CARGO_PKG_VERSION")},
        })));
        self.transport.negotiated(version);
        let result = self
            .call("server/discover", None, timeout)
            .await
            .map_err(|e| refused(version, e, true))?;
        self.info = parse_discover(&result, version).map_err(|e| refused(version, e, true))?;
        Ok(())
    }

    /// Send one request and wait at most `timeout` for its answer. The stateless revision
    /// has no `ping`: there it is sent as `server/discover`, the cheapest request it has.
    pub async fn call(
        &mut self,
        method: &str,
        params: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let method = match (method, self.info.era) {
            ("ping", Era::Stateless) => "server/discover",
            _ => method,
        };
        let id = self.next_id;
        self.next_id += 1;
        let meta = self.meta.clone();
        let body =
            serde_json::to_vec(&Outgoing::request(id, method, params).with_meta(meta.as_deref()))
                .map_err(|e| CallError::Protocol {
                detail: format!("cannot serialize the request: {e}"),
            })?;
        let call = Call {
            id,
            method,
            params,
            body,
        };
        match tokio::time::timeout(timeout, self.transport.request(call)).await {
            Ok(r) => r,
            Err(_) => {
                // Tell the server to stop working on it; a hung server won't read this, so
                // don't wait long.
                let cancel = json!({"requestId": id, "reason": "timeout"});
                if let Ok(b) = serde_json::to_vec(
                    &Outgoing::notification("notifications/cancelled", Some(&cancel))
                        .with_meta(meta.as_deref()),
                ) {
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

    /// End the session politely (HTTP DELETE; stdio close stdin, then end the process tree;
    /// close the stream or socket).
    pub async fn close(self) {
        self.transport.close().await;
    }
}

/// How long `auto` waits for `server/discover` before it tries `initialize`: a legacy stdio
/// server may drop a request it does not know before the handshake.
const AUTO_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Does this failure of the stateless probe mean "not this era" (try `initialize`), rather
/// than "this server cannot be reached at all"?
fn falls_back(e: &CallError) -> bool {
    match e {
        CallError::RevisionRefused { .. } | CallError::Timeout { .. } => true,
        CallError::HttpStatus { status, .. } => {
            (400..500).contains(status) && ![401, 403, 407, 429].contains(status)
        }
        _ => false,
    }
}

/// A failure to start in `revision` that says the server does not speak it becomes
/// `RevisionRefused`; anything else (unreachable, auth, a crash) stays what it is. An HTTP
/// 400 counts only for `server/discover` (`http_400`): a session-era server refuses a
/// request without a session that way, while a 400 to `initialize` is some other fault.
fn refused(revision: &str, e: CallError, http_400: bool) -> CallError {
    let detail = match &e {
        CallError::JsonRpc { code, message } => format!("JSON-RPC error {code}: {message}"),
        CallError::HttpStatus {
            status: 400, body, ..
        } if http_400 => {
            format!("HTTP 400: {body}")
        }
        CallError::Protocol { detail } if detail.contains("protocol version mismatch") => {
            detail.clone()
        }
        _ => return e,
    };
    CallError::RevisionRefused {
        revision: revision.to_string(),
        detail,
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
    Ok(ServerInfo {
        name: text(server, "name"),
        version: text(server, "version"),
        protocol_version: version.to_string(),
        era: Era::Session,
        capabilities: result.get("capabilities").cloned().unwrap_or(Value::Null),
        instructions: result
            .get("instructions")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

fn parse_discover(result: &Value, version: &str) -> Result<ServerInfo, CallError> {
    let Some(supported) = result.get("supportedVersions").and_then(Value::as_array) else {
        return Err(CallError::Protocol {
            detail:
                "protocol version mismatch: the server/discover result has no `supportedVersions`"
                    .into(),
        });
    };
    if !supported.iter().any(|v| v.as_str() == Some(version)) {
        let listed: Vec<String> = supported.iter().map(Value::to_string).collect();
        return Err(CallError::Protocol {
            detail: format!(
                "protocol version mismatch: server/discover lists supportedVersions [{}], without {version}",
                listed.join(", ")
            ),
        });
    }
    // The identity is a `_meta` stamp in 2026-07-28; early drafts had a `serverInfo` field.
    let server = result
        .get("_meta")
        .and_then(|m| m.get(META_SERVER_INFO))
        .or_else(|| result.get("serverInfo"));
    Ok(ServerInfo {
        name: text(server, "name"),
        version: text(server, "version"),
        protocol_version: version.to_string(),
        era: Era::Stateless,
        capabilities: result.get("capabilities").cloned().unwrap_or(Value::Null),
        instructions: result
            .get("instructions")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

fn text(obj: Option<&Value>, key: &str) -> String {
    obj.and_then(|s| s.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// The message of a `-32022` error with the server's `supported` list folded in.
pub(crate) fn unsupported_version_message(
    code: i64,
    message: &str,
    data: Option<&Value>,
) -> String {
    let supported = data
        .filter(|_| code == UNSUPPORTED_VERSION)
        .and_then(|d| d.get("supported"))
        .and_then(Value::as_array);
    match supported {
        Some(list) => {
            let list: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
            format!("{message} (the server supports {})", list.join(", "))
        }
        None => message.to_string(),
    }
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
        let refused = refused("2025-06-18", err, false);
        assert!(
            matches!(&refused, CallError::RevisionRefused { revision, .. } if revision == "2025-06-18"),
            "{refused}"
        );
    }

    #[test]
    fn discovery_reads_versions_identity_and_capabilities() {
        let r = json!({"supportedVersions": ["2025-11-25", "2026-07-28"],
            "capabilities": {"tools": {}},
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "ref", "version": "2"}}});
        let info = parse_discover(&r, "2026-07-28").unwrap();
        assert_eq!((info.name.as_str(), info.era), ("ref", Era::Stateless));
        assert!(info.capabilities.get("tools").is_some());
        let e = parse_discover(&json!({"supportedVersions": ["2025-11-25"]}), "2026-07-28")
            .unwrap_err();
        assert!(e.to_string().contains("without 2026-07-28"), "{e}");
    }

    #[test]
    fn protocol_parses_auto_and_every_revision_and_names_the_rest() {
        assert_eq!(Protocol::parse("auto").unwrap(), Protocol::Auto);
        for v in all_versions() {
            assert_eq!(Protocol::parse(v).unwrap(), Protocol::Revision(v.into()));
        }
        let e = Protocol::parse("2099-01-01").unwrap_err();
        assert!(e.contains("2026-07-28") && e.contains("auto"), "{e}");
        assert!(is_stateless("2026-07-28") && !is_stateless("2025-11-25"));
    }

    #[test]
    fn only_era_answers_fall_back_to_initialize() {
        assert!(falls_back(&CallError::HttpStatus {
            status: 400,
            body: String::new(),
            www_authenticate: None
        }));
        assert!(!falls_back(&CallError::HttpStatus {
            status: 401,
            body: String::new(),
            www_authenticate: None
        }));
        assert!(!falls_back(&CallError::ConnectRefused { addr: "x".into() }));
        assert!(falls_back(&refused(
            "2026-07-28",
            CallError::JsonRpc {
                code: -32601,
                message: "Method not found".into()
            },
            true
        )));
    }
}
