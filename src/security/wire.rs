//! What every probe sends through: the target (HTTP or stdio), the credentials that let us
//! in, a pacer that keeps the suite under a declared rate limit, a record of every answer
//! (for the hygiene probe's stack-trace search), and the health check that follows each
//! hostile request.
//!
//! The probes need raw control (any header, any bytes, a session id from one principal used
//! by another), so HTTP sessions are opened here by hand on top of
//! `transport::http::send_raw`, not through `Session`. It never retries a request except
//! after a 429 when the caller asks (`retry_throttled`), so a rate limiter does not turn
//! every other probe's answer into "throttled".

use super::config::SecurityConfig;
pub(crate) use super::stdio_proc::StdioProc;
use super::tokens::{self, Flaw, Minter};
use crate::error::{CallError, excerpt};
use crate::session::ServerInfo;
use crate::target::TargetSpec;
use crate::transport::http::{RawResponse, send_raw};
use crate::transport::stdio::{StderrLog, StdioSpec, StdioTransport};
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How much of a response body is kept: enough for an error message and a stack trace.
const MAX_READ: usize = 64 * 1024;
/// Answers kept for the hygiene probe.
const MAX_SEEN: usize = 2000;
/// A throttled request is tried again at most this often, waiting Retry-After (capped).
const THROTTLE_RETRIES: u32 = 5;
const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);
/// How long a stdio server may take to answer `initialize` after it was started.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) enum Wire {
    Http(Box<HttpWire>),
    Stdio(StdioWire),
}

pub(crate) struct HttpWire {
    client: reqwest::Client,
    /// A client bound to another loopback address (127.0.0.2), when the target is on
    /// loopback: a second client IP for the rate-limit scope check.
    alt_client: Option<reqwest::Client>,
    pub url: reqwest::Url,
    /// The user's headers without `Authorization`: what the auth probes build on.
    pub base: HeaderMap,
    /// Headers that should let us in: the base plus a minted valid token (or the user's own).
    pub good: HeaderMap,
    /// How the evidence names the credential in `good` (never the token itself).
    pub good_desc: String,
}

pub(crate) struct StdioWire {
    spec: StdioSpec,
    log: Arc<StderrLog>,
    spawned: AtomicU64,
}

/// One answer the server gave, kept for the hygiene probe.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub probe: String,
    pub request: String,
    pub body: String,
}

/// Spaces requests so the suite stays under half of a declared rate limit.
struct Pacer {
    gap: Option<Duration>,
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl Pacer {
    async fn wait(&self) {
        let Some(gap) = self.gap else { return };
        let mut next = self.next.lock().await;
        let now = tokio::time::Instant::now();
        if *next > now {
            tokio::time::sleep_until(*next).await;
        }
        *next = (*next).max(now) + gap;
    }
}

/// A request as the probes build it.
pub(crate) struct Req {
    pub method: Method,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// Evidence: how to show the request (method, path, the headers that matter, body excerpt).
    pub shown: String,
    pub timeout: Option<Duration>,
    /// On 429, wait Retry-After and send again (not for the rate-limit probe itself).
    pub retry_throttled: bool,
    /// Send from the second loopback address (another client IP, for rate-limit scope).
    pub alt_source: bool,
}

/// An HTTP session opened by hand: its id and the headers that go with it.
#[derive(Debug, Clone)]
pub(crate) struct HttpSession {
    pub id: Option<String>,
    pub headers: HeaderMap,
    pub info: ServerInfo,
    /// Opened from the second loopback address: its requests go from there too.
    pub alt: bool,
}

/// Why a session could not be opened.
#[derive(Debug)]
pub(crate) enum Refused {
    Http(RawResponse),
    Call(CallError),
    Protocol(String),
}

impl Refused {
    pub fn describe(&self) -> String {
        match self {
            Refused::Http(r) => describe_response(r),
            Refused::Call(e) => e.to_string(),
            Refused::Protocol(p) => p.clone(),
        }
    }
}

pub(crate) struct Ctx {
    pub cfg: SecurityConfig,
    pub wire: Wire,
    pub minter: Option<Minter>,
    /// A session could be opened with the good credentials at preflight.
    pub authorized: bool,
    pub server: ServerInfo,
    pub tools: Vec<Value>,
    down: Mutex<Option<String>>,
    seen: Mutex<Vec<Seen>>,
    pacer: Pacer,
    sent: AtomicU64,
    /// Refusals the probes met (401/403, 429): what the server's log should show.
    pub denied_seen: AtomicU64,
    pub throttled_seen: AtomicU64,
    /// Where the server's log stood when the suite began: only later lines are ours.
    pub log_offset: u64,
    /// Every token minted for the suite, to make sure none ends up in the server's log.
    pub tokens_used: Mutex<Vec<String>>,
    /// Opens whole MCP sessions (the client the load uses) with the good credentials, for
    /// probes that need many real sessions rather than hand-made requests (concurrency).
    /// HTTP only, once the preflight got in.
    connector: Option<crate::target::Connector>,
}

pub(crate) fn json_headers(extra: &HeaderMap) -> HeaderMap {
    let mut h = extra.clone();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(
        ACCEPT,
        HeaderValue::from_static("application/json, text/event-stream"),
    );
    h
}

pub(crate) fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"))
}

pub(crate) fn rpc(id: Value, method: &str, params: Option<Value>) -> Vec<u8> {
    let mut m = json!({"jsonrpc": "2.0", "id": id, "method": method});
    if let Some(p) = params {
        m["params"] = p;
    }
    serde_json::to_vec(&m).unwrap_or_default()
}

pub(crate) fn initialize_body(version: &str) -> Vec<u8> {
    rpc(
        json!(1),
        "initialize",
        Some(json!({
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "mcpstorm-probe", "version": env!("CARGO_PKG_VERSION")},
        })),
    )
}

/// `POST /mcp [notes] body (N bytes): excerpt`, for evidence.
pub(crate) fn describe_request(method: &str, path: &str, notes: &[String], body: &[u8]) -> String {
    let mut s = format!("{method} {path}");
    for n in notes {
        s.push_str(&format!(" [{n}]"));
    }
    if !body.is_empty() {
        s.push_str(&format!(
            " body ({} bytes): {}",
            body.len(),
            excerpt(&String::from_utf8_lossy(&body[..body.len().min(400)]), 200)
        ));
    }
    s
}

/// `HTTP 401 in 3 ms; WWW-Authenticate: ...; body: ...`, for evidence.
pub(crate) fn describe_response(r: &RawResponse) -> String {
    let mut s = format!("HTTP {} in {} ms", r.status, r.elapsed.as_millis());
    for h in [
        "www-authenticate",
        "retry-after",
        "mcp-session-id",
        "access-control-allow-origin",
        "content-type",
    ] {
        if let Some(v) = r.header(h) {
            s.push_str(&format!("; {h}: {}", excerpt(v, 120)));
        }
    }
    if !r.body.is_empty() {
        s.push_str(&format!(
            "; body: {}",
            excerpt(&String::from_utf8_lossy(&r.body), 300)
        ));
    }
    s
}

pub(crate) fn describe_outcome(r: &Result<RawResponse, CallError>) -> String {
    match r {
        Ok(r) => describe_response(r),
        Err(e) => format!("no HTTP answer: {e}"),
    }
}

/// The JSON-RPC error code of the first answer, if it is an error.
pub(crate) fn error_code(r: &RawResponse) -> Option<i64> {
    r.answer()
        .and_then(|a| a.get("error"))
        .and_then(|e| e.get("code"))
        .and_then(Value::as_i64)
}

/// Did the server serve the request (a JSON-RPC result)?
pub(crate) fn served(r: &RawResponse) -> bool {
    (200..300).contains(&r.status) && r.answer().is_some_and(|a| a.get("result").is_some())
}

impl Ctx {
    /// Reach the target and open one session with the good credentials (preflight).
    pub async fn connect(
        target: &TargetSpec,
        cfg: SecurityConfig,
        log: Arc<StderrLog>,
    ) -> Result<Ctx, CallError> {
        let stderr_log = log.clone();
        let minter = cfg
            .auth_key
            .clone()
            .map(|k| Minter::new(k, &cfg.audience, cfg.issuer.as_deref()));
        let pacer = Pacer {
            gap: cfg
                .rate_limit
                .as_ref()
                .map(|r| Duration::from_secs_f64(2.0 / r.declared.max(0.001))),
            next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        };
        let wire = match target {
            TargetSpec::Http { url, headers } => {
                let url = reqwest::Url::parse(url).map_err(|e| CallError::Connection {
                    detail: format!("target url `{url}`: {e}"),
                })?;
                let all = crate::target::header_map(headers, "--header")
                    .map_err(|detail| CallError::Connection { detail })?;
                let mut base = all.clone();
                base.remove(AUTHORIZATION);
                let mut good = all.clone();
                let mut good_desc = match all.get(AUTHORIZATION) {
                    Some(_) => "Authorization: <your header>".to_string(),
                    None => "no Authorization".to_string(),
                };
                if let Some(m) = &minter {
                    let (token, desc) = m
                        .token(tokens::PRINCIPAL_A, Flaw::None)
                        .map_err(|detail| CallError::Connection { detail })?;
                    good.insert(AUTHORIZATION, bearer(&token));
                    good_desc = format!("Authorization: Bearer {desc}");
                }
                // Built first: it installs the process-wide TLS provider the second needs.
                let client = crate::transport::http::client(16);
                let alt_client = match url
                    .host_str()
                    .and_then(|h| h.parse::<std::net::Ipv4Addr>().ok())
                {
                    Some(ip) if ip.is_loopback() => {
                        let alt = if ip.octets()[3] == 2 {
                            [127, 0, 0, 3]
                        } else {
                            [127, 0, 0, 2]
                        };
                        reqwest::Client::builder()
                            .no_proxy()
                            .tcp_nodelay(true)
                            .local_address(std::net::IpAddr::from(alt))
                            .build()
                            .ok()
                    }
                    _ => None,
                };
                Wire::Http(Box::new(HttpWire {
                    client,
                    alt_client,
                    url,
                    base,
                    good,
                    good_desc,
                }))
            }
            TargetSpec::Stdio(spec) => Wire::Stdio(StdioWire {
                spec: spec.clone(),
                log,
                spawned: AtomicU64::new(0),
            }),
            TargetSpec::Embedded { .. } => {
                return Err(CallError::Connection {
                    detail: "internal: the embedded target must be started first".into(),
                });
            }
            TargetSpec::Sse { .. } | TargetSpec::WebSocket { .. } => {
                return Err(CallError::Protocol {
                    detail: "the security probes speak Streamable HTTP and stdio; legacy SSE and WebSocket targets are not probed".into(),
                });
            }
        };
        let mut ctx = Ctx {
            cfg,
            wire,
            minter,
            authorized: false,
            server: ServerInfo::default(),
            tools: vec![],
            down: Mutex::new(None),
            seen: Mutex::new(Vec::new()),
            pacer,
            sent: AtomicU64::new(0),
            denied_seen: AtomicU64::new(0),
            throttled_seen: AtomicU64::new(0),
            log_offset: 0,
            tokens_used: Mutex::new(Vec::new()),
            connector: None,
        };
        if let Some(path) = &ctx.cfg.server_log {
            ctx.log_offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        }
        match &ctx.wire {
            Wire::Http(h) => {
                let good = h.good.clone();
                match ctx.open_session("preflight", &good).await {
                    Ok(s) => {
                        ctx.authorized = true;
                        ctx.server = s.info.clone();
                        ctx.tools = ctx.http_list_tools(&s).await;
                        ctx.close_session(&s).await;
                        ctx.connector = Some(ctx.session_connector(&stderr_log)?);
                    }
                    Err(Refused::Http(r)) if r.status == 401 || r.status == 403 => {}
                    Err(Refused::Http(r)) => {
                        return Err(CallError::HttpStatus {
                            status: r.status,
                            body: excerpt(&String::from_utf8_lossy(&r.body), 300),
                            www_authenticate: r.header("www-authenticate").map(str::to_string),
                        });
                    }
                    Err(Refused::Call(e)) => return Err(e),
                    Err(Refused::Protocol(detail)) => return Err(CallError::Protocol { detail }),
                }
            }
            Wire::Stdio(_) => {
                let mut p = ctx.spawn_stdio().await?;
                ctx.authorized = true;
                ctx.server = p.info.clone();
                let tools = p
                    .request("tools/list", None, ctx.cfg.timeout)
                    .await
                    .ok()
                    .and_then(|m| m["result"]["tools"].as_array().cloned());
                ctx.tools = tools.unwrap_or_default();
                p.close().await;
            }
        }
        Ok(ctx)
    }

    /// A connector whose sessions carry the good credentials and speak the revision the
    /// preflight agreed on.
    fn session_connector(
        &self,
        log: &Arc<StderrLog>,
    ) -> Result<crate::target::Connector, CallError> {
        let Some(h) = self.http() else {
            return Err(CallError::Connection {
                detail: "internal: MCP sessions for the probes are opened over HTTP only".into(),
            });
        };
        let headers = h
            .good
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let spec = TargetSpec::Http {
            url: h.url.to_string(),
            headers,
        };
        let protocol = crate::session::Protocol::Revision(self.server.protocol_version.clone());
        crate::target::Connector::new(&spec, &protocol, self.cfg.timeout, log.clone(), 64)
            .map_err(|detail| CallError::Connection { detail })
    }

    /// Opens whole MCP sessions with the good credentials; `None` over stdio or when the
    /// preflight could not get in.
    pub fn connector(&self) -> Option<&crate::target::Connector> {
        self.connector.as_ref()
    }

    pub fn http(&self) -> Option<&HttpWire> {
        match &self.wire {
            Wire::Http(h) => Some(h),
            Wire::Stdio(_) => None,
        }
    }

    /// Can requests come from a second client IP (the target is on IPv4 loopback)?
    pub fn has_second_address(&self) -> bool {
        self.http().is_some_and(|h| h.alt_client.is_some())
    }

    pub fn is_stdio(&self) -> bool {
        matches!(self.wire, Wire::Stdio(_))
    }

    pub fn down(&self) -> Option<String> {
        self.down.lock().ok().and_then(|d| d.clone())
    }

    pub fn mark_down(&self, why: String) {
        if let Ok(mut d) = self.down.lock()
            && d.is_none()
        {
            *d = Some(why);
        }
    }

    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn record(&self, probe: &str, request: &str, body: &[u8]) {
        if body.is_empty() {
            return;
        }
        if let Ok(mut s) = self.seen.lock()
            && s.len() < MAX_SEEN
        {
            s.push(Seen {
                probe: probe.to_string(),
                request: request.to_string(),
                body: String::from_utf8_lossy(&body[..body.len().min(MAX_READ)]).into_owned(),
            });
        }
    }

    /// Send one HTTP request to the target URL (paced; 429 retried when asked).
    pub async fn send(&self, probe: &str, req: Req) -> Result<RawResponse, CallError> {
        self.send_inner(probe, req, true).await
    }

    /// Send without the pacer: for floods and bursts that mean to go over the limit.
    pub async fn send_unpaced(&self, probe: &str, req: Req) -> Result<RawResponse, CallError> {
        self.send_inner(probe, req, false).await
    }

    async fn send_inner(
        &self,
        probe: &str,
        req: Req,
        paced: bool,
    ) -> Result<RawResponse, CallError> {
        let Some(h) = self.http() else {
            return Err(CallError::Connection {
                detail: "internal: an HTTP request to a stdio target".into(),
            });
        };
        let timeout = req.timeout.unwrap_or(self.cfg.timeout);
        let mut attempt = 0;
        loop {
            if paced {
                self.pacer.wait().await;
            }
            self.sent.fetch_add(1, Ordering::Relaxed);
            let client = match (&h.alt_client, req.alt_source) {
                (Some(alt), true) => alt,
                _ => &h.client,
            };
            let r = send_raw(
                client,
                req.method.clone(),
                &h.url,
                req.headers.clone(),
                req.body.clone(),
                timeout,
                MAX_READ,
            )
            .await;
            if let Ok(resp) = &r {
                match resp.status {
                    401 | 403 => self.denied_seen.fetch_add(1, Ordering::Relaxed),
                    429 => self.throttled_seen.fetch_add(1, Ordering::Relaxed),
                    _ => 0,
                };
                if let Some(auth) = req.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok())
                    && let Some(token) = auth.strip_prefix("Bearer ")
                    && token.len() > 20
                    && let Ok(mut t) = self.tokens_used.lock()
                    && !t.iter().any(|x| x == token)
                    && t.len() < 100
                {
                    t.push(token.to_string());
                }
                if resp.status == 429 && req.retry_throttled && attempt < THROTTLE_RETRIES {
                    attempt += 1;
                    tokio::time::sleep(retry_after(resp).min(MAX_RETRY_WAIT)).await;
                    continue;
                }
                self.record(probe, &req.shown, &resp.body);
            }
            return r;
        }
    }

    /// A POST of a JSON-RPC body with the usual MCP headers plus `headers`.
    pub fn post(&self, headers: &HeaderMap, body: Vec<u8>, notes: &[String]) -> Req {
        let path = self
            .http()
            .map(|h| h.url.path().to_string())
            .unwrap_or_default();
        Req {
            method: Method::POST,
            shown: describe_request("POST", &path, notes, &body),
            headers: json_headers(headers),
            body,
            timeout: None,
            retry_throttled: true,
            alt_source: false,
        }
    }

    /// `initialize` + `notifications/initialized` with these headers (credentials included).
    pub async fn open_session(
        &self,
        probe: &str,
        headers: &HeaderMap,
    ) -> Result<HttpSession, Refused> {
        self.open_session_from(probe, headers, false).await
    }

    /// Open a session from the second loopback address (`alt`) or the usual one.
    pub async fn open_session_from(
        &self,
        probe: &str,
        headers: &HeaderMap,
        alt: bool,
    ) -> Result<HttpSession, Refused> {
        let version = crate::session::SUPPORTED_VERSIONS[0];
        let mut init = self.post(headers, initialize_body(version), &[]);
        init.alt_source = alt;
        let r = self.send(probe, init).await.map_err(Refused::Call)?;
        if !served(&r) {
            return Err(Refused::Http(r));
        }
        let result = r
            .answer()
            .and_then(|a| a.get("result"))
            .cloned()
            .unwrap_or_default();
        let info = crate::session::parse_initialize(&result)
            .map_err(|e| Refused::Protocol(e.to_string()))?;
        let id = r.header("mcp-session-id").map(str::to_string);
        let mut h = headers.clone();
        if let Some(id) = &id
            && let Ok(v) = HeaderValue::from_str(id)
        {
            h.insert(HeaderName::from_static("mcp-session-id"), v);
        }
        if let Ok(v) = HeaderValue::from_str(&info.protocol_version) {
            h.insert(HeaderName::from_static("mcp-protocol-version"), v);
        }
        let initialized =
            serde_json::to_vec(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                .unwrap_or_default();
        let n = self
            .send(probe, {
                let mut n = self.post(&h, initialized, &[]);
                n.alt_source = alt;
                n
            })
            .await
            .map_err(Refused::Call)?;
        if !(200..300).contains(&n.status) {
            return Err(Refused::Http(n));
        }
        Ok(HttpSession {
            id,
            headers: h,
            info,
            alt,
        })
    }

    /// A request on an open session, with its headers and `extra` on top.
    pub async fn call(
        &self,
        probe: &str,
        session: &HttpSession,
        id: u64,
        method: &str,
        params: Option<Value>,
    ) -> Result<RawResponse, CallError> {
        let body = rpc(json!(id), method, params);
        self.send(probe, self.post(&session.headers, body, &[]))
            .await
    }

    pub async fn close_session(&self, session: &HttpSession) {
        if session.id.is_none() {
            return;
        }
        let req = Req {
            method: Method::DELETE,
            headers: session.headers.clone(),
            body: vec![],
            shown: "DELETE".into(),
            timeout: Some(Duration::from_secs(2)),
            retry_throttled: true,
            alt_source: false,
        };
        let _ = self.send("close", req).await;
    }

    async fn http_list_tools(&self, s: &HttpSession) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for page in 0..10u64 {
            let params = cursor.as_ref().map(|c| json!({"cursor": c}));
            let Ok(r) = self
                .call("preflight", s, 100 + page, "tools/list", params)
                .await
            else {
                break;
            };
            let Some(result) = r.answer().and_then(|a| a.get("result")) else {
                break;
            };
            out.extend(result["tools"].as_array().cloned().unwrap_or_default());
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(c) if !c.is_empty() => cursor = Some(c.to_string()),
                _ => break,
            }
        }
        out
    }

    /// Is the HTTP server still alive and answering? A ping on a fresh session within the
    /// health deadline; without credentials that work, any HTTP answer below 500 will do.
    /// `Err` carries what was seen, for the evidence.
    pub async fn http_health(&self) -> Result<Duration, String> {
        let Some(h) = self.http() else {
            return Ok(Duration::ZERO);
        };
        let started = Instant::now();
        let deadline = started + self.cfg.health_timeout;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            let attempt = async {
                if !self.authorized {
                    let r = self
                        .send(
                            "health",
                            self.post(
                                &h.good,
                                initialize_body(crate::session::SUPPORTED_VERSIONS[0]),
                                &[],
                            ),
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    return if r.status < 500 {
                        Ok(())
                    } else {
                        Err(describe_response(&r))
                    };
                }
                let s = self
                    .open_session("health", &h.good)
                    .await
                    .map_err(|e| e.describe())?;
                let r = self.call("health", &s, 2, "ping", None).await;
                self.close_session(&s).await;
                match r {
                    Ok(r) if served(&r) => Ok(()),
                    Ok(r) => Err(format!("ping: {}", describe_response(&r))),
                    Err(e) => Err(format!("ping: {e}")),
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, attempt).await {
                Ok(Ok(())) => return Ok(started.elapsed()),
                Ok(Err(e)) => last = e,
                Err(_) => last = format!("no answer within {:?}", self.cfg.health_timeout),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(last)
    }

    /// Start a stdio server process and shake hands with it.
    pub async fn spawn_stdio(&self) -> Result<StdioProc, CallError> {
        let Wire::Stdio(w) = &self.wire else {
            return Err(CallError::Connection {
                detail: "internal: a stdio process for an HTTP target".into(),
            });
        };
        let n = w.spawned.fetch_add(1, Ordering::Relaxed) + 1;
        let t = StdioTransport::spawn(&w.spec, w.log.clone(), n).await?;
        // Starting up is not what the probes measure: a slow interpreter on a busy machine
        // gets longer than one request's timeout to answer `initialize`.
        let p = StdioProc::start(t, self.cfg.timeout.max(STARTUP_TIMEOUT)).await?;
        self.sent.fetch_add(2, Ordering::Relaxed);
        Ok(p)
    }
}

/// Retry-After in seconds (the HTTP-date form is rare for 429 and read as 1 s).
pub(crate) fn retry_after(r: &RawResponse) -> Duration {
    r.header("retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(1))
}
