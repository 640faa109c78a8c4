//! A circuit breaker per tool: after N failures in a row a tool's circuit opens and calls to
//! it are refused at once (503 with `Retry-After`) for T; then it is half-open: one trial
//! call goes through, and its outcome closes the circuit or opens it for another T.
//!
//! The request pipeline asks [`Breakers::check`] before a `tools/call` reaches the handler; the
//! handler reports every outcome with [`Breakers::record`]. A failure is a tool result with
//! `isError` or a JSON-RPC error from the tool, not a caller's bad arguments: a stranger
//! must not be able to open a circuit for everyone by sending junk.
//!
//! A half-open trial that never reports (its client went away mid-call) does not wedge the
//! circuit: after another T a new trial is let through.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;

use super::classify::RpcCall;
use super::reject::{Rejection, ceil_seconds};

pub const DEFAULT_FAILURES: u32 = 5;
pub const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failures in a row that open a circuit.
    pub failures: u32,
    /// How long a circuit stays open before a trial call is let through.
    pub open_for: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Circuit {
    Closed { failures_in_a_row: u32 },
    Open { until: Instant },
    HalfOpen { trial_started: Instant },
}

/// What a circuit is, for `/metrics`: 0 closed, 1 open, 2 half-open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CircuitState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

pub(crate) struct Breakers {
    config: BreakerConfig,
    circuits: Mutex<HashMap<String, Circuit>>,
}

impl Breakers {
    pub(crate) fn new(config: BreakerConfig) -> Breakers {
        Breakers {
            config,
            circuits: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` lets the call through (as the trial, when half-open); `Err(wait)` refuses it.
    pub(crate) fn admit(&self, tool: &str, now: Instant) -> Result<(), Duration> {
        let mut circuits = self.circuits.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(circuit) = circuits.get_mut(tool) else {
            return Ok(());
        };
        match *circuit {
            Circuit::Closed { .. } => Ok(()),
            Circuit::Open { until } if now < until => Err(until - now),
            Circuit::Open { .. } => {
                *circuit = Circuit::HalfOpen { trial_started: now };
                Ok(())
            }
            Circuit::HalfOpen { trial_started } => {
                let stale_at = trial_started + self.config.open_for;
                if now >= stale_at {
                    *circuit = Circuit::HalfOpen { trial_started: now };
                    Ok(())
                } else {
                    Err(stale_at - now)
                }
            }
        }
    }

    /// Reports a finished call of `tool`.
    pub(crate) fn record(&self, tool: &str, failed: bool, now: Instant) {
        let mut circuits = self.circuits.lock().unwrap_or_else(PoisonError::into_inner);
        if !failed {
            // The common case allocates nothing: a healthy tool needs no entry.
            if let Some(c) = circuits.get_mut(tool) {
                *c = Circuit::Closed {
                    failures_in_a_row: 0,
                };
            }
            return;
        }
        let circuit = circuits.entry(tool.to_owned()).or_insert(Circuit::Closed {
            failures_in_a_row: 0,
        });
        *circuit = match *circuit {
            Circuit::Closed { failures_in_a_row }
                if failures_in_a_row + 1 < self.config.failures =>
            {
                Circuit::Closed {
                    failures_in_a_row: failures_in_a_row + 1,
                }
            }
            // The N-th failure in a row, a failed trial, or a failure of a call admitted
            // before the circuit opened: open (again) for the full time.
            _ => Circuit::Open {
                until: now + self.config.open_for,
            },
        };
    }

    /// Every tool with a circuit, and its state.
    pub(crate) fn states(&self, now: Instant) -> Vec<(String, CircuitState)> {
        let circuits = self.circuits.lock().unwrap_or_else(PoisonError::into_inner);
        circuits
            .iter()
            .map(|(tool, c)| {
                let s = match c {
                    Circuit::Closed { .. } => CircuitState::Closed,
                    Circuit::Open { until } if now < *until => CircuitState::Open,
                    Circuit::Open { .. } | Circuit::HalfOpen { .. } => CircuitState::HalfOpen,
                };
                (tool.clone(), s)
            })
            .collect()
    }

    fn refusal(&self, tool: &str, wait: Duration, call: &RpcCall) -> Rejection {
        let retry = ceil_seconds(wait);
        Rejection::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "circuit_open",
            "circuit_open",
            format!(
                "circuit open for tool `{tool}`: it failed {} times in a row, so calls to it are \
                 refused for {} s; retry after {retry} s, when one trial call is let through",
                self.config.failures,
                self.config.open_for.as_secs_f64(),
            ),
        )
        .retry_after(retry)
        .data(json!({ "tool": tool, "failures": self.config.failures, "open_for_s": self.config.open_for.as_secs_f64() }))
        .id(call.id.as_ref())
    }
}

impl Breakers {
    /// `Err` when `call` is a `tools/call` of a tool whose circuit is open.
    pub(crate) fn check(&self, call: &RpcCall) -> Result<(), Box<Rejection>> {
        let Some(tool) = call.tool.as_deref() else {
            return Ok(());
        };
        match self.admit(tool, Instant::now()) {
            Ok(()) => Ok(()),
            Err(wait) => Err(Box::new(self.refusal(tool, wait, call))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: BreakerConfig = BreakerConfig {
        failures: 3,
        open_for: Duration::from_secs(10),
    };

    #[test]
    fn opens_after_n_failures_in_a_row_and_half_opens_after_t() {
        let b = Breakers::new(CONFIG);
        let t0 = Instant::now();
        for _ in 0..2 {
            b.admit("fail", t0).unwrap();
            b.record("fail", true, t0);
        }
        b.admit("fail", t0).unwrap();
        b.record("fail", true, t0);
        let wait = b.admit("fail", t0 + Duration::from_secs(4)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(6));
        assert!(b.admit("echo", t0).is_ok(), "other tools are not affected");
        // Half-open after T: exactly one trial goes through.
        let t1 = t0 + Duration::from_secs(10);
        b.admit("fail", t1).unwrap();
        assert!(
            b.admit("fail", t1).is_err(),
            "a second call during the trial"
        );
        // The trial succeeds: closed again.
        b.record("fail", false, t1);
        b.admit("fail", t1).unwrap();
        b.admit("fail", t1).unwrap();
    }

    #[test]
    fn a_failed_trial_opens_again_and_a_success_resets_the_count() {
        let b = Breakers::new(CONFIG);
        let t0 = Instant::now();
        b.record("kv_put", true, t0);
        b.record("kv_put", true, t0);
        b.record("kv_put", false, t0);
        b.record("kv_put", true, t0);
        b.record("kv_put", true, t0);
        assert!(b.admit("kv_put", t0).is_ok(), "the success reset the count");
        b.record("kv_put", true, t0);
        assert!(b.admit("kv_put", t0).is_err());
        let t1 = t0 + CONFIG.open_for;
        b.admit("kv_put", t1).unwrap();
        b.record("kv_put", true, t1);
        assert_eq!(
            b.admit("kv_put", t1 + Duration::from_secs(1)).unwrap_err(),
            Duration::from_secs(9)
        );
    }

    #[test]
    fn a_trial_that_never_reports_does_not_wedge_the_circuit() {
        let b = Breakers::new(CONFIG);
        let t0 = Instant::now();
        for _ in 0..3 {
            b.record("sleep", true, t0);
        }
        let t1 = t0 + CONFIG.open_for;
        b.admit("sleep", t1).unwrap();
        assert!(b.admit("sleep", t1 + Duration::from_secs(5)).is_err());
        b.admit("sleep", t1 + CONFIG.open_for).unwrap();
        assert_eq!(
            b.states(t1)[0],
            ("sleep".to_string(), CircuitState::HalfOpen)
        );
    }

    #[test]
    fn the_refusal_says_which_tool_and_when_to_retry() {
        let b = Breakers::new(CONFIG);
        let call = RpcCall {
            method: Some("tools/call".into()),
            tool: Some("fail".into()),
            id: Some(json!(9)),
            body_bytes: 10,
        };
        let r = b.refusal("fail", Duration::from_millis(2500), &call);
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.retry_after_s, Some(3));
        assert_eq!(r.body()["id"], 9);
        assert!(r.message.contains("`fail`"), "{}", r.message);
    }
}
