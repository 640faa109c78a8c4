//! The fault schedule: what the run does to the target and when (`at`, `every`, `jitter`,
//! `duration`), each occurrence recorded on the timeline with when it started and ended.
//!
//! Process faults act on the supervised server: SIGKILL, SIGTERM (graceful), SIGSTOP for a
//! duration then SIGCONT (a hang), and restart. Pressure faults start a `mcpstorm hog`
//! process (memory, CPU) for a duration; an operator command runs any shell command (and an
//! optional undo command after the duration). The schedule never measures anything; the
//! recovery module times what each fault did.

use crate::report::FaultRecord;
use crate::target::launch::Supervisor;
use rand::Rng;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// A toxic in the named fault proxy (`target` or a dependency's) for the duration.
    Network {
        proxy: String,
        toxic: crate::proxy::toxics::Toxic,
    },
    Kill,
    Term,
    Stop,
    Restart,
    /// A hog process holding this much resident memory for the duration.
    Memory {
        megabytes: u64,
    },
    /// A hog process spinning this many threads for the duration.
    Cpu {
        threads: u32,
    },
    /// `sh -c RUN` at the fault, `sh -c UNDO` after the duration.
    Command {
        run: String,
        undo: Option<String>,
        /// A command whose exit 0 means this fault is over: polled after `run` (and `undo`).
        probe: Option<String>,
    },
}

impl FaultKind {
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Term => "term",
            FaultKind::Stop => "stop",
            FaultKind::Restart => "restart",
            FaultKind::Memory { .. } => "memory",
            FaultKind::Cpu { .. } => "cpu",
            FaultKind::Command { .. } => "command",
            FaultKind::Network { .. } => "network",
        }
    }

    /// Faults that act on the server process, and so need mcpstorm to supervise it.
    pub fn needs_supervisor(&self) -> bool {
        matches!(
            self,
            FaultKind::Kill | FaultKind::Term | FaultKind::Stop | FaultKind::Restart
        )
    }

    /// Faults that last: they hold for `duration` and are undone after it.
    pub fn lasts(&self) -> bool {
        matches!(
            self,
            FaultKind::Stop
                | FaultKind::Memory { .. }
                | FaultKind::Cpu { .. }
                | FaultKind::Command { undo: Some(_), .. }
                | FaultKind::Network { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultSpec {
    #[serde(flatten)]
    pub kind: FaultKind,
    #[serde(serialize_with = "crate::workload::ser_duration")]
    pub at: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub every: Option<Duration>,
    #[serde(serialize_with = "crate::workload::ser_duration")]
    pub jitter: Duration,
    #[serde(serialize_with = "crate::workload::ser_duration")]
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

/// What the schedule acts with.
pub struct Tools {
    pub supervisor: Option<Arc<Supervisor>>,
    /// This binary, for `mcpstorm hog`.
    pub exe: PathBuf,
    /// The run's fault proxies by name: `target`, and one per dependency.
    pub proxies: std::collections::HashMap<String, Arc<crate::proxy::Proxy>>,
}

/// Run the schedule until it is done or cancelled. Faults run one after another: a lasting
/// fault holds the schedule for its duration, and is always undone, even when cancelled.
pub async fn run(
    plan: Vec<(Duration, FaultSpec)>,
    tools: Tools,
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
        // On the timeline from the moment it starts, so the live views see a lasting fault
        // while it is in effect; completed with its outcome when it is over.
        let mut record = FaultRecord {
            id: id as u32,
            kind: fault.kind.name().to_string(),
            at_s: started,
            ended_at_s: f64::INFINITY,
            detail: "in effect".into(),
            applied: true,
        };
        let slot = timeline.lock().ok().map(|mut t| {
            t.push(record.clone());
            t.len() - 1
        });
        let (applied, detail) = apply(&fault, &tools, &cancel).await;
        record.ended_at_s = clock.elapsed().as_secs_f64();
        record.detail = detail;
        record.applied = applied;
        if let (Some(i), Ok(mut t)) = (slot, timeline.lock())
            && let Some(entry) = t.get_mut(i)
        {
            *entry = record;
        }
    }
}

async fn hold(duration: Duration, cancel: &CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = cancel.cancelled() => {}
    }
}

fn signal(tools: &Tools, sig: i32, name: &str) -> (bool, String) {
    let Some(sup) = &tools.supervisor else {
        return (false, "not applied: no supervised server".into());
    };
    let pid = sup.pid();
    let sent = if sig == 0 {
        sup.restart()
    } else {
        sup.signal(sig)
    };
    match (sent, pid) {
        (true, Some(pid)) => (true, format!("{name} sent to process group {pid}")),
        _ => (false, "not applied: the server was not running".into()),
    }
}

async fn shell(cmd: &str, timeout: Duration) -> String {
    let child = tokio::process::Command::new("sh")
        .args(["-c", cmd])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => return format!("`{cmd}` could not start: {e}"),
    };
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let err = String::from_utf8_lossy(&out.stderr);
            format!(
                "`{cmd}` exited with {}{}",
                out.status,
                if err.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", crate::error::excerpt(&err, 200))
                }
            )
        }
        Ok(Err(e)) => format!("`{cmd}` failed: {e}"),
        Err(_) => format!("`{cmd}` still running after {timeout:?}; ended"),
    }
}

async fn apply(fault: &FaultSpec, tools: &Tools, cancel: &CancellationToken) -> (bool, String) {
    match &fault.kind {
        FaultKind::Kill => signal(tools, libc::SIGKILL, "SIGKILL"),
        FaultKind::Term => signal(tools, libc::SIGTERM, "SIGTERM"),
        FaultKind::Restart => signal(tools, 0, "restart (SIGTERM, then start)"),
        FaultKind::Stop => {
            let (applied, detail) = signal(tools, libc::SIGSTOP, "SIGSTOP");
            if applied {
                hold(fault.duration, cancel).await;
                // Always resume: a stopped server ignores SIGTERM at the end of the run.
                signal(tools, libc::SIGCONT, "SIGCONT");
            }
            (
                applied,
                format!("{detail}; SIGCONT after {:?}", fault.duration),
            )
        }
        FaultKind::Network { proxy, toxic } => {
            let Some(p) = tools.proxies.get(proxy) else {
                return (false, format!("not applied: no proxy named `{proxy}`"));
            };
            let mut toxic = toxic.clone();
            toxic.name = format!("fault-{}", toxic.name);
            let name = toxic.name.clone();
            let what = format!("{:?} on proxy `{proxy}` ({:?})", toxic.kind, toxic.stream);
            p.add_toxic(toxic);
            hold(fault.duration, cancel).await;
            p.remove_toxic(&name);
            (true, format!("{what} for {:?}", fault.duration))
        }
        FaultKind::Memory { megabytes } => hog(tools, *megabytes, 0, fault.duration, cancel).await,
        FaultKind::Cpu { threads } => hog(tools, 0, *threads, fault.duration, cancel).await,
        FaultKind::Command { run, undo, probe } => {
            let started = Instant::now();
            let mut detail = shell(run, Duration::from_secs(60)).await;
            if let Some(undo) = undo {
                hold(fault.duration, cancel).await;
                detail = format!(
                    "{detail}; then {}",
                    shell(undo, Duration::from_secs(60)).await
                );
            }
            if let Some(probe) = probe {
                detail = format!("{detail}; {}", own_probe(probe, started, cancel).await);
            }
            (true, detail)
        }
    }
}

/// Poll the fault's own probe command until it exits 0 (at most a minute, or the run's end).
async fn own_probe(cmd: &str, started: Instant, cancel: &CancellationToken) -> String {
    let deadline = started + Duration::from_secs(60);
    while Instant::now() < deadline && !cancel.is_cancelled() {
        let ok = tokio::process::Command::new("sh")
            .args(["-c", cmd])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .status();
        if let Ok(Ok(status)) = tokio::time::timeout(Duration::from_secs(5), ok).await
            && status.success()
        {
            return format!(
                "probe `{cmd}` succeeded {:.0} ms after the fault",
                started.elapsed().as_secs_f64() * 1000.0
            );
        }
        hold(Duration::from_millis(200), cancel).await;
    }
    format!("probe `{cmd}` never succeeded")
}

async fn hog(
    tools: &Tools,
    megabytes: u64,
    threads: u32,
    duration: Duration,
    cancel: &CancellationToken,
) -> (bool, String) {
    let spawned = tokio::process::Command::new(&tools.exe)
        .args([
            "hog",
            "--memory-mb",
            &megabytes.to_string(),
            "--cpu-threads",
            &threads.to_string(),
        ])
        .arg("--duration")
        .arg(humantime::format_duration(duration).to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return (false, format!("the hog process could not start: {e}")),
    };
    let pid = child.id().unwrap_or(0);
    tokio::select! {
        _ = child.wait() => {}
        _ = cancel.cancelled() => { let _ = child.kill().await; }
    }
    let what = if megabytes > 0 {
        format!("{megabytes} MB held")
    } else {
        format!("{threads} CPU threads spinning")
    };
    (
        true,
        format!("{what} for {duration:?} by hog process {pid}"),
    )
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
