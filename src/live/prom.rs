//! The Prometheus exporter (`run --metrics-addr`): `/metrics` in the OpenMetrics text format,
//! read at scrape time from the same recorder, fault timeline and alert engine the report is
//! built from, so a scrape after the run agrees with `report.json` figure for figure.
//!
//! Names follow Prometheus conventions (`_total` counters, `_seconds` and `_bytes` units):
//! - `mcpstorm_calls_total{method,tool,outcome}`, `mcpstorm_errors_total{kind,family}`,
//!   `mcpstorm_call_duration_seconds{method,tool}` (histogram of successful calls),
//! - `mcpstorm_active_sessions`, `mcpstorm_sessions_opened_total`, `mcpstorm_sessions_lost_total`,
//!   `mcpstorm_dropped_iterations_total`,
//! - `mcpstorm_faults_total{kind}`, `mcpstorm_faults_active`, `mcpstorm_fault_detection_seconds`
//!   and `mcpstorm_fault_recovery_seconds{fault_id,fault}`, `mcpstorm_faults_unrecovered`,
//! - `mcpstorm_target_resident_memory_bytes`, `mcpstorm_target_cpu_percent`,
//!   `mcpstorm_target_threads`, `mcpstorm_target_open_fds`, `mcpstorm_target_connections`,
//! - `mcpstorm_alert_firing{rule,severity}`, `mcpstorm_run_elapsed_seconds`,
//!   `mcpstorm_run_finished` (1 once the report is written: the figures are final).

use super::LiveState;
use crate::error::Error;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Latency bucket bounds, seconds: 0.5 ms to a minute.
const BOUNDS_S: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

pub struct Exporter {
    pub addr: SocketAddr,
    state: Arc<LiveState>,
    scraped_final: Arc<Notify>,
    cancel: tokio_util::sync::CancellationToken,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Exporter {
    /// A run that ends on an error stops serving too.
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Take the port first, before anything is started, so a taken port ends the run at once.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Error::Usage(format!(
            "--metrics-addr {addr}: cannot listen there ({e}); give a free port such as 127.0.0.1:9464"
        ))
    })
}

/// Serve `/metrics` on `listener` until the exporter is dropped or `finish`ed.
pub fn start(listener: tokio::net::TcpListener, state: Arc<LiveState>) -> Exporter {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let scraped_final = Arc::new(Notify::new());
    let cancel = tokio_util::sync::CancellationToken::new();
    let app = {
        let state = state.clone();
        let scraped_final = scraped_final.clone();
        axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let state = state.clone();
                let scraped_final = scraped_final.clone();
                async move {
                    let finished = state.is_finished();
                    let body = render(state);
                    if finished {
                        scraped_final.notify_one();
                    }
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    )
                }
            }),
        )
    };
    let stop = cancel.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    Exporter {
        addr,
        state,
        scraped_final,
        cancel,
        server: Some(server),
    }
}

impl Exporter {
    /// The report is written: mark the figures final and keep serving until one scrape has
    /// read them or `linger` has passed, then stop.
    pub async fn finish(mut self, linger: Duration) {
        self.state
            .finished
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if !linger.is_zero() {
            eprintln!(
                "mcpstorm: final figures on http://{}/metrics for up to {:?} (until scraped once)",
                self.addr, linger
            );
            let _ = tokio::time::timeout(linger, self.scraped_final.notified()).await;
        }
        self.cancel.cancel();
        if let Some(server) = self.server.take() {
            // Graceful: a scrape being answered is finished; a stuck client is not waited for.
            let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        }
    }
}

/// The whole exposition, as text.
pub fn render(state: Arc<LiveState>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Figures(state)));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

struct Figures(Arc<LiveState>);

impl std::fmt::Debug for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Figures")
    }
}

fn family<'a>(
    encoder: &'a mut DescriptorEncoder,
    name: &'a str,
    help: &str,
    kind: MetricType,
) -> Result<MetricEncoder<'a>, std::fmt::Error> {
    encoder.encode_descriptor(name, help, None, kind)
}

fn counter(m: &mut MetricEncoder, labels: &[(&str, &str)], v: u64) -> std::fmt::Result {
    m.encode_family(&labels)?
        .encode_counter::<NoLabelSet, _, f64>(&v, None)
}

fn gauge(m: &mut MetricEncoder, labels: &[(&str, &str)], v: f64) -> std::fmt::Result {
    m.encode_family(&labels)?.encode_gauge(&v)
}

impl Collector for Figures {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        // A family is written only when it has samples: an empty one says nothing, and some
        // parsers stumble on it.
        let ops = s.recorder.op_snapshot(BOUNDS_S);
        if !ops.is_empty() {
            let mut m = family(
                &mut e,
                "mcpstorm_calls",
                "Calls finished, by MCP method, tool and outcome.",
                MetricType::Counter,
            )?;
            for o in &ops {
                let tool = o.tool.as_deref().unwrap_or("");
                let base = [("method", o.method), ("tool", tool)];
                counter(&mut m, &[base[0], base[1], ("outcome", "ok")], o.ok)?;
                counter(&mut m, &[base[0], base[1], ("outcome", "error")], o.failed)?;
            }
            let mut m = family(
                &mut e,
                "mcpstorm_call_duration_seconds",
                "Latency of successful calls (from the intended start in the open model).",
                MetricType::Histogram,
            )?;
            for o in &ops {
                let tool = o.tool.as_deref().unwrap_or("");
                let labels = [("method", o.method), ("tool", tool)];
                let buckets: Vec<(f64, u64)> = BOUNDS_S
                    .iter()
                    .copied()
                    .chain([f64::INFINITY])
                    .zip(o.buckets.iter().copied())
                    .collect();
                m.encode_family(&labels)?
                    .encode_histogram::<NoLabelSet>(o.sum_s, o.ok, &buckets, None)?;
            }
        }
        let errors = s.recorder.errors();
        if !errors.is_empty() {
            let mut m = family(
                &mut e,
                "mcpstorm_errors",
                "Failed calls by error kind (the report's error taxonomy).",
                MetricType::Counter,
            )?;
            for err in &errors {
                counter(
                    &mut m,
                    &[("kind", &err.kind), ("family", &err.family)],
                    err.count,
                )?;
            }
        }
        let plain_counters = [
            (
                "mcpstorm_sessions_opened",
                "MCP sessions of the workload opened (initialize answered), the preflight's included.",
                (s.sessions_opened)(),
            ),
            (
                "mcpstorm_sessions_lost",
                "Sessions the server forgot (HTTP 404 on a session id).",
                s.recorder.sessions_lost(),
            ),
            (
                "mcpstorm_dropped_iterations",
                "Open-model iterations not started because max_in_flight was reached.",
                s.recorder.dropped_iterations(),
            ),
        ];
        for (name, help, v) in plain_counters {
            let mut m = family(&mut e, name, help, MetricType::Counter)?;
            m.encode_counter::<NoLabelSet, _, f64>(&v, None)?;
        }
        let now = s.elapsed().as_secs_f64();
        let faults = s.faults();
        let recoveries = s.recoveries();
        let plain_gauges = [
            (
                "mcpstorm_active_sessions",
                "Sessions of the workload open now.",
                s.recorder.active_sessions() as f64,
            ),
            (
                "mcpstorm_faults_active",
                "Faults in effect now.",
                faults.iter().filter(|f| f.active_at(now)).count() as f64,
            ),
            (
                "mcpstorm_faults_unrecovered",
                "Faults whose failure was seen and has not recovered yet.",
                recoveries.iter().filter(|r| r.unrecovered()).count() as f64,
            ),
            (
                "mcpstorm_run_elapsed_seconds",
                "Seconds since the load started.",
                now,
            ),
            (
                "mcpstorm_run_finished",
                "1 once the report is written and these figures are final.",
                if s.is_finished() { 1.0 } else { 0.0 },
            ),
        ];
        for (name, help, v) in plain_gauges {
            let mut m = family(&mut e, name, help, MetricType::Gauge)?;
            m.encode_gauge(&v)?;
        }

        let mut kinds: std::collections::BTreeMap<&str, u64> = Default::default();
        for f in faults.iter().filter(|f| f.applied) {
            *kinds.entry(f.kind.as_str()).or_default() += 1;
        }
        if !kinds.is_empty() {
            let mut m = family(
                &mut e,
                "mcpstorm_faults",
                "Faults injected, by kind.",
                MetricType::Counter,
            )?;
            for (kind, n) in kinds {
                counter(&mut m, &[("kind", kind)], n)?;
            }
        }
        type Pick = fn(&crate::report::RecoveryRecord) -> Option<f64>;
        let per_fault: [(&str, &str, Pick); 2] = [
            (
                "mcpstorm_fault_detection_seconds",
                "Fault to first failure seen, per fault.",
                |r| r.detected_after_ms,
            ),
            (
                "mcpstorm_fault_recovery_seconds",
                "Fault to first success after the failure, per fault.",
                |r| r.recovered_after_ms,
            ),
        ];
        for (name, help, pick) in per_fault {
            let timed: Vec<_> = recoveries
                .iter()
                .filter_map(|r| pick(r).map(|ms| (r, ms)))
                .collect();
            if timed.is_empty() {
                continue;
            }
            let mut m = family(&mut e, name, help, MetricType::Gauge)?;
            for (r, ms) in timed {
                let id = r.fault_id.to_string();
                gauge(
                    &mut m,
                    &[("fault_id", &id), ("fault", &r.fault)],
                    ms / 1000.0,
                )?;
            }
        }

        if let Some(p) = s.recorder.last_target_point() {
            let target = [
                (
                    "mcpstorm_target_resident_memory_bytes",
                    "RSS of the supervised server's process tree.",
                    p.target_rss_mb.map(|mb| (mb * 1_048_576.0).round()),
                ),
                (
                    "mcpstorm_target_cpu_percent",
                    "CPU of the server's tree over the last second (100 = one core).",
                    p.target_cpu_pct,
                ),
                (
                    "mcpstorm_target_threads",
                    "Threads of the server's tree.",
                    p.target_threads.map(|x| x as f64),
                ),
                (
                    "mcpstorm_target_open_fds",
                    "Open file descriptors of the server's tree.",
                    p.target_open_files.map(|x| x as f64),
                ),
                (
                    "mcpstorm_target_connections",
                    "Established TCP connections of the server's tree.",
                    p.target_connections.map(|x| x as f64),
                ),
            ];
            for (name, help, v) in target {
                if let Some(v) = v {
                    let mut m = family(&mut e, name, help, MetricType::Gauge)?;
                    m.encode_gauge(&v)?;
                }
            }
        }
        if !s.alerts.rules().is_empty() {
            let firing = s.alerts.firing();
            let mut m = family(
                &mut e,
                "mcpstorm_alert_firing",
                "1 while the alert rule's condition holds.",
                MetricType::Gauge,
            )?;
            for rule in s.alerts.rules() {
                let on = firing.iter().any(|a| a.rule == rule.name);
                gauge(
                    &mut m,
                    &[("rule", &rule.name), ("severity", rule.severity.as_str())],
                    if on { 1.0 } else { 0.0 },
                )?;
            }
        }
        Ok(())
    }
}
