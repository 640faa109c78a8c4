//! `mcpstorm probe`: the suite on its own against one target; the report (same contract as
//! a run's, with `security` filled and no load) and JUnit are written, findings printed
//! grouped by severity, and the criteria (default `security.failures == 0`) give the verdict.

use super::SecurityConfig;
use crate::criteria::Criterion;
use crate::error::Error;
use crate::report::{ClientReport, Report, TargetReport, Verdict};
use crate::target::TargetSpec;
use std::path::PathBuf;
use std::time::Instant;

pub struct ProbeOptions {
    pub target: TargetSpec,
    pub config: SecurityConfig,
    pub criteria: Vec<Criterion>,
    pub out: PathBuf,
    pub server_exe: Option<PathBuf>,
}

/// Run the suite and write the report; the report's verdict is the exit code's source.
pub async fn run_probe(opts: ProbeOptions) -> Result<Report, Error> {
    crate::report::create_out_dir(&opts.out)?;
    let started_at = crate::report::now_rfc3339();
    if matches!(
        opts.target,
        TargetSpec::Sse { .. } | TargetSpec::WebSocket { .. }
    ) {
        return Err(Error::Usage(format!(
            "--target {}: the probes speak Streamable HTTP and stdio; legacy SSE and WebSocket targets are not probed",
            opts.target.describe()
        )));
    }
    let describe = opts.target.describe();
    let timeout = opts.config.timeout;
    let exe = crate::target::server_exe(opts.server_exe.as_deref());
    let fail =
        |e: &crate::error::CallError| Error::Target(crate::check::diagnose(&describe, e, timeout));
    let (resolved, _embedded) = crate::target::resolve_embedded(&opts.target, &exe)
        .await
        .map_err(|e| fail(&e))?;
    let log = crate::target::stderr_log_for(&resolved, &opts.out)?;
    crate::errln!("mcpstorm probe: {describe}");
    let clock = Instant::now();
    let (cpu_before, _) = crate::metrics::process::self_usage();
    let outcome = super::run_suite(&resolved, &opts.config, log.clone())
        .await
        .map_err(|e| fail(&e))?;
    log.flush();
    let (cpu_after, max_rss_mb) = crate::metrics::process::self_usage();
    let wall = clock.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut report = Report {
        schema_version: crate::report::SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at,
        duration_s: wall,
        scenario: serde_json::json!({
            "name": "probe",
            "kind": "probe",
            "target": opts.target,
            "security": opts.config,
            "criteria": opts.criteria.iter().map(|c| c.text.clone()).collect::<Vec<_>>(),
        }),
        target: TargetReport {
            transport: opts.target.transport_name().to_string(),
            description: describe.clone(),
            server_name: outcome.server.name.clone(),
            server_version: outcome.server.version.clone(),
            protocol_version: outcome.server.protocol_version.clone(),
            era: serde_json::to_value(outcome.server.era)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            capabilities: outcome.server.capabilities.clone(),
        },
        totals: Default::default(),
        latency_ms: Default::default(),
        errors: vec![],
        series: vec![],
        faults: vec![],
        recoveries: vec![],
        leaks: None,
        supervisor: None,
        checks: Default::default(),
        security: outcome.findings,
        alerts: vec![],
        client: ClientReport {
            cpu_seconds: cpu_after - cpu_before,
            cpu_us_per_call: 0.0,
            cpu_utilization: (cpu_after - cpu_before) / (wall.max(1e-9) * cores as f64),
            cores,
            max_rss_mb,
        },
        warnings: vec![format!(
            "{} requests sent by the probes",
            outcome.requests_sent
        )],
        criteria: vec![],
        verdict: Verdict::Fail,
    };
    evaluate(&mut report, &opts.criteria);
    let path = opts.out.join("report.json");
    report.write_json(&path)?;
    report.write_junit(&opts.out.join("junit.xml"))?;
    crate::outln!("{}", crate::report::summary::render(&report, Some(&path)));
    Ok(report)
}

/// The criteria (default `security.failures == 0`) and the verdict they give.
pub fn evaluate(report: &mut Report, criteria: &[Criterion]) {
    let default;
    let criteria = if criteria.is_empty() {
        default =
            vec![Criterion::parse("security.failures == 0").expect("valid default criterion")];
        &default
    } else {
        criteria
    };
    report.criteria = criteria.iter().map(|c| c.evaluate(report)).collect();
    report.verdict = if report.criteria.iter().all(|c| c.passed) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
}
