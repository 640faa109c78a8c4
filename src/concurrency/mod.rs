//! Concurrency bug probes: the bugs a load test meets as hangs and wrong answers rather than
//! slow ones. `first_call` releases the first `tools/call` of N fresh sessions at the same
//! instant (a lazily initialised server that deadlocks when two callers race its
//! initialisation hangs there); `race` sends the same deterministic call from N sessions at
//! once, round after round (a tool that shares mutable state across requests answers
//! differently).
//!
//! Each probe yields one security [`Finding`] (`report.json` → `security`, category
//! `concurrency`), next to the `[security]` suite's. They run from two places: a scenario's
//! `[concurrency]` table (after the preflight and before any load, so the first-call probe
//! really sends the server's first tool calls), and the `concurrency` family of
//! `mcpstorm probe` (`security/concurrency.rs`, first in the suite for the same reason), which
//! opens their sessions through the suite's connector. They send only the calls they are
//! given (a race check needs a call whose right answer is known), and never judge the
//! verdict themselves (`security.failures` does).

pub mod first_call;
pub mod race;

use crate::scenario::duration;
use crate::security::{Evidence, Finding, Outcome, Severity};
use crate::session::Session;
use crate::target::Connector;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// One probe's finding, in the security suite's type (the report contract's shape).
fn finding(
    probe: &str,
    severity: Severity,
    outcome: Outcome,
    title: String,
    evidence: (String, String, Value),
    advice: &str,
) -> Finding {
    let (request, response, details) = evidence;
    Finding {
        probe: probe.to_string(),
        category: "concurrency".into(),
        severity,
        outcome,
        title,
        evidence: Evidence {
            request,
            response,
            details: (!details.is_null()).then_some(details),
        },
        advice: advice.to_string(),
        extra: Default::default(),
    }
}

/// The `[concurrency]` table of a scenario.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConcurrency {
    pub first_call: Option<RawFirstCall>,
    pub race: Option<RawRace>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFirstCall {
    pub sessions: Option<u32>,
    pub tool: String,
    pub arguments: Option<toml::Value>,
    pub deadline: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRace {
    pub sessions: Option<u32>,
    pub rounds: Option<u32>,
    pub tool: String,
    pub arguments: Option<toml::Value>,
    pub deadline: Option<String>,
}

/// The probes a scenario asks for, validated.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ConcurrencyPlan {
    pub first_call: Option<first_call::FirstCall>,
    pub race: Option<race::Race>,
}

/// The most sessions a probe may open at once: enough to find races, few enough that a
/// stdio server (one process per session) can be started that many times.
const MAX_SESSIONS: u32 = 1000;

fn sessions(v: Option<u32>, key: &str, p: &mut Vec<String>) -> usize {
    let n = v.unwrap_or(20);
    if !(2..=MAX_SESSIONS).contains(&n) {
        p.push(format!(
            "`{key}` = {n}: a concurrency probe needs 2 to {MAX_SESSIONS} sessions"
        ));
    }
    n as usize
}

fn arguments(v: &Option<toml::Value>, key: &str, p: &mut Vec<String>) -> Value {
    match v {
        None => Value::Object(Default::default()),
        Some(t @ toml::Value::Table(_)) => serde_json::to_value(t).unwrap_or(Value::Null),
        Some(other) => {
            p.push(format!(
                "`{key}` must be a table of arguments like {{ a = 1 }}, found {}",
                other.type_str()
            ));
            Value::Null
        }
    }
}

impl ConcurrencyPlan {
    pub fn from_raw(raw: &RawConcurrency, p: &mut Vec<String>) -> ConcurrencyPlan {
        let deadline = |d: &Option<String>, key: &str, p: &mut Vec<String>| {
            let d = d
                .as_ref()
                .and_then(|s| duration(s, key, p))
                .unwrap_or(Duration::from_secs(5));
            if d.is_zero() {
                p.push(format!("`{key}` must be more than 0"));
            }
            d
        };
        if raw.first_call.is_none() && raw.race.is_none() {
            p.push("`concurrency` names no probe; add first_call = { tool = \"...\" } or race = { tool = \"...\" }".into());
        }
        ConcurrencyPlan {
            first_call: raw.first_call.as_ref().map(|f| first_call::FirstCall {
                sessions: sessions(f.sessions, "concurrency.first_call.sessions", p),
                tool: f.tool.clone(),
                arguments: arguments(&f.arguments, "concurrency.first_call.arguments", p),
                deadline: deadline(&f.deadline, "concurrency.first_call.deadline", p),
            }),
            race: raw.race.as_ref().map(|r| {
                let rounds = r.rounds.unwrap_or(5);
                if rounds == 0 {
                    p.push("`concurrency.race.rounds` must be at least 1".into());
                }
                race::Race {
                    sessions: sessions(r.sessions, "concurrency.race.sessions", p),
                    rounds: rounds as usize,
                    tool: r.tool.clone(),
                    arguments: arguments(&r.arguments, "concurrency.race.arguments", p),
                    deadline: deadline(&r.deadline, "concurrency.race.deadline", p),
                }
            }),
        }
    }

    /// Run the probes the plan names, first-call first (it needs the server's first calls).
    pub async fn run(&self, connector: &Connector) -> Vec<Finding> {
        let mut out = Vec::new();
        if let Some(f) = &self.first_call {
            out.push(f.run(connector).await);
        }
        if let Some(r) = &self.race {
            out.push(r.run(connector).await);
        }
        out
    }
}

/// Open `n` sessions at once (counted as mcpstorm's own, not the workload's); the ones
/// that failed are counted, with the first error.
async fn open_sessions(connector: &Connector, n: usize) -> (Vec<Session>, usize, Option<String>) {
    let opened = futures::future::join_all((0..n).map(|_| connector.open_monitor())).await;
    let mut sessions = Vec::new();
    let mut failed = 0;
    let mut first_error = None;
    for s in opened {
        match s {
            Ok(s) => sessions.push(s),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    (sessions, failed, first_error)
}

/// Close sessions in parallel, each bounded: a hung server must not hold the run.
async fn close_all(sessions: Vec<Session>) {
    futures::future::join_all(
        sessions
            .into_iter()
            .map(|s| tokio::time::timeout(Duration::from_secs(2), s.close())),
    )
    .await;
}

fn call_params(tool: &str, arguments: &Value) -> Value {
    serde_json::json!({"name": tool, "arguments": arguments})
}

/// The part of a `tools/call` answer that says what the tool answered (not `_meta`).
fn answer_of(result: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for k in ["content", "structuredContent", "isError"] {
        if let Some(v) = result.get(k) {
            out.insert(k.to_string(), v.clone());
        }
    }
    Value::Object(out)
}
