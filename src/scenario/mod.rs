//! The scenario file: TOML deserialized into raw structs (unknown keys refused), then
//! validated once into a [`Plan`]. Validation reports every problem at once, each naming the
//! file, the key, what was found and what is expected. Nothing downstream re-checks strings.

pub mod chaos;
pub mod security;

use crate::criteria::Criterion;
use crate::faults::FaultSpec;
use crate::target::launch::LaunchSpec;
use crate::target::{TargetSpec, header_map};
use crate::transport::stdio::StdioSpec;
use crate::workload::template::Template;
use crate::workload::{Executor, OpKind, OpSpec, Stage, Workload};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The largest templated random payload: 50 MB, the seeds' oversized-input case.
pub const MAX_RANDOM_BYTES: usize = 50 * 1024 * 1024;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: Option<String>,
    pub description: Option<String>,
    pub duration: Option<String>,
    /// With `--duration`, scale the fault schedule by new/old duration.
    pub scale_with_duration: Option<bool>,
    pub criteria: Option<Vec<String>>,
    pub target: Option<RawTarget>,
    pub workload: Option<RawWorkload>,
    pub mix: Option<Vec<RawOp>>,
    pub faults: Option<Vec<chaos::RawFault>>,
    pub recovery: Option<chaos::RawRecovery>,
    pub ledger: Option<chaos::RawLedger>,
    pub proxies: Option<Vec<chaos::RawProxy>>,
    pub alerts: Option<crate::alerts::RawAlerts>,
    /// The security and robustness probes, run with the load.
    pub security: Option<security::RawSecurity>,
    pub concurrency: Option<crate::concurrency::RawConcurrency>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub transport: Option<String>,
    pub command: Option<String>,
    pub args: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, String>>,
    pub cwd: Option<String>,
    pub url: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub protocol_version: Option<String>,
    pub launch: Option<chaos::RawLaunch>,
    /// Put mcpstorm's fault proxy between the clients and the server.
    pub proxy: Option<bool>,
    /// A custom WebSocket envelope (transport "websocket").
    pub framing: Option<crate::transport::framing::RawFraming>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    pub executor: Option<String>,
    pub vus: Option<u32>,
    pub start_vus: Option<u32>,
    pub stages: Option<Vec<RawStage>>,
    pub rate: Option<f64>,
    pub start_rate: Option<f64>,
    pub max_in_flight: Option<u32>,
    pub preallocate: Option<u32>,
    pub think_time: Option<String>,
    pub churn_every: Option<u64>,
    pub timeout: Option<String>,
    pub graceful_stop: Option<String>,
    pub allow_destructive: Option<bool>,
    pub exclude_tools: Option<Vec<String>>,
    /// Validate `structuredContent` against each tool's declared `outputSchema` (default true).
    pub check_output_schema: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    pub duration: String,
    pub target: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOp {
    pub op: String,
    pub weight: Option<u32>,
    pub tool: Option<String>,
    pub arguments: Option<toml::Value>,
    pub uri: Option<String>,
    pub prompt: Option<String>,
    pub timeout: Option<String>,
    /// An expression every answer must satisfy, such as `result == a + b`.
    pub check: Option<String>,
    /// A literal every answer must equal (as `result`, `structured` or `text`).
    pub expect: Option<toml::Value>,
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub source: String,
    pub target: TargetSpec,
    /// The protocol revision sessions speak, or `auto`.
    pub protocol: crate::session::Protocol,
    pub workload: Workload,
    /// `None`: discover the tools and generate arguments from their schemas.
    pub mix: Option<Vec<OpSpec>>,
    pub criteria: Vec<Criterion>,
    /// How mcpstorm starts and supervises an HTTP target, if it does.
    pub launch: Option<LaunchSpec>,
    pub faults: Vec<FaultSpec>,
    pub recovery: chaos::RecoveryConfig,
    /// Clients reach the target through a fault proxy named `target`.
    pub target_proxy: bool,
    /// Fault proxies in front of dependencies, by name.
    pub proxies: Vec<(String, std::net::SocketAddr)>,
    /// Writes to track and read back after the run.
    pub ledger: Option<crate::check::ledger::LedgerSpec>,
    /// Alert rules watched each second (the defaults unless the scenario says otherwise).
    pub alerts: crate::alerts::AlertConfig,
    /// The security probes to run with the load, if any (`[security]`).
    pub security: Option<crate::security::SecurityConfig>,
    /// Concurrency bug probes run before the load (`[concurrency]`).
    pub concurrency: Option<crate::concurrency::ConcurrencyPlan>,
    /// The scenario as resolved, for the report.
    pub resolved: serde_json::Value,
}

/// Command-line overrides, applied on top of the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub target: Option<TargetSpec>,
    pub protocol: Option<crate::session::Protocol>,
    pub duration: Option<Duration>,
    pub vus: Option<u32>,
}

/// Problems found while validating, all of them.
#[derive(Debug)]
pub struct Problems {
    pub source: String,
    pub list: Vec<String>,
}

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.list.len();
        writeln!(
            f,
            "{}: {} problem{} in the scenario:",
            self.source,
            n,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.list {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// Read and validate a scenario file.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Plan, Problems> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Problems {
        source: source.clone(),
        list: vec![format!("cannot read the file: {e}")],
    })?;
    parse(&text, &source, path.parent(), overrides)
}

/// Parse scenario text; `source` names it in errors; relative paths resolve from `base`.
pub fn parse(
    text: &str,
    source: &str,
    base: Option<&Path>,
    overrides: &Overrides,
) -> Result<Plan, Problems> {
    let raw: RawScenario = toml::from_str(text).map_err(|e| Problems {
        source: source.to_string(),
        list: vec![toml_error(text, &e)],
    })?;
    validate(raw, source, base, overrides)
}

fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_string();
    let hint = if msg.contains("unknown field `criteria`") {
        " (top-level keys such as `criteria` and `duration` must come before the first [table] in TOML)"
    } else {
        ""
    };
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {msg}{hint}")
        }
        None => format!("{msg}{hint}"),
    }
}

pub fn duration(s: &str, key: &str, problems: &mut Vec<String>) -> Option<Duration> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) => Some(d),
        Err(_) => {
            problems.push(format!(
                "`{key}` = \"{s}\" is not a duration; write it like \"500ms\", \"20s\" or \"2m\""
            ));
            None
        }
    }
}

fn validate(
    raw: RawScenario,
    source: &str,
    base: Option<&Path>,
    ov: &Overrides,
) -> Result<Plan, Problems> {
    let mut p = Vec::new();
    let rt = raw.target.clone().unwrap_or_default();
    let target = match &ov.target {
        Some(t) => Some(t.clone()),
        None => target_from(&rt, base, &mut p),
    };
    let protocol = match (&ov.protocol, &rt.protocol_version) {
        (Some(pv), _) => pv.clone(),
        (None, Some(v)) => crate::session::Protocol::parse(v).unwrap_or_else(|e| {
            p.push(format!("`target.protocol_version` = {e}"));
            Default::default()
        }),
        (None, None) => Default::default(),
    };
    let framing = match &target {
        Some(TargetSpec::WebSocket { framing, .. }) => framing.clone(),
        _ => None,
    };
    if framing.is_some() && rt.protocol_version.is_some() {
        p.push("`target.protocol_version` does not apply with `target.framing`: a custom envelope has no MCP lifecycle".into());
    }
    let run_duration = match (&ov.duration, &raw.duration) {
        (Some(d), _) => Some(*d),
        (None, Some(s)) => duration(s, "duration", &mut p),
        (None, None) => None,
    };
    let workload = workload_from(raw.workload.unwrap_or_default(), run_duration, ov, &mut p);
    let mix: Option<Vec<OpSpec>> = match raw.mix {
        None => None,
        Some(ops) if ops.is_empty() => {
            p.push("`mix` is empty; give at least one [[mix]] entry, or leave it out to call every tool".into());
            None
        }
        Some(ops) => Some(
            ops.into_iter()
                .enumerate()
                .filter_map(|(i, o)| op_from(o, i, &mut p))
                .collect(),
        ),
    };
    if let Some(f) = &framing {
        match &mix {
            None if !f.maps("tools/list") => p.push(format!("with `target.framing` and no [[mix]], mcpstorm needs tools/list to find the tools; the framing maps only {}: add [[mix]] entries, or map \"tools/list\" in [target.framing.requests]", f.methods().join(", "))),
            None => {}
            Some(ops) => {
                for (i, op) in ops.iter().enumerate() {
                    let method = op_method(&op.kind);
                    if !f.maps(method) {
                        p.push(format!("`mix[{i}].op` = \"{method}\" has no frame in `target.framing.requests`; it maps {}", f.methods().join(", ")));
                    }
                }
            }
        }
    }
    let launch_url = match &target {
        Some(TargetSpec::Sse { url, .. }) => Some(format!("sse+{url}")),
        _ => rt.url.clone(),
    };
    let launch = rt
        .launch
        .as_ref()
        .and_then(|l| chaos::launch_from(l, launch_url.as_deref(), base, &mut p));
    let proxies = chaos::proxies_from(raw.proxies.as_deref().unwrap_or_default(), &mut p);
    let target_proxy = rt.proxy.unwrap_or(false);
    let mut proxy_names: Vec<&str> = proxies.iter().map(|(n, _)| n.as_str()).collect();
    if target_proxy {
        proxy_names.push("target");
        if !matches!(
            &target,
            Some(
                TargetSpec::Http { .. }
                    | TargetSpec::Sse { .. }
                    | TargetSpec::WebSocket { .. }
                    | TargetSpec::Embedded { stdio: false }
            ) | None
        ) {
            p.push("`target.proxy` needs a network target (embedded, http, sse or websocket): a stdio server has no socket to stand in front of".into());
        }
    }
    let mut faults = chaos::faults_from(
        raw.faults.as_deref().unwrap_or_default(),
        &proxy_names,
        &mut p,
    );
    if raw.scale_with_duration == Some(true)
        && let (Some(new), Some(old)) = (
            ov.duration,
            raw.duration
                .as_deref()
                .and_then(|d| humantime::parse_duration(d).ok()),
        )
        && !old.is_zero()
    {
        chaos::scale(&mut faults, new.as_secs_f64() / old.as_secs_f64());
    }
    let recovery = chaos::recovery_from(&raw.recovery.unwrap_or_default(), &mut p);
    let ledger = raw
        .ledger
        .as_ref()
        .and_then(|l| chaos::ledger_from(l, &mut p));
    match (&target, &launch) {
        (
            Some(TargetSpec::Http { .. } | TargetSpec::Sse { .. } | TargetSpec::WebSocket { .. }),
            _,
        )
        | (None, _) => {}
        (Some(TargetSpec::Embedded { stdio: false }), Some(_)) => {
            p.push("`target.launch` does not apply to transport \"embedded\": mcpstorm starts its own server".into())
        }
        (Some(_), Some(_)) => p.push(
            "`target.launch` goes with a network transport (http, sse, websocket): a stdio server is started once per session already".into(),
        ),
        (Some(_), None) => {}
    }
    let supervised = matches!(
        (&target, &launch),
        (Some(TargetSpec::Embedded { stdio: false }), _)
            | (
                Some(
                    TargetSpec::Http { .. } | TargetSpec::Sse { .. } | TargetSpec::WebSocket { .. }
                ),
                Some(_)
            )
    );
    if faults.iter().any(|f| f.kind.needs_supervisor()) && !supervised {
        p.push("`faults` of kind kill, term, stop or restart need a server that mcpstorm starts and supervises: transport \"embedded\", or \"http\" with [target.launch]".into());
    }
    let alerts = crate::alerts::AlertConfig::from_raw(raw.alerts.as_ref(), &mut p);
    let security = raw
        .security
        .as_ref()
        .and_then(|s| security::security_from(s, base, &mut p));
    let mut criteria = Vec::new();
    for (i, c) in raw.criteria.unwrap_or_default().iter().enumerate() {
        match Criterion::parse(c) {
            Ok(c)
                if c.metric == crate::criteria::Metric::SecurityFailures
                    && raw.security.is_none()
                    && raw.concurrency.is_none() =>
            {
                p.push(format!(
                    "`criteria[{i}]` = \"{}\" needs a [security] or [concurrency] table: without one no probe runs",
                    c.text
                ));
            }
            Ok(c) => criteria.push(c),
            Err(e) => p.push(format!("`criteria[{i}]`: {e}")),
        }
    }
    let concurrency = raw
        .concurrency
        .as_ref()
        .map(|c| crate::concurrency::ConcurrencyPlan::from_raw(c, &mut p));
    match (target, workload) {
        (Some(target), Some(workload)) if p.is_empty() => {
            let name = raw.name.unwrap_or_else(|| "scenario".into());
            let resolved = serde_json::json!({
                "name": name,
                "description": raw.description,
                "source": source,
                "target": target,
                "protocol_version": protocol,
                "workload": workload,
                "mix": mix.as_ref().map(|m: &Vec<OpSpec>| m.iter().map(OpSpec::describe).collect::<Vec<_>>()),
                "criteria": criteria.iter().map(|c| c.text.clone()).collect::<Vec<_>>(),
                "launch": launch,
                "faults": faults,
                "recovery": recovery,
                "alerts": alerts,
                "security": security,
                "concurrency": concurrency,
                "ledger": ledger.as_ref().map(|l| serde_json::json!({"write": l.write.tool, "read": l.read.tool, "weight": l.weight})),
            });
            Ok(Plan {
                name,
                source: source.to_string(),
                target,
                protocol,
                workload,
                mix,
                criteria,
                launch,
                faults,
                recovery,
                ledger,
                target_proxy,
                proxies,
                alerts,
                security,
                concurrency,
                resolved,
            })
        }
        _ => Err(Problems {
            source: source.to_string(),
            list: p,
        }),
    }
}

/// The MCP method an operation sends.
fn op_method(kind: &OpKind) -> &'static str {
    match kind {
        OpKind::CallTool { .. } => "tools/call",
        OpKind::ListTools => "tools/list",
        OpKind::ReadResource { .. } => "resources/read",
        OpKind::GetPrompt { .. } => "prompts/get",
        OpKind::Ping => "ping",
    }
}

fn target_from(t: &RawTarget, base: Option<&Path>, p: &mut Vec<String>) -> Option<TargetSpec> {
    let transport = t.transport.clone().unwrap_or_else(|| {
        let ws_url = t
            .url
            .as_deref()
            .is_some_and(|u| u.starts_with("ws://") || u.starts_with("wss://"));
        if t.framing.is_some() || ws_url {
            "websocket".into()
        } else if t.url.is_some() {
            "http".into()
        } else if t.command.is_some() {
            "stdio".into()
        } else {
            "embedded".into()
        }
    });
    let misplaced = |keys: &[(&str, bool)], p: &mut Vec<String>| {
        for (k, present) in keys {
            if *present {
                p.push(format!(
                    "`target.{k}` does not apply to transport \"{transport}\""
                ));
            }
        }
    };
    if t.framing.is_some() && transport != "websocket" {
        p.push(format!("`target.framing` does not apply to transport \"{transport}\"; it describes a custom WebSocket envelope (transport = \"websocket\")"));
    }
    match transport.as_str() {
        "embedded" | "embedded-stdio" => {
            misplaced(
                &[("command", t.command.is_some()), ("url", t.url.is_some())],
                p,
            );
            Some(TargetSpec::Embedded {
                stdio: transport == "embedded-stdio",
            })
        }
        "stdio" => {
            misplaced(
                &[("url", t.url.is_some()), ("headers", t.headers.is_some())],
                p,
            );
            let Some(command) = t.command.clone() else {
                p.push("`target.command` is missing: transport \"stdio\" needs the command that starts the server".into());
                return None;
            };
            let cwd = t.cwd.as_ref().map(|c| match base {
                Some(b) if Path::new(c).is_relative() => b.join(c),
                _ => PathBuf::from(c),
            });
            Some(TargetSpec::Stdio(StdioSpec {
                command,
                args: t.args.clone().unwrap_or_default(),
                env: t.env.clone().unwrap_or_default(),
                cwd,
            }))
        }
        "http" | "streamable_http" | "streamable-http" => {
            misplaced(
                &[("command", t.command.is_some()), ("args", t.args.is_some())],
                p,
            );
            let Some(url) = t.url.clone() else {
                p.push("`target.url` is missing: transport \"http\" needs the server's endpoint, like \"http://127.0.0.1:8000/mcp\"".into());
                return None;
            };
            if let Err(e) = reqwest::Url::parse(&url) {
                p.push(format!("`target.url` = \"{url}\" is not a valid URL: {e}"));
            }
            let headers = t.headers.clone().unwrap_or_default();
            if let Err(e) = header_map(&headers, "`target.headers`") {
                p.push(e);
            }
            Some(TargetSpec::Http { url, headers })
        }
        "sse" | "websocket" => {
            misplaced(
                &[("command", t.command.is_some()), ("args", t.args.is_some())],
                p,
            );
            let example = if transport == "sse" {
                "\"http://127.0.0.1:3001/sse\" (the event stream)"
            } else {
                "\"ws://127.0.0.1:9000/ws\""
            };
            let Some(url) = t.url.clone() else {
                p.push(format!("`target.url` is missing: transport \"{transport}\" needs the server's URL, like {example}"));
                return None;
            };
            let schemes: &[&str] = if transport == "sse" {
                &["http", "https"]
            } else {
                &["ws", "wss"]
            };
            match reqwest::Url::parse(&url) {
                Err(e) => p.push(format!("`target.url` = \"{url}\" is not a valid URL: {e}")),
                Ok(u) if !schemes.contains(&u.scheme()) => p.push(format!(
                    "`target.url` = \"{url}\": transport \"{transport}\" needs a {} URL, like {example}",
                    schemes.join(" or ")
                )),
                Ok(_) => {}
            }
            let headers = t.headers.clone().unwrap_or_default();
            if let Err(e) = header_map(&headers, "`target.headers`") {
                p.push(e);
            }
            if transport == "sse" {
                return Some(TargetSpec::Sse { url, headers });
            }
            let env = |k: &str| std::env::var(k).ok();
            let framing = t
                .framing
                .as_ref()
                .and_then(|f| crate::transport::framing::Framing::from_raw(f, &env, p))
                .map(std::sync::Arc::new);
            Some(TargetSpec::WebSocket {
                url,
                headers,
                framing,
            })
        }
        other => {
            p.push(format!("`target.transport` = \"{other}\" is not known; use \"embedded\", \"embedded-stdio\", \"stdio\", \"http\", \"sse\" or \"websocket\""));
            None
        }
    }
}

fn workload_from(
    w: RawWorkload,
    run_duration: Option<Duration>,
    ov: &Overrides,
    p: &mut Vec<String>,
) -> Option<Workload> {
    let dur = |s: &Option<String>, key: &str, default: Duration, p: &mut Vec<String>| {
        s.as_ref()
            .and_then(|s| duration(s, key, p))
            .unwrap_or(default)
    };
    let timeout = dur(&w.timeout, "workload.timeout", Duration::from_secs(10), p);
    let think_time = dur(&w.think_time, "workload.think_time", Duration::ZERO, p);
    let graceful_stop = dur(
        &w.graceful_stop,
        "workload.graceful_stop",
        Duration::from_secs(5),
        p,
    );
    if timeout.is_zero() {
        p.push("`workload.timeout` must be more than 0".into());
    }
    let stages = |p: &mut Vec<String>| -> Option<Vec<Stage>> {
        let raw = w.stages.as_ref()?;
        if raw.is_empty() {
            p.push(
                "`workload.stages` is empty; give at least one { duration = \"10s\", target = N }"
                    .into(),
            );
        }
        let mut out = Vec::new();
        for (i, s) in raw.iter().enumerate() {
            if s.target < 0.0 || !s.target.is_finite() {
                p.push(format!(
                    "`workload.stages[{i}].target` = {} must be 0 or more",
                    s.target
                ));
            }
            if let Some(d) = duration(&s.duration, &format!("workload.stages[{i}].duration"), p) {
                out.push(Stage {
                    duration: d,
                    target: s.target,
                });
            }
        }
        Some(out)
    };
    let executor_name = w.executor.clone().unwrap_or_else(|| {
        match (w.rate.is_some(), w.stages.is_some()) {
            (true, _) => "constant-arrival-rate",
            (false, true) => "ramping-vus",
            _ => "constant-vus",
        }
        .to_string()
    });
    let need_duration = |p: &mut Vec<String>| -> Option<Duration> {
        match run_duration {
            Some(d) if !d.is_zero() => Some(d),
            Some(_) => {
                p.push("`duration` must be more than 0".into());
                None
            }
            None => {
                p.push(format!("`duration` is missing: executor \"{executor_name}\" runs for a set time; add duration = \"30s\" at the top of the file (or pass --duration)"));
                None
            }
        }
    };
    let max_in_flight = w.max_in_flight.unwrap_or(100);
    if max_in_flight == 0 {
        p.push("`workload.max_in_flight` must be at least 1".into());
    }
    let preallocate = w
        .preallocate
        .unwrap_or(max_in_flight.min(10))
        .min(max_in_flight);
    let executor = match executor_name.as_str() {
        "constant-vus" => {
            let vus = ov.vus.or(w.vus).unwrap_or(10);
            if vus == 0 {
                p.push("`workload.vus` must be at least 1".into());
            }
            need_duration(p).map(|duration| Executor::ConstantVus { vus, duration })
        }
        "ramping-vus" => {
            let Some(stages) = stages(p) else {
                p.push("`workload.stages` is missing: executor \"ramping-vus\" needs stages = [{ duration = \"10s\", target = 20 }, ...]".into());
                return None;
            };
            Some(Executor::RampingVus {
                start_vus: w.start_vus.unwrap_or(0),
                stages,
            })
        }
        "constant-arrival-rate" => {
            let Some(rate) = w.rate else {
                p.push("`workload.rate` is missing: executor \"constant-arrival-rate\" needs the arrivals per second".into());
                return None;
            };
            if rate <= 0.0 || !rate.is_finite() {
                p.push(format!(
                    "`workload.rate` = {rate} must be more than 0 (arrivals per second)"
                ));
            }
            need_duration(p).map(|duration| Executor::ConstantArrivalRate {
                rate,
                duration,
                max_in_flight,
                preallocate,
            })
        }
        "ramping-arrival-rate" => {
            let Some(stages) = stages(p) else {
                p.push("`workload.stages` is missing: executor \"ramping-arrival-rate\" needs stages = [{ duration = \"10s\", target = 100 }, ...] (target in arrivals per second)".into());
                return None;
            };
            Some(Executor::RampingArrivalRate {
                start_rate: w.start_rate.unwrap_or(0.0),
                stages,
                max_in_flight,
                preallocate,
            })
        }
        other => {
            p.push(format!("`workload.executor` = \"{other}\" is not known; use constant-vus, ramping-vus, constant-arrival-rate or ramping-arrival-rate"));
            return None;
        }
    };
    let executor = executor?;
    let is_open = matches!(
        executor,
        Executor::ConstantArrivalRate { .. } | Executor::RampingArrivalRate { .. }
    );
    if is_open && (w.vus.is_some() || w.start_vus.is_some()) {
        p.push(format!("`workload.vus` does not apply to executor \"{executor_name}\"; it uses `rate` and `max_in_flight`"));
    }
    if !is_open && (w.rate.is_some() || w.max_in_flight.is_some()) {
        p.push(format!("`workload.rate`/`max_in_flight` do not apply to executor \"{executor_name}\"; use an arrival-rate executor"));
    }
    Some(Workload {
        executor,
        think_time,
        churn_every: w.churn_every.unwrap_or(0),
        timeout,
        graceful_stop,
        allow_destructive: w.allow_destructive.unwrap_or(false),
        exclude_tools: w.exclude_tools.unwrap_or_default(),
        check_output_schema: w.check_output_schema.unwrap_or(true),
    })
}

fn op_from(o: RawOp, i: usize, p: &mut Vec<String>) -> Option<OpSpec> {
    let key = |k: &str| format!("mix[{i}].{k}");
    let timeout = o
        .timeout
        .as_ref()
        .and_then(|t| duration(t, &key("timeout"), p));
    let weight = o.weight.unwrap_or(1);
    if weight == 0 {
        p.push(format!(
            "`{}` is 0; leave the entry out instead",
            key("weight")
        ));
    }
    let template = |p: &mut Vec<String>| -> Template {
        match &o.arguments {
            None => Template::empty_object(),
            Some(v) => match Template::compile(v, &key("arguments")) {
                Ok(t) => t,
                Err(e) => {
                    p.push(e);
                    Template::empty_object()
                }
            },
        }
    };
    let unused = |keys: &[(&str, bool)], p: &mut Vec<String>| {
        for (k, present) in keys {
            if *present {
                p.push(format!("`{}` does not apply to op \"{}\"", key(k), o.op));
            }
        }
    };
    let kind = match o.op.as_str() {
        "tools/call" => {
            unused(
                &[("uri", o.uri.is_some()), ("prompt", o.prompt.is_some())],
                p,
            );
            let Some(tool) = o.tool.clone() else {
                p.push(format!(
                    "`{}` is missing: op \"tools/call\" needs the tool's name",
                    key("tool")
                ));
                return None;
            };
            OpKind::CallTool {
                tool,
                arguments: template(p),
            }
        }
        "tools/list" | "ping" => {
            unused(
                &[
                    ("tool", o.tool.is_some()),
                    ("uri", o.uri.is_some()),
                    ("arguments", o.arguments.is_some()),
                    ("prompt", o.prompt.is_some()),
                ],
                p,
            );
            if o.op == "ping" {
                OpKind::Ping
            } else {
                OpKind::ListTools
            }
        }
        "resources/read" => {
            unused(
                &[
                    ("tool", o.tool.is_some()),
                    ("arguments", o.arguments.is_some()),
                    ("prompt", o.prompt.is_some()),
                ],
                p,
            );
            let Some(uri) = o.uri.clone() else {
                p.push(format!(
                    "`{}` is missing: op \"resources/read\" needs the resource's uri",
                    key("uri")
                ));
                return None;
            };
            OpKind::ReadResource { uri }
        }
        "prompts/get" => {
            unused(&[("tool", o.tool.is_some()), ("uri", o.uri.is_some())], p);
            let Some(prompt) = o.prompt.clone() else {
                p.push(format!(
                    "`{}` is missing: op \"prompts/get\" needs the prompt's name",
                    key("prompt")
                ));
                return None;
            };
            OpKind::GetPrompt {
                name: prompt,
                arguments: template(p),
            }
        }
        other => {
            p.push(format!("`{}` = \"{other}\" is not an operation; use tools/call, tools/list, resources/read, prompts/get or ping", key("op")));
            return None;
        }
    };
    let check = answer_check(&o, i, p);
    Some(OpSpec {
        weight,
        kind,
        timeout,
        check,
    })
}

/// `check` (an expression, parsed now) and `expect` (a literal) of one `[[mix]]` entry.
fn answer_check(
    o: &RawOp,
    i: usize,
    p: &mut Vec<String>,
) -> Option<std::sync::Arc<crate::check::answer::AnswerCheck>> {
    if o.check.is_none() && o.expect.is_none() {
        return None;
    }
    if matches!(o.op.as_str(), "ping") {
        p.push(format!(
            "`mix[{i}].check`/`expect` do not apply to op \"ping\": its answer is always empty"
        ));
        return None;
    }
    let names: Vec<String> = match &o.arguments {
        Some(toml::Value::Table(t)) => t.keys().cloned().collect(),
        _ => Vec::new(),
    };
    let expr = match &o.check {
        None => None,
        Some(src) => match crate::check::expr::Expr::parse(src, &names) {
            Ok(e) => Some(e),
            Err(e) => {
                p.push(format!(
                    "`mix[{i}].check` = \"{src}\": {e}\n      {src}\n      {}^",
                    " ".repeat(e.column.saturating_sub(1))
                ));
                None
            }
        },
    };
    let expect = o
        .expect
        .as_ref()
        .map(|v| serde_json::to_value(v).unwrap_or(serde_json::Value::Null));
    if o.check.is_some() && expr.is_none() {
        return None;
    }
    Some(std::sync::Arc::new(crate::check::answer::AnswerCheck {
        expect,
        expr,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Result<Plan, Problems> {
        parse(text, "s.toml", None, &Overrides::default())
    }

    #[test]
    fn a_full_scenario_validates() {
        let p = plan(
            r#"
            name = "t"
            duration = "5s"
            criteria = ["p95 < 1s", "success_rate >= 0.99"]
            [target]
            url = "http://127.0.0.1:9/mcp"
            headers = { Authorization = "Bearer x" }
            [workload]
            vus = 3
            [[mix]]
            op = "tools/call"
            tool = "echo"
            weight = 2
            arguments = { message = "hi {{vu}} {{seq}}" }
            [[mix]]
            op = "ping"
            "#,
        )
        .unwrap();
        assert_eq!(p.criteria.len(), 2);
        assert!(matches!(
            p.workload.executor,
            Executor::ConstantVus { vus: 3, .. }
        ));
        assert_eq!(p.mix.unwrap().len(), 2);
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let e = plan(
            r#"
            duration = "five"
            criteria = ["p95 <"]
            [workload]
            executor = "constant-vus"
            timeout = "0s"
            [[mix]]
            op = "tools/call"
            [[mix]]
            op = "tools/frobnicate"
            "#,
        )
        .unwrap_err();
        let all = e.to_string();
        for needle in [
            "`duration` = \"five\"",
            "criteria[0]",
            "workload.timeout",
            "mix[0].tool",
            "mix[1].op",
        ] {
            assert!(all.contains(needle), "missing {needle} in:\n{all}");
        }
        assert!(all.starts_with("s.toml: "), "{all}");
    }

    #[test]
    fn unknown_keys_name_the_line() {
        let e = plan("duration = \"1s\"\n[workload]\nvuz = 3\n").unwrap_err();
        let all = e.to_string();
        assert!(all.contains("line 3") && all.contains("vuz"), "{all}");
        let e = plan("[workload]\nvus = 1\ncriteria = [\"p95 < 1s\"]\n").unwrap_err();
        assert!(
            e.to_string().contains("must come before the first [table]"),
            "{e}"
        );
    }

    #[test]
    fn checks_parse_once_and_bad_ones_name_key_and_column() {
        let p = plan(
            r#"
            duration = "1s"
            [[mix]]
            op = "tools/call"
            tool = "add"
            arguments = { a = "{{seq}}", b = 2 }
            check = "result == a + b and not isError"
            [[mix]]
            op = "tools/call"
            tool = "echo"
            arguments = { message = "hi" }
            expect = "hi"
            "#,
        )
        .unwrap();
        let mix = p.mix.unwrap();
        assert!(mix[0].check.as_ref().unwrap().expr.is_some());
        assert_eq!(
            mix[1].check.as_ref().unwrap().expect,
            Some(serde_json::json!("hi"))
        );
        let e = plan(
            r#"
            duration = "1s"
            [[mix]]
            op = "tools/call"
            tool = "add"
            arguments = { a = 1, b = 2 }
            check = "result == a + c"
            [[mix]]
            op = "ping"
            expect = 1
            "#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`mix[0].check`")
                && e.contains("column 15")
                && e.contains("unknown name `c`"),
            "{e}"
        );
        assert!(
            e.contains("`mix[1].check`/`expect` do not apply to op \"ping\""),
            "{e}"
        );
    }

    #[test]
    fn open_model_needs_rate() {
        let e = plan("duration = \"1s\"\n[workload]\nexecutor = \"constant-arrival-rate\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("workload.rate"), "{e}");
    }
}

#[cfg(test)]
mod preset_tests {
    use super::*;

    #[test]
    fn the_day_long_preset_scales_to_any_duration() {
        let text = include_str!("../../presets/production-24h.toml");
        let day = parse(text, "preset", None, &Overrides::default()).unwrap();
        assert_eq!(day.faults[0].every, Some(Duration::from_secs(7200)));
        let ov = Overrides {
            duration: Some(Duration::from_secs(120)),
            ..Default::default()
        };
        let short = parse(text, "preset", None, &ov).unwrap();
        assert_eq!(
            short.workload.executor.total_duration(),
            Duration::from_secs(120)
        );
        let kill = &short.faults[0];
        assert_eq!(
            kill.at,
            Duration::from_millis(2500),
            "30 min of 24 h is 2.5 s of 2 min"
        );
        assert_eq!(kill.every, Some(Duration::from_secs(10)));
        assert_eq!(
            short.faults[1].duration,
            Duration::from_secs(1),
            "a 30 s hang keeps at least 1 s"
        );
        assert_eq!(short.criteria.len(), 5);
    }
}
