//! The first-call probe: N fresh sessions, handshakes done, then every session's first
//! `tools/call` released at the same instant (a barrier) with a deadline. A server that
//! initialises lazily and deadlocks when two callers race that initialisation answers the
//! handshake, answers one caller at a time, and hangs here: any call still unanswered at
//! the deadline is a critical `deadlock` finding.

use super::{call_params, close_all, finding, open_sessions};
use crate::error::CallError;
use crate::security::{Finding, Outcome, Severity};
use crate::target::Connector;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize)]
pub struct FirstCall {
    pub sessions: usize,
    pub tool: String,
    pub arguments: Value,
    #[serde(serialize_with = "crate::workload::ser_duration")]
    pub deadline: Duration,
}

const PROBE: &str = "concurrency.first_call";

impl FirstCall {
    pub async fn run(&self, connector: &Connector) -> Finding {
        let params = call_params(&self.tool, &self.arguments);
        let request = format!(
            "{} sessions opened, then at one instant each sends its first tools/call {}",
            self.sessions, params
        );
        let (sessions, failed_opens, open_error) = open_sessions(connector, self.sessions).await;
        if sessions.len() < 2 {
            return finding(
                PROBE,
                Severity::Critical,
                Outcome::Skip,
                "first-call probe skipped: fewer than 2 sessions could be opened".into(),
                (
                    request,
                    format!(
                        "{failed_opens} handshakes failed: {}",
                        open_error.unwrap_or_default()
                    ),
                    Value::Null,
                ),
                "check that the server accepts several sessions at once",
            );
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(sessions.len()));
        let mut calls = tokio::task::JoinSet::new();
        for mut session in sessions {
            let (barrier, params, deadline) = (barrier.clone(), params.clone(), self.deadline);
            calls.spawn(async move {
                barrier.wait().await;
                let start = Instant::now();
                let outcome = session.call("tools/call", Some(&params), deadline).await;
                (outcome, start.elapsed(), session)
            });
        }
        let (mut hung, mut answered, mut refused) = (0usize, 0usize, 0usize);
        let mut slowest = Duration::ZERO;
        let mut first_refusal = None;
        let mut open = Vec::new();
        while let Some(joined) = calls.join_next().await {
            let Ok((outcome, took, session)) = joined else {
                continue;
            };
            open.push(session);
            match outcome {
                Err(CallError::Timeout { .. }) => hung += 1,
                Ok(_) => {
                    answered += 1;
                    slowest = slowest.max(took);
                }
                Err(e) => {
                    refused += 1;
                    slowest = slowest.max(took);
                    first_refusal.get_or_insert_with(|| e.to_string());
                }
            }
        }
        close_all(open).await;
        let total = hung + answered + refused;
        let mut response = format!(
            "{hung} of {total} unanswered after {:?}; {answered} answered, {refused} failed fast; slowest answer {:.1} ms",
            self.deadline,
            slowest.as_secs_f64() * 1000.0
        );
        if let Some(e) = &first_refusal {
            response.push_str(&format!("; first failure: {e}"));
        }
        if failed_opens > 0 {
            response.push_str(&format!("; {failed_opens} handshakes failed"));
        }
        let details = json!({"sessions": total, "hung": hung, "answered": answered,
            "failed": refused, "deadline_ms": self.deadline.as_millis() as u64,
            "slowest_ms": slowest.as_secs_f64() * 1000.0});
        let deadlock = hung > 0;
        finding(
            PROBE,
            Severity::Critical,
            if deadlock {
                Outcome::Fail
            } else {
                Outcome::Pass
            },
            if deadlock {
                format!(
                    "deadlock: {hung} of {total} concurrent first calls of `{}` hung past {:?}",
                    self.tool, self.deadline
                )
            } else {
                format!(
                    "{total} concurrent first calls of `{}` all answered within {:?}",
                    self.tool, self.deadline
                )
            },
            (request, response, details),
            if deadlock {
                "The server answers one caller at a time but hangs when its first calls arrive together: the usual cause is lazy initialisation under two locks taken in different orders, or an initialiser that waits for another caller. Initialise at startup, or guard lazy initialisation with one lock (a once-cell)."
            } else {
                "No action needed."
            },
        )
    }
}
