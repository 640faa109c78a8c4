//! hygiene: the HTTP edges a browser or an error message can reach. A foreign `Origin` must
//! be refused with 403 (DNS rebinding protection, MCP 2025-11-25), a foreign `Host` refused,
//! CORS must allow only the origins configured, and no error body (any answer seen during
//! the whole suite, plus a few errors provoked here) may carry a stack trace, a file path or
//! a secret.

use super::wire::{Ctx, Req, describe_outcome, initialize_body, rpc, served};
use super::{Finding, Probe, Severity};
use crate::error::excerpt;
use futures::future::BoxFuture;
use reqwest::Method;
use reqwest::header::{HOST, HeaderName, HeaderValue, ORIGIN};
use serde_json::json;

pub(crate) struct Hygiene;

impl Probe for Hygiene {
    fn name(&self) -> &'static str {
        "hygiene"
    }
    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(run(ctx))
    }
}

const EVIL_ORIGIN: &str = "http://evil.mcpstorm.invalid";

async fn run(ctx: &Ctx) -> Vec<Finding> {
    let mut out = Vec::new();
    if ctx.http().is_some() {
        out.push(origin(ctx).await);
        out.push(host(ctx).await);
        out.push(cors(ctx).await);
    } else {
        out.push(Finding::skip(
            "hygiene.origin",
            "stdio target: no Origin, Host or CORS to check",
        ));
    }
    provoke(ctx).await;
    out.push(error_leak(ctx));
    out
}

async fn origin(ctx: &Ctx) -> Finding {
    let id = "hygiene.origin";
    let Some(h) = ctx.http() else {
        return Finding::skip(id, "stdio");
    };
    let mut headers = h.good.clone();
    headers.insert(ORIGIN, HeaderValue::from_static(EVIL_ORIGIN));
    let req = ctx.post(
        &headers,
        initialize_body(crate::session::SUPPORTED_VERSIONS[0]),
        &[format!("Origin: {EVIL_ORIGIN}"), h.good_desc.clone()],
    );
    let request = req.shown.clone();
    let r = ctx.send(id, req).await;
    let advice = "validate the Origin header on every request and answer a foreign one with 403 (MCP 2025-11-25, DNS rebinding protection); allow only the origins you serve";
    let f = match &r {
        Ok(resp) if served(resp) => Finding::fail(id, Severity::High, "served a request from a foreign Origin: a web page the user visits can call this server").advice(advice),
        Ok(resp) if resp.status == 403 => Finding::pass(id, Severity::High, "foreign Origin refused with 403"),
        Ok(resp) if resp.status == 401 && !ctx.authorized => {
            Finding::skip(id, "refused with 401, but we had no working credentials, so the Origin check itself was not reached")
        }
        Ok(resp) if (400..500).contains(&resp.status) => {
            Finding::fail(id, Severity::Low, format!("foreign Origin refused, but with HTTP {} instead of 403", resp.status)).advice(advice)
        }
        _ => Finding::fail(id, Severity::Medium, "no clean refusal of a foreign Origin").advice(advice),
    };
    super::auth::after_health(ctx, f.evidence(request, describe_outcome(&r))).await
}

async fn host(ctx: &Ctx) -> Finding {
    let id = "hygiene.host";
    let Some(h) = ctx.http() else {
        return Finding::skip(id, "stdio");
    };
    let mut headers = h.good.clone();
    headers.insert(HOST, HeaderValue::from_static("evil.mcpstorm.invalid"));
    let req = ctx.post(
        &headers,
        initialize_body(crate::session::SUPPORTED_VERSIONS[0]),
        &["Host: evil.mcpstorm.invalid".into()],
    );
    let request = req.shown.clone();
    let r = ctx.send(id, req).await;
    let advice = "check the Host header against the names the server is meant to be reached by (loopback for a local server) and refuse others (403 or 421): a DNS-rebinding page reaches the port with its own host name";
    let f = match &r {
        Ok(resp) if served(resp) => Finding::fail(
            id,
            Severity::Medium,
            "served a request for a foreign Host name",
        )
        .advice(advice),
        Ok(resp) if resp.status == 401 && !ctx.authorized => Finding::skip(
            id,
            "refused with 401; no working credentials to reach the Host check",
        ),
        Ok(resp) if (400..500).contains(&resp.status) => Finding::pass(
            id,
            Severity::Medium,
            format!("foreign Host refused with {}", resp.status),
        ),
        _ => Finding::fail(id, Severity::Low, "no clean answer to a foreign Host").advice(advice),
    };
    f.evidence(request, describe_outcome(&r))
}

async fn cors(ctx: &Ctx) -> Finding {
    let id = "hygiene.cors";
    let Some(h) = ctx.http() else {
        return Finding::skip(id, "stdio");
    };
    let preflight = |origin: &str| {
        let mut headers = h.base.clone();
        if let Ok(v) = HeaderValue::from_str(origin) {
            headers.insert(ORIGIN, v);
        }
        headers.insert(
            HeaderName::from_static("access-control-request-method"),
            HeaderValue::from_static("POST"),
        );
        headers.insert(
            HeaderName::from_static("access-control-request-headers"),
            HeaderValue::from_static(
                "content-type, authorization, mcp-session-id, mcp-protocol-version",
            ),
        );
        Req {
            method: Method::OPTIONS,
            headers,
            body: vec![],
            shown: format!(
                "OPTIONS {} [Origin: {origin}] [Access-Control-Request-Method: POST]",
                h.url.path()
            ),
            timeout: None,
            retry_throttled: true,
            alt_source: false,
        }
    };
    let req = preflight(EVIL_ORIGIN);
    let request = req.shown.clone();
    let r = ctx.send(id, req).await;
    let response = describe_outcome(&r);
    let allow = r
        .as_ref()
        .ok()
        .and_then(|x| x.header("access-control-allow-origin"))
        .unwrap_or("")
        .to_string();
    let star_configured = ctx.cfg.cors_origins.iter().any(|o| o == "*");
    let advice = "send Access-Control-Allow-Origin only for the origins you configured (never `*` or an echo of any Origin on an endpoint that takes credentials)";
    if !star_configured && (allow == "*" || allow == EVIL_ORIGIN) {
        return Finding::fail(
            id,
            Severity::Medium,
            format!("CORS allows a foreign origin (Access-Control-Allow-Origin: {allow})"),
        )
        .evidence(request, response)
        .advice(advice);
    }
    if let Some(allowed) = ctx.cfg.cors_origins.iter().find(|o| *o != "*") {
        let req = preflight(allowed);
        let request = req.shown.clone();
        let r = ctx.send(id, req).await;
        let got = r
            .as_ref()
            .ok()
            .and_then(|x| x.header("access-control-allow-origin"))
            .unwrap_or("")
            .to_string();
        if got != *allowed && got != "*" {
            return Finding::fail(id, Severity::Low, format!("the configured origin {allowed} gets no CORS allowance (Access-Control-Allow-Origin: {})", if got.is_empty() { "absent" } else { &got }))
                .evidence(request, describe_outcome(&r))
                .advice("allow the origins you configured, or drop them from security.hygiene.cors_origins");
        }
        return Finding::pass(
            id,
            Severity::Medium,
            format!("CORS as configured: {allowed} allowed, foreign origins not"),
        )
        .evidence(request, describe_outcome(&r));
    }
    Finding::pass(
        id,
        Severity::Medium,
        if allow.is_empty() {
            "no CORS allowance for a foreign origin".to_string()
        } else {
            format!("Access-Control-Allow-Origin: {allow}")
        },
    )
    .evidence(request, response)
}

/// A few requests whose errors a careless server answers with its internals.
async fn provoke(ctx: &Ctx) {
    let requests = [
        (
            "tools/call",
            json!({"name": "mcpstorm-no-such-tool", "arguments": {}}),
        ),
        (
            "tools/call",
            json!({"name": ctx.tools.first().and_then(|t| t["name"].as_str()).unwrap_or("echo"), "arguments": "not an object"}),
        ),
        ("resources/read", json!({"uri": "file:///etc/passwd"})),
        (
            "resources/read",
            json!({"uri": "mcpstorm://no/such/resource"}),
        ),
        ("prompts/get", json!({"name": "mcpstorm-no-such-prompt"})),
    ];
    if let Some(h) = ctx.http() {
        let session = if ctx.authorized {
            ctx.open_session("hygiene.error_leak", &h.good).await.ok()
        } else {
            None
        };
        let headers = session
            .as_ref()
            .map(|s| s.headers.clone())
            .unwrap_or_else(|| h.good.clone());
        for (i, (method, params)) in requests.iter().enumerate() {
            let req = ctx.post(
                &headers,
                rpc(json!(500 + i), method, Some(params.clone())),
                &[],
            );
            let _ = ctx.send("hygiene.error_leak", req).await;
        }
        if let Some(s) = &session {
            ctx.close_session(s).await;
        }
    } else if let Ok(mut p) = ctx.spawn_stdio().await {
        for (method, params) in requests {
            if let Ok(m) = p
                .request(method, Some(params.clone()), ctx.cfg.timeout)
                .await
            {
                ctx.record("hygiene.error_leak", method, m.to_string().as_bytes());
            }
        }
        p.close().await;
    }
}

/// What a leak looks like: stack traces of common runtimes, source paths, secrets.
const TRACE_MARKS: &[(&str, &str)] = &[
    ("Traceback (most recent call last)", "a Python traceback"),
    ("panicked at", "a Rust panic message"),
    ("stack backtrace:", "a Rust backtrace"),
    ("at Object.<anonymous>", "a JavaScript stack trace"),
    ("node:internal/", "a Node.js stack trace"),
    ("at async ", "a JavaScript stack trace"),
    ("goroutine ", "a Go stack trace"),
    ("Exception in thread", "a Java stack trace"),
    ("\tat java.", "a Java stack trace"),
    (".py\", line ", "a Python source path and line"),
    ("site-packages/", "a Python install path"),
    ("node_modules/", "a Node.js install path"),
    ("/src/main.rs", "a Rust source path"),
    ("/home/", "a home directory path"),
    ("/root/", "the root user's home path"),
    ("-----BEGIN", "a PEM key"),
];

/// Traces usually arrive inside a JSON string: look at them unescaped.
fn unescape(body: &str) -> String {
    body.replace("\\\"", "\"")
        .replace("\\n", "\n")
        .replace("\\t", "\t")
}

/// What kind of internals `text` gives away (a stack trace, a source path, a key), if any.
pub(crate) fn leak_in(text: &str) -> Option<&'static str> {
    let body = unescape(text);
    TRACE_MARKS
        .iter()
        .find(|(m, _)| body.contains(m))
        .map(|(_, what)| *what)
}

fn error_leak(ctx: &Ctx) -> Finding {
    let id = "hygiene.error_leak";
    let seen = ctx.seen();
    let secret = ctx
        .cfg
        .auth_key
        .as_ref()
        .and_then(|k| k.secret_text())
        .filter(|s| s.len() >= 8);
    for s in &seen {
        if let Some(secret) = &secret
            && s.body.contains(secret.as_str())
        {
            return Finding::fail(
                id,
                Severity::Critical,
                format!(
                    "an answer to {} carries the server's signing secret",
                    s.probe
                ),
            )
            .evidence(
                s.request.clone(),
                "<body contains the HS256 secret; not shown>",
            )
            .advice("never echo configuration or secrets into responses; rotate the secret");
        }
        let body = unescape(&s.body);
        if let Some((mark, what)) = TRACE_MARKS.iter().find(|(m, _)| body.contains(m)) {
            let at = body.find(mark).unwrap_or(0);
            let from = body[..at]
                .char_indices()
                .rev()
                .nth(80)
                .map(|(i, _)| i)
                .unwrap_or(0);
            return Finding::fail(id, Severity::Medium, format!("an error body carries {what} (seen answering {})", s.probe))
                .evidence(s.request.clone(), excerpt(&body[from..], 300))
                .advice("answer errors with a short message and a code; log the details (stack, paths) on the server side only");
        }
    }
    Finding::pass(
        id,
        Severity::Medium,
        format!("no stack trace, path or secret in {} answers", seen.len()),
    )
}

/// Did the server log the refusals the probes caused, and no credential with them? Reads
/// the log lines written since the suite began (`--server-log`, or the supervised server's
/// stderr in a scenario).
pub(crate) async fn security_log(ctx: &Ctx) -> Finding {
    let id = "hygiene.security_log";
    let Some(path) = &ctx.cfg.server_log else {
        return Finding::skip(
            id,
            "no server log given: pass --server-log PATH (the server's stderr) to check that refusals are logged",
        );
    };
    // Give a buffered logger a moment to write the last lines.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes[(ctx.log_offset as usize).min(bytes.len())..])
            .into_owned(),
        Err(e) => {
            return Finding::fail(
                id,
                Severity::Low,
                format!("cannot read the server log {}: {e}", path.display()),
            )
            .advice("point --server-log at the file the server's stderr goes to");
        }
    };
    let shown = format!(
        "{} ({} bytes written during the probes)",
        path.display(),
        text.len()
    );
    let secret = ctx
        .cfg
        .auth_key
        .as_ref()
        .and_then(|k| k.secret_text())
        .filter(|s| s.len() >= 8);
    let tokens = ctx
        .tokens_used
        .lock()
        .map(|t| t.clone())
        .unwrap_or_default();
    if secret.as_ref().is_some_and(|s| text.contains(s.as_str()))
        || tokens.iter().any(|t| text.contains(t.as_str()))
    {
        return Finding::fail(
            id,
            Severity::High,
            "the server log carries a bearer token or the signing secret",
        )
        .evidence(
            shown,
            "<a credential the probes sent appears in the log; not shown>",
        )
        .advice("log who was refused and why (sub, reason), never the token or the key");
    }
    let lower = text.to_ascii_lowercase();
    let lines = |words: &[&str]| {
        lower
            .lines()
            .filter(|l| words.iter().any(|w| l.contains(w)))
            .count()
    };
    // Words, not status numbers: "401" also turns up in timestamps.
    let denied_logged = lines(&[
        "denied",
        "unauthorized",
        "forbidden",
        "invalid_token",
        "refused",
    ]);
    let throttled_logged = lines(&["throttled", "rate limit", "rate_limit", "too many requests"]);
    let denied = ctx.denied_seen.load(std::sync::atomic::Ordering::Relaxed);
    let throttled = ctx
        .throttled_seen
        .load(std::sync::atomic::Ordering::Relaxed);
    let summary = format!(
        "the probes met {denied} refusals (401/403) and {throttled} throttles (429); the log has {denied_logged} lines about refusals and {throttled_logged} about throttling"
    );
    let advice = "log every refusal as a security event (event, reason, client, principal; never the token) so an operator can see an attack";
    if denied > 0 && denied_logged == 0 {
        return Finding::fail(
            id,
            Severity::Medium,
            "refused requests are not in the server log",
        )
        .evidence(shown, summary)
        .advice(advice);
    }
    if throttled > 0 && throttled_logged == 0 {
        return Finding::fail(
            id,
            Severity::Medium,
            "throttled requests are not in the server log",
        )
        .evidence(shown, summary)
        .advice(advice);
    }
    if denied == 0 && throttled == 0 {
        return Finding::skip(id, "the probes met no refusal, so there was nothing to log");
    }
    Finding::pass(
        id,
        Severity::Medium,
        "refusals are logged, without credentials",
    )
    .evidence(shown, summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_marks_match_real_traces() {
        let py = "Traceback (most recent call last):\n  File \"/usr/lib/python3/site-packages/x.py\", line 3";
        assert!(TRACE_MARKS.iter().any(|(m, _)| py.contains(m)));
        let clean =
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Unknown tool: x"}}"#;
        assert!(!TRACE_MARKS.iter().any(|(m, _)| clean.contains(m)));
        let escaped =
            r#"{"error":{"message":"x\n  File \"/usr/lib/python3.11/threading.py\", line 1002"}}"#;
        let unescaped = unescape(escaped);
        assert!(unescaped.contains(".py\", line "), "{unescaped}");
    }
}
