//! The live view while a run goes: the terminal dashboard ([`tui`]) when stdout is a
//! terminal, else a plain progress line every few seconds (to stderr, so stdout stays the
//! summary); and the Prometheus exporter ([`prom`]) when asked for. They all read the same
//! [`LiveState`] and compute no figure of their own.

pub mod prom;
pub mod tui;

use crate::alerts::Alerts;
use crate::metrics::Recorder;
use crate::probe::ProbeLog;
use crate::report::{FaultRecord, RecoveryRecord};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the live views read while a run goes.
pub struct LiveState {
    pub name: String,
    pub target: String,
    pub total: Duration,
    pub recorder: Arc<Recorder>,
    pub timeline: Arc<Mutex<Vec<FaultRecord>>>,
    pub probe_log: Arc<ProbeLog>,
    pub alerts: Arc<Alerts>,
    pub sessions_opened: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// Set once the report is written: the figures are final.
    pub finished: std::sync::atomic::AtomicBool,
}

impl LiveState {
    pub fn faults(&self) -> Vec<FaultRecord> {
        self.timeline.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Recoveries so far, computed by the function the report uses.
    pub fn recoveries(&self) -> Vec<RecoveryRecord> {
        let faults = self.faults();
        if faults.is_empty() {
            return Vec::new();
        }
        crate::recovery::compute(
            &faults,
            &self.probe_log.changes(),
            |t| self.recorder.first_failure_after(t),
            &self.recorder.series(),
        )
    }

    pub fn elapsed(&self) -> Duration {
        self.recorder.started().elapsed()
    }

    pub fn is_finished(&self) -> bool {
        self.finished.load(std::sync::atomic::Ordering::SeqCst)
    }
}

pub fn progress_line(recorder: &Recorder, interval: Duration, total: Duration) -> String {
    let i = recorder.take_interval();
    let elapsed = recorder.started().elapsed().as_secs();
    let rate = i.calls as f64 / interval.as_secs_f64().max(1e-9);
    let ok = if i.calls == 0 {
        "    -".to_string()
    } else {
        format!("{:>5.1}", i.ok as f64 * 100.0 / i.calls as f64)
    };
    format!(
        "[{:>4}s/{}s] {:>8.1} calls/s  ok {}%  p50 {:>8.2}ms  p99 {:>8.2}ms  sessions {}",
        elapsed,
        total.as_secs(),
        rate,
        ok,
        i.p50_ms,
        i.p99_ms,
        recorder.active_sessions()
    )
}

/// Print a progress line every `interval` until cancelled.
pub async fn progress(
    recorder: std::sync::Arc<Recorder>,
    interval: Duration,
    total: Duration,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return,
        }
        let line = progress_line(&recorder, interval, total);
        crate::errln!("{line}");
    }
}
