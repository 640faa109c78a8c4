//! The background tasks a run owns, each started by [`super::run`] and ended by its cancel
//! token: the once-a-second ticker (closes a second of the series, samples the target, feeds
//! the alert rules), the ledger's read-backs after each recovery, and Ctrl-C handling.

use crate::alerts::Alerts;
use crate::check::ledger::Ledger;
use crate::metrics::Recorder;
use crate::metrics::process::ProcSampler;
use crate::probe::ProbeLog;
use crate::report::FaultRecord;
use crate::target::Connector;
use crate::target::launch::Supervisor;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The longest a ledger checkpoint may read for.
const CHECKPOINT_LIMIT: Duration = Duration::from_secs(15);

pub(super) struct Checkpointing {
    pub(super) ledger: Arc<Ledger>,
    pub(super) spec: crate::check::ledger::LedgerSpec,
    pub(super) connector: Arc<Connector>,
    pub(super) timeout: Duration,
    pub(super) timeline: Arc<std::sync::Mutex<Vec<FaultRecord>>>,
    pub(super) probe_log: Arc<ProbeLog>,
    pub(super) recorder: Arc<Recorder>,
    pub(super) started: Instant,
    pub(super) out: Arc<std::sync::Mutex<Vec<crate::check::ledger::Checkpoint>>>,
}

/// After each recovery, read back every write acknowledged so far: a write lost in the
/// crash is found at the moment the service is back, not only at the end.
pub(super) async fn ledger_checkpoints(c: Checkpointing, cancel: CancellationToken) {
    let mut done = std::collections::HashSet::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = cancel.cancelled() => return,
        }
        let faults = c.timeline.lock().map(|t| t.clone()).unwrap_or_default();
        let recovered = crate::recovery::compute(
            &faults,
            &c.probe_log.changes(),
            |t| c.recorder.first_failure_after(t),
            &c.recorder.series(),
        );
        for r in recovered
            .into_iter()
            .filter(|r| r.recovered_after_ms.is_some())
        {
            if !done.insert(r.fault_id) {
                continue;
            }
            let at_s = c.started.elapsed().as_secs_f64();
            // Not cancelled with the run: a read-back that started finishes (bounded), or
            // the end of the run would throw away exactly the checkpoint near the end.
            let read =
                c.ledger
                    .checkpoint(&c.spec, &c.connector, c.timeout, (r.fault_id, r.at_s), at_s);
            let Ok(checkpoint) = tokio::time::timeout(CHECKPOINT_LIMIT, read).await else {
                continue;
            };
            if let Ok(mut out) = c.out.lock() {
                out.push(checkpoint);
            }
        }
    }
}

/// What the once-a-second ticker needs.
pub(super) struct Ticking {
    pub(super) recorder: Arc<Recorder>,
    pub(super) supervisor: Option<Arc<Supervisor>>,
    pub(super) alerts: Arc<Alerts>,
    pub(super) probe_log: Arc<ProbeLog>,
    pub(super) rss_limit_mb: Option<f64>,
    /// Print raised alerts to stderr (plain progress mode).
    pub(super) print_alerts: bool,
    pub(super) started: Instant,
}

/// Close a point of the per-second series every second, with the target's RSS and CPU
/// when we know its pid, and feed it to the alert rules.
pub(super) async fn ticker(t: Ticking, cancel: CancellationToken) {
    let mut sampler: Option<ProcSampler> = None;
    let mut probe_seen = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return,
        }
        // The server's pid changes when it is restarted: follow it.
        let pid = t.supervisor.as_ref().and_then(|s| s.pid());
        if sampler.as_ref().map(ProcSampler::pid) != pid {
            sampler = pid.map(ProcSampler::new);
        }
        let sample = sampler.as_mut().and_then(ProcSampler::sample);
        t.recorder.tick(sample);
        let point = t.recorder.last_point();
        let changes = t.probe_log.changes();
        let probe = crate::alerts::ProbeWindow::of(&changes, probe_seen);
        probe_seen = changes.len();
        let observation = crate::alerts::Observation {
            point: point.as_ref(),
            probe,
            rss_limit_mb: t
                .rss_limit_mb
                .or_else(|| pid.and_then(crate::alerts::cgroup_limit_mb)),
        };
        let raised = t
            .alerts
            .observe(t.started.elapsed().as_secs_f64(), observation);
        if t.print_alerts {
            for a in raised {
                crate::errln!("ALERT [{}] {}: {}", a.severity, a.rule, a.message);
            }
        }
    }
}

/// Ctrl-C once: stop starting iterations and finish cleanly (the report is still written).
/// Twice: abort what is in flight.
pub(super) async fn interrupts(
    stop: CancellationToken,
    abort: CancellationToken,
    cancel: CancellationToken,
    say: bool,
) {
    for token in [stop, abort] {
        tokio::select! {
            r = tokio::signal::ctrl_c() => {
                if r.is_err() {
                    return;
                }
                if say {
                    crate::errln!("mcpstorm: interrupted; finishing in-flight calls (Ctrl-C again to abort)");
                }
                token.cancel();
            }
            _ = cancel.cancelled() => return,
        }
    }
}
