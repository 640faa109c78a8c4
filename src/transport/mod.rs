//! Transports: how one session's JSON-RPC messages reach a server and come back.
//!
//! One file per wire: `stdio`, `http` (Streamable HTTP), `legacy_sse` (the 2024-11-05 GET
//! stream + POST endpoint), `websocket` (JSON-RPC text frames, or a custom envelope described
//! by a `framing`). A transport sends a request and returns the response to that id,
//! answering the server's own requests (ping) and skipping its notifications on the way. It
//! never interprets MCP results: that is the session's job. It never retries.
//!
//! Why not rmcp's client transports: the load path needs the raw bytes (to send exactly what
//! a scenario asks, and later malformed input), exact timing (latency measured around one
//! write and one read, no background worker), and a failure taxonomy rmcp does not expose
//! (refused vs DNS vs TLS vs 404-session-lost vs process exit with its stderr).

pub mod framing;
pub(crate) mod http;
pub(crate) mod legacy_sse;
pub(crate) mod mcp_param;
pub(crate) mod sse;
pub(crate) mod stdio;
pub(crate) mod websocket;

use crate::error::CallError;
use crate::jsonrpc::{Classified, Incoming};
use serde_json::Value;

/// One request on its way out: serialized as JSON-RPC in `body`, and in parts for wires that
/// need them (the stateless revision's `Mcp-Method`/`Mcp-Name` headers, custom framings).
pub(crate) struct Call<'a> {
    pub id: u64,
    pub method: &'a str,
    pub params: Option<&'a Value>,
    pub body: Vec<u8>,
}

/// One connection to a server, used by one session at a time.
pub(crate) trait Transport: Send {
    /// Send `call` and wait for its response.
    fn request(
        &mut self,
        call: Call<'_>,
    ) -> impl std::future::Future<Output = Result<Value, CallError>> + Send;
    /// Send a notification; nothing comes back but an acknowledgement.
    fn notify(
        &mut self,
        body: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<(), CallError>> + Send;
    /// After this error, can the session go on? Each wire answers for itself: a dead stdio
    /// process ends its session, while an HTTP session lives in the server and outlasts a
    /// broken connection (only a 404 says it is gone).
    fn session_survives(&self, err: &CallError) -> bool;
    /// Tell the transport which protocol version the session speaks from now on (`""`: none
    /// yet, as before a handshake).
    fn negotiated(&mut self, _protocol_version: &str) {}
    /// A custom framing has no MCP lifecycle: the session takes what the framing says
    /// about the server instead of a handshake. `None` for MCP wires.
    fn framing_info(&self) -> Option<crate::session::ServerInfo> {
        None
    }
    /// End the connection politely (HTTP DELETE, stdio close-then-kill).
    fn close(self) -> impl std::future::Future<Output = ()> + Send;
}

/// The transports a target can name; dispatch without boxing on the hot path. The variants
/// differ in size, but one lives per session, so boxing would only add a pointer chase.
#[allow(clippy::large_enum_variant)]
pub(crate) enum AnyTransport {
    Stdio(stdio::StdioTransport),
    Http(http::HttpTransport),
    LegacySse(legacy_sse::LegacySseTransport),
    WebSocket(websocket::WebSocketTransport),
}

/// Call the same method on whichever transport this is.
macro_rules! each {
    ($self:expr, $t:ident => $e:expr) => {
        match $self {
            AnyTransport::Stdio($t) => $e,
            AnyTransport::Http($t) => $e,
            AnyTransport::LegacySse($t) => $e,
            AnyTransport::WebSocket($t) => $e,
        }
    };
}

impl Transport for AnyTransport {
    async fn request(&mut self, call: Call<'_>) -> Result<Value, CallError> {
        each!(self, t => t.request(call).await)
    }
    async fn notify(&mut self, body: Vec<u8>) -> Result<(), CallError> {
        each!(self, t => t.notify(body).await)
    }
    fn session_survives(&self, err: &CallError) -> bool {
        each!(self, t => t.session_survives(err))
    }
    fn negotiated(&mut self, protocol_version: &str) {
        each!(self, t => t.negotiated(protocol_version))
    }
    fn framing_info(&self) -> Option<crate::session::ServerInfo> {
        each!(self, t => t.framing_info())
    }
    async fn close(self) {
        each!(self, t => t.close().await)
    }
}

/// What one incoming message means for a caller waiting on request `want`.
pub(crate) enum Step {
    Done(Result<Value, CallError>),
    /// The server asked something; send this answer and keep waiting.
    Answer(Vec<u8>),
    Skip,
}

/// Shared by every transport: place one message from the server relative to request `want`.
pub(crate) fn step(raw: &[u8], want: u64) -> Step {
    let msg: Incoming = match serde_json::from_slice(raw) {
        Ok(m) => m,
        Err(e) => {
            let text = String::from_utf8_lossy(raw);
            return Step::Done(Err(CallError::Protocol {
                detail: format!(
                    "server sent output that is not JSON-RPC ({e}): {}",
                    crate::error::excerpt(&text, 120)
                ),
            }));
        }
    };
    match msg.classify() {
        Classified::Response { id, outcome } if id == want => {
            Step::Done(outcome.map_err(|e| CallError::JsonRpc {
                code: e.code,
                message: crate::error::excerpt(
                    &crate::session::unsupported_version_message(
                        e.code,
                        &e.message,
                        e.data.as_ref(),
                    ),
                    200,
                ),
            }))
        }
        // Ids go up one request at a time: an id past ours was never sent (the server did
        // not echo our id), one before ours answers an earlier request that timed out.
        Classified::Response { id, .. } if id > want => Step::Done(Err(CallError::Protocol {
            detail: format!("the answer carries id {id}, but the request sent was id {want}"),
        })),
        Classified::Response { .. } | Classified::Notification => Step::Skip,
        Classified::ServerRequest { id, method } => {
            let answer = crate::jsonrpc::answer_server_request(&id, &method);
            Step::Answer(serde_json::to_vec(&answer).unwrap_or_default())
        }
        Classified::Invalid(detail) => Step::Done(Err(CallError::Protocol { detail })),
    }
}
