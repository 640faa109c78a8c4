//! resilience: does the server shed what it cannot take, and say so? Three probes, each on
//! a call the user names (mcpstorm cannot know which of a server's tools is slow, failing
//! or heavy, except a `sleep` tool it recognises):
//!
//! - `overload` (`overload.rs`): more concurrent calls of a slow tool than the server should
//!   hold; the excess must be refused fast (503/429 with `Retry-After`, or a JSON-RPC error),
//!   not queued until the client gives up.
//! - `breaker` (`breaker.rs`): after N failures in a row of a failing tool, calls are refused
//!   at once (circuit open) and, after the open period, one trial is let through (half-open).
//! - `memory_guard` (`memory_guard.rs`): heavy calls held at once push the server's memory
//!   past its declared threshold; the next heavy call must be refused, not grow the process.
//!
//! Every refusal they meet is also read for what it tells a client: `Retry-After` on a 503
//! or 429, and a message that says what to do, without a stack trace.
//!
//! HTTP only: a stdio server has one client, the process that started it. What it must never
//! do: hold more than a few hundred MB of the server's memory, or leave calls running after
//! the probe (every call it starts is awaited, within its deadline).

pub(crate) mod breaker;
pub(crate) mod memory_guard;
pub(crate) mod overload;

use super::wire::{Ctx, HttpSession, Req, rpc};
use super::{Finding, Probe, Severity};
use crate::error::{CallError, excerpt};
use crate::transport::http::RawResponse;
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub use breaker::BreakerProbe;
pub use memory_guard::MemoryGuardProbe;
pub use overload::OverloadProbe;

pub(crate) struct Resilience;

impl Probe for Resilience {
    fn name(&self) -> &'static str {
        "resilience"
    }
    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(run(ctx))
    }
}

/// What the breaker and memory-guard probes need before their first call: their call among
/// the server's tools (else a skip naming `flag`) and a session over HTTP.
async fn declared_session(
    ctx: &Ctx,
    probe: &str,
    call: &ToolCall,
    flag: &str,
) -> Result<HttpSession, Finding> {
    if let Some(why) = call.missing_from(&ctx.tools) {
        return Err(Finding::skip(probe, format!("{why}: check {flag}")));
    }
    let Some(h) = ctx.http() else {
        return Err(Finding::skip(probe, "HTTP only"));
    };
    ctx.open_session(probe, &h.good).await.map_err(|e| {
        Finding::skip(
            probe,
            format!("no session could be opened: {}", e.describe()),
        )
    })
}

async fn run(ctx: &Ctx) -> Vec<Finding> {
    if ctx.http().is_none() {
        return vec![Finding::skip(
            "resilience",
            "stdio target: a stdio server has one client, the process that started it; overload, circuit-breaker and memory-guard probes are for servers many clients share (HTTP)",
        )];
    }
    if !ctx.authorized {
        return vec![Finding::skip(
            "resilience",
            "no session could be opened with the credentials given; pass a key (--auth-hs256-secret-env) or -H 'Authorization: Bearer ...'",
        )];
    }
    let mut out = vec![overload::run(ctx).await];
    if ctx.down().is_none() {
        out.push(breaker::run(ctx).await);
    }
    if ctx.down().is_none() {
        out.push(memory_guard::run(ctx).await);
    }
    out
}

/// A tool and the arguments to call it with, as the user named them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCall {
    pub tool: String,
    pub arguments: Value,
}

impl ToolCall {
    /// `--x-arguments` text: a JSON object. The error names `key`.
    pub fn parse_arguments(text: &str, key: &str) -> Result<Value, String> {
        match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Object(_)) => Ok(v),
            Ok(other) => Err(format!(
                "{key} `{}`: the arguments must be a JSON object like '{{\"ms\": 2000}}', found {}",
                excerpt(text, 60),
                match other {
                    Value::Array(_) => "an array",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "a boolean",
                    _ => "null",
                }
            )),
            Err(e) => Err(format!(
                "{key} `{}`: not JSON ({e}); quote it for the shell, like --slow-arguments '{{\"ms\": 2000}}'",
                excerpt(text, 60)
            )),
        }
    }

    fn params(&self) -> Value {
        json!({"name": self.tool, "arguments": self.arguments})
    }

    /// How evidence shows the call.
    pub(crate) fn shown(&self) -> String {
        format!(
            "tools/call {} {}",
            self.tool,
            excerpt(&self.arguments.to_string(), 160)
        )
    }

    /// `Some(why)` when the server listed its tools and this one is not among them.
    pub(crate) fn missing_from(&self, tools: &[Value]) -> Option<String> {
        if tools.is_empty() || tools.iter().any(|t| t["name"] == self.tool.as_str()) {
            return None;
        }
        let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
        Some(format!(
            "the server has no tool `{}` (it lists: {})",
            self.tool,
            excerpt(&names.join(", "), 200)
        ))
    }
}

/// What one `tools/call` came back as, as these probes judge it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// The tool ran: a result, `isError` or not.
    Ran {
        is_error: bool,
    },
    /// A JSON-RPC error in place of a result (HTTP 2xx).
    RpcError {
        code: i64,
    },
    /// An HTTP refusal: 4xx, or 503 (the status a shedding server gives).
    Refused {
        status: u16,
    },
    /// A 5xx other than 503, or the connection ended without an answer.
    Failed {
        what: String,
    },
    TimedOut,
}

/// One call's answer with what the evidence needs.
#[derive(Debug, Clone)]
pub(crate) struct Called {
    pub answer: Answer,
    /// From sending to the end of the answer.
    pub took: Duration,
    pub retry_after: Option<String>,
    /// The error's message: JSON-RPC `error.message`, a tool error's text, or the body of an
    /// HTTP refusal; empty for a successful result.
    pub message: String,
    /// The response as evidence shows it.
    pub shown: String,
}

impl Called {
    /// `took` is the wall time, used when there was no HTTP exchange to time (a timeout, a
    /// dropped connection); an answer's own time leaves out the suite's pacing.
    pub(crate) fn of(r: &Result<RawResponse, CallError>, took: Duration) -> Called {
        let shown = super::wire::describe_outcome(r);
        let r = match r {
            Ok(r) => r,
            Err(CallError::Timeout { .. }) => {
                return Called {
                    answer: Answer::TimedOut,
                    took,
                    retry_after: None,
                    message: String::new(),
                    shown,
                };
            }
            Err(e) => {
                return Called {
                    answer: Answer::Failed {
                        what: e.to_string(),
                    },
                    took,
                    retry_after: None,
                    message: String::new(),
                    shown,
                };
            }
        };
        let answer = r.answer();
        let error = answer.and_then(|a| a.get("error"));
        let message = match error {
            Some(e) => e["message"].as_str().unwrap_or_default().to_string(),
            // A tool's own failure: its text, where a breaker written as a tool error says why.
            None if answer.is_some_and(|a| a["result"]["isError"] == true) => answer
                .and_then(|a| a["result"]["content"][0]["text"].as_str())
                .map(|t| excerpt(t, 500))
                .unwrap_or_default(),
            None if r.status >= 300 => excerpt(
                &String::from_utf8_lossy(&r.body[..r.body.len().min(2000)]),
                500,
            ),
            None => String::new(),
        };
        let answer = match (r.status, answer, error) {
            (200..=299, Some(a), None) if a.get("result").is_some() => Answer::Ran {
                is_error: a["result"]["isError"] == true,
            },
            (200..=299, _, Some(e)) => Answer::RpcError {
                code: e["code"].as_i64().unwrap_or(0),
            },
            (503, _, _) | (400..=499, _, _) => Answer::Refused { status: r.status },
            (status, _, _) => Answer::Failed {
                what: format!("HTTP {status}"),
            },
        };
        Called {
            answer,
            took: r.elapsed,
            retry_after: r.header("retry-after").map(str::to_string),
            message,
            shown,
        }
    }

    /// Refused by the server rather than run: an HTTP refusal or a JSON-RPC error.
    pub(crate) fn refused(&self) -> bool {
        matches!(
            self.answer,
            Answer::Refused { .. } | Answer::RpcError { .. }
        )
    }

    pub(crate) fn throttled(&self) -> bool {
        self.answer == Answer::Refused { status: 429 }
    }
}

/// Send one `tools/call` on `session`; `paced` goes through the suite's pacer and waits out
/// a 429, unpaced sends it at once and takes a 429 as the answer.
pub(crate) async fn call(
    ctx: &Ctx,
    probe: &str,
    session: &HttpSession,
    id: u64,
    call: &ToolCall,
    timeout: Duration,
    paced: bool,
) -> Called {
    let mut req: Req = ctx.post(
        &session.headers,
        rpc(json!(id), "tools/call", Some(call.params())),
        &[],
    );
    req.timeout = Some(timeout);
    req.retry_throttled = paced;
    let started = Instant::now();
    let r = if paced {
        ctx.send(probe, req).await
    } else {
        ctx.send_unpaced(probe, req).await
    };
    Called::of(&r, started.elapsed())
}

/// Words of a message that tells a client what to do next.
const ACTIONABLE: &[&str] = &[
    "retry",
    "try again",
    "later",
    "wait",
    "back off",
    "backoff",
    "slow down",
    "reduce",
    "lower",
    "fewer",
    "raise",
    "increase",
    "smaller",
    "lighter",
];

/// What is wrong with how refusals were told, as (severity, title, advice); empty if nothing.
pub(crate) fn refusal_flaws(refusals: &[&Called]) -> Vec<(Severity, String, &'static str)> {
    let mut flaws = Vec::new();
    let no_retry_after: Vec<&&Called> = refusals
        .iter()
        .filter(|c| {
            matches!(c.answer, Answer::Refused { status: 503 | 429 }) && c.retry_after.is_none()
        })
        .collect();
    if let Some(first) = no_retry_after.first() {
        flaws.push((
            Severity::Low,
            format!(
                "{} of {} refusals (HTTP 503/429) carry no Retry-After, e.g. {}",
                no_retry_after.len(),
                refusals.len(),
                excerpt(&first.shown, 200)
            ),
            "send Retry-After (seconds) with every 503 and 429, so clients back off for as long as it helps instead of retrying at once",
        ));
    }
    if let Some(c) = refusals
        .iter()
        .find(|c| super::hygiene::leak_in(&c.message).is_some())
    {
        let what = super::hygiene::leak_in(&c.message).unwrap_or("internals");
        flaws.push((
            Severity::Low,
            format!("a refusal carries {what}: {}", excerpt(&c.message, 200)),
            "answer a refusal with a short message and a code; keep stack traces and paths in the server's log",
        ));
    } else if let Some(c) = refusals.iter().find(|c| !actionable(&c.message)) {
        flaws.push((
            Severity::Low,
            if c.message.trim().is_empty() {
                format!("a refusal has no message: {}", excerpt(&c.shown, 200))
            } else {
                format!(
                    "a refusal does not say what to do: \"{}\"",
                    excerpt(&c.message, 200)
                )
            },
            "say in the refusal what happened and what the client or operator can do (retry after N s, lower the concurrency, raise the server's limit)",
        ));
    }
    flaws
}

/// Does `message` tell its reader what to do next?
pub(crate) fn actionable(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.trim().len() >= 10 && ACTIONABLE.iter().any(|w| m.contains(w))
}

/// Apply `refusal_flaws` to a passing finding: it fails low with the first flaw.
pub(crate) fn with_refusal_flaws(f: Finding, refusals: &[&Called]) -> Finding {
    if f.failed() {
        return f;
    }
    match refusal_flaws(refusals).into_iter().next() {
        Some((severity, title, advice)) => {
            let mut failed = Finding::fail(&f.probe, severity, title).advice(advice);
            failed.evidence = f.evidence;
            failed
        }
        None => f,
    }
}

/// Milliseconds of a list of durations: (median, max).
pub(crate) fn median_max_ms(took: &mut [Duration]) -> (f64, f64) {
    if took.is_empty() {
        return (0.0, 0.0);
    }
    took.sort();
    let ms = |d: Duration| (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
    (ms(took[took.len() / 2]), ms(took[took.len() - 1]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn resp(status: u16, retry_after: Option<&str>, body: &str) -> RawResponse {
        let mut headers = HeaderMap::new();
        if let Some(r) = retry_after {
            headers.insert("retry-after", HeaderValue::from_str(r).unwrap());
        }
        RawResponse {
            status,
            headers,
            body: body.as_bytes().to_vec(),
            messages: serde_json::from_str(body).ok().into_iter().collect(),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn answers_are_told_apart() {
        let t = Duration::from_millis(3);
        let ran = Called::of(
            &Ok(resp(
                200,
                None,
                r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}"#,
            )),
            t,
        );
        assert_eq!(ran.answer, Answer::Ran { is_error: true });
        assert!(!ran.refused());
        let rpc = Called::of(
            &Ok(resp(
                200,
                None,
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"busy, retry later"}}"#,
            )),
            t,
        );
        assert_eq!(rpc.answer, Answer::RpcError { code: -32000 });
        assert_eq!(rpc.message, "busy, retry later");
        let shed = Called::of(&Ok(resp(503, Some("1"), "overloaded")), t);
        assert!(shed.refused() && !shed.throttled());
        assert_eq!(shed.message, "overloaded");
        assert!(Called::of(&Ok(resp(429, Some("1"), "")), t).throttled());
        assert!(matches!(
            Called::of(&Ok(resp(500, None, "boom")), t).answer,
            Answer::Failed { .. }
        ));
        assert_eq!(
            Called::of(&Err(CallError::Timeout { after: t }), t).answer,
            Answer::TimedOut
        );
    }

    #[test]
    fn refusals_must_carry_retry_after_and_say_what_to_do() {
        let t = Duration::ZERO;
        let good = Called::of(
            &Ok(resp(
                503,
                Some("1"),
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"server overloaded: retry after 1 s"}}"#,
            )),
            t,
        );
        assert!(refusal_flaws(&[&good]).is_empty());
        let bare = Called::of(&Ok(resp(503, None, "Service Unavailable")), t);
        let flaws = refusal_flaws(&[&good, &bare]);
        assert_eq!(flaws.len(), 2, "{flaws:?}");
        assert!(flaws[0].1.contains("1 of 2 refusals"), "{flaws:?}");
        assert!(flaws[1].1.contains("does not say what to do"), "{flaws:?}");
        let traced = Called::of(
            &Ok(resp(
                503,
                Some("2"),
                "Traceback (most recent call last): retry later",
            )),
            t,
        );
        assert!(refusal_flaws(&[&traced])[0].1.contains("Python traceback"));
    }

    #[test]
    fn arguments_must_be_a_json_object() {
        assert_eq!(
            ToolCall::parse_arguments(r#"{"ms": 2000}"#, "--slow-arguments").unwrap(),
            json!({"ms": 2000})
        );
        let e = ToolCall::parse_arguments("[1]", "--slow-arguments").unwrap_err();
        assert!(
            e.contains("--slow-arguments") && e.contains("an array"),
            "{e}"
        );
        let e = ToolCall::parse_arguments("{ms: 1}", "--slow-arguments").unwrap_err();
        assert!(e.contains("not JSON"), "{e}");
    }
}
