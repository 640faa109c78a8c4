//! resilience.overload: more concurrent calls of a slow tool than the server should hold
//! (200 by default), all at once. A server with a bound (a worker pool and a bounded queue)
//! answers what it can hold and refuses the excess at once: 503 with `Retry-After`, or a
//! JSON-RPC error. One without a bound either takes them all (nothing was refused: the
//! finding says there is no limit below that many calls) or queues them until the client
//! gives up (calls that hang past the deadline): both fail. A 429 is a rate limiter's
//! answer, counted apart: it says nothing about how many calls the server holds at once.
//!
//! The slow call is the user's (`--slow-tool`, `[security.overload]`). Without one, a tool
//! named `sleep`, `wait` or `delay` whose only argument is a number of milliseconds or
//! seconds is called for one second: the name and the schema together say what it does,
//! and the worst such a tool can do when misnamed is take a number. Nothing else is guessed.

use super::{Answer, Called, ToolCall, call, median_max_ms, with_refusal_flaws};
use crate::security::auth::after_health;
use crate::security::wire::Ctx;
use crate::security::{Finding, Severity};
use serde::Serialize;
use serde_json::{Value, json};
use std::time::Duration;

const PROBE: &str = "resilience.overload";
/// The most calls at once the probe opens: each is a connection on both sides.
pub const MAX_CONCURRENCY: usize = 500;
pub const DEFAULT_CONCURRENCY: usize = 200;
/// Sessions the burst is spread over, so a server that serialises one session's calls is
/// still asked for several at once.
const SESSIONS: usize = 4;
/// How long the slow call may take alone when no deadline is given.
const ALONE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize)]
pub struct OverloadProbe {
    /// The slow call; `None`: a `sleep`-like tool recognised by name and schema.
    pub call: Option<ToolCall>,
    /// Calls sent at once.
    pub concurrency: usize,
    /// A call unanswered this long hung; `None`: five times the call alone, at least 5 s
    /// more than it, at most 60 s.
    #[serde(serialize_with = "ser_opt_duration")]
    pub deadline: Option<Duration>,
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => crate::workload::ser_duration(d, s),
        None => s.serialize_none(),
    }
}

impl Default for OverloadProbe {
    fn default() -> Self {
        OverloadProbe {
            call: None,
            concurrency: DEFAULT_CONCURRENCY,
            deadline: None,
        }
    }
}

/// A tool whose name says it sleeps and whose one numeric argument says for how long.
pub(crate) fn detect_slow_tool(tools: &[Value]) -> Option<ToolCall> {
    const NAMES: &[&str] = &["sleep", "wait", "delay"];
    const MILLIS: &[&str] = &["ms", "millis", "milliseconds", "duration_ms", "delay_ms"];
    const SECONDS: &[&str] = &["s", "secs", "seconds", "duration", "delay"];
    tools.iter().find_map(|t| {
        let name = t["name"].as_str()?;
        if !NAMES.contains(&name.to_ascii_lowercase().as_str())
            || t["annotations"]["destructiveHint"] == true
        {
            return None;
        }
        let props = t["inputSchema"]["properties"].as_object()?;
        let (arg, schema) = props.iter().next().filter(|_| props.len() == 1)?;
        if !matches!(schema["type"].as_str(), Some("integer" | "number")) {
            return None;
        }
        let value = if MILLIS.contains(&arg.as_str()) {
            1000
        } else if SECONDS.contains(&arg.as_str()) {
            1
        } else {
            return None;
        };
        if schema["maximum"].as_f64().is_some_and(|m| m < value as f64) {
            return None;
        }
        Some(ToolCall {
            tool: name.to_string(),
            arguments: json!({ arg.as_str(): value }),
        })
    })
}

pub(crate) async fn run(ctx: &Ctx) -> Finding {
    let cfg = &ctx.cfg.overload;
    let (slow, recognised) = match &cfg.call {
        Some(c) => (c.clone(), false),
        None => match detect_slow_tool(&ctx.tools) {
            Some(c) => (c, true),
            None => {
                return Finding::skip(
                    PROBE,
                    "no slow tool given and none recognised (a `sleep` tool taking ms): name one with --slow-tool NAME --slow-arguments JSON ([security.overload] tool, arguments)",
                )
                .advice("give a call that takes a second or more, such as a sleep or a slow query");
            }
        },
    };
    if let Some(why) = slow.missing_from(&ctx.tools) {
        return Finding::skip(PROBE, format!("{why}: check --slow-tool"));
    }
    let Some(h) = ctx.http() else {
        return Finding::skip(PROBE, "HTTP only");
    };
    let mut sessions = Vec::new();
    for _ in 0..SESSIONS.min(cfg.concurrency) {
        match ctx.open_session(PROBE, &h.good).await {
            Ok(s) => sessions.push(s),
            Err(e) if sessions.is_empty() => {
                return Finding::skip(
                    PROBE,
                    format!("no session could be opened: {}", e.describe()),
                );
            }
            Err(_) => break,
        }
    }
    let alone = call(
        ctx,
        PROBE,
        &sessions[0],
        1,
        &slow,
        cfg.deadline.unwrap_or(ALONE_TIMEOUT),
        true,
    )
    .await;
    if !matches!(alone.answer, Answer::Ran { .. }) {
        for s in &sessions {
            ctx.close_session(s).await;
        }
        return Finding::skip(
            PROBE,
            format!(
                "the slow call does not answer on its own, so overload cannot be told from it: {}",
                alone.shown
            ),
        )
        .evidence(slow.shown(), alone.shown)
        .advice("give a slow call that succeeds alone (--slow-tool, --slow-arguments)");
    }
    let deadline = cfg.deadline.unwrap_or_else(|| {
        let alone = Duration::from_millis(alone.took.as_millis() as u64);
        (alone * 5)
            .max(alone + Duration::from_secs(5))
            .min(Duration::from_secs(60))
    });
    let n = cfg.concurrency;
    let burst = (0..n).map(|i| {
        call(
            ctx,
            PROBE,
            &sessions[i % sessions.len()],
            1000 + i as u64,
            &slow,
            deadline,
            false,
        )
    });
    let calls: Vec<Called> = futures::future::join_all(burst).await;
    for s in &sessions {
        ctx.close_session(s).await;
    }
    let request = format!(
        "{n} concurrent {} on {} sessions{} (alone it answered in {} ms; a call unanswered after {} hung)",
        slow.shown(),
        sessions.len(),
        if recognised {
            format!(" (`{}` recognised by name and schema)", slow.tool)
        } else {
            String::new()
        },
        alone.took.as_millis(),
        humantime::format_duration(deadline)
    );
    let mut f = judge(&calls, alone.took, deadline, n);
    f.evidence.request = request;
    after_health(ctx, f).await
}

/// Counts of a burst, and what they mean.
fn judge(calls: &[Called], alone: Duration, deadline: Duration, n: usize) -> Finding {
    let answered: Vec<&Called> = calls
        .iter()
        .filter(|c| matches!(c.answer, Answer::Ran { .. }))
        .collect();
    let refused: Vec<&Called> = calls
        .iter()
        .filter(|c| c.refused() && !c.throttled())
        .collect();
    let throttled = calls.iter().filter(|c| c.throttled()).count();
    let hung = calls
        .iter()
        .filter(|c| c.answer == Answer::TimedOut)
        .count();
    let failed: Vec<&Called> = calls
        .iter()
        .filter(|c| matches!(c.answer, Answer::Failed { .. }))
        .collect();
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    for c in &refused {
        let key = match c.answer {
            Answer::Refused { status } => format!("HTTP {status}"),
            Answer::RpcError { code } => format!("JSON-RPC {code}"),
            _ => continue,
        };
        *statuses.entry(key).or_default() += 1;
    }
    let (refusal_median, refusal_max) =
        median_max_ms(&mut refused.iter().map(|c| c.took).collect::<Vec<_>>());
    let (answer_median, answer_max) =
        median_max_ms(&mut answered.iter().map(|c| c.took).collect::<Vec<_>>());
    let mut response = format!(
        "{} answered (median {answer_median} ms, slowest {answer_max} ms), {} refused{}, {throttled} throttled (429), {hung} unanswered after {}, {} failed",
        answered.len(),
        refused.len(),
        if statuses.is_empty() {
            String::new()
        } else {
            format!(
                " ({}; median {refusal_median} ms, slowest {refusal_max} ms)",
                statuses
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        humantime::format_duration(deadline),
        failed.len()
    );
    if let Some(c) = refused.first() {
        response.push_str(&format!("; a refusal: {}", c.shown));
    }
    if let Some(c) = failed.first() {
        response.push_str(&format!("; a failure: {}", c.shown));
    }
    let details = json!({
        "concurrency": n, "answered": answered.len(), "refused": refused.len(),
        "throttled": throttled, "timed_out": hung, "failed": failed.len(),
        "refusals_by_kind": statuses,
        "refusal_ms": {"median": refusal_median, "max": refusal_max},
        "answer_ms": {"median": answer_median, "max": answer_max},
        "alone_ms": alone.as_millis() as u64, "deadline_ms": deadline.as_millis() as u64,
    });
    let bound_advice = "bound the work in flight: a fixed pool of workers with a short bounded queue, and refuse the excess at once with 503 + Retry-After and a message that says to retry later or lower the concurrency";
    let f = if hung > 0 {
        Finding::fail(
            PROBE,
            Severity::High,
            format!(
                "{hung} of {n} concurrent calls hung past {}: the excess queued until the client gave up instead of being refused",
                humantime::format_duration(deadline)
            ),
        )
        .advice(bound_advice)
    } else if !failed.is_empty() {
        Finding::fail(
            PROBE,
            Severity::Medium,
            format!(
                "{} of {n} concurrent calls failed ({}) instead of being refused cleanly",
                failed.len(),
                match &failed[0].answer {
                    Answer::Failed { what } => what.clone(),
                    _ => String::new(),
                }
            ),
        )
        .advice(bound_advice)
    } else if refused.is_empty() && throttled > 0 {
        // The rate limiter answered first: the calls it let in are fewer than asked, so
        // whether the server bounds its work in flight was never put to the test. Not a
        // pass, and not a failure either (the hardened reference server, 100/s per IP and
        // 256 at once, lands here with the defaults).
        Finding::skip(
            PROBE,
            format!(
                "a rate limit throttled {throttled} of {n} calls (429) before any concurrency bound was reached; the {} let in all ran, none hung, so the bound itself was not tested",
                answered.len()
            ),
        )
        .advice("to test the bound, send more calls at once than the server holds (--overload-concurrency above its pool plus queue) but fewer than its rate limit's burst, or probe it with the rate limit raised")
    } else if refused.is_empty() {
        Finding::fail(
            PROBE,
            Severity::High,
            format!(
                "no concurrency limit below {n}: every one of {n} concurrent slow calls was taken (the slowest answered after {answer_max} ms)"
            ),
        )
        .advice(bound_advice)
    } else if refusal_median > alone.as_secs_f64() * 1000.0 {
        Finding::fail(
            PROBE,
            Severity::Low,
            format!(
                "refusals are slow: the median refusal came after {refusal_median} ms, longer than the call itself takes ({} ms)",
                alone.as_millis()
            ),
        )
        .advice("refuse the excess at once (a full queue) or after a short queue wait, not after the work would have been done")
    } else {
        Finding::pass(
            PROBE,
            Severity::High,
            format!(
                "{} of {n} concurrent calls refused fast (median {refusal_median} ms), {} answered, none hung",
                refused.len(),
                answered.len()
            ),
        )
    };
    let mut f = with_refusal_flaws(f, &refused);
    f.evidence.response = response;
    f.evidence.details = Some(details);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn called(answer: Answer, ms: u64, retry_after: Option<&str>, message: &str) -> Called {
        Called {
            answer,
            took: Duration::from_millis(ms),
            retry_after: retry_after.map(str::to_string),
            message: message.to_string(),
            shown: "HTTP ...".into(),
        }
    }

    const ALONE: Duration = Duration::from_millis(1000);
    const DEADLINE: Duration = Duration::from_secs(6);

    #[test]
    fn a_bounded_server_passes_and_unbounded_ones_fail() {
        let ran = || called(Answer::Ran { is_error: false }, 1000, None, "");
        let shed = || {
            called(
                Answer::Refused { status: 503 },
                3,
                Some("1"),
                "server overloaded; retry after 1 s",
            )
        };
        let mut calls: Vec<Called> = (0..8).map(|_| ran()).collect();
        calls.extend((0..12).map(|_| shed()));
        let f = judge(&calls, ALONE, DEADLINE, 20);
        assert!(!f.failed(), "{f:?}");
        assert_eq!(f.evidence.details.as_ref().unwrap()["refused"], 12);

        let all: Vec<Called> = (0..20).map(|_| ran()).collect();
        let f = judge(&all, ALONE, DEADLINE, 20);
        assert!(
            f.failed() && f.title.starts_with("no concurrency limit below 20"),
            "{f:?}"
        );

        let mut hung: Vec<Called> = (0..8).map(|_| ran()).collect();
        hung.extend((0..12).map(|_| called(Answer::TimedOut, 6000, None, "")));
        let f = judge(&hung, ALONE, DEADLINE, 20);
        assert!(f.failed() && f.severity == Severity::High && f.title.contains("hung"));
    }

    #[test]
    fn a_503_without_retry_after_or_advice_is_a_low_finding() {
        let mut calls = vec![called(Answer::Ran { is_error: false }, 1000, None, "")];
        calls.push(called(
            Answer::Refused { status: 503 },
            2,
            None,
            "Service Unavailable",
        ));
        let f = judge(&calls, ALONE, DEADLINE, 2);
        assert!(f.failed() && f.severity == Severity::Low, "{f:?}");
        assert!(f.title.contains("Retry-After"), "{f:?}");
    }

    #[test]
    fn throttling_alone_is_not_a_concurrency_bound() {
        let mut calls = vec![called(Answer::Ran { is_error: false }, 1000, None, "")];
        calls.push(called(
            Answer::Refused { status: 429 },
            2,
            Some("1"),
            "slow down",
        ));
        let f = judge(&calls, ALONE, DEADLINE, 2);
        // The limiter kept the burst below any bound: untested, neither pass nor fail.
        assert_eq!(f.outcome, crate::security::Outcome::Skip, "{f:?}");
        assert!(f.title.contains("throttled 1 of 2"), "{f:?}");
        // A hang behind the limiter is still a hang.
        calls.push(called(Answer::TimedOut, 6000, None, ""));
        let f = judge(&calls, ALONE, DEADLINE, 3);
        assert!(f.failed() && f.title.contains("hung"), "{f:?}");
    }

    #[test]
    fn a_sleep_tool_is_recognised_by_name_and_schema_only() {
        let tool = |name: &str, props: Value| json!({"name": name, "inputSchema": {"type": "object", "properties": props}});
        let found = detect_slow_tool(&[
            tool("echo", json!({"message": {"type": "string"}})),
            tool(
                "sleep",
                json!({"ms": {"type": "integer", "maximum": 60000}}),
            ),
        ])
        .unwrap();
        assert_eq!(found.arguments, json!({"ms": 1000}));
        assert_eq!(
            detect_slow_tool(&[tool("wait", json!({"seconds": {"type": "number"}}))])
                .unwrap()
                .arguments,
            json!({"seconds": 1})
        );
        for t in [
            tool("sleep", json!({"ms": {"type": "string"}})),
            tool(
                "sleep",
                json!({"ms": {"type": "integer"}, "then": {"type": "string"}}),
            ),
            tool("nap", json!({"ms": {"type": "integer"}})),
            tool("sleep", json!({"count": {"type": "integer"}})),
            tool("sleep", json!({"ms": {"type": "integer", "maximum": 10}})),
        ] {
            assert_eq!(detect_slow_tool(std::slice::from_ref(&t)), None, "{t}");
        }
    }
}
