//! The reference server's protections, each shown to work when on and to be absent when
//! off, against the real `mcpstorm serve` binary over real HTTP on loopback: bearer JWT auth
//! (HS256, RS256, every kind of bad token), session binding, rate limits (the throttle
//! point measured), bounded concurrency with a bounded queue, the body limit, the per-tool
//! circuit breaker, the memory guard, Origin checks and CORS, `/health` `/ready` `/metrics`
//! (readiness following a real Redis), graceful shutdown on SIGTERM, and JSON security logs.

mod common;
use common::*;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "mcpstorm-test-secret-0123456789abcdef";
const SECRET_VAR: &str = "MCPSTORM_TEST_JWT_SECRET";
const ISSUER: &str = "mcpstorm-tests";

/// A `mcpstorm serve` of this test, its stderr kept in a file.
struct Server {
    proc: Proc,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

fn serve(args: &[&str]) -> Server {
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
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.proc.port)
    }
    fn url(&self) -> String {
        self.proc.url()
    }
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
    fn sigterm(&self) {
        // SAFETY: kill only sends a signal to the child this test started.
        unsafe { libc::kill(self.proc.pid(), libc::SIGTERM) };
    }
    /// Waits for the process to exit; its exit code.
    fn wait_exit(&mut self, deadline: Duration) -> Option<i32> {
        let mut status = None;
        wait_until("mcpstorm serve to exit", deadline, || {
            status = self.proc.child.try_wait().ok().flatten();
            status.is_some()
        });
        status.and_then(|s| s.code())
    }
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// One HTTP answer, with the JSON-RPC message in it (JSON or the SSE event carrying it).
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
    message: Option<Value>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn result(&self) -> &Value {
        self.message
            .as_ref()
            .and_then(|m| m.get("result"))
            .unwrap_or_else(|| panic!("no result in {self:?}"))
    }
    fn is_tool_error(&self) -> bool {
        self.result()["isError"] == true
    }
    fn error_data(&self) -> &Value {
        &self.message.as_ref().expect("a JSON body")["error"]["data"]
    }
}

async fn answer(resp: reqwest::Response) -> Answer {
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
struct Client {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    session: Option<String>,
}

impl Client {
    fn new(url: String, token: Option<String>) -> Client {
        Client {
            http: http(),
            url,
            token,
            session: None,
        }
    }

    async fn post_with(&self, body: Vec<u8>, extra: &[(&str, &str)]) -> Answer {
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

    async fn post(&self, body: Value) -> Answer {
        self.post_with(body.to_string().into_bytes(), &[]).await
    }

    async fn initialize(&mut self) -> Answer {
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

    async fn connected(url: String, token: Option<String>) -> Client {
        let mut c = Client::new(url, token);
        let a = c.initialize().await;
        assert_eq!(a.status, StatusCode::OK, "initialize: {a:?}");
        c
    }

    async fn call(&self, tool: &str, arguments: Value) -> Answer {
        self.post(json!({"jsonrpc":"2.0","id":next_id(),"method":"tools/call",
            "params":{"name":tool,"arguments":arguments}}))
            .await
    }

    async fn ping(&self) -> Answer {
        self.post(json!({"jsonrpc":"2.0","id":next_id(),"method":"ping"}))
            .await
    }
}

/// Request ids unique in the process: concurrent requests of one session must not share one.
fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn token_with(alg: Algorithm, key: &EncodingKey, claims: Value) -> String {
    encode(&Header::new(alg), &claims, key).unwrap()
}

fn claims(sub: &str) -> Value {
    let now = get_current_timestamp();
    json!({"sub": sub, "aud": "mcpstorm", "iss": ISSUER, "exp": now + 600, "nbf": now - 5})
}

fn hs256(claims: Value) -> String {
    token_with(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        claims,
    )
}

fn token(sub: &str) -> String {
    hs256(claims(sub))
}

async fn metric(server: &Server, name: &str) -> f64 {
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
async fn eventually<F, Fut>(what: &str, deadline: Duration, mut cond: F)
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

fn auth_flags() -> Vec<&'static str> {
    vec![
        "--auth-hs256-secret-env",
        SECRET_VAR,
        "--auth-issuer",
        ISSUER,
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tokens_of_every_kind_get_401_with_a_bearer_challenge() {
    let server = serve(&auth_flags());
    let now = get_current_timestamp();
    let with = |key: &str, value: Value| {
        let mut c = claims("alice");
        c[key] = value;
        hs256(c)
    };
    let without = |key: &str| {
        let mut c = claims("alice");
        c.as_object_mut().unwrap().remove(key);
        hs256(c)
    };
    let b64 = |b: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    };
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims("alice").to_string().as_bytes())
    );
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no token", None, "missing_token"),
        ("garbage", Some("not.a.jwt".into()), "malformed_token"),
        (
            "signed with another secret",
            Some(token_with(
                Algorithm::HS256,
                &EncodingKey::from_secret(b"another-secret-of-sufficient-length!!"),
                claims("alice"),
            )),
            "bad_signature",
        ),
        ("alg none", Some(alg_none), ""),
        (
            "HS512 instead of HS256",
            Some(token_with(
                Algorithm::HS512,
                &EncodingKey::from_secret(SECRET.as_bytes()),
                claims("alice"),
            )),
            "wrong_algorithm",
        ),
        (
            "expired",
            Some(with("exp", json!(now - 60))),
            "expired_token",
        ),
        (
            "not yet valid",
            Some(with("nbf", json!(now + 600))),
            "token_not_yet_valid",
        ),
        (
            "wrong audience",
            Some(with("aud", json!("other"))),
            "wrong_audience",
        ),
        (
            "wrong issuer",
            Some(with("iss", json!("evil"))),
            "wrong_issuer",
        ),
        ("no sub", Some(without("sub")), "missing_claim"),
        ("no exp", Some(without("exp")), "missing_claim"),
    ];
    for (what, tok, reason) in cases {
        let mut c = Client::new(server.url(), tok.clone());
        let a = c.initialize().await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{what}: {a:?}");
        let challenge = a.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer realm=\"mcpstorm\""),
            "{what}: {challenge}"
        );
        if tok.is_some() {
            assert!(
                challenge.contains("error=\"invalid_token\""),
                "{what}: {challenge}"
            );
        }
        if !reason.is_empty() {
            assert_eq!(a.error_data()["reason"], reason, "{what}: {a:?}");
        }
        assert!(!a.text.contains(SECRET), "{what}: the secret leaked");
    }
    // A good token is served, and names a session id of 256 random bits.
    let mut alice = Client::new(server.url(), Some(token("alice")));
    let a = alice.initialize().await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let sid = alice.session.clone().unwrap();
    assert_eq!(sid.len(), 64, "{sid}");
    assert!(sid.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        alice.call("echo", json!({"message":"hi"})).await.result()["content"][0]["text"],
        "hi"
    );
    // The WebSocket transport's upgrade is behind the same auth.
    let ws = http()
        .get(format!("{}/ws", server.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(ws.status(), StatusCode::UNAUTHORIZED);
    // The operator's endpoints need no token.
    for path in ["/health", "/ready", "/metrics"] {
        let r = http()
            .get(format!("{}{path}", server.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rs256_tokens_verify_against_the_public_key_and_the_key_is_no_hmac_secret() {
    let public = fixture("jwt/rs256-public.pem");
    let server = serve(&["--auth-rs256-public-key", public.to_str().unwrap()]);
    let private = std::fs::read(fixture("jwt/rs256-private.pem")).unwrap();
    let good = token_with(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(&private).unwrap(),
        claims("carol"),
    );
    let mut c = Client::new(server.url(), Some(good));
    assert_eq!(c.initialize().await.status, StatusCode::OK);
    // The classic confusion: an HS256 token keyed with the public key's bytes.
    let confused = token_with(
        Algorithm::HS256,
        &EncodingKey::from_secret(&std::fs::read(&public).unwrap()),
        claims("mallory"),
    );
    let mut m = Client::new(server.url(), Some(confused));
    assert_eq!(m.initialize().await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_auth_flags_no_token_is_needed() {
    let server = serve(&[]);
    let mut c = Client::new(server.url(), None);
    assert_eq!(c.initialize().await.status, StatusCode::OK);
    let server = serve(&["--hardened", "--no-auth"]);
    let mut c = Client::new(server.url(), None);
    assert_eq!(c.initialize().await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_serves_only_the_principal_that_created_it() {
    let server = serve(&auth_flags());
    let alice = Client::connected(server.url(), Some(token("alice"))).await;
    assert_eq!(alice.ping().await.status, StatusCode::OK);
    let bob = Client {
        token: Some(token("bob")),
        ..alice.clone()
    };
    let stolen = bob.ping().await;
    assert_eq!(stolen.status, StatusCode::NOT_FOUND, "{stolen:?}");
    assert_eq!(stolen.text, "Not Found: Session not found");
    let anonymous = Client {
        token: None,
        ..alice.clone()
    };
    assert_eq!(anonymous.ping().await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        alice.ping().await.status,
        StatusCode::OK,
        "alice keeps her session"
    );

    // Switched off, the session id alone is enough.
    let open = serve(&[&auth_flags()[..], &["--no-session-binding"]].concat());
    let alice = Client::connected(open.url(), Some(token("alice"))).await;
    let bob = Client {
        token: Some(token("bob")),
        ..alice
    };
    assert_eq!(bob.ping().await.status, StatusCode::OK);
}

/// Sends pings from `workers` tasks for `run_for`; every answer's (time since start, status).
async fn flood(client: &Client, workers: usize, run_for: Duration) -> Vec<(Duration, StatusCode)> {
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

#[tokio::test(flavor = "multi_thread")]
async fn the_per_ip_rate_limit_throttles_at_its_rate() {
    const RATE: f64 = 50.0;
    let server = serve(&["--rate-per-ip", "50"]);
    let client = Client::connected(server.url(), None).await;
    let answers = flood(&client, 8, Duration::from_millis(3500)).await;
    let first_429 = answers
        .iter()
        .find(|(_, s)| *s == StatusCode::TOO_MANY_REQUESTS)
        .expect("the flood was throttled")
        .0;
    // After the burst the bucket refills at RATE: count what got through in the next 2.5 s.
    let window = Duration::from_millis(2500);
    let passed = answers
        .iter()
        .filter(|(t, s)| *t > first_429 && *t <= first_429 + window && *s == StatusCode::OK)
        .count() as f64;
    let measured = passed / window.as_secs_f64();
    let refused = answers
        .iter()
        .filter(|(_, s)| *s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        (RATE * 0.8..=RATE * 1.2).contains(&measured),
        "throttled at {measured:.1}/s, configured {RATE}/s ({refused} refused of {})",
        answers.len()
    );
    assert!(
        refused as f64 > passed,
        "the flood really exceeded the limit"
    );

    let body = client.ping().await;
    if body.status == StatusCode::TOO_MANY_REQUESTS {
        assert_eq!(body.error_data()["limit"], "per_ip");
        assert_eq!(body.message.as_ref().unwrap()["jsonrpc"], "2.0");
    }

    // Off: the same flood is never throttled.
    let open = serve(&[]);
    let client = Client::connected(open.url(), None).await;
    let answers = flood(&client, 8, Duration::from_millis(1000)).await;
    assert!(
        answers.len() as f64 > 2.0 * RATE,
        "only {} answers",
        answers.len()
    );
    assert!(answers.iter().all(|(_, s)| *s == StatusCode::OK));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_global_and_per_principal_limits_refuse_with_429() {
    let server = serve(
        &[
            &auth_flags()[..],
            &["--rate-per-principal", "5", "--rate-global", "1000"],
        ]
        .concat(),
    );
    let alice = Client::connected(server.url(), Some(token("alice"))).await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(alice.ping().await);
    }
    let throttled = statuses
        .iter()
        .find(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
        .expect("alice was throttled");
    assert_eq!(throttled.error_data()["limit"], "per_principal");
    assert!(
        throttled
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    // Bob has his own bucket.
    let bob = Client::connected(server.url(), Some(token("bob"))).await;
    assert_eq!(bob.ping().await.status, StatusCode::OK);

    let server = serve(&["--rate-global", "3"]);
    let c = Client::new(server.url(), None);
    let mut refused = None;
    for _ in 0..10 {
        let a = c.ping().await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(a);
            break;
        }
    }
    assert_eq!(refused.expect("throttled").error_data()["limit"], "global");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_gets_503_with_retry_after_and_the_pool_state() {
    let server = serve(&[
        "--max-concurrency",
        "2",
        "--queue",
        "1",
        "--queue-timeout",
        "20s",
    ]);
    let client = Client::connected(server.url(), None).await;
    let mut sleepers = Vec::new();
    for _ in 0..3 {
        let c = client.clone();
        sleepers.push(tokio::spawn(async move {
            c.call("sleep", json!({"ms": 2500})).await
        }));
    }
    eventually("2 busy and 1 queued", Duration::from_secs(10), || async {
        metric(&server, "mcpstorm_server_pool_busy").await == 2.0
            && metric(&server, "mcpstorm_server_pool_queued").await == 1.0
    })
    .await;
    let started = Instant::now();
    let refused = client.call("echo", json!({"message": "x"})).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once, not after a wait"
    );
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{refused:?}"
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
    let data = refused.error_data();
    assert_eq!(data["reason"], "queue_full");
    assert_eq!(
        (data["in_flight"].as_u64(), data["queued"].as_u64()),
        (Some(2), Some(1))
    );
    let message = refused.message.as_ref().unwrap()["error"]["message"]
        .as_str()
        .unwrap();
    assert!(
        message.contains("--max-concurrency"),
        "says what to do: {message}"
    );
    for s in sleepers {
        let a = s.await.unwrap();
        assert_eq!(
            a.result()["content"][0]["text"],
            "slept 2500ms",
            "queued work still ran"
        );
    }

    // A queued request that waits past the acquire timeout gets 503 too.
    let server = serve(&[
        "--max-concurrency",
        "1",
        "--queue",
        "4",
        "--queue-timeout",
        "300ms",
    ]);
    let client = Client::connected(server.url(), None).await;
    let c = client.clone();
    let busy = tokio::spawn(async move { c.call("sleep", json!({"ms": 2000})).await });
    eventually("the slot taken", Duration::from_secs(10), || async {
        metric(&server, "mcpstorm_server_pool_busy").await == 1.0
    })
    .await;
    let started = Instant::now();
    let timed_out = client.ping().await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(timed_out.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(timed_out.error_data()["reason"], "queue_timeout");
    assert!(timed_out.header("retry-after").is_some());
    busy.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_concurrency_limit_nothing_queues() {
    let server = serve(&[
        "--hardened",
        "--no-auth",
        "--no-concurrency-limit",
        "--no-rate-limit",
    ]);
    let client = Client::connected(server.url(), None).await;
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.call("sleep", json!({"ms": 300})).await })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap().status, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_above_the_limit_get_413() {
    let big = |bytes: usize| {
        json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
            "params":{"name":"echo","arguments":{"message":"x".repeat(bytes)}}})
    };
    // The default server: 4 MiB; the production guide's 50 MB input gets a clean 413.
    let server = serve(&[]);
    let client = Client::connected(server.url(), None).await;
    let a = client.post(big(50 << 20)).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text);
    assert_eq!(a.error_data()["max_body_bytes"], 4 << 20);
    assert_eq!(client.post(big(1 << 20)).await.status, StatusCode::OK);

    let server = serve(&["--max-body", "64KB"]);
    let client = Client::connected(server.url(), None).await;
    assert_eq!(
        client.post(big(100 << 10)).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(client.post(big(10 << 10)).await.status, StatusCode::OK);

    let server = serve(&["--no-body-limit"]);
    let client = Client::connected(server.url(), None).await;
    let a = client.post(big(5 << 20)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.result()["content"][0]["text"].as_str().unwrap().len(),
        5 << 20
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_breaker_opens_after_n_failures_and_half_opens_after_t() {
    let server = serve(&["--breaker-failures", "3", "--breaker-open", "1s"]);
    let client = Client::connected(server.url(), None).await;
    let failing = json!({"error_rate": 1.0});
    for _ in 0..3 {
        let a = client.call("fail", failing.clone()).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.is_tool_error());
    }
    let opened = Instant::now();
    let refused = client.call("fail", failing.clone()).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{refused:?}"
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.error_data()["tool"], "fail");
    assert!(
        refused.message.as_ref().unwrap()["id"].is_u64(),
        "the refusal answers the request's id"
    );
    assert_eq!(
        client.call("echo", json!({"message": "fine"})).await.status,
        StatusCode::OK,
        "other tools keep working"
    );
    assert!(metric(&server, "mcpstorm_server_circuit_state{tool=\"fail\"}").await == 1.0);
    // Half-open after T: one trial call reaches the tool; it fails, so the circuit reopens.
    // Polled by hand: the time it first gets through is the measurement.
    let after = loop {
        let a = client.call("fail", failing.clone()).await;
        if a.status == StatusCode::OK {
            break opened.elapsed();
        }
        assert!(
            opened.elapsed() < Duration::from_secs(5),
            "never half-opened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        (Duration::from_millis(900)..Duration::from_millis(2500)).contains(&after),
        "half-opened after {after:?}, configured 1 s"
    );
    assert_eq!(
        client.call("fail", failing.clone()).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // A successful trial closes it.
    eventually("a successful trial", Duration::from_secs(5), || async {
        client.call("fail", json!({"error_rate": 0.0})).await.status == StatusCode::OK
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            client.call("fail", failing.clone()).await.status,
            StatusCode::OK
        );
    }
    // A caller's bad arguments are not the tool's failures.
    for _ in 0..5 {
        let a = client.call("echo", json!({"wrong": 1})).await;
        assert!(a.is_tool_error());
    }
    assert_eq!(
        client.call("echo", json!({"message": "x"})).await.status,
        StatusCode::OK
    );

    // Off: failures never open anything.
    let server = serve(&[]);
    let client = Client::connected(server.url(), None).await;
    for _ in 0..8 {
        assert_eq!(
            client.call("fail", failing.clone()).await.status,
            StatusCode::OK
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_memory_guard_refuses_alloc_while_rss_is_above_the_threshold() {
    let server = serve(&["--memory-guard-mb", "200"]);
    let client = Client::connected(server.url(), None).await;
    let c = client.clone();
    let holder = tokio::spawn(async move {
        c.call("alloc", json!({"bytes": 300 << 20, "hold_ms": 3000}))
            .await
    });
    eventually("RSS above 200 MB", Duration::from_secs(15), || async {
        metric(&server, "mcpstorm_server_resident_memory_bytes").await > (200 << 20) as f64
    })
    .await;
    let refused = client
        .call("alloc", json!({"bytes": 1024, "hold_ms": 0}))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{refused:?}"
    );
    assert_eq!(refused.error_data()["reason"], "rss_above_limit");
    assert!(refused.header("retry-after").is_some());
    assert_eq!(
        client
            .call("echo", json!({"message": "light"}))
            .await
            .status,
        StatusCode::OK,
        "light requests still pass"
    );
    assert_eq!(holder.await.unwrap().status, StatusCode::OK);
    eventually(
        "alloc accepted again once memory is freed",
        Duration::from_secs(10),
        || async {
            client
                .call("alloc", json!({"bytes": 1024, "hold_ms": 0}))
                .await
                .status
                == StatusCode::OK
        },
    )
    .await;

    // Off: the same pressure refuses nothing.
    let server = serve(&[]);
    let client = Client::connected(server.url(), None).await;
    let c = client.clone();
    let holder = tokio::spawn(async move {
        c.call("alloc", json!({"bytes": 300 << 20, "hold_ms": 1500}))
            .await
    });
    eventually("RSS above 200 MB", Duration::from_secs(15), || async {
        metric(&server, "mcpstorm_server_resident_memory_bytes").await > (200 << 20) as f64
    })
    .await;
    assert_eq!(
        client
            .call("alloc", json!({"bytes": 1024, "hold_ms": 0}))
            .await
            .status,
        StatusCode::OK
    );
    holder.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_follows_redis_down_and_back() {
    let mut redis = redis_server();
    let port = redis.port;
    let server = serve(&["--redis", &format!("redis://127.0.0.1:{port}")]);
    let ready = |server: &Server| {
        let url = format!("{}/ready", server.base());
        async move {
            let r = http().get(url).send().await.unwrap();
            let status = r.status();
            (
                status,
                serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap(),
            )
        }
    };
    eventually("ready with Redis up", Duration::from_secs(10), || async {
        ready(&server).await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(ready(&server).await.1["checks"]["redis"], "ok");
    redis.kill();
    eventually(
        "not ready with Redis down",
        Duration::from_secs(10),
        || async { ready(&server).await.0 == StatusCode::SERVICE_UNAVAILABLE },
    )
    .await;
    let (_, body) = ready(&server).await;
    assert_eq!(body["status"], "unavailable");
    assert!(
        body["checks"]["redis"].as_str().unwrap().contains("Redis"),
        "{body}"
    );
    let health = http()
        .get(format!("{}/health", server.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        health.status(),
        StatusCode::OK,
        "liveness does not depend on Redis"
    );
    let _redis = redis_server_on(port);
    eventually(
        "ready again with Redis back",
        Duration::from_secs(15),
        || async { ready(&server).await.0 == StatusCode::OK },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_an_in_flight_call_then_exits_0() {
    let mut server = serve(&["--log-format", "json"]);
    let client = Client::connected(server.url(), None).await;
    let c = client.clone();
    let call = tokio::spawn(async move { c.call("sleep", json!({"ms": 1500})).await });
    eventually("the call in flight", Duration::from_secs(10), || async {
        metric(&server, "mcpstorm_server_in_flight_requests").await >= 1.0
    })
    .await;
    let signalled = Instant::now();
    server.sigterm();
    let answer = call.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.result()["content"][0]["text"], "slept 1500ms");
    let code = server.wait_exit(Duration::from_secs(15));
    assert_eq!(code, Some(0), "stderr: {}", server.stderr());
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "exited once drained, not after the grace"
    );
    let log = server.stderr();
    assert!(log.contains("every request in flight finished"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_grace_period_bounds_the_drain() {
    let mut server = serve(&["--shutdown-grace", "300ms"]);
    let client = Client::connected(server.url(), None).await;
    let c = client.clone();
    let _call = tokio::spawn(async move { c.call("sleep", json!({"ms": 30000})).await });
    eventually("the call in flight", Duration::from_secs(10), || async {
        metric(&server, "mcpstorm_server_in_flight_requests").await >= 1.0
    })
    .await;
    let signalled = Instant::now();
    server.sigterm();
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "{:?}",
        signalled.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn security_events_are_json_lines_with_their_fields() {
    let mut server = serve(
        &[
            &auth_flags()[..],
            &["--rate-per-ip", "5", "--log-format", "json"],
        ]
        .concat(),
    );
    let anonymous = Client::new(server.url(), None);
    for _ in 0..10 {
        anonymous.ping().await;
    }
    server.sigterm();
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
    let log = server.stderr();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |event: &str| {
        lines
            .iter()
            .find(|l| l["event"] == event)
            .unwrap_or_else(|| panic!("no {event} event in\n{log}"))
    };
    let denied = find("denied");
    assert_eq!(denied["reason"], "missing_token");
    let throttled = find("throttled");
    assert_eq!(throttled["reason"], "per_ip");
    for e in [denied, throttled] {
        assert_eq!(e["client_ip"], "127.0.0.1");
        assert_eq!(e["http_method"], "POST");
        assert_eq!(e["path"], "/mcp");
        assert_eq!(e["level"], "WARN");
        assert!(e["timestamp"].is_string() && e["message"].is_string());
    }
    assert!(!log.contains(SECRET));
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_origins_are_refused_unless_the_check_is_off_and_cors_is_opt_in() {
    let origin = |o: &'static str| [("origin", o)];
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})
    .to_string()
    .into_bytes();
    let server = serve(&[]);
    let c = Client::new(server.url(), None);
    assert_eq!(
        c.post_with(init.clone(), &origin("http://evil.example"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let local = c
        .post_with(init.clone(), &origin("http://localhost:5173"))
        .await;
    assert_eq!(local.status, StatusCode::OK);
    assert!(
        local.header("access-control-allow-origin").is_none(),
        "no CORS by default"
    );

    let server = serve(&["--no-origin-check"]);
    let c = Client::new(server.url(), None);
    assert_eq!(
        c.post_with(init.clone(), &origin("http://evil.example"))
            .await
            .status,
        StatusCode::OK
    );

    let server = serve(&["--cors-origins", "https://app.example.com"]);
    let preflight = http()
        .request(reqwest::Method::OPTIONS, server.url())
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, mcp-session-id",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let c = Client::new(server.url(), None);
    let a = c.post_with(init, &origin("https://app.example.com")).await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "a CORS origin is an allowed origin"
    );
    assert_eq!(
        a.header("access-control-expose-headers")
            .map(|h| h.contains("mcp-session-id")),
        Some(true)
    );
}

#[test]
fn bad_protection_flags_exit_2_with_every_problem_named() {
    let out = Command::new(BIN)
        .args([
            "serve",
            "--port",
            "0",
            "--hardened",
            "--rate-per-ip",
            "0",
            "--max-body",
            "4XB",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--max-body"), "{err}");
    let out = Command::new(BIN)
        .args(["serve", "--port", "0", "--hardened", "--rate-per-ip", "0"])
        .env_remove(SECRET_VAR)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 problems"), "{err}");
    assert!(
        err.contains("--rate-per-ip must be at least 1") && err.contains("--no-auth"),
        "{err}"
    );
    let out = Command::new(BIN)
        .args(["serve", "--stdio", "--rate-per-ip", "5"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP mode"));
}
