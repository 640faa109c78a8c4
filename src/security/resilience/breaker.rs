//! resilience.breaker: a failing call the user names, sent N times in a row (N = the
//! server's declared `failures`), must open the circuit: the next calls are refused at once
//! instead of running the tool again. After the declared open period one trial call must be
//! let through (half-open); when the trial fails too, the circuit opens again.
//!
//! A refusal is an HTTP 503 (or another 4xx), a JSON-RPC error when the tool's failures
//! were tool results (or an error with another code than theirs), or any failure whose
//! message speaks of a circuit. A 429 is a rate limiter's and is waited out.
//!
//! Declared by the user only (`--breaker-tool`, `[security.breaker]`): which call fails, and
//! after how many failures the server is meant to open, is the server's own business.

use super::{Answer, Called, ToolCall, call, median_max_ms, with_refusal_flaws};
use crate::security::auth::after_health;
use crate::security::wire::{Ctx, HttpSession};
use crate::security::{Finding, Severity};
use serde::Serialize;
use serde_json::json;
use std::time::{Duration, Instant};

const PROBE: &str = "resilience.breaker";
pub const DEFAULT_FAILURES: u32 = 5;
pub const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(30);
pub const MAX_FAILURES: u32 = 100;
pub const MAX_OPEN_FOR: Duration = Duration::from_secs(300);
/// Calls sent while the circuit should be open, before waiting for the trial.
const OPEN_CHECKS: usize = 3;

#[derive(Debug, Clone, Serialize)]
pub struct BreakerProbe {
    /// A call that fails every time.
    pub call: ToolCall,
    /// Failures in a row that open the server's circuit.
    pub failures: u32,
    /// How long the server keeps it open before a trial call.
    #[serde(serialize_with = "crate::workload::ser_duration")]
    pub open_for: Duration,
}

/// How the named call fails when the tool runs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Failure {
    ToolError,
    RpcError(i64),
}

fn failure_of(c: &Called) -> Option<Failure> {
    match c.answer {
        Answer::Ran { is_error: true } => Some(Failure::ToolError),
        Answer::RpcError { code } => Some(Failure::RpcError(code)),
        _ => None,
    }
}

/// Refused by a circuit rather than run, given how the tool's own failures look.
fn circuit_refused(c: &Called, failure: Option<Failure>) -> bool {
    let says_circuit = c.message.to_ascii_lowercase().contains("circuit");
    match c.answer {
        Answer::Refused { status } => status != 429,
        // With no failure seen yet, a JSON-RPC error is taken for the tool's own.
        Answer::RpcError { code } => {
            says_circuit || failure.is_some_and(|f| f != Failure::RpcError(code))
        }
        Answer::Ran { is_error: true } => says_circuit,
        _ => false,
    }
}

struct Caller<'a> {
    ctx: &'a Ctx,
    session: &'a HttpSession,
    call: &'a ToolCall,
    next_id: u64,
}

impl Caller<'_> {
    async fn once(&mut self) -> Called {
        self.next_id += 1;
        call(
            self.ctx,
            PROBE,
            self.session,
            self.next_id,
            self.call,
            self.ctx.cfg.timeout,
            true,
        )
        .await
    }
}

pub(crate) async fn run(ctx: &Ctx) -> Finding {
    let Some(cfg) = &ctx.cfg.breaker else {
        return Finding::skip(
            PROBE,
            "no failing call declared: give --breaker-tool NAME --breaker-arguments JSON (a call that fails every time) with the server's --breaker-failures N --breaker-open DUR ([security.breaker] tool, arguments, failures, open_for)",
        );
    };
    let session = match super::declared_session(ctx, PROBE, &cfg.call, "--breaker-tool").await {
        Ok(s) => s,
        Err(skip) => return skip,
    };
    let mut caller = Caller {
        ctx,
        session: &session,
        call: &cfg.call,
        next_id: 0,
    };
    let f = probe(&mut caller, cfg).await;
    ctx.close_session(&session).await;
    after_health(ctx, f).await
}

async fn probe(caller: &mut Caller<'_>, cfg: &BreakerProbe) -> Finding {
    let poll_every =
        (cfg.open_for / 20).clamp(Duration::from_millis(50), Duration::from_millis(500));
    let slack = (cfg.open_for / 2).max(Duration::from_secs(2));
    let request = format!(
        "{} {} times in a row on one session, {OPEN_CHECKS} more, then one every {} ms until one is let through (declared: open after {} failures, for {:?})",
        cfg.call.shown(),
        cfg.failures,
        poll_every.as_millis(),
        cfg.failures,
        cfg.open_for
    );
    let skip = |title: String, c: &Called| {
        Finding::skip(PROBE, title)
            .evidence(request.clone(), c.shown.clone())
            .advice("give a call that fails every time the tool runs (--breaker-tool, --breaker-arguments)")
    };

    // 1. Failures in a row, until the declared count or an early refusal.
    let mut failure: Option<Failure> = None;
    let mut failed_calls: Vec<Called> = Vec::new();
    let mut refusals: Vec<Called> = Vec::new();
    let mut already_open = false;
    for i in 0..cfg.failures {
        let c = caller.once().await;
        if circuit_refused(&c, failure) {
            already_open = i == 0;
            refusals.push(c);
            break;
        }
        match (failure_of(&c), &c.answer) {
            (Some(kind), _) => {
                failure.get_or_insert(kind);
                failed_calls.push(c);
            }
            (None, Answer::Ran { .. }) => {
                return skip(
                    format!(
                        "the declared failing call succeeded (call {}): nothing to open a circuit",
                        i + 1
                    ),
                    &c,
                );
            }
            (None, _) => {
                return skip(
                    format!(
                        "the declared failing call did not get an answer: {}",
                        c.shown
                    ),
                    &c,
                );
            }
        }
    }
    let opened_at = Instant::now();

    // 2. While open: refused at once, without running the tool.
    let mut ran_while_open = 0usize;
    while refusals.len() + ran_while_open < OPEN_CHECKS {
        let c = caller.once().await;
        if circuit_refused(&c, failure) {
            refusals.push(c);
        } else if failure_of(&c).is_some() {
            ran_while_open += 1;
        } else {
            return skip(
                format!(
                    "a call after the failures got an unexpected answer: {}",
                    c.shown
                ),
                &c,
            );
        }
    }
    let (fail_ms, _) = median_max_ms(&mut failed_calls.iter().map(|c| c.took).collect::<Vec<_>>());
    let (refusal_ms, _) = median_max_ms(&mut refusals.iter().map(|c| c.took).collect::<Vec<_>>());
    let mut response = format!(
        "{} failures (median {fail_ms} ms){}; then {} refused (median {refusal_ms} ms) and {ran_while_open} ran the tool again",
        failed_calls.len(),
        if already_open {
            ", the circuit was open before the probe began"
        } else {
            ""
        },
        refusals.len()
    );
    if let Some(c) = refusals.first() {
        response.push_str(&format!("; a refusal: {}", c.shown));
    }
    let mut details = json!({
        "failures": failed_calls.len(), "refused_while_open": refusals.len(),
        "ran_while_open": ran_while_open, "failure_ms": fail_ms, "refusal_ms": refusal_ms,
        "declared_failures": cfg.failures, "declared_open_ms": cfg.open_for.as_millis() as u64,
    });
    if refusals.is_empty() {
        let f = Finding::fail(
            PROBE,
            Severity::Medium,
            format!(
                "no circuit breaker: after {} failures in a row, {} more calls all ran the failing tool",
                failed_calls.len(),
                ran_while_open
            ),
        )
        .advice("after N failures in a row, refuse calls to that tool at once for a while (503 + Retry-After), then let one trial through: a failing dependency then gets room to recover instead of every caller's retries");
        return finish(f, request, response, details, &refusals);
    }

    if ran_while_open > 0 {
        let f = Finding::fail(
            PROBE,
            Severity::Low,
            format!(
                "the circuit opened late: {ran_while_open} more calls ran the failing tool after the declared {} failures",
                cfg.failures
            ),
        )
        .advice("open the circuit at the configured number of failures in a row");
        return finish(f, request, response, details, &refusals);
    }

    // 3. Half-open: one trial let through after the open period.
    let deadline = opened_at + cfg.open_for + slack;
    let mut trial: Option<(Duration, Called)> = None;
    while Instant::now() < deadline {
        tokio::time::sleep(poll_every).await;
        let sent = Instant::now();
        let c = caller.once().await;
        if circuit_refused(&c, failure) {
            continue;
        }
        if matches!(c.answer, Answer::TimedOut | Answer::Failed { .. }) {
            return skip(
                format!(
                    "a call while waiting for the trial got no answer: {}",
                    c.shown
                ),
                &c,
            );
        }
        trial = Some((sent.duration_since(opened_at), c));
        break;
    }
    let Some((after, trial)) = trial else {
        details["half_open_ms"] = serde_json::Value::Null;
        let f = Finding::fail(
            PROBE,
            Severity::Medium,
            format!(
                "the circuit opened but let no trial call through within {:?} (declared open for {:?})",
                cfg.open_for + slack,
                cfg.open_for
            ),
        )
        .advice("after the open period, let one trial call through (half-open) and close the circuit if it succeeds; a circuit that never half-opens keeps a recovered tool unavailable");
        return finish(f, request, response, details, &refusals);
    };
    details["half_open_ms"] = json!(after.as_millis() as u64);
    response.push_str(&format!(
        "; a trial was let through {} ms after the circuit opened",
        after.as_millis()
    ));
    let early = cfg
        .open_for
        .mul_f64(0.8)
        .saturating_sub(Duration::from_millis(100));
    if !already_open && after < early {
        let f = Finding::fail(
            PROBE,
            Severity::Low,
            format!(
                "half-opened after {} ms, before the declared open period of {:?}",
                after.as_millis(),
                cfg.open_for
            ),
        )
        .advice(
            "keep the circuit open for the whole configured period before letting a trial through",
        );
        return finish(f, request, response, details, &refusals);
    }

    // 4. A failed trial opens the circuit again.
    if failure_of(&trial).is_some() {
        let c = caller.once().await;
        let reopened = circuit_refused(&c, failure);
        details["reopened_after_failed_trial"] = json!(reopened);
        if reopened {
            response.push_str("; it failed and the next call was refused again");
            refusals.push(c);
        } else {
            response.push_str(&format!(
                "; it failed and the next call ran the tool too: {}",
                c.shown
            ));
            let f = Finding::fail(
                PROBE,
                Severity::Low,
                "the trial call failed but the circuit did not open again",
            )
            .advice("when the half-open trial fails, open the circuit again for the full period");
            return finish(f, request, response, details, &refusals);
        }
    }
    let f = Finding::pass(
        PROBE,
        Severity::Medium,
        format!(
            "{}refused fast (median {refusal_ms} ms against {fail_ms} ms for a failure), half-opened after {} ms (declared {:?})",
            if already_open {
                "the circuit was already open: ".to_string()
            } else {
                format!("opened after {} failures in a row: ", failed_calls.len())
            },
            after.as_millis(),
            cfg.open_for
        ),
    );
    finish(f, request, response, details, &refusals)
}

fn finish(
    f: Finding,
    request: String,
    response: String,
    details: serde_json::Value,
    refusals: &[Called],
) -> Finding {
    let refs: Vec<&Called> = refusals.iter().collect();
    let mut f = with_refusal_flaws(f, &refs);
    f.evidence.request = request;
    f.evidence.response = response;
    f.evidence.details = Some(details);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn called(answer: Answer, message: &str) -> Called {
        Called {
            answer,
            took: Duration::from_millis(1),
            retry_after: None,
            message: message.into(),
            shown: String::new(),
        }
    }

    #[test]
    fn a_refusal_is_told_from_the_tools_own_failure() {
        let tool_error = called(Answer::Ran { is_error: true }, "injected failure");
        assert_eq!(failure_of(&tool_error), Some(Failure::ToolError));
        assert!(!circuit_refused(&tool_error, Some(Failure::ToolError)));
        let shed = called(Answer::Refused { status: 503 }, "circuit open");
        assert!(circuit_refused(&shed, Some(Failure::ToolError)));
        assert!(!circuit_refused(
            &called(Answer::Refused { status: 429 }, "slow down"),
            None
        ));
        // A tool that fails with JSON-RPC errors: the same code again is the tool running.
        let rpc = called(Answer::RpcError { code: -32603 }, "internal error");
        assert!(!circuit_refused(&rpc, Some(Failure::RpcError(-32603))));
        assert!(
            !circuit_refused(&rpc, None),
            "the first error is the tool's"
        );
        assert!(circuit_refused(
            &called(Answer::RpcError { code: -32000 }, "unavailable"),
            Some(Failure::RpcError(-32603))
        ));
        assert!(circuit_refused(
            &called(Answer::Ran { is_error: true }, "Circuit open for `db`"),
            Some(Failure::ToolError)
        ));
    }
}
