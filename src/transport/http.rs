//! Streamable HTTP: every message is a POST; the answer comes back as a JSON body or as an
//! SSE stream; the server may give us an `Mcp-Session-Id` that every later request carries.
//!
//! One `reqwest::Client` (and so one connection pool) is shared by all sessions of a run.
//! A 404 on a request that carried a session id means the server forgot the session: that is
//! `SessionLost`, and the session above re-initializes. This file never retries.
//!
//! In the stateless revision (2026-07-28) there is no session id; every POST carries
//! `MCP-Protocol-Version`, `Mcp-Method` and, for named requests, `Mcp-Name`, and a
//! `tools/call` its annotated arguments as `Mcp-Param-*` headers (`mcp_param`); the wire has no
//! client-to-server notifications (closing the request is the cancellation); and a JSON-RPC
//! error comes with an HTTP status of its own (404 for an unknown method, 400 for bad
//! params), so an error status whose body is a JSON-RPC error counts as that error.

use super::mcp_param::ParamHeaders;
use super::sse::{Decoder, Event};
use super::{Call, Step, Transport, step};
use crate::error::{CallError, excerpt};
use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, WWW_AUTHENTICATE};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const METHOD_HEADER: &str = "mcp-method";
const NAME_HEADER: &str = "mcp-name";

/// The shared HTTP client for a run, tuned for many concurrent sessions on one host.
pub fn client(pool_size: usize) -> reqwest::Client {
    // rustls needs one process-wide crypto provider; a second install attempt is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(pool_size.max(1))
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

pub(crate) struct HttpTransport {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    session_id: Option<HeaderValue>,
    protocol_version: Option<HeaderValue>,
    /// The stateless revision: routing headers on every POST, no notifications.
    stateless: bool,
    /// The run's `x-mcp-header` annotations, learnt from `tools/list` answers.
    params: Arc<ParamHeaders>,
    decoder_events: Vec<Event>,
}

/// Where a POST goes, for the stateless revision's routing headers.
struct Route<'a> {
    method: &'a str,
    name: Option<&'a str>,
    params: Option<&'a Value>,
}

impl HttpTransport {
    pub fn new(
        client: reqwest::Client,
        url: reqwest::Url,
        headers: HeaderMap,
        params: Arc<ParamHeaders>,
    ) -> Self {
        Self {
            client,
            url,
            headers,
            session_id: None,
            protocol_version: None,
            stateless: false,
            params,
            decoder_events: Vec::new(),
        }
    }

    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_ref().and_then(|v| v.to_str().ok())
    }

    async fn post(
        &mut self,
        body: Vec<u8>,
        route: Option<Route<'_>>,
    ) -> Result<reqwest::Response, CallError> {
        let mut req = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream");
        if let Some(sid) = &self.session_id {
            req = req.header(HeaderName::from_static(SESSION_HEADER), sid.clone());
        }
        if let Some(v) = &self.protocol_version {
            req = req.header(HeaderName::from_static(VERSION_HEADER), v.clone());
        }
        if self.stateless
            && let Some(route) = route
        {
            if let Ok(m) = HeaderValue::from_str(route.method) {
                req = req.header(HeaderName::from_static(METHOD_HEADER), m);
            }
            if let Some(n) = route
                .name
                .and_then(|n| HeaderValue::from_str(&header_text(n)).ok())
            {
                req = req.header(HeaderName::from_static(NAME_HEADER), n);
            }
            if route.method == "tools/call"
                && let Some(tool) = route.name
            {
                let arguments = route.params.and_then(|p| p.get("arguments"));
                for (name, value) in self.params.headers(tool, arguments) {
                    req = req.header(name, value);
                }
            }
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| classify(&e, &self.url))?;
        if let Some(sid) = resp.headers().get(SESSION_HEADER) {
            self.session_id = Some(sid.clone());
        }
        Ok(resp)
    }

    /// A non-success status as an error; a 404 on a known session is `SessionLost`; in the
    /// stateless revision, a JSON-RPC error body is that error.
    async fn status_error(&self, resp: reqwest::Response, had_session: bool, id: u64) -> CallError {
        let status = resp.status().as_u16();
        if status == 404 && had_session {
            return CallError::SessionLost {
                detail: format!(
                    "HTTP 404 for Mcp-Session-Id {}",
                    self.session_id().unwrap_or_default()
                ),
            };
        }
        let www_authenticate = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.unwrap_or_default();
        if self.stateless
            && let Some(e) = jsonrpc_error(body.as_bytes(), id)
        {
            return e;
        }
        CallError::HttpStatus {
            status,
            body: excerpt(&body, 300),
            www_authenticate,
        }
    }

    /// POST one request and read its answer, from a JSON body or an SSE stream.
    async fn answer(
        &mut self,
        id: u64,
        route: Route<'_>,
        body: Vec<u8>,
    ) -> Result<Value, CallError> {
        let had_session = self.session_id.is_some();
        let resp = self.post(body, Some(route)).await?;
        let status = resp.status();
        if status == reqwest::StatusCode::ACCEPTED {
            return Err(CallError::Protocol {
                detail: format!("HTTP 202 with no body for request {id}, which needs an answer"),
            });
        }
        if !status.is_success() {
            return Err(self.status_error(resp, had_session, id).await);
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("text/event-stream") {
            return self.read_sse(resp, id).await;
        }
        let bytes = resp.bytes().await.map_err(|e| classify(&e, &self.url))?;
        if !content_type.starts_with("application/json") {
            return Err(CallError::Protocol {
                detail: format!(
                    "HTTP {status} with Content-Type `{content_type}`, expected application/json or text/event-stream: {}",
                    excerpt(&String::from_utf8_lossy(&bytes), 120)
                ),
            });
        }
        match step(&bytes, id) {
            Step::Done(r) => r,
            _ => Err(CallError::Protocol {
                detail: format!("the JSON body is not the response to request {id}"),
            }),
        }
    }

    async fn read_sse(&mut self, resp: reqwest::Response, id: u64) -> Result<Value, CallError> {
        let mut decoder = Decoder::default();
        let mut stream = resp.bytes_stream();
        let mut events = std::mem::take(&mut self.decoder_events);
        let result = loop {
            let Some(chunk) = stream.next().await else {
                break Err(CallError::Protocol {
                    detail: format!("the SSE stream ended before the response to request {id}"),
                });
            };
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => break Err(classify(&e, &self.url)),
            };
            decoder.feed(&chunk, &mut events);
            let mut done = None;
            for ev in events.drain(..) {
                if done.is_some() {
                    continue;
                }
                match step(ev.data.as_bytes(), id) {
                    Step::Done(r) => done = Some(r),
                    Step::Answer(answer) => {
                        // The server asked us something mid-stream (ping): answer on a new POST.
                        let _ = self.post(answer, None).await;
                    }
                    Step::Skip => {}
                }
            }
            if let Some(r) = done {
                break r;
            }
        };
        self.decoder_events = events;
        result
    }
}

impl Transport for HttpTransport {
    async fn request(&mut self, call: Call<'_>) -> Result<Value, CallError> {
        let route = Route {
            method: call.method,
            name: crate::jsonrpc::request_name(call.method, call.params),
            params: call.params,
        };
        let answer = self.answer(call.id, route, call.body).await;
        if self.stateless
            && call.method == "tools/list"
            && let Ok(result) = &answer
        {
            self.params.learn(result);
        }
        answer
    }

    async fn notify(&mut self, body: Vec<u8>) -> Result<(), CallError> {
        if self.stateless {
            return Ok(());
        }
        let had_session = self.session_id.is_some();
        let resp = self.post(body, None).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.status_error(resp, had_session, 0).await)
        }
    }

    fn session_survives(&self, err: &CallError) -> bool {
        !matches!(err, CallError::SessionLost { .. })
    }

    fn negotiated(&mut self, protocol_version: &str) {
        self.protocol_version = match protocol_version {
            "" => None,
            v => HeaderValue::from_str(v).ok(),
        };
        self.stateless = crate::session::is_stateless(protocol_version);
    }

    async fn close(self) {
        if let Some(sid) = &self.session_id {
            let req = self
                .client
                .delete(self.url.clone())
                .headers(self.headers.clone())
                .header(HeaderName::from_static(SESSION_HEADER), sid.clone())
                .timeout(Duration::from_secs(2));
            let _ = req.send().await;
        }
    }
}

/// A JSON-RPC error body (for request `id`, or with no id at all) as that error.
fn jsonrpc_error(body: &[u8], id: u64) -> Option<CallError> {
    let msg: crate::jsonrpc::Incoming = serde_json::from_slice(body).ok()?;
    let matches = match &msg.id {
        None | Some(Value::Null) => true,
        Some(v) => v.as_u64() == Some(id),
    };
    let e = msg.error.filter(|_| matches)?;
    Some(CallError::JsonRpc {
        code: e.code,
        message: excerpt(
            &crate::session::unsupported_version_message(e.code, &e.message, e.data.as_ref()),
            200,
        ),
    })
}

/// A header value as the stateless revision writes it: as is when it is plain visible
/// ASCII, else Base64 between `=?base64?` and `?=`.
pub(crate) fn header_text(value: &str) -> String {
    use base64::Engine;
    let edge_space = value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']);
    let visible = value.chars().all(|c| (' '..='~').contains(&c));
    let sentinel = value.starts_with("=?base64?") && value.ends_with("?=");
    let plain = visible && !edge_space && !sentinel;
    if plain {
        value.to_string()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value)
        )
    }
}

/// Turn a reqwest failure into the taxonomy, by looking through its chain of causes.
pub(crate) fn classify(err: &reqwest::Error, url: &reqwest::Url) -> CallError {
    let addr = format!(
        "{}:{}",
        url.host_str().unwrap_or("?"),
        url.port_or_known_default().unwrap_or(0)
    );
    let mut chain = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut refused = false;
    let mut tls = false;
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
            tls |= io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>());
        }
        tls |= e.is::<rustls::Error>();
        chain.push(e.to_string());
        source = e.source();
    }
    let text = chain.join(": ");
    let lower = text.to_ascii_lowercase();
    if refused || lower.contains("connection refused") {
        CallError::ConnectRefused { addr }
    } else if lower.contains("dns error") || lower.contains("failed to lookup address") {
        CallError::Dns {
            host: url.host_str().unwrap_or("?").to_string(),
            detail: text,
        }
    } else if tls || lower.contains("certificate") || lower.contains("corrupt message") {
        CallError::Tls { detail: text }
    } else if err.is_timeout() {
        CallError::Timeout {
            after: Duration::from_secs(10),
        }
    } else {
        CallError::Connection { detail: text }
    }
}

/// One HTTP exchange as the wire saw it, for the security probes: any method, any headers,
/// any body bytes (malformed JSON, invalid UTF-8, 50 MB), and the answer as it came.
#[derive(Debug, Clone)]
pub(crate) struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body, cut at the reader's limit.
    pub body: Vec<u8>,
    /// JSON-RPC messages in the body: the JSON document, or each SSE event's data.
    pub messages: Vec<Value>,
    pub elapsed: Duration,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The first message that answers a request (has `result` or `error`).
    pub fn answer(&self) -> Option<&Value> {
        self.messages
            .iter()
            .find(|m| m.get("result").is_some() || m.get("error").is_some())
    }
}

/// Send one request exactly as given and read its answer (at most `max_read` bytes of body).
/// An SSE answer is read until it carries a response (a `result` or `error`), so a stream
/// the server keeps open does not hold the caller past that; server requests met on the way
/// (ping, sampling) are answered on a new POST so a tool waiting on them is not stuck.
pub(crate) async fn send_raw(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &reqwest::Url,
    headers: HeaderMap,
    body: Vec<u8>,
    timeout: Duration,
    max_read: usize,
) -> Result<RawResponse, CallError> {
    let started = std::time::Instant::now();
    let exchange = async {
        let reply_headers = headers.clone();
        let resp = client
            .request(method, url.clone())
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| classify(&e, url))?;
        let status = resp.status().as_u16();
        let resp_headers = resp.headers().clone();
        let sse = resp_headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("text/event-stream"));
        let mut stream = resp.bytes_stream();
        let mut body = Vec::new();
        let mut messages = Vec::new();
        let mut decoder = Decoder::default();
        let mut events = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| classify(&e, url))?;
            let room = max_read.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if sse {
                decoder.feed(&chunk, &mut events);
                let mut answered = false;
                for ev in events.drain(..) {
                    let Ok(msg) = serde_json::from_str::<Value>(&ev.data) else {
                        continue;
                    };
                    if let (Some(id), Some(m)) = (msg.get("id"), msg.get("method")) {
                        let answer = crate::jsonrpc::answer_server_request(
                            id,
                            m.as_str().unwrap_or_default(),
                        );
                        let _ = client
                            .post(url.clone())
                            .headers(reply_headers.clone())
                            .body(serde_json::to_vec(&answer).unwrap_or_default())
                            .send()
                            .await;
                    }
                    answered |= msg.get("result").is_some() || msg.get("error").is_some();
                    messages.push(msg);
                }
                if answered {
                    break;
                }
            }
            if body.len() >= max_read {
                break;
            }
        }
        if !sse && let Ok(v) = serde_json::from_slice::<Value>(&body) {
            match v {
                Value::Array(batch) => messages.extend(batch),
                v => messages.push(v),
            }
        }
        Ok(RawResponse {
            status,
            headers: resp_headers,
            body,
            messages,
            elapsed: started.elapsed(),
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(CallError::Timeout { after: timeout }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_plain_or_base64() {
        assert_eq!(header_text("echo"), "echo");
        assert_eq!(header_text("file:///a b.md"), "file:///a b.md");
        assert_eq!(header_text("héllo"), "=?base64?aMOpbGxv?=");
        assert_eq!(header_text(" x"), "=?base64?IHg=?=");
    }

    #[test]
    fn a_jsonrpc_error_body_is_that_error() {
        let body = br#"{"jsonrpc":"2.0","id":3,"error":{"code":-32022,"message":"Unsupported protocol version","data":{"supported":["2025-11-25"],"requested":"2026-07-28"}}}"#;
        let e = jsonrpc_error(body, 3).unwrap();
        assert!(
            matches!(&e, CallError::JsonRpc { code: -32022, message } if message.contains("supports 2025-11-25")),
            "{e}"
        );
        assert!(jsonrpc_error(body, 4).is_none());
        assert!(jsonrpc_error(b"Bad Request", 3).is_none());
    }
}
