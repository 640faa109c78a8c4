//! Helpers for the tests of the reference server's protections (`tests/server_hardening.rs`,
//! `tests/server_resilience.rs`): a `mcpstorm serve` with its stderr kept, a minimal MCP client
//! over Streamable HTTP, JWTs, `/metrics` readings and polls with deadlines.

use super::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const SECRET: &str = "mcpstorm-test-secret-0123456789abcdef";
pub const SECRET_VAR: &str = "MCPSTORM_TEST_JWT_SECRET";
pub const ISSUER: &str = "mcpstorm-tests";

/// A `mcpstorm serve` of this test, its stderr kept in a file.
pub struct Server {
    pub proc: Proc,
    pub stderr: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn serve(args: &[&str]) -> Server {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let stderr = dir.path().join("stderr.log");
    let child = Command::new(BIN)
        .args(["serve", "--port", &port.to_string()])
        .args(args)
        .env(SECRET_VAR, SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("start mcpstorm serve");
    let mut proc = Proc { child, port };
    wait_until("mcpstorm serve to listen", Duration::from_secs(30), || {
        if let Ok(Some(status)) = proc.child.try_wait() {
            panic!(
                "mcpstorm serve {args:?} exited early ({status}): {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        port_open(port)
    });
    Server {
        proc,
        stderr,
        _dir: dir,
    }
}

impl Server {
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.proc.port)
    }
    pub fn url(&self) -> String {
        self.proc.url()
    }
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
    pub fn sigterm(&self) {
        // SAFETY: kill only sends a signal to the child this test started.
        unsafe { libc::kill(self.proc.pid(), libc::SIGTERM) };
    }
    /// Waits for the process to exit; its exit code.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<i32> {
        let mut status = None;
        wait_until("mcpstorm serve to exit", deadline, || {
            status = self.proc.child.try_wait().ok().flatten();
            status.is_some()
        });
        status.and_then(|s| s.code())
    }
}

pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// One HTTP answer, with the JSON-RPC message in it (JSON or the SSE event carrying it).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub message: Option<Value>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn result(&self) -> &Value {
        self.message
            .as_ref()
            .and_then(|m| m.get("result"))
            .unwrap_or_else(|| panic!("no result in {self:?}"))
    }
    pub fn is_tool_error(&self) -> bool {
        self.result()["isError"] == true
    }
    pub fn error_data(&self) -> &Value {
        &self.message.as_ref().expect("a JSON body")["error"]["data"]
    }
}

pub async fn answer(resp: reqwest::Response) -> Answer {
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&text).ok().or_else(|| {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|m| m.get("result").is_some() || m.get("error").is_some())
    });
    Answer {
        status,
        headers,
        text,
        message,
    }
}

/// A minimal MCP client over Streamable HTTP, enough to drive the protections.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub url: String,
    pub token: Option<String>,
    pub session: Option<String>,
}

impl Client {
    pub fn new(url: String, token: Option<String>) -> Client {
        Client {
            http: http(),
            url,
            token,
            session: None,
        }
    }

    pub async fn post_with(&self, body: Vec<u8>, extra: &[(&str, &str)]) -> Answer {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        answer(req.send().await.expect("the server answers")).await
    }

    pub async fn post(&self, body: Value) -> Answer {
        self.post_with(body.to_string().into_bytes(), &[]).await
    }

    pub async fn initialize(&mut self) -> Answer {
        let a = self
            .post(
                json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-06-18","capabilities":{},
                "clientInfo":{"name":"server-hardening-test","version":"1"}}}),
            )
            .await;
        if a.status == StatusCode::OK {
            self.session = a.header("mcp-session-id").map(str::to_owned);
            let n = self
                .post(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
                .await;
            assert_eq!(n.status, StatusCode::ACCEPTED, "{n:?}");
        }
        a
    }

    pub async fn connected(url: String, token: Option<String>) -> Client {
        let mut c = Client::new(url, token);
        let a = c.initialize().await;
        assert_eq!(a.status, StatusCode::OK, "initialize: {a:?}");
        c
    }

    pub async fn call(&self, tool: &str, arguments: Value) -> Answer {
        self.post(json!({"jsonrpc":"2.0","id":next_id(),"method":"tools/call",
            "params":{"name":tool,"arguments":arguments}}))
            .await
    }

    pub async fn ping(&self) -> Answer {
        self.post(json!({"jsonrpc":"2.0","id":next_id(),"method":"ping"}))
            .await
    }
}

/// Request ids unique in the process: concurrent requests of one session must not share one.
pub fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

pub fn token_with(alg: Algorithm, key: &EncodingKey, claims: Value) -> String {
    encode(&Header::new(alg), &claims, key).unwrap()
}

pub fn claims(sub: &str) -> Value {
    let now = get_current_timestamp();
    json!({"sub": sub, "aud": "mcpstorm", "iss": ISSUER, "exp": now + 600, "nbf": now - 5})
}

pub fn hs256(claims: Value) -> String {
    token_with(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        claims,
    )
}

pub fn token(sub: &str) -> String {
    hs256(claims(sub))
}

pub async fn metric(server: &Server, name: &str) -> f64 {
    let text = http()
        .get(format!("{}/metrics", server.base()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Polls an async condition every 20 ms until it holds or `deadline` passes.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out after {deadline:?} waiting for {what}");
}

pub fn auth_flags() -> Vec<&'static str> {
    vec![
        "--auth-hs256-secret-env",
        SECRET_VAR,
        "--auth-issuer",
        ISSUER,
    ]
}

/// Sends pings from `workers` tasks for `run_for`; every answer's (time since start, status).
pub async fn flood(
    client: &Client,
    workers: usize,
    run_for: Duration,
) -> Vec<(Duration, StatusCode)> {
    let start = Instant::now();
    let results = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (c, results) = (client.clone(), results.clone());
        tasks.push(tokio::spawn(async move {
            while start.elapsed() < run_for {
                let a = c.ping().await;
                results.lock().unwrap().push((start.elapsed(), a.status));
                if a.status == StatusCode::TOO_MANY_REQUESTS {
                    assert!(a.header("retry-after").is_some(), "429 without Retry-After");
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut r = results.lock().unwrap().clone();
    r.sort_by_key(|(t, _)| *t);
    r
}
