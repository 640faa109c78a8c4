//! The recorder: the one place a run's figures live. HDR histograms per operation and per
//! tool (fixed size, so a day-long run costs the same memory as a minute), a bounded
//! per-second series, and the error taxonomy with the first few samples of each kind.
//!
//! Latency is recorded by the workload as it happened (open model: from the intended start,
//! so a stalled server cannot hide behind a slowed client). The live view and the report read
//! from here and never compute figures of their own.

pub mod process;

use crate::error::{CallError, ErrorKind};
use crate::report::{ErrorReport, ErrorSample, OpFigures, Percentiles, SecondPoint};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SAMPLES_PER_KIND: usize = 5;
/// A day of seconds: past that the series keeps every other point (bounded memory).
const MAX_SERIES_POINTS: usize = 86_400;
/// Microseconds, 1 us to 1 hour, 3 significant digits: ~180 KB per histogram.
const HIST_MAX_US: u64 = 3_600_000_000;
const MAX_FAILURE_TIMES: usize = 200_000;

fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts; this cannot fail.
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid histogram bounds")
}

/// What a recorded call was: the MCP method and, for `tools/call`, the tool.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpKey {
    pub method: &'static str,
    pub tool: Option<String>,
}

impl OpKey {
    pub fn label(&self) -> String {
        match &self.tool {
            Some(t) => format!("{} {t}", self.method),
            None => self.method.to_string(),
        }
    }
}

struct OpStats {
    hist: Histogram<u64>,
    calls: u64,
    ok: u64,
    failed: u64,
}

impl OpStats {
    fn new() -> Self {
        Self {
            hist: histogram(),
            calls: 0,
            ok: 0,
            failed: 0,
        }
    }
}

struct ErrorStats {
    count: u64,
    samples: Vec<ErrorSample>,
}

struct Inner {
    /// When calls failed (seconds since start), thinned to one per 10 ms, for timing
    /// detection of faults at better than one-second resolution.
    failure_times: Vec<f64>,
    overall: OpStats,
    ops: BTreeMap<OpKey, OpStats>,
    errors: BTreeMap<ErrorKind, ErrorStats>,
    second: OpStats,
    interval: OpStats,
    series: Vec<SecondPoint>,
}

/// Figures since the last progress line.
pub struct Interval {
    pub calls: u64,
    pub ok: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub struct Recorder {
    inner: Mutex<Inner>,
    started: Instant,
    active_sessions: AtomicU64,
    dropped_iterations: AtomicU64,
    sessions_lost: AtomicU64,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new(Instant::now())
    }
}

impl Recorder {
    pub fn new(started: Instant) -> Self {
        Recorder {
            inner: Mutex::new(Inner {
                failure_times: Vec::new(),
                overall: OpStats::new(),
                ops: BTreeMap::new(),
                errors: BTreeMap::new(),
                second: OpStats::new(),
                interval: OpStats::new(),
                series: Vec::new(),
            }),
            started,
            active_sessions: AtomicU64::new(0),
            dropped_iterations: AtomicU64::new(0),
            sessions_lost: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the figures half-written in a way that
        // matters more than losing them all, so keep going with what is there.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Record one finished call. Latency counts toward the percentiles only when it succeeded.
    pub fn record(&self, op: &OpKey, latency: Duration, outcome: Result<(), &CallError>) {
        let us = (latency.as_micros() as u64).clamp(1, HIST_MAX_US);
        if let Err(CallError::SessionLost { .. }) = outcome {
            self.sessions_lost.fetch_add(1, Ordering::Relaxed);
        }
        let at_s = self.started.elapsed().as_secs_f64();
        let mut g = self.lock();
        let inner = &mut *g;
        let stats = inner.ops.entry(op.clone()).or_insert_with(OpStats::new);
        for s in [
            stats,
            &mut inner.overall,
            &mut inner.second,
            &mut inner.interval,
        ] {
            s.calls += 1;
            match outcome {
                Ok(()) => {
                    s.ok += 1;
                    let _ = s.hist.record(us);
                }
                Err(_) => s.failed += 1,
            }
        }
        if let Err(e) = outcome {
            if inner.failure_times.len() < MAX_FAILURE_TIMES
                && inner
                    .failure_times
                    .last()
                    .is_none_or(|last| at_s - last >= 0.01)
            {
                inner.failure_times.push(at_s);
            }
            let kind = e.kind();
            let entry = inner.errors.entry(kind).or_insert(ErrorStats {
                count: 0,
                samples: Vec::new(),
            });
            entry.count += 1;
            if entry.samples.len() < SAMPLES_PER_KIND {
                entry.samples.push(ErrorSample {
                    at_s,
                    operation: op.label(),
                    message: describe(e),
                });
            }
        }
    }

    pub fn session_opened(&self) {
        self.active_sessions.fetch_add(1, Ordering::Relaxed);
    }
    pub fn session_closed(&self) {
        self.active_sessions.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn active_sessions(&self) -> u64 {
        self.active_sessions.load(Ordering::Relaxed)
    }
    pub fn dropped_iteration(&self) {
        self.dropped_iterations.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dropped_iterations(&self) -> u64 {
        self.dropped_iterations.load(Ordering::Relaxed)
    }
    pub fn sessions_lost(&self) -> u64 {
        self.sessions_lost.load(Ordering::Relaxed)
    }

    /// Close the current second into the series (called once a second by the run).
    pub fn tick(&self, target: Option<process::Sample>) {
        let t = self.started.elapsed().as_secs();
        let active = self.active_sessions();
        let mut g = self.lock();
        let s = std::mem::replace(&mut g.second, OpStats::new());
        let point = SecondPoint {
            t,
            calls: s.calls,
            ok: s.ok,
            failed: s.failed,
            p50_ms: ms(s.hist.value_at_quantile(0.5)),
            p95_ms: ms(s.hist.value_at_quantile(0.95)),
            p99_ms: ms(s.hist.value_at_quantile(0.99)),
            active_sessions: active,
            target_rss_mb: target.map(|x| x.rss_bytes as f64 / 1_048_576.0),
            target_cpu_pct: target.and_then(|x| x.cpu_pct),
            target_threads: target.map(|x| x.threads),
            target_open_files: target.map(|x| x.open_files),
            target_connections: target.map(|x| x.connections),
        };
        if g.series.len() >= MAX_SERIES_POINTS {
            // Halve the resolution of what we have rather than grow without bound.
            let halved: Vec<SecondPoint> = g.series.iter().step_by(2).cloned().collect();
            g.series = halved;
        }
        g.series.push(point);
    }

    /// The figures since the previous call, for the plain progress line.
    pub fn take_interval(&self) -> Interval {
        let mut g = self.lock();
        let s = std::mem::replace(&mut g.interval, OpStats::new());
        Interval {
            calls: s.calls,
            ok: s.ok,
            p50_ms: ms(s.hist.value_at_quantile(0.5)),
            p99_ms: ms(s.hist.value_at_quantile(0.99)),
        }
    }

    pub fn totals(&self) -> (u64, u64, u64) {
        let g = self.lock();
        (g.overall.calls, g.overall.ok, g.overall.failed)
    }

    pub fn overall(&self) -> Percentiles {
        percentiles(&self.lock().overall.hist)
    }

    /// Figures by MCP method and by tool; histograms of the same method or tool are merged.
    pub fn by_operation_and_tool(
        &self,
    ) -> (BTreeMap<String, OpFigures>, BTreeMap<String, OpFigures>) {
        let g = self.lock();
        let mut methods: BTreeMap<String, OpStats> = BTreeMap::new();
        let mut tools: BTreeMap<String, OpStats> = BTreeMap::new();
        for (key, s) in &g.ops {
            let mut targets = vec![
                methods
                    .entry(key.method.to_string())
                    .or_insert_with(OpStats::new),
            ];
            if let Some(t) = &key.tool {
                targets.push(tools.entry(t.clone()).or_insert_with(OpStats::new));
            }
            for m in targets {
                m.calls += s.calls;
                m.ok += s.ok;
                m.failed += s.failed;
                let _ = m.hist.add(&s.hist);
            }
        }
        let figures = |map: BTreeMap<String, OpStats>| {
            map.into_iter()
                .map(|(k, s)| {
                    (
                        k,
                        OpFigures {
                            calls: s.calls,
                            ok: s.ok,
                            failed: s.failed,
                            latency: percentiles(&s.hist),
                        },
                    )
                })
                .collect()
        };
        (figures(methods), figures(tools))
    }

    pub fn errors(&self) -> Vec<ErrorReport> {
        let g = self.lock();
        let mut out: Vec<ErrorReport> = g
            .errors
            .iter()
            .map(|(k, e)| ErrorReport {
                kind: k.key(),
                family: k.family().to_string(),
                count: e.count,
                samples: e.samples.clone(),
            })
            .collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.count));
        out
    }

    /// The first failed call at or after `t` seconds into the run.
    pub fn first_failure_after(&self, t: f64) -> Option<f64> {
        let g = self.lock();
        let i = g.failure_times.partition_point(|x| *x < t);
        g.failure_times.get(i).copied()
    }

    pub fn series(&self) -> Vec<SecondPoint> {
        self.lock().series.clone()
    }

    /// The last `n` closed seconds.
    pub fn series_tail(&self, n: usize) -> Vec<SecondPoint> {
        let g = self.lock();
        g.series[g.series.len().saturating_sub(n)..].to_vec()
    }

    /// The last closed second that has the target's figures (the final partial second of a
    /// run closes without a sample).
    pub fn last_target_point(&self) -> Option<SecondPoint> {
        let g = self.lock();
        g.series
            .iter()
            .rev()
            .find(|p| p.target_rss_mb.is_some())
            .cloned()
    }

    /// The last closed second.
    pub fn last_point(&self) -> Option<SecondPoint> {
        self.lock().series.last().cloned()
    }

    /// Counts and latency buckets per (method, tool), for an exporter: `buckets[i]` counts
    /// successful calls with latency in (bounds[i-1], bounds[i]] seconds, and one more entry
    /// counts those above the last bound.
    pub fn op_snapshot(&self, bounds_s: &[f64]) -> Vec<OpSnapshot> {
        let g = self.lock();
        g.ops
            .iter()
            .map(|(key, s)| {
                let mut buckets = vec![0u64; bounds_s.len() + 1];
                let mut sum_s = 0.0;
                for v in s.hist.iter_recorded() {
                    let secs = s.hist.highest_equivalent(v.value_iterated_to()) as f64 / 1e6;
                    let n = v.count_at_value();
                    sum_s += secs * n as f64;
                    let i = bounds_s.partition_point(|b| *b < secs);
                    buckets[i] += n;
                }
                OpSnapshot {
                    method: key.method,
                    tool: key.tool.clone(),
                    calls: s.calls,
                    ok: s.ok,
                    failed: s.failed,
                    sum_s,
                    buckets,
                }
            })
            .collect()
    }
}

/// One operation's figures at a moment, for the Prometheus exporter.
#[derive(Debug, Clone)]
pub struct OpSnapshot {
    pub method: &'static str,
    pub tool: Option<String>,
    pub calls: u64,
    pub ok: u64,
    pub failed: u64,
    /// Sum of successful calls' latencies (HDR resolution: 3 significant digits).
    pub sum_s: f64,
    pub buckets: Vec<u64>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

pub fn percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        count: h.len(),
        p50: ms(h.value_at_quantile(0.50)),
        p90: ms(h.value_at_quantile(0.90)),
        p95: ms(h.value_at_quantile(0.95)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
        mean: h.mean() / 1000.0,
    }
}

/// One line for an error sample, with the stderr tail when a process died.
fn describe(e: &CallError) -> String {
    match e {
        CallError::ProcessExited { stderr_tail, .. } if !stderr_tail.is_empty() => {
            let last: Vec<&str> = stderr_tail
                .iter()
                .rev()
                .take(3)
                .rev()
                .map(String::as_str)
                .collect();
            format!("{e}; last stderr: {}", last.join(" | "))
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_by_operation_tool_and_kind() {
        let r = Recorder::default();
        let echo = OpKey {
            method: "tools/call",
            tool: Some("echo".into()),
        };
        let ping = OpKey {
            method: "ping",
            tool: None,
        };
        for i in 1..=100u64 {
            r.record(&echo, Duration::from_millis(i), Ok(()));
        }
        r.record(
            &ping,
            Duration::from_millis(1),
            Err(&CallError::Timeout {
                after: Duration::from_secs(1),
            }),
        );
        assert_eq!(r.totals(), (101, 100, 1));
        let overall = r.overall();
        assert!((overall.p50 - 50.0).abs() < 0.1, "{overall:?}");
        assert!((overall.p99 - 99.0).abs() < 0.1, "{overall:?}");
        let (ops, tools) = r.by_operation_and_tool();
        assert_eq!(ops["tools/call"].calls, 100);
        assert_eq!(ops["ping"].failed, 1);
        assert_eq!(tools["echo"].latency.count, 100);
        let errors = r.errors();
        assert_eq!(errors[0].kind, "timeout");
        assert_eq!(errors[0].samples[0].operation, "ping");
        r.tick(None);
        assert_eq!(r.series()[0].calls, 101);
    }
}
