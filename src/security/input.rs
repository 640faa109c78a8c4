//! input: does hostile input get a clean answer (a JSON-RPC error, a 4xx) and leave the server
//! alive? Malformed JSON, JSON that is not JSON-RPC, an unknown method, a wrong
//! `MCP-Protocol-Version`, invalid UTF-8, 10,000-deep nesting, huge ids, a flood of
//! notifications and a body of the configured size (50 MB). After each, the server must
//! answer a ping (HTTP: on a fresh session; stdio: on the same process) within the health
//! deadline, or the finding is critical.
//!
//! Over HTTP the requests go on an open session, so a server that checks sessions first is
//! still made to parse them; over stdio each check gets a process of its own.

use super::auth::after_health;
use super::wire::{Ctx, HttpSession, describe_outcome, describe_request, error_code, rpc, served};
use super::{Finding, Probe, Severity};
use crate::error::{CallError, excerpt};
use crate::transport::http::RawResponse;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::json;
use std::time::{Duration, Instant};

pub(crate) struct Input;

/// stdio checks (one process each) run this many at a time.
pub(crate) const STDIO_PARALLEL: usize = 4;

impl Probe for Input {
    fn name(&self) -> &'static str {
        "input"
    }
    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(run(ctx))
    }
}

/// What a clean answer is for one case.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// The input is invalid: an error or a refusal; a result is wrong.
    Refusal,
    /// Any answer that is not a failure of the server (5xx, hang, crash).
    Clean,
}

struct Case {
    id: &'static str,
    /// Sub-cases: (how the evidence names it, the bytes sent).
    bodies: Vec<(String, Vec<u8>)>,
    expect: Expect,
    advice: &'static str,
}

fn cases(depth: usize) -> Vec<Case> {
    let mut utf8 =
        br#"{"jsonrpc":"2.0","id":14,"method":"ping","params":{"_meta":{"note":""#.to_vec();
    utf8.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]);
    utf8.extend_from_slice(br#""}}}"#);
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":15,"method":"ping","params":{{"_meta":{{"deep":{}{}}}}}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    vec![
        Case {
            id: "input.malformed_json",
            bodies: vec![
                ("truncated JSON".into(), br#"{"jsonrpc":"2.0","id":11,"method":"ping","#.to_vec()),
                ("not JSON at all".into(), b"mcpstorm probe: this is not JSON".to_vec()),
            ],
            expect: Expect::Refusal,
            advice: "answer unparsable input with a JSON-RPC parse error (-32700; HTTP 400) and keep serving",
        },
        Case {
            id: "input.not_jsonrpc",
            bodies: vec![
                ("a JSON object without jsonrpc/method".into(), br#"{"hello":"mcpstorm","id":12}"#.to_vec()),
                ("a JSON number".into(), b"42".to_vec()),
            ],
            expect: Expect::Refusal,
            advice: "answer JSON that is not a JSON-RPC message with an invalid-request error (-32600; HTTP 400)",
        },
        Case {
            id: "input.unknown_method",
            bodies: vec![("method mcpstorm/no_such_method".into(), rpc(json!(13), "mcpstorm/no_such_method", None))],
            expect: Expect::Refusal,
            advice: "answer an unknown method with JSON-RPC error -32601 (method not found)",
        },
        Case {
            id: "input.invalid_utf8",
            bodies: vec![("a ping whose string holds invalid UTF-8 bytes".into(), utf8)],
            expect: Expect::Clean,
            advice: "decode request bodies strictly and answer invalid UTF-8 with a parse error, without failing",
        },
        Case {
            id: "input.deep_nesting",
            bodies: vec![(format!("a ping with arrays nested {depth} deep"), deep.into_bytes())],
            expect: Expect::Clean,
            advice: "bound the nesting depth your JSON parser accepts (most default to ~128) and answer deeper input with a parse error instead of recursing until the stack overflows",
        },
        Case {
            id: "input.huge_id",
            bodies: vec![
                ("id = a 40-digit number".into(), br#"{"jsonrpc":"2.0","id":1234567890123456789012345678901234567890,"method":"ping"}"#.to_vec()),
                ("id = a 100 KB string".into(), format!(r#"{{"jsonrpc":"2.0","id":"{}","method":"ping"}}"#, "i".repeat(100_000)).into_bytes()),
                ("id = -1.5".into(), br#"{"jsonrpc":"2.0","id":-1.5,"method":"ping"}"#.to_vec()),
            ],
            expect: Expect::Clean,
            advice: "accept ids as JSON-RPC defines them (string or integer) with a bound on size, and answer others with -32600",
        },
    ]
}

async fn run(ctx: &Ctx) -> Vec<Finding> {
    if ctx.is_stdio() {
        return run_stdio(ctx).await;
    }
    let Some(h) = ctx.http() else { return vec![] };
    let session = if ctx.authorized {
        ctx.open_session("input", &h.good).await.ok()
    } else {
        None
    };
    let mut out = Vec::new();
    for case in cases(ctx.cfg.nesting_depth) {
        if ctx.down().is_some() {
            break;
        }
        out.push(http_case(ctx, session.as_ref(), &case).await);
    }
    if ctx.down().is_none() {
        out.push(wrong_version(ctx, session.as_ref()).await);
    }
    if ctx.down().is_none() {
        out.push(flood_http(ctx, session.as_ref()).await);
    }
    if ctx.down().is_none() {
        out.extend(oversized_http(ctx, session.as_ref()).await);
    }
    if let Some(s) = &session {
        ctx.close_session(s).await;
    }
    if !ctx.authorized {
        for f in &mut out {
            f.title
                .push_str(" (sent without a session: no working credentials were given)");
        }
    }
    out
}

fn headers_for(ctx: &Ctx, s: Option<&HttpSession>) -> reqwest::header::HeaderMap {
    match (s, ctx.http()) {
        (Some(s), _) => s.headers.clone(),
        (None, Some(h)) => h.good.clone(),
        (None, None) => Default::default(),
    }
}

/// The worse of two findings: a failure over a pass, then the more severe failure.
pub(crate) fn worse(a: Finding, b: Finding) -> Finding {
    match (a.failed(), b.failed()) {
        (true, true) if b.severity < a.severity => b,
        (true, _) => a,
        (false, true) => b,
        (false, false) => a,
    }
}

/// Judge one HTTP answer to hostile input.
fn judge(
    id: &str,
    what: &str,
    expect: Expect,
    r: &Result<RawResponse, CallError>,
    advice: &str,
) -> Finding {
    let r = match r {
        Ok(r) => r,
        Err(CallError::Timeout { after }) => {
            return Finding::fail(
                id,
                Severity::High,
                format!("{what}: no answer within {after:?}: the request hangs"),
            )
            .advice(advice);
        }
        Err(e) => {
            return Finding::fail(
                id,
                Severity::Medium,
                format!("{what}: the connection ended without an HTTP answer ({e})"),
            )
            .advice(advice);
        }
    };
    if r.status >= 500 {
        return Finding::fail(
            id,
            Severity::Medium,
            format!(
                "{what}: HTTP {}: the server failed on input it should refuse",
                r.status
            ),
        )
        .advice(advice);
    }
    if expect == Expect::Refusal && served(r) {
        return Finding::fail(
            id,
            Severity::Low,
            format!("{what}: answered with a result instead of an error"),
        )
        .advice(advice);
    }
    if expect == Expect::Refusal && (200..300).contains(&r.status) && error_code(r).is_none() {
        return Finding::fail(
            id,
            Severity::Low,
            format!("{what}: accepted silently (HTTP {}, no error)", r.status),
        )
        .advice(advice);
    }
    if let Some(f) = plain_refusal(id, what, r) {
        return f;
    }
    let how = match (error_code(r), served(r)) {
        (Some(code), _) => format!("HTTP {} with JSON-RPC error {code}", r.status),
        (None, true) => format!("HTTP {} with a result", r.status),
        (None, false) => format!("HTTP {}", r.status),
    };
    Finding::pass(id, Severity::Medium, format!("{what}: {how}"))
}

/// A 4xx whose body is not a JSON-RPC error: the server survived and refused, but a client
/// cannot read why (a low finding).
fn plain_refusal(id: &str, what: &str, r: &RawResponse) -> Option<Finding> {
    if !(400..500).contains(&r.status) || error_code(r).is_some() {
        return None;
    }
    let body = String::from_utf8_lossy(&r.body[..r.body.len().min(400)]).into_owned();
    Some(
        Finding::fail(
            id,
            Severity::Low,
            format!(
                "{what}: refused with HTTP {} and {}, not a JSON-RPC error",
                r.status,
                if body.trim().is_empty() {
                    "no body".to_string()
                } else {
                    format!("the body \"{}\"", excerpt(&body, 100))
                }
            ),
        )
        .advice("the server survived; answer the input it refuses with a JSON-RPC error body a client can read: HTTP 400 with {\"jsonrpc\": \"2.0\", \"id\": null, \"error\": {\"code\": -32700, \"message\": \"...\"}} for unparsable JSON, -32600 for JSON that is not a JSON-RPC request"),
    )
}

async fn http_case(ctx: &Ctx, s: Option<&HttpSession>, case: &Case) -> Finding {
    let mut worst: Option<Finding> = None;
    for (what, body) in &case.bodies {
        let req = ctx.post(
            &headers_for(ctx, s),
            body.clone(),
            std::slice::from_ref(what),
        );
        let request = req.shown.clone();
        let r = ctx.send(case.id, req).await;
        let f = judge(case.id, what, case.expect, &r, case.advice)
            .evidence(request, describe_outcome(&r));
        let f = after_health(ctx, f).await;
        worst = Some(match worst {
            None => f,
            Some(w) => worse(w, f),
        });
        if ctx.down().is_some() {
            break;
        }
    }
    worst.unwrap_or_else(|| Finding::skip(case.id, "no input"))
}

async fn wrong_version(ctx: &Ctx, s: Option<&HttpSession>) -> Finding {
    let id = "input.wrong_protocol_version";
    let mut h = headers_for(ctx, s);
    h.insert(
        HeaderName::from_static("mcp-protocol-version"),
        HeaderValue::from_static("1999-01-01"),
    );
    let req = ctx.post(
        &h,
        rpc(json!(16), "ping", None),
        &["MCP-Protocol-Version: 1999-01-01".into()],
    );
    let request = req.shown.clone();
    let r = ctx.send(id, req).await;
    let advice = "answer a request whose MCP-Protocol-Version the server does not support with 400 Bad Request (spec 2025-06-18 and later)";
    let f = match &r {
        Ok(resp) if resp.status == 400 => {
            plain_refusal(id, "MCP-Protocol-Version 1999-01-01", resp).unwrap_or_else(|| {
                Finding::pass(id, Severity::Low, "refused with 400 and a JSON-RPC error")
            })
        }
        Ok(resp) if served(resp) => Finding::fail(
            id,
            Severity::Low,
            "served a request with an unsupported MCP-Protocol-Version",
        )
        .advice(advice),
        _ => judge(
            id,
            "MCP-Protocol-Version 1999-01-01",
            Expect::Refusal,
            &r,
            advice,
        ),
    };
    after_health(ctx, f.evidence(request, describe_outcome(&r))).await
}

async fn flood_http(ctx: &Ctx, s: Option<&HttpSession>) -> Finding {
    let id = "input.notification_flood";
    let n = ctx.cfg.notification_flood;
    let headers = headers_for(ctx, s);
    let bodies = [
        br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":987654321,"reason":"mcpstorm flood"}}"#.to_vec(),
        br#"{"jsonrpc":"2.0","method":"notifications/mcpstorm/flood","params":{"n":1}}"#.to_vec(),
    ];
    let started = Instant::now();
    let results: Vec<Result<RawResponse, CallError>> = stream::iter(0..n)
        .map(|i| {
            let mut req = ctx.post(&headers, bodies[i % 2].clone(), &[]);
            // A 429 is a clean answer to a flood; retrying would only stretch it.
            req.retry_throttled = false;
            ctx.send_unpaced(id, req)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let took = started.elapsed();
    let mut ok = 0;
    let mut throttled = 0;
    let mut refused = 0;
    let mut failed = Vec::new();
    for r in &results {
        match r {
            Ok(r) if (200..300).contains(&r.status) => ok += 1,
            Ok(r) if r.status == 429 => throttled += 1,
            Ok(r) if r.status < 500 => refused += 1,
            other => failed.push(describe_outcome(other)),
        }
    }
    let request = format!(
        "{n} notifications (notifications/cancelled for an unknown request, notifications/mcpstorm/flood), 16 at a time{}",
        if s.is_some() { ", on one session" } else { "" }
    );
    let summary = format!(
        "{ok} accepted, {throttled} throttled (429), {refused} refused (4xx), {} failed, in {:.1} s",
        failed.len(),
        took.as_secs_f64()
    );
    let f = if failed.is_empty() {
        Finding::pass(id, Severity::High, summary.clone())
    } else {
        let timeouts = failed
            .iter()
            .filter(|f| f.contains("no answer within"))
            .count();
        Finding::fail(id, if timeouts > 0 { Severity::High } else { Severity::Medium }, format!("{summary}: e.g. {}", excerpt(&failed[0], 200)))
            .advice("accept notifications cheaply (202) and shed load with 429 + Retry-After rather than failing or stalling")
    };
    after_health(ctx, f.evidence(request, summary)).await
}

/// A body of the configured size: handled or refused, never a crash; and refused with 413
/// if the server has a body limit below it (`input.body_limit`).
async fn oversized_http(ctx: &Ctx, s: Option<&HttpSession>) -> Vec<Finding> {
    let size = ctx.cfg.max_body;
    let body = padded_ping(size);
    let shown = format!("a {} ping (params.padding)", human(size));
    let mut req = ctx.post(&headers_for(ctx, s), vec![], std::slice::from_ref(&shown));
    req.shown = describe_request(
        "POST",
        &ctx.http()
            .map(|h| h.url.path().to_string())
            .unwrap_or_default(),
        std::slice::from_ref(&shown),
        &body[..120.min(body.len())],
    );
    req.body = body;
    req.timeout = Some(ctx.cfg.timeout.max(Duration::from_secs(30)));
    let request = req.shown.clone();
    let r = ctx.send("input.oversized_body", req).await;
    let response = describe_outcome(&r);
    let advice = "handle large bodies or refuse them with 413 before reading them whole; never fail or stall";
    let limit_advice = "cap request bodies (e.g. 4 MB) and answer larger ones with 413 Payload Too Large before reading them, so one client cannot make the server buffer any size";
    let (oversized, limit) = match &r {
        Ok(resp) if resp.status == 413 => (
            Finding::pass(
                "input.oversized_body",
                Severity::High,
                format!("{shown}: refused with 413"),
            ),
            Finding::pass(
                "input.body_limit",
                Severity::Medium,
                format!("a body limit below {}: 413", human(size)),
            ),
        ),
        Ok(resp) if (400..500).contains(&resp.status) && resp.status != 429 => (
            Finding::pass(
                "input.oversized_body",
                Severity::High,
                format!("{shown}: refused with HTTP {}", resp.status),
            ),
            Finding::pass(
                "input.body_limit",
                Severity::Medium,
                format!("refused with HTTP {} (413 would say why)", resp.status),
            ),
        ),
        Ok(resp) if resp.status < 400 => (
            Finding::pass(
                "input.oversized_body",
                Severity::High,
                format!(
                    "{shown}: handled, HTTP {} in {} ms",
                    resp.status,
                    resp.elapsed.as_millis()
                ),
            ),
            Finding::fail(
                "input.body_limit",
                Severity::Medium,
                format!("accepted a {} body: no body limit below it", human(size)),
            )
            .advice(limit_advice),
        ),
        // A server that answers 413 at once and closes races our upload: the reset can
        // reach us before its answer. If it is alive afterwards (checked below), it refused.
        Err(CallError::Connection { .. }) => (
            Finding::pass(
                "input.oversized_body",
                Severity::High,
                format!(
                    "{shown}: the server closed the connection before the whole body was sent (refused)"
                ),
            ),
            Finding::pass(
                "input.body_limit",
                Severity::Medium,
                format!(
                    "a body limit below {}: the connection was closed early",
                    human(size)
                ),
            ),
        ),
        _ => {
            let f = judge("input.oversized_body", &shown, Expect::Clean, &r, advice);
            let l = Finding::fail(
                "input.body_limit",
                Severity::Medium,
                "no clean refusal of an oversized body",
            )
            .advice(limit_advice);
            (f, l)
        }
    };
    let oversized = after_health(ctx, oversized.evidence(request.clone(), response.clone())).await;
    vec![oversized, limit.evidence(request, response)]
}

fn padded_ping(size: usize) -> Vec<u8> {
    let head = br#"{"jsonrpc":"2.0","id":17,"method":"ping","params":{"padding":""#;
    let tail = br#""}}"#;
    let pad = size.saturating_sub(head.len() + tail.len());
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(head);
    body.resize(head.len() + pad, b'a');
    body.extend_from_slice(tail);
    body
}

pub(crate) fn human(bytes: usize) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.0} MB", bytes as f64 / (1024.0 * 1024.0))
    } else if bytes >= 1024 {
        format!("{:.0} KB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

// ---- stdio: one process per check, the health check is a ping on that same process ----

async fn run_stdio(ctx: &Ctx) -> Vec<Finding> {
    // Each check has a process of its own, so they can run side by side: a few at a time.
    let all = cases(ctx.cfg.nesting_depth);
    // Futures made first: a closure inside the stream trips the Send check of BoxFuture.
    let checks: Vec<_> = all.iter().map(|case| stdio_worst(ctx, case)).collect();
    let found: Vec<Option<Finding>> = stream::iter(checks)
        .buffered(STDIO_PARALLEL)
        .collect()
        .await;
    let mut out: Vec<Finding> = found.into_iter().flatten().collect();
    let n = ctx.cfg.notification_flood.max(1) * 10;
    let line = br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":987654321,"reason":"mcpstorm flood"}}"#;
    let mut flood = Vec::with_capacity(n * (line.len() + 1));
    for i in 0..n {
        if i > 0 {
            flood.push(b'\n');
        }
        flood.extend_from_slice(line);
    }
    out.push(
        stdio_case(
            ctx,
            "input.notification_flood",
            &format!("{n} notifications/cancelled lines in one write"),
            &flood,
            Expect::Clean,
            "read notifications cheaply; a flood must not stall the answers to requests",
            ctx.cfg.health_timeout * 2,
        )
        .await,
    );
    let size = ctx.cfg.max_body;
    out.push(
        stdio_case(
            ctx,
            "input.oversized_body",
            &format!("a {} ping on one line", human(size)),
            &padded_ping(size),
            Expect::Clean,
            "read lines of any length without failing, or refuse them with an error and go on",
            ctx.cfg.health_timeout.max(Duration::from_secs(30)),
        )
        .await,
    );
    out
}

/// The worst of one case's sub-cases over stdio.
async fn stdio_worst(ctx: &Ctx, case: &Case) -> Option<Finding> {
    let mut worst: Option<Finding> = None;
    for (what, body) in &case.bodies {
        let f = stdio_case(
            ctx,
            case.id,
            what,
            body,
            case.expect,
            case.advice,
            ctx.cfg.health_timeout,
        )
        .await;
        worst = Some(match worst {
            None => f,
            Some(w) => worse(w, f),
        });
    }
    worst
}

/// Spawn the server, write `body` as one line, note the first answer, then ping the same
/// process: it must still be there and answer within `health`.
async fn stdio_case(
    ctx: &Ctx,
    id: &str,
    what: &str,
    body: &[u8],
    expect: Expect,
    advice: &str,
    health: Duration,
) -> Finding {
    let request = format!(
        "stdio line: {what}: {}",
        excerpt(&String::from_utf8_lossy(&body[..body.len().min(400)]), 160)
    );
    let mut p = match ctx.spawn_stdio().await {
        Ok(p) => p,
        Err(e) => {
            return Finding::fail(
                id,
                Severity::Medium,
                format!("could not start the server for this check: {e}"),
            )
            .evidence(request, String::new());
        }
    };
    // A server that stops reading leaves our write blocked on a full pipe: bound it.
    let sent = match tokio::time::timeout(health, p.send_raw(body)).await {
        Ok(r) => r,
        Err(_) => Err(CallError::Timeout { after: health }),
    };
    if let Err(CallError::Timeout { after }) = &sent {
        p.close().await;
        return Finding::fail(
            id,
            Severity::Critical,
            format!("{what}: the server did not take the input within {after:?}: it reads too slowly or stopped reading"),
        )
        .evidence(request, format!("{} bytes not taken within {after:?}", body.len()))
        .advice(advice);
    }
    let first = match &sent {
        Ok(()) => {
            p.next_line(Duration::from_millis(300).min(ctx.cfg.timeout))
                .await
        }
        Err(e) => Err(e.clone()),
    };
    let answer = match &first {
        Ok(Some(line)) => excerpt(&String::from_utf8_lossy(line), 300),
        Ok(None) => "no line within 300 ms".to_string(),
        Err(e) => e.to_string(),
    };
    ctx.record(id, &request, answer.as_bytes());
    let answered_with_result = match &first {
        Ok(Some(line)) => serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .is_some_and(|m| {
                m.get("result").is_some()
                    && m.get("id")
                        .is_some_and(|i| !i.is_number() || i.as_u64().is_some_and(|n| n >= 11))
            }),
        _ => false,
    };
    let ping = p.ping(health).await;
    let exit = match (&ping, p.exited().await) {
        (_, Some(exit)) => Some(exit),
        (Err(e @ CallError::ProcessExited { .. }), None) => Some(e.clone()),
        _ => None,
    };
    let f = match (&ping, exit) {
        (_, Some(exit)) => {
            let tail = match &exit {
                CallError::ProcessExited { stderr_tail, .. } => stderr_tail
                    .iter()
                    .rev()
                    .take(3)
                    .rev()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" | "),
                _ => String::new(),
            };
            Finding::fail(
                id,
                Severity::Critical,
                format!("{what}: the server process died ({exit})"),
            )
            .evidence(
                request,
                format!(
                    "{answer}; then: {exit}; last stderr: {}",
                    excerpt(&tail, 300)
                ),
            )
            .advice(advice)
        }
        (Err(e), None) => Finding::fail(
            id,
            Severity::Critical,
            format!("{what}: the server stopped answering (ping: {e})"),
        )
        .evidence(request, format!("{answer}; then ping: {e}"))
        .advice(advice),
        (Ok(t), None) if expect == Expect::Refusal && answered_with_result => Finding::fail(
            id,
            Severity::Low,
            format!("{what}: answered with a result instead of an error"),
        )
        .evidence(
            request,
            format!("{answer}; ping answered in {} ms", t.as_millis()),
        )
        .advice(advice),
        (Ok(t), None) => Finding::pass(
            id,
            Severity::Medium,
            format!(
                "{what}: {}; still answering (ping in {} ms)",
                if answer.starts_with("no line") {
                    "no answer (dropped)".to_string()
                } else {
                    "answered".to_string()
                },
                t.as_millis()
            ),
        )
        .evidence(request, answer),
    };
    p.close().await;
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_bodies_are_exactly_the_size_and_valid_json() {
        let b = padded_ping(4096);
        assert_eq!(b.len(), 4096);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["method"], "ping");
    }

    #[test]
    fn the_deep_case_is_as_deep_as_asked() {
        let c = cases(10_000);
        let deep = c.iter().find(|c| c.id == "input.deep_nesting").unwrap();
        let body = &deep.bodies[0].1;
        assert_eq!(body.iter().filter(|b| **b == b'[').count(), 10_000);
        assert!(
            serde_json::from_slice::<serde_json::Value>(body).is_err(),
            "serde_json refuses past 128"
        );
    }

    fn answer(status: u16, body: &str) -> Result<RawResponse, CallError> {
        Ok(RawResponse {
            status,
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
            messages: serde_json::from_str(body).ok().into_iter().collect(),
            elapsed: Duration::ZERO,
        })
    }

    #[test]
    fn a_refusal_without_a_json_rpc_body_is_a_low_finding() {
        let plain = judge(
            "input.malformed_json",
            "truncated JSON",
            Expect::Refusal,
            &answer(415, "fail to deserialize request body"),
            "advice",
        );
        assert!(
            plain.failed() && plain.severity == Severity::Low,
            "{plain:?}"
        );
        assert!(plain.title.contains("HTTP 415") && plain.title.contains("not a JSON-RPC error"));
        assert!(plain.advice.contains("-32700"), "{}", plain.advice);
        let rpc = judge(
            "input.malformed_json",
            "truncated JSON",
            Expect::Refusal,
            &answer(
                400,
                r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#,
            ),
            "advice",
        );
        assert!(!rpc.failed(), "{rpc:?}");
        assert_eq!(
            rpc.title,
            "truncated JSON: HTTP 400 with JSON-RPC error -32700"
        );
        // A 5xx is still worse than a plain refusal.
        let crash = judge("input.x", "x", Expect::Clean, &answer(500, "boom"), "a");
        assert_eq!(crash.severity, Severity::Medium);
    }

    #[test]
    fn worse_prefers_the_more_severe_failure() {
        let p = Finding::pass("input.x", Severity::Medium, "ok");
        let low = Finding::fail("input.x", Severity::Low, "low");
        let crit = Finding::fail("input.x", Severity::Critical, "crit");
        assert_eq!(worse(p.clone(), low.clone()).title, "low");
        assert_eq!(worse(low, crit.clone()).title, "crit");
        assert_eq!(worse(crit, p).title, "crit");
    }
}
