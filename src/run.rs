//! One run, start to verdict: plan, preflight, (start the embedded target), drive the
//! workload, then build the report from the recorder, evaluate the criteria and write it.
//!
//! This is the only place that wires the parts together; each part stays ignorant of the
//! others. Every task started here is cancelled and awaited before `run` returns.

use crate::alerts::Alerts;
use crate::check::ledger::{Ledger, LedgerReport};
use crate::check::{diagnose, list_all};
use crate::criteria::Criterion;
use crate::error::Error;
use crate::live::LiveState;
use crate::live::tui::Dashboard;
use crate::metrics::Recorder;
use crate::metrics::process::self_usage;
use crate::probe::ProbeLog;
use crate::proxy::Proxy;
use crate::report::{
    ClientReport, FaultRecord, LatencyReport, RecoveryRecord, Report, SupervisorReport,
    TargetReport, Totals, Verdict,
};
use crate::scenario::{Overrides, Plan};
use crate::security::When;
use crate::target::launch::{LaunchSpec, Readiness, RestartPolicy, Supervisor};
use crate::target::{Connector, TargetSpec};
use crate::transport::stdio::StderrLog;
use crate::workload::template::RandomPool;
use crate::workload::vu::Shared;
use crate::workload::{Mix, executor};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use tasks::{Checkpointing, Ticking, interrupts, ledger_checkpoints, ticker};
use tokio_util::sync::CancellationToken;

mod tasks;

pub const PRESETS: &[(&str, &str)] = &[
    ("quickstart", include_str!("../presets/quickstart.toml")),
    (
        "production-24h",
        include_str!("../presets/production-24h.toml"),
    ),
];

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub scenario: Option<PathBuf>,
    pub preset: Option<String>,
    pub overrides: Overrides,
    pub out: PathBuf,
    pub progress: bool,
    pub progress_interval: Duration,
    /// Show the terminal dashboard instead of progress lines (stdout is a terminal).
    pub tui: bool,
    /// Serve Prometheus `/metrics` here during the run.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// After the run, keep `/metrics` up until scraped once or this long.
    pub metrics_linger: Duration,
    pub server_exe: Option<PathBuf>,
    /// Write the workload's traffic to a trace (`--record`).
    pub record: Option<crate::trace::record::RecordOptions>,
    /// Refuse to run when the server settles on another revision than the one asked for
    /// (the protocol matrix measures each revision, not what a server falls back to).
    pub exact_protocol: bool,
}

/// Read the scenario (or preset) into a plan; exit-2 errors name the file and keys.
pub fn plan(opts: &RunOptions) -> Result<Plan, Error> {
    let result = match (&opts.scenario, &opts.preset) {
        (Some(_), Some(_)) => {
            return Err(Error::Usage(
                "give a scenario file or --preset, not both".into(),
            ));
        }
        (Some(path), None) => crate::scenario::load(path, &opts.overrides),
        (None, preset) => {
            let name = preset.as_deref().unwrap_or("quickstart");
            let Some((_, text)) = PRESETS.iter().find(|(n, _)| *n == name) else {
                let known: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
                return Err(Error::Usage(format!(
                    "--preset `{name}` is not known; presets: {}",
                    known.join(", ")
                )));
            };
            crate::scenario::parse(text, &format!("preset `{name}`"), None, &opts.overrides)
        }
    };
    result.map_err(|p| Error::Usage(p.to_string().trim_end().to_string()))
}

pub async fn run(opts: RunOptions) -> Result<Report, Error> {
    let plan = plan(&opts)?;
    crate::report::create_out_dir(&opts.out)?;
    let started_at = crate::report::now_rfc3339();

    let metrics_port = match opts.metrics_addr {
        Some(addr) => Some(crate::live::prom::bind(addr).await?),
        None => None,
    };
    // The target: start (and supervise) the server if the plan says mcpstorm starts it.
    let clock = Instant::now();
    let mut proxies = start_dependency_proxies(&plan).await?;
    let (target, supervisor) = start_target(&plan, &opts, clock, &proxies).await?;
    let target = match plan.target_proxy {
        true => {
            let (proxy, proxied) = proxy_target(&target).await?;
            proxies.insert("target".to_string(), Arc::new(proxy));
            proxied
        }
        false => target,
    };
    let stderr_log = crate::target::stderr_log_for(&target, &opts.out)?;
    let max_sessions = plan.workload.executor.max_sessions();
    let connector = Arc::new(
        Connector::new(
            &target,
            &plan.protocol,
            plan.workload.timeout,
            stderr_log.clone(),
            max_sessions,
        )
        .map_err(Error::Usage)?,
    );

    // Preflight: one session must work before any load, or the run ends with one cause.
    let describe = plan.target.describe();
    let mut first = connector
        .open()
        .await
        .map_err(|e| Error::Target(diagnose(&describe, &e, plan.workload.timeout)))?;
    let info = first.info.clone();
    if let (true, crate::session::Protocol::Revision(asked)) = (opts.exact_protocol, &plan.protocol)
        && *asked != info.protocol_version
    {
        first.close().await;
        let refused = crate::error::CallError::RevisionRefused {
            revision: asked.clone(),
            detail: format!(
                "the server answered initialize with {} instead",
                info.protocol_version
            ),
        };
        return Err(Error::Target(diagnose(
            &describe,
            &refused,
            plan.workload.timeout,
        )));
    }
    let mut warnings = Vec::new();
    // Over Streamable HTTP in the stateless era, a tools/call carries its `x-mcp-header`
    // arguments as `Mcp-Param-*` headers, known from tools/list (every session learns from
    // this listing, see transport::mcp_param).
    let param_headers = info.era == crate::session::Era::Stateless
        && matches!(
            target,
            TargetSpec::Http { .. } | TargetSpec::Embedded { stdio: false }
        );
    let (mix, tools) = match &plan.mix {
        Some(specs) => {
            let mix = Mix::from_specs(specs);
            // The tools' declared outputSchemas (and x-mcp-header annotations); a server
            // that can't list them still gets its load test, with a warning. With
            // Mcp-Param-* headers to learn, list them whatever the mix holds: the ledger's
            // writes and the concurrency probes call tools too.
            let tools = match (mix.calls_tools() && plan.workload.check_output_schema)
                || param_headers
            {
                true => {
                    match list_all(&mut first, "tools/list", "tools", plan.workload.timeout).await {
                        Ok(t) => t,
                        Err(e) => {
                            warnings.push(format!(
                                "tools/list failed ({e}); tools' outputSchemas are not validated{}",
                                if param_headers {
                                    " and no Mcp-Param-* header is sent"
                                } else {
                                    ""
                                }
                            ));
                            Vec::new()
                        }
                    }
                }
                false => Vec::new(),
            };
            (mix, tools)
        }
        None => {
            let tools = list_all(&mut first, "tools/list", "tools", plan.workload.timeout)
                .await
                .map_err(|e| Error::Target(diagnose(&describe, &e, plan.workload.timeout)))?;
            let mix = Mix::discovered(&tools, &plan.workload)
                .map_err(|e| Error::Usage(format!("{}: {e}", plan.source)))?;
            (mix, tools)
        }
    };
    first.close().await;
    if param_headers {
        warnings.extend(crate::transport::mcp_param::invalid_tools(&tools));
    }
    // Before any load: the first-call probe must send the server's first tool calls.
    let findings = match &plan.concurrency {
        Some(probes) => {
            if opts.progress {
                crate::errln!("mcpstorm: running concurrency probes");
            }
            probes.run(&connector).await
        }
        None => Vec::new(),
    };
    let mix = match plan.workload.check_output_schema {
        true => {
            let (schemas, problems) = crate::check::answer::output_schemas(&tools);
            warnings.extend(problems);
            mix.with_output_schemas(&schemas)
        }
        false => mix,
    };
    let mix = match &plan.ledger {
        Some(spec) => mix.with_ledger(spec),
        None => mix,
    };
    let ledger = plan.ledger.as_ref().map(|_| Arc::new(Ledger::default()));
    let max_random = [
        plan.mix.as_deref().map(Mix::max_random).unwrap_or(0),
        plan.ledger
            .as_ref()
            .map(|l| l.write.arguments.max_random())
            .unwrap_or(0),
    ];
    let pool = RandomPool::new(max_random.into_iter().max().unwrap_or(0));
    warnings.extend(mix.skipped.iter().map(|s| format!("skipped tool {s}")));
    let pings = plan.mix.as_deref().is_some_and(|m| {
        m.iter()
            .any(|o| matches!(o.kind, crate::workload::OpKind::Ping))
    });
    if pings && info.era == crate::session::Era::Stateless {
        warnings.push(format!(
            "protocol {} has no `ping`: the `ping` operations were sent as `server/discover`",
            info.protocol_version
        ));
    }

    let trace = match &opts.record {
        Some(r) => {
            let header = crate::trace::record::TraceWriter::header(
                &describe,
                plan.target.transport_name(),
                &info,
            );
            Some(Arc::new(
                crate::trace::record::TraceWriter::create(r, &header).map_err(Error::Usage)?,
            ))
        }
        None => None,
    };
    // Concurrency findings (taken before any load) and the security probes share the
    // report's `security` list.
    let mut security: Vec<crate::security::Finding> = findings;
    // The security log check reads the stderr of a server mcpstorm started, unless the
    // scenario names another log.
    let security_cfg = plan.security.clone().map(|mut c| {
        if c.server_log.is_none() && supervisor.is_some() {
            c.server_log = Some(opts.out.join("target-stderr.log"));
        }
        c
    });
    if let Some(cfg) = security_cfg.as_ref().filter(|c| c.when == When::Before) {
        security
            .extend(probe_security(cfg, &target, &stderr_log, opts.progress, &mut warnings).await);
    }

    let started = Instant::now();
    let recorder = Arc::new(Recorder::new(started));
    let shared = Arc::new(Shared {
        connector: connector.clone(),
        recorder: recorder.clone(),
        mix,
        timeout: plan.workload.timeout,
        think_time: plan.workload.think_time,
        churn_every: plan.workload.churn_every,
        graceful_stop: plan.workload.graceful_stop,
        pool,
        seq: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        ledger: ledger.clone(),
        trace: trace.clone(),
        stop: CancellationToken::new(),
        abort: CancellationToken::new(),
    });
    let total = plan.workload.executor.total_duration();
    let background = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let timeline = Arc::new(std::sync::Mutex::new(Vec::new()));
    let probe_log = Arc::new(ProbeLog::default());
    let alerts = Arc::new(Alerts::new(plan.alerts.rules.clone()));
    let live = Arc::new(LiveState {
        name: plan.name.clone(),
        target: describe.clone(),
        total,
        recorder: recorder.clone(),
        timeline: timeline.clone(),
        probe_log: probe_log.clone(),
        alerts: alerts.clone(),
        sessions_opened: {
            let c = connector.clone();
            Arc::new(move || c.sessions_opened())
        },
        finished: Default::default(),
    });
    let exporter = metrics_port.map(|l| crate::live::prom::start(l, live.clone()));
    let dashboard = match opts.tui {
        true => Dashboard::start(live.clone(), shared.stop.clone(), shared.abort.clone()),
        false => None,
    };
    tasks.spawn(ticker(
        Ticking {
            recorder: recorder.clone(),
            supervisor: supervisor.clone(),
            alerts: alerts.clone(),
            probe_log: probe_log.clone(),
            rss_limit_mb: plan.alerts.rss_limit_mb,
            print_alerts: dashboard.is_none() && opts.progress,
            started,
        },
        background.clone(),
    ));
    let checkpoints = Arc::new(std::sync::Mutex::new(Vec::new()));
    if !plan.faults.is_empty() {
        let schedule = crate::faults::occurrences(&plan.faults, total, &mut rand::rng());
        let tools = crate::faults::Tools {
            proxies: proxies.clone(),
            supervisor: supervisor.clone(),
            exe: crate::target::server_exe(opts.server_exe.as_deref()),
        };
        tasks.spawn(crate::faults::run(
            schedule,
            tools,
            timeline.clone(),
            started,
            background.clone(),
        ));
        if let (Some(spec), Some(ledger)) = (&plan.ledger, &ledger) {
            tasks.spawn(ledger_checkpoints(
                Checkpointing {
                    ledger: ledger.clone(),
                    spec: spec.clone(),
                    connector: connector.clone(),
                    timeout: plan.workload.timeout,
                    timeline: timeline.clone(),
                    probe_log: probe_log.clone(),
                    recorder: recorder.clone(),
                    started,
                    out: checkpoints.clone(),
                },
                background.clone(),
            ));
        }
    }
    if !plan.faults.is_empty() || plan.alerts.needs_probe() {
        tasks.spawn(crate::probe::run(
            connector.clone(),
            plan.recovery.probe_interval,
            crate::probe::ProbeTimeouts::new(
                plan.recovery.probe_timeout,
                plan.workload.timeout,
                matches!(target, TargetSpec::Stdio(_)),
            ),
            probe_log.clone(),
            started,
            background.clone(),
        ));
    }
    if opts.progress && dashboard.is_none() {
        crate::errln!(
            "mcpstorm: {} against {} for {:?}; progress every {:?}",
            plan.name,
            describe,
            total,
            opts.progress_interval
        );
        tasks.spawn(crate::live::progress(
            recorder.clone(),
            opts.progress_interval,
            total,
            background.clone(),
        ));
    }
    tasks.spawn(interrupts(
        shared.stop.clone(),
        shared.abort.clone(),
        background.clone(),
        // The dashboard says "stopping" itself; a line on stderr would land on top of it.
        dashboard.is_none(),
    ));

    let (cpu_before, _) = self_usage();
    executor::run(shared.clone(), &plan.workload.executor).await;
    let wall = started.elapsed();
    let (cpu_after, max_rss_mb) = self_usage();
    recorder.tick(None);
    background.cancel();
    while tasks.join_next().await.is_some() {}
    connector.flush_logs();
    let ledger_report = match (&plan.ledger, &ledger) {
        (Some(spec), Some(ledger)) => {
            let checkpoints = checkpoints.lock().map(|c| c.clone()).unwrap_or_default();
            Some(
                ledger
                    .verify(spec, &connector, plan.workload.timeout, checkpoints)
                    .await,
            )
        }
        _ => None,
    };
    if let Some(cfg) = security_cfg.as_ref().filter(|c| c.when == When::After) {
        security
            .extend(probe_security(cfg, &target, &stderr_log, opts.progress, &mut warnings).await);
    }
    let faults: Vec<FaultRecord> = timeline.lock().map(|t| t.clone()).unwrap_or_default();
    let recoveries = crate::recovery::compute(
        &faults,
        &probe_log.changes(),
        |t| recorder.first_failure_after(t),
        &recorder.series(),
    );
    let supervised = match supervisor {
        Some(sup) => {
            let offset = started.duration_since(clock).as_secs_f64();
            let report = SupervisorReport {
                command: plan
                    .launch
                    .as_ref()
                    .map(LaunchSpec::display)
                    .unwrap_or_else(|| "mcpstorm serve (embedded)".into()),
                restart: serde_json::to_value(
                    plan.launch
                        .as_ref()
                        .map(|l| l.restart)
                        .unwrap_or(RestartPolicy::OnFailure),
                )
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
                starts: sup.starts(),
                exits: sup
                    .exits()
                    .into_iter()
                    .map(|mut e| {
                        e.at_s -= offset;
                        e
                    })
                    .collect(),
            };
            if let Ok(sup) = Arc::try_unwrap(sup) {
                sup.stop().await;
            }
            Some(report)
        }
        None => None,
    };
    if let Some(t) = &trace {
        warnings.extend(t.finish());
        if opts.progress {
            crate::errln!(
                "mcpstorm: recorded {} sessions to {}",
                t.sessions_recorded(),
                t.path().display()
            );
        }
    }
    let cut_off = shared.in_flight.load(std::sync::atomic::Ordering::Relaxed);
    if cut_off > 0 {
        warnings.push(format!(
            "{cut_off} calls were still unanswered when graceful_stop ({:?}) ran out and were abandoned; they are not in the figures (raise workload.graceful_stop to wait for them)",
            plan.workload.graceful_stop
        ));
    }
    let interrupted = shared.stop.is_cancelled() && wall + Duration::from_millis(200) < total;
    if interrupted {
        warnings.push(format!(
            "the run was interrupted after {:.1}s of {:?}",
            wall.as_secs_f64(),
            total
        ));
    }

    let facts = RunFacts {
        started_at,
        wall,
        cpu_seconds: cpu_after - cpu_before,
        max_rss_mb,
        abandoned: cut_off,
        warnings,
        faults,
        recoveries,
        supervisor: supervised,
        ledger: ledger_report,
        security,
        interrupted_of: interrupted.then_some(total),
    };
    let mut report = build_report(&plan, &recorder, &connector, &info, facts);
    report.alerts = alerts.records();
    if let Some(d) = dashboard {
        d.finish();
    }
    let path = opts.out.join("report.json");
    report.write_json(&path)?;
    report.write_junit(&opts.out.join("junit.xml"))?;
    let html = opts.out.join("report.html");
    report.write_html(&html)?;
    crate::outln!(
        "{}html:    {}",
        crate::report::summary::render(&report, Some(&path)),
        html.display()
    );
    if let Some(exporter) = exporter {
        exporter.finish(opts.metrics_linger).await;
    }
    Ok(report)
}

/// Resolve the plan's target to something sessions can reach, starting the server under a
/// supervisor when mcpstorm is the one that runs it (the embedded server, or `[target.launch]`).
type Proxies = std::collections::HashMap<String, Arc<Proxy>>;

/// One fault proxy per `[[proxies]]` entry, started before the server so its launch can be
/// pointed at them.
async fn start_dependency_proxies(plan: &Plan) -> Result<Proxies, Error> {
    let mut out = Proxies::new();
    for (name, upstream) in &plan.proxies {
        let proxy = Proxy::start(([127, 0, 0, 1], 0).into(), *upstream)
            .await
            .map_err(|source| Error::Io {
                what: format!("starting the fault proxy `{name}` (proxies)"),
                source,
            })?;
        out.insert(name.clone(), Arc::new(proxy));
    }
    Ok(out)
}

/// Put a fault proxy in front of a network target; sessions go to the proxy's address.
async fn proxy_target(target: &TargetSpec) -> Result<(Proxy, TargetSpec), Error> {
    let Some(url) = target.url() else {
        return Err(Error::Usage("`target.proxy` needs a network target".into()));
    };
    let mut parsed =
        reqwest::Url::parse(url).map_err(|e| Error::Usage(format!("target url `{url}`: {e}")))?;
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let upstream = tokio::net::lookup_host((host.as_str(), port))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::Usage(format!("target url `{url}`: cannot resolve {host}")))?;
    let proxy = Proxy::start(([127, 0, 0, 1], 0).into(), upstream)
        .await
        .map_err(|source| Error::Io {
            what: "starting the fault proxy in front of the target".into(),
            source,
        })?;
    let _ = parsed.set_host(Some("127.0.0.1"));
    let _ = parsed.set_port(Some(proxy.local_addr().port()));
    Ok((proxy, target.with_url(parsed.to_string())))
}

/// `{{proxy.NAME}}` in a launch's command, arguments and environment becomes the address of
/// that dependency's fault proxy.
fn with_proxy_addresses(mut launch: LaunchSpec, proxies: &Proxies) -> LaunchSpec {
    let fill = |s: &str| {
        let mut s = s.to_string();
        for (name, p) in proxies {
            s = s.replace(
                &format!("{{{{proxy.{name}}}}}"),
                &p.local_addr().to_string(),
            );
        }
        s
    };
    launch.command = fill(&launch.command);
    launch.args = launch.args.iter().map(|a| fill(a)).collect();
    launch.env = launch
        .env
        .iter()
        .map(|(k, v)| (k.clone(), fill(v)))
        .collect();
    launch
}

async fn start_target(
    plan: &Plan,
    opts: &RunOptions,
    clock: Instant,
    proxies: &Proxies,
) -> Result<(TargetSpec, Option<Arc<Supervisor>>), Error> {
    let exe = crate::target::server_exe(opts.server_exe.as_deref());
    let (target, launch) = match &plan.target {
        TargetSpec::Embedded { stdio: true } => {
            return Ok((TargetSpec::Stdio(crate::target::embedded_stdio(&exe)), None));
        }
        TargetSpec::Embedded { stdio: false } => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(|source| Error::Io {
                    what: "finding a free loopback port for the embedded server".into(),
                    source,
                })?;
            let launch = LaunchSpec {
                command: exe.display().to_string(),
                args: vec![
                    "serve".into(),
                    "--host".into(),
                    "127.0.0.1".into(),
                    "--port".into(),
                    port.to_string(),
                ],
                env: Default::default(),
                cwd: None,
                ready: Readiness::Http {
                    url: format!("http://127.0.0.1:{port}/health"),
                    status: 200,
                },
                ready_timeout: Duration::from_secs(15),
                restart: RestartPolicy::OnFailure,
                backoff: Duration::from_millis(100),
                backoff_max: Duration::from_secs(5),
            };
            let url = format!("http://127.0.0.1:{port}/mcp");
            (
                TargetSpec::Http {
                    url,
                    headers: Default::default(),
                },
                Some(launch),
            )
        }
        other => (
            other.clone(),
            plan.launch
                .clone()
                .map(|l| with_proxy_addresses(l, proxies)),
        ),
    };
    let Some(launch) = launch else {
        return Ok((target, None));
    };
    let supervisor = Supervisor::start(launch, &opts.out, clock)
        .await
        .map_err(|e| Error::Target(diagnose(&plan.target.describe(), &e, plan.workload.timeout)))?;
    Ok((target, Some(Arc::new(supervisor))))
}

/// What the run itself measured, outside the recorder.
struct RunFacts {
    started_at: String,
    wall: Duration,
    cpu_seconds: f64,
    max_rss_mb: f64,
    abandoned: u64,
    warnings: Vec<String>,
    faults: Vec<FaultRecord>,
    recoveries: Vec<RecoveryRecord>,
    supervisor: Option<SupervisorReport>,
    ledger: Option<LedgerReport>,
    security: Vec<crate::security::Finding>,
    /// Stopped (Ctrl-C, `q`) before the planned duration: how long it was meant to last.
    interrupted_of: Option<Duration>,
}

fn build_report(
    plan: &Plan,
    recorder: &Recorder,
    connector: &Connector,
    info: &crate::session::ServerInfo,
    facts: RunFacts,
) -> Report {
    let RunFacts {
        started_at,
        wall,
        cpu_seconds,
        max_rss_mb,
        abandoned,
        mut warnings,
        faults,
        recoveries,
        supervisor,
        ledger,
        security,
        interrupted_of,
    } = facts;
    let (calls, ok, failed) = recorder.totals();
    let secs = wall.as_secs_f64().max(1e-9);
    let (by_operation, by_tool) = recorder.by_operation_and_tool();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let client = ClientReport {
        cpu_seconds,
        cpu_us_per_call: if calls == 0 {
            0.0
        } else {
            cpu_seconds * 1e6 / calls as f64
        },
        cpu_utilization: cpu_seconds / (secs * cores as f64),
        cores,
        max_rss_mb,
    };
    if client.cpu_utilization > 0.8 {
        warnings.push(format!(
            "mcpstorm used {:.0}% of all {} cores: the client, not the server, may have been the bottleneck; run mcpstorm on another machine or lower the load",
            client.cpu_utilization * 100.0,
            cores
        ));
    }
    let dropped = recorder.dropped_iterations();
    if dropped > 0 {
        warnings.push(format!(
            "{dropped} iterations were dropped: every VU was busy when they were due; the server is slower than the arrival rate, or raise workload.max_in_flight"
        ));
    }
    if calls == 0 {
        warnings
            .push("no call completed: the run is too short or the server never answered".into());
    }
    let mut report = Report {
        schema_version: crate::report::SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at,
        duration_s: secs,
        scenario: plan.resolved.clone(),
        target: TargetReport {
            transport: plan.target.transport_name().to_string(),
            description: plan.target.describe(),
            server_name: info.name.clone(),
            server_version: info.version.clone(),
            protocol_version: info.protocol_version.clone(),
            era: serde_json::to_value(info.era)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            capabilities: info.capabilities.clone(),
        },
        totals: Totals {
            calls,
            ok,
            failed,
            success_rate: crate::report::fraction(ok, calls).unwrap_or(0.0),
            error_rate: crate::report::fraction(failed, calls).unwrap_or(0.0),
            rps: calls as f64 / secs,
            dropped_iterations: dropped,
            abandoned_calls: abandoned,
            sessions_opened: connector.sessions_opened(),
            monitor_sessions_opened: connector.monitor_sessions_opened(),
            sessions_lost: recorder.sessions_lost(),
        },
        latency_ms: LatencyReport {
            overall: recorder.overall(),
            by_operation,
            by_tool,
        },
        errors: recorder.errors(),
        series: recorder.series(),
        leaks: crate::leaks::fit(
            &recorder.series(),
            plan.workload.executor.total_duration().as_secs_f64(),
        ),
        faults,
        recoveries,
        supervisor,
        checks: crate::report::Checks {
            ledger,
            ..Default::default()
        },
        security,
        alerts: vec![],
        client,
        warnings,
        criteria: vec![],
        verdict: Verdict::Fail,
    };
    let mut criteria: Vec<Criterion> = if plan.criteria.is_empty() {
        // A load test that passes with every call failing helps nobody: with no criteria
        // given, hold the run to the seeds' floor.
        vec![Criterion::parse("success_rate >= 0.95").expect("valid default criterion")]
    } else {
        plan.criteria.clone()
    };
    // A [security] or [concurrency] table whose findings cannot fail the run would be
    // silently useless.
    if (plan.security.is_some() || plan.concurrency.is_some())
        && !criteria
            .iter()
            .any(|c| c.metric == crate::criteria::Metric::SecurityFailures)
    {
        criteria.push(Criterion::parse("security.failures == 0").expect("valid default criterion"));
    }
    report.criteria = criteria.iter().map(|c| c.evaluate(&report)).collect();
    // A run stopped halfway proves nothing about the rest of it: its criteria are still
    // shown, but it cannot pass (a CI job cancelled mid-run must not come out green).
    if let Some(total) = interrupted_of {
        report.criteria.push(crate::criteria::CriterionResult {
            name: "completed".into(),
            threshold: format!(">= {}s (interrupted)", total.as_secs_f64()),
            observed: Some(secs),
            unit: "s".into(),
            passed: false,
        });
    }
    report.verdict = if calls > 0 && report.criteria.iter().all(|c| c.passed) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    report
}

/// Run the security probes against the run's target. A target that cannot be reached at
/// that point (the load took it down) is itself a critical finding, not an exit 3: the load
/// figures are still worth a report.
async fn probe_security(
    cfg: &crate::security::SecurityConfig,
    target: &TargetSpec,
    stderr_log: &Arc<StderrLog>,
    progress: bool,
    warnings: &mut Vec<String>,
) -> Vec<crate::security::Finding> {
    if progress {
        crate::errln!(
            "mcpstorm: security probes {} the load",
            if cfg.when == When::Before {
                "before"
            } else {
                "after"
            }
        );
    }
    match crate::security::run_suite(target, cfg, stderr_log.clone()).await {
        Ok(outcome) => {
            warnings.push(format!(
                "{} requests sent by the security probes",
                outcome.requests_sent
            ));
            outcome.findings
        }
        Err(e) => vec![crate::security::Finding::unreachable(&e.to_string())],
    }
}

/// Where a relative output folder lands: beside the current directory.
pub fn default_out() -> PathBuf {
    Path::new("mcpstorm-out").to_path_buf()
}
