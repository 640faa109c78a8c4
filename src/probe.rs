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

pub async fn run(
    connector: Arc<Connector>,
    interval: Duration,
    timeout: Duration,
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
            ok = ask(&connector, &mut session, timeout) => ok,
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
    timeout: Duration,
) -> bool {
    if session.is_none() {
        match tokio::time::timeout(timeout, connector.open_monitor()).await {
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
