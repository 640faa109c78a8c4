//! The race check: one call alone first (the baseline), then the same deterministic call
//! from N sessions at the same instant, for R rounds. A tool that keeps request state in
//! shared memory (a read-modify-write with an await in between) answers right alone and
//! differently when calls overlap: more than one distinct answer is a finding, listed with
//! how often each came.

use super::{answer_of, call_params, close_all, finding, open_sessions};
use crate::error::excerpt;
use crate::security::{Finding, Outcome, Severity};
use crate::target::Connector;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct Race {
    pub sessions: usize,
    pub rounds: usize,
    pub tool: String,
    pub arguments: Value,
    #[serde(serialize_with = "crate::workload::ser_duration")]
    pub deadline: Duration,
}

const PROBE: &str = "concurrency.race";

impl Race {
    pub async fn run(&self, connector: &Connector) -> Finding {
        let params = call_params(&self.tool, &self.arguments);
        let request = format!(
            "tools/call {params} once alone, then from {} sessions at one instant, {} rounds",
            self.sessions, self.rounds
        );
        let finding =
            |outcome: Outcome, title: String, response: String, details: Value, advice: &str| {
                finding(
                    PROBE,
                    Severity::High,
                    outcome,
                    title,
                    (request.clone(), response, details),
                    advice,
                )
            };
        let (mut sessions, failed_opens, open_error) =
            open_sessions(connector, self.sessions).await;
        if sessions.len() < 2 {
            close_all(sessions).await;
            return finding(
                Outcome::Skip,
                "race check skipped: fewer than 2 sessions could be opened".into(),
                format!(
                    "{failed_opens} handshakes failed: {}",
                    open_error.unwrap_or_default()
                ),
                Value::Null,
                "check that the server accepts several sessions at once",
            );
        }
        let baseline = match sessions[0]
            .call("tools/call", Some(&params), self.deadline)
            .await
        {
            Ok(r) => Some(answer_of(&r)),
            Err(_) => None,
        };
        // Distinct answers (as canonical JSON text) with their counts; failures by message.
        let mut answers: BTreeMap<String, u64> = BTreeMap::new();
        let mut failures: BTreeMap<String, u64> = BTreeMap::new();
        for _ in 0..self.rounds {
            let barrier = Arc::new(tokio::sync::Barrier::new(sessions.len()));
            let mut calls = tokio::task::JoinSet::new();
            for mut session in sessions.drain(..) {
                let (barrier, params, deadline) = (barrier.clone(), params.clone(), self.deadline);
                calls.spawn(async move {
                    barrier.wait().await;
                    let outcome = session.call("tools/call", Some(&params), deadline).await;
                    (outcome, session)
                });
            }
            while let Some(joined) = calls.join_next().await {
                let Ok((outcome, session)) = joined else {
                    continue;
                };
                let usable = match outcome {
                    Ok(r) => {
                        *answers.entry(answer_of(&r).to_string()).or_default() += 1;
                        true
                    }
                    Err(e) => {
                        *failures.entry(e.kind().key()).or_default() += 1;
                        session.survives(&e)
                    }
                };
                if usable {
                    sessions.push(session);
                }
            }
            if sessions.len() < 2 {
                break;
            }
        }
        close_all(sessions).await;
        let baseline_text = baseline.as_ref().map(Value::to_string);
        let mut listed: Vec<(&String, &u64)> = answers.iter().collect();
        listed.sort_by(|a, b| b.1.cmp(a.1));
        let shown: Vec<Value> = listed
            .iter()
            .map(|(a, n)| {
                json!({"answer": excerpt(a, 300), "count": n,
                    "baseline": baseline_text.as_deref() == Some(a.as_str())})
            })
            .collect();
        let total: u64 = answers.values().sum();
        let failed: u64 = failures.values().sum();
        let details = json!({"answers": shown, "failures": failures, "baseline": baseline_text.as_deref().map(|b| excerpt(b, 300))});
        let words = listed
            .iter()
            .map(|(a, n)| format!("{n}x {}", excerpt(a, 120)))
            .collect::<Vec<_>>()
            .join(" | ");
        let off_baseline: u64 = match &baseline_text {
            Some(b) => answers
                .iter()
                .filter(|(a, _)| *a != b)
                .map(|(_, n)| *n)
                .sum(),
            None => 0,
        };
        let mut response = format!("{total} answers, {} distinct: {words}", answers.len());
        if failed > 0 {
            response.push_str(&format!("; {failed} calls failed: {failures:?}"));
        }
        if total == 0 {
            return finding(
                Outcome::Skip,
                format!(
                    "race check of `{}` skipped: no call was answered",
                    self.tool
                ),
                response,
                details,
                "check the tool's name and arguments; the first-call probe finds hangs",
            );
        }
        if answers.len() > 1 || off_baseline > 0 {
            return finding(
                Outcome::Fail,
                format!(
                    "race: the same call of `{}` got {} different answers from {} concurrent sessions ({off_baseline} differ from the answer it gives alone)",
                    self.tool,
                    answers.len().max(2),
                    self.sessions
                ),
                response,
                details,
                "The tool's answer depends on what else runs at the same time: request state kept in shared memory (a module-level variable, a cache, a connection) is read and written back with an await in between. Keep per-request state local, or guard the shared state with a lock held across the whole update.",
            );
        }
        finding(
            Outcome::Pass,
            format!(
                "the same call of `{}` got one answer from {} concurrent sessions over {} rounds",
                self.tool, self.sessions, self.rounds
            ),
            response,
            details,
            "No action needed.",
        )
    }
}
