//! The probe: a cheap, repeated health question asked throughout a run (an MCP `ping` on a
//! session of its own, reopened when it breaks), whose answers time detection and recovery.
//! It keeps only the moments its answer changed, so a day of probing costs a few entries.

use crate::target::Connector;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The moments the probe's answer changed: (seconds since start, healthy?).
#[derive(Default)]
pub struct ProbeLog {
    changes: Mutex<Vec<(f64, bool)>>,
}

impl ProbeLog {
    pub fn push(&self, at_s: f64, ok: bool) {
        if let Ok(mut c) = self.changes.lock()
            && c.last().is_none_or(|(_, last)| *last != ok)
        {
            c.push((at_s, ok));
        }
    }

    pub fn changes(&self) -> Vec<(f64, bool)> {
        self.changes.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// How long the probe waits for an answer, and for a new session of its own.
#[derive(Debug, Clone, Copy)]
pub struct ProbeTimeouts {
    /// For the `ping` (`recovery.probe_timeout`).
    pub answer: Duration,
    /// For opening a session. The answer's timeout, except over stdio: there every probe
    /// session is a server process of its own, and its start-up (an interpreter loading its
    /// modules: 0.6 s idle, 3 s and more on a busy machine) says nothing about the health
    /// of the servers under load. Timing it with the ping's 1 s failed the probe over and
    /// over on a busy machine, each time killing a half-started interpreter and starting
    /// another, which made the machine busier still.
    pub open: Duration,
}

impl ProbeTimeouts {
    /// `probe_timeout` for everything, and for a stdio session's start at least
    /// `handshake` (the workload's timeout, what the VUs' sessions get).
    pub fn new(probe_timeout: Duration, handshake: Duration, stdio: bool) -> ProbeTimeouts {
        ProbeTimeouts {
            answer: probe_timeout,
            open: if stdio {
                probe_timeout.max(handshake)
            } else {
                probe_timeout
            },
        }
    }
}

pub async fn run(
    connector: Arc<Connector>,
    interval: Duration,
    timeouts: ProbeTimeouts,
    log: Arc<ProbeLog>,
    clock: Instant,
    cancel: CancellationToken,
) {
    let mut session = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => break,
        }
        let asked = clock.elapsed().as_secs_f64();
        let ok = tokio::select! {
            ok = ask(&connector, &mut session, timeouts) => ok,
            _ = cancel.cancelled() => break,
        };
        // A failure counts from when the question was asked; a success from when it came back.
        log.push(
            if ok {
                clock.elapsed().as_secs_f64()
            } else {
                asked
            },
            ok,
        );
    }
    if let Some(s) = session {
        let _ = tokio::time::timeout(
            Duration::from_millis(500),
            crate::session::Session::close(s),
        )
        .await;
    }
}

async fn ask(
    connector: &Connector,
    session: &mut Option<crate::session::Session>,
    timeouts: ProbeTimeouts,
) -> bool {
    let timeout = timeouts.answer;
    if session.is_none() {
        match tokio::time::timeout(timeouts.open, connector.open_monitor()).await {
            Ok(Ok(s)) => *session = Some(s),
            _ => return false,
        }
    }
    let Some(s) = session.as_mut() else {
        return false;
    };
    match s.call("ping", None, timeout).await {
        Ok(_) => true,
        Err(e) => {
            if !s.survives(&e) || matches!(e, crate::error::CallError::Timeout { .. }) {
                // Start afresh next time: a server that hung or restarted has forgotten us.
                if let Some(old) = session.take() {
                    drop(old);
                }
            }
            false
        }
    }
}
