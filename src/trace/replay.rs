//! Replaying a trace (`mcpstorm replay`): every recorded session is played again against a
//! target, in its own fresh session (handshake, then its requests in order, with new ids),
//! at the recorded pace or as fast as possible, in N parallel copies; each answer is compared
//! with the recorded one after the ignored pointers are left out. The outcome is a count of
//! divergences with samples (pointer, recorded, got) and the latency of both runs.
//!
//! It judges answers only; it never records, and it never changes the trace.

use super::diff::{Difference, Pointer, differences, strip};
use super::{Exchange, Recorded, Trace};
use crate::check::diagnose;
use crate::error::{CallError, Error, excerpt};
use crate::report::Percentiles;
use crate::target::{Connector, TargetSpec};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pace {
    /// Each request at its recorded offset from the start of the trace.
    Recorded,
    /// Each request as soon as the previous answer came.
    Fast,
}

#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub trace: PathBuf,
    pub target: TargetSpec,
    pub pace: Pace,
    pub copies: usize,
    /// Left out of both answers before comparing (always `/_meta`, plus `--ignore`).
    pub ignore: Vec<String>,
    pub timeout: Duration,
    pub out: PathBuf,
    pub server_exe: Option<PathBuf>,
    pub progress: bool,
}

/// Samples kept in the report.
const SAMPLES: usize = 20;
/// Differences listed per answer.
const PER_ANSWER: usize = 5;

#[derive(Debug, Clone, Serialize)]
pub struct DivergenceSample {
    pub session: u64,
    pub copy: usize,
    /// The request's line in the trace file.
    pub line: usize,
    pub operation: String,
    pub pointer: String,
    pub recorded: String,
    pub got: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayLatency {
    pub recorded: Percentiles,
    pub replay: Percentiles,
}

/// The outcome of a replay, written to `OUT/replay.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub trace: String,
    pub trace_version: u32,
    pub recorded_target: String,
    pub recorded_server: Value,
    pub target: String,
    pub server: Value,
    pub pace: Pace,
    pub copies: usize,
    pub ignore: Vec<String>,
    pub sessions: u64,
    pub requests: u64,
    pub matched: u64,
    /// Answers that differ from the recorded ones (one per request, however many fields).
    pub divergences: u64,
    /// Requests whose recorded answer is not in the trace (it was cut): sent, not compared.
    pub uncompared: u64,
    pub divergences_by_operation: BTreeMap<String, u64>,
    pub samples: Vec<DivergenceSample>,
    pub latency_ms: ReplayLatency,
    pub duration_s: f64,
    pub verdict: crate::report::Verdict,
}

struct Tally {
    requests: u64,
    matched: u64,
    divergences: u64,
    uncompared: u64,
    by_operation: BTreeMap<String, u64>,
    samples: Vec<DivergenceSample>,
    replay_us: Histogram<u64>,
    recorded_us: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn operation(ex: &Exchange) -> String {
    match ex
        .params
        .as_ref()
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
    {
        Some(name) if ex.method == "tools/call" || ex.method == "prompts/get" => {
            format!("{} {name}", ex.method)
        }
        _ => ex.method.clone(),
    }
}

fn show(v: &Value) -> String {
    excerpt(&v.to_string(), 200)
}

/// Compare one answer with the recorded one: `None` when they agree (or nothing was
/// recorded), else the differences.
fn compare(
    ex: &Exchange,
    got: &Result<Value, CallError>,
    ignore: &[Pointer],
) -> Option<Vec<Difference>> {
    let text = |s: String| Value::String(s);
    match (&ex.recorded, got) {
        (Recorded::Missing, _) => None,
        (Recorded::Result(r), Ok(g)) => {
            let (mut r, mut g) = (r.clone(), g.clone());
            for p in ignore {
                strip(&mut r, p);
                strip(&mut g, p);
            }
            let d = differences(&r, &g, PER_ANSWER);
            (!d.is_empty()).then_some(d)
        }
        (Recorded::Error { code, .. }, Err(CallError::JsonRpc { code: got, .. }))
            if code == got =>
        {
            None
        }
        (Recorded::Failed { kind, .. }, Err(e)) if *kind == e.kind().key() => None,
        (recorded, got) => {
            let recorded = match recorded {
                Recorded::Result(r) => r.clone(),
                Recorded::Error { code, message } => {
                    text(format!("JSON-RPC error {code}: {message}"))
                }
                Recorded::Failed { kind, message } => text(format!("{kind}: {message}")),
                Recorded::Missing => Value::Null,
            };
            let got = match got {
                Ok(v) => v.clone(),
                Err(e) => text(e.to_string()),
            };
            Some(vec![Difference {
                pointer: "/".into(),
                recorded,
                got,
            }])
        }
    }
}

struct Job {
    session: u64,
    copy: usize,
    exchanges: Arc<Vec<Exchange>>,
    /// Seconds after the replay's start at which the session's first request is due
    /// (recorded pace), and the trace time that corresponds to the replay's start.
    trace_t0: f64,
}

async fn replay_session(
    job: Job,
    connector: Arc<Connector>,
    pace: Pace,
    timeout: Duration,
    ignore: Arc<Vec<Pointer>>,
    started: Instant,
    tally: Arc<Mutex<Tally>>,
) {
    let due =
        |ex: &Exchange| started + Duration::from_secs_f64((ex.sent_at - job.trace_t0).max(0.0));
    if pace == Pace::Recorded
        && let Some(first) = job.exchanges.first()
    {
        tokio::time::sleep_until(due(first).into()).await;
    }
    let mut session = connector.open().await;
    for ex in job.exchanges.iter() {
        if pace == Pace::Recorded {
            tokio::time::sleep_until(due(ex).into()).await;
        }
        let sent = Instant::now();
        let got = match session.as_mut() {
            Ok(s) => s.call(&ex.method, ex.params.as_ref(), timeout).await,
            Err(e) => Err(e.clone()),
        };
        let took = sent.elapsed();
        let diffs = compare(ex, &got, &ignore);
        if let Ok(mut t) = tally.lock() {
            t.requests += 1;
            if got.is_ok() {
                let _ = t.replay_us.record((took.as_micros() as u64).max(1));
            }
            if let (Some(l), Recorded::Result(_) | Recorded::Error { .. }) =
                (ex.recorded_latency, &ex.recorded)
            {
                let _ = t.recorded_us.record(((l * 1e6) as u64).max(1));
            }
            match (&ex.recorded, diffs) {
                (Recorded::Missing, _) => t.uncompared += 1,
                (_, None) => t.matched += 1,
                (_, Some(diffs)) => {
                    t.divergences += 1;
                    *t.by_operation.entry(operation(ex)).or_default() += 1;
                    for d in diffs {
                        if t.samples.len() >= SAMPLES {
                            break;
                        }
                        t.samples.push(DivergenceSample {
                            session: job.session,
                            copy: job.copy,
                            line: ex.line,
                            operation: operation(ex),
                            pointer: d.pointer,
                            recorded: show(&d.recorded),
                            got: show(&d.got),
                        });
                    }
                }
            }
        }
        // A session the server dropped is opened again, so later requests still compare.
        if let (Ok(s), Err(e)) = (&session, &got)
            && !s.survives(e)
        {
            if let Ok(s) = std::mem::replace(&mut session, Err(e.clone())) {
                let _ = tokio::time::timeout(Duration::from_secs(2), s.close()).await;
            }
            session = connector.open().await;
        }
    }
    if let Ok(s) = session {
        let _ = tokio::time::timeout(Duration::from_secs(2), s.close()).await;
    }
}

pub async fn replay(opts: ReplayOptions) -> Result<ReplayReport, Error> {
    let trace: Trace = super::load(&opts.trace).map_err(Error::Usage)?;
    let ignore: Vec<Pointer> = std::iter::once("/_meta".to_string())
        .chain(opts.ignore.iter().cloned())
        .map(|p| Pointer::parse(&p).map_err(|e| Error::Usage(format!("--ignore {p}: {e}"))))
        .collect::<Result<_, _>>()?;
    if opts.copies == 0 {
        return Err(Error::Usage("--copies must be at least 1".into()));
    }
    crate::report::create_out_dir(&opts.out)?;
    let exe = crate::target::server_exe(opts.server_exe.as_deref());
    let (target, _embedded) = crate::target::resolve_embedded(&opts.target, &exe)
        .await
        .map_err(|e| Error::Target(diagnose(&opts.target.describe(), &e, opts.timeout)))?;
    let stderr_log = crate::target::stderr_log_for(&target, &opts.out)?;
    let sessions = trace.sessions.len() * opts.copies;
    let protocol = crate::session::Protocol::parse(&trace.header.protocol_version)
        .map_err(|e| Error::Usage(format!("{}:1: protocol_version: {e}", opts.trace.display())))?;
    let connector = Arc::new(
        Connector::new(
            &target,
            &protocol,
            opts.timeout,
            stderr_log,
            sessions.max(1),
        )
        .map_err(Error::Usage)?,
    );
    let describe = opts.target.describe();
    // One session must work before anything is compared, or the replay ends with the cause.
    let mut first = connector
        .open_monitor()
        .await
        .map_err(|e| Error::Target(diagnose(&describe, &e, opts.timeout)))?;
    let info = first.info.clone();
    if info.era == crate::session::Era::Stateless {
        // The tools' x-mcp-header annotations, for the Mcp-Param-* headers of the replayed
        // tools/calls over HTTP (transport::mcp_param); a server that can't list still replays.
        let _ = crate::check::list_all(&mut first, "tools/list", "tools", opts.timeout).await;
    }
    first.close().await;
    if opts.progress {
        crate::errln!(
            "mcpstorm: replaying {} sessions of {} x{} against {} ({:?} pace)",
            trace.sessions.len(),
            opts.trace.display(),
            opts.copies,
            describe,
            opts.pace
        );
    }
    let tally = Arc::new(Mutex::new(Tally {
        requests: 0,
        matched: 0,
        divergences: 0,
        uncompared: 0,
        by_operation: BTreeMap::new(),
        samples: Vec::new(),
        replay_us: histogram(),
        recorded_us: histogram(),
    }));
    let trace_t0 = trace
        .sessions
        .values()
        .filter_map(|s| s.first().map(|e| e.sent_at))
        .fold(f64::INFINITY, f64::min);
    let ignore = Arc::new(ignore);
    let started = Instant::now();
    let mut jobs = tokio::task::JoinSet::new();
    for copy in 0..opts.copies {
        for (id, exchanges) in &trace.sessions {
            let job = Job {
                session: *id,
                copy,
                exchanges: Arc::new(exchanges.clone()),
                trace_t0,
            };
            jobs.spawn(replay_session(
                job,
                connector.clone(),
                opts.pace,
                opts.timeout,
                ignore.clone(),
                started,
                tally.clone(),
            ));
        }
    }
    while jobs.join_next().await.is_some() {}
    let duration_s = started.elapsed().as_secs_f64();
    connector.flush_logs();
    let t = tally
        .lock()
        .map_err(|_| Error::Usage("internal: replay tally poisoned".into()))?;
    // Each copy replays the same recorded answers: count recorded latency once.
    let report = ReplayReport {
        trace: opts.trace.display().to_string(),
        trace_version: trace.header.version,
        recorded_target: trace.header.target.clone(),
        recorded_server: trace.header.server.clone(),
        target: describe,
        server: serde_json::json!({"name": info.name, "version": info.version, "protocol_version": info.protocol_version}),
        pace: opts.pace,
        copies: opts.copies,
        ignore: ignore_text(&opts.ignore),
        sessions: sessions as u64,
        requests: t.requests,
        matched: t.matched,
        divergences: t.divergences,
        uncompared: t.uncompared,
        divergences_by_operation: t.by_operation.clone(),
        samples: t.samples.clone(),
        latency_ms: ReplayLatency {
            recorded: crate::metrics::percentiles(&t.recorded_us),
            replay: crate::metrics::percentiles(&t.replay_us),
        },
        duration_s,
        verdict: if t.divergences == 0 {
            crate::report::Verdict::Pass
        } else {
            crate::report::Verdict::Fail
        },
    };
    let path = opts.out.join("replay.json");
    let json = serde_json::to_vec_pretty(&report).map_err(|e| Error::Usage(e.to_string()))?;
    std::fs::write(&path, json).map_err(|source| Error::Io {
        what: format!("writing {}", path.display()),
        source,
    })?;
    Ok(report)
}

fn ignore_text(user: &[String]) -> Vec<String> {
    std::iter::once("/_meta".to_string())
        .chain(user.iter().cloned())
        .collect()
}

/// The replay's outcome in words, for the terminal.
pub fn render(r: &ReplayReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nreplay of {} (recorded against {})",
        r.trace, r.recorded_target
    );
    let _ = writeln!(
        s,
        "against {} ({} {}), {} pace, {} copies, {:.1}s",
        r.target,
        r.server["name"].as_str().unwrap_or(""),
        r.server["version"].as_str().unwrap_or(""),
        match r.pace {
            Pace::Recorded => "recorded",
            Pace::Fast => "fast",
        },
        r.copies,
        r.duration_s
    );
    let _ = writeln!(
        s,
        "{} sessions, {} requests: {} matched, {} diverged, {} not compared (no recorded answer)",
        r.sessions, r.requests, r.matched, r.divergences, r.uncompared
    );
    let (a, b) = (&r.latency_ms.recorded, &r.latency_ms.replay);
    let _ = writeln!(
        s,
        "latency ms      p50 {:>9.3}  p99 {:>9.3}  max {:>9.3}  (recorded)\n                p50 {:>9.3}  p99 {:>9.3}  max {:>9.3}  (replay)",
        a.p50, a.p99, a.max, b.p50, b.p99, b.max
    );
    if !r.divergences_by_operation.is_empty() {
        let _ = writeln!(s, "\ndivergences by operation:");
        for (op, n) in &r.divergences_by_operation {
            let _ = writeln!(s, "  {n:>7}  {op}");
        }
        let _ = writeln!(
            s,
            "\nsamples (session, trace line, operation, pointer: recorded -> got):"
        );
        for d in r.samples.iter().take(10) {
            let _ = writeln!(
                s,
                "  session {} copy {} line {} {} {}: {} -> {}",
                d.session, d.copy, d.line, d.operation, d.pointer, d.recorded, d.got
            );
        }
    }
    let _ = writeln!(
        s,
        "\nverdict: {}",
        if r.divergences == 0 {
            "PASS (no divergence)"
        } else {
            "FAIL (answers diverged)"
        }
    );
    s
}
