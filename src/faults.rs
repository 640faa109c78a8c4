//! The fault schedule: what the run does to the target and when (`at`, `every`, `jitter`,
//! `duration`), each occurrence recorded on the timeline with when it started and ended.
//!
//! Process faults act on the supervised server: SIGKILL, SIGTERM (graceful), SIGSTOP for a
//! duration then SIGCONT (a hang), and restart. The schedule never measures anything; the
//! recovery module times what each fault did.

use crate::report::FaultRecord;
use crate::target::launch::Supervisor;
use rand::Rng;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Kill,
    Term,
    Stop,
    Restart,
}

impl FaultKind {
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Term => "term",
            FaultKind::Stop => "stop",
            FaultKind::Restart => "restart",
        }
    }
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultSpec {
    pub kind: FaultKind,
    #[serde(serialize_with = "ser_duration")]
    pub at: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub every: Option<Duration>,
    #[serde(serialize_with = "ser_duration")]
    pub jitter: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub duration: Duration,
}

/// Every occurrence of every fault before `total`, in time order, with jitter drawn.
pub fn occurrences<R: Rng>(
    faults: &[FaultSpec],
    total: Duration,
    rng: &mut R,
) -> Vec<(Duration, FaultSpec)> {
    let mut out = Vec::new();
    for f in faults {
        let mut t = f.at;
        while t < total {
            let jitter = if f.jitter.is_zero() {
                Duration::ZERO
            } else {
                f.jitter.mul_f64(rng.random_range(0.0..1.0))
            };
            if t + jitter < total {
                out.push((t + jitter, f.clone()));
            }
            match f.every {
                Some(e) if !e.is_zero() => t += e,
                _ => break,
            }
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

/// Run the schedule against the supervised server until it is done or cancelled.
/// Faults run one after another: a stop holds the schedule for its duration.
pub async fn run(
    plan: Vec<(Duration, FaultSpec)>,
    supervisor: Arc<Supervisor>,
    timeline: Arc<Mutex<Vec<FaultRecord>>>,
    clock: Instant,
    cancel: CancellationToken,
) {
    for (id, (at, fault)) in plan.into_iter().enumerate() {
        tokio::select! {
            _ = tokio::time::sleep_until((clock + at).into()) => {}
            _ = cancel.cancelled() => return,
        }
        let started = clock.elapsed().as_secs_f64();
        let pid = supervisor.pid();
        let applied = match fault.kind {
            FaultKind::Kill => supervisor.signal(libc::SIGKILL),
            FaultKind::Term => supervisor.signal(libc::SIGTERM),
            FaultKind::Restart => supervisor.restart(),
            FaultKind::Stop => supervisor.signal(libc::SIGSTOP),
        };
        if fault.kind == FaultKind::Stop && applied {
            tokio::select! {
                _ = tokio::time::sleep(fault.duration) => {}
                _ = cancel.cancelled() => {}
            }
            // Always resume, even when cancelled: a stopped server ignores SIGTERM.
            supervisor.signal(libc::SIGCONT);
        }
        let record = FaultRecord {
            id: id as u32,
            kind: fault.kind.name().to_string(),
            at_s: started,
            ended_at_s: clock.elapsed().as_secs_f64(),
            detail: match (applied, pid) {
                (true, Some(pid)) => format!("{} sent to process group {pid}", fault.kind.name()),
                _ => "not applied: the server was not running".to_string(),
            },
            applied,
        };
        if let Ok(mut t) = timeline.lock() {
            t.push(record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occurrences_repeat_and_stay_inside_the_run() {
        let kill = FaultSpec {
            kind: FaultKind::Kill,
            at: Duration::from_secs(2),
            every: Some(Duration::from_secs(3)),
            jitter: Duration::ZERO,
            duration: Duration::ZERO,
        };
        let stop = FaultSpec {
            kind: FaultKind::Stop,
            at: Duration::from_secs(4),
            every: None,
            jitter: Duration::from_millis(500),
            duration: Duration::from_secs(1),
        };
        let got = occurrences(&[kill, stop], Duration::from_secs(10), &mut rand::rng());
        let times: Vec<f64> = got.iter().map(|(t, _)| t.as_secs_f64()).collect();
        assert_eq!(got.len(), 4, "{times:?}");
        assert_eq!(times[0], 2.0);
        assert!(times[1] >= 4.0 && times[1] < 4.5, "{times:?}");
        assert_eq!(&times[2..], &[5.0, 8.0]);
    }
}
