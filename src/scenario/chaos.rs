//! The chaos parts of a scenario: how mcpstorm starts the target (`[target.launch]`), the
//! fault schedule (`[[faults]]`) and the recovery probe (`[recovery]`), validated into typed
//! specs with every problem named by its key.

use crate::check::ledger::{LedgerOp, LedgerSpec};
use crate::faults::{FaultKind, FaultSpec};
use crate::target::launch::{LaunchSpec, Readiness, RestartPolicy};
use crate::workload::template::Template;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawLaunch {
    pub command: Option<String>,
    pub args: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, String>>,
    pub cwd: Option<String>,
    pub ready: Option<String>,
    pub ready_status: Option<u16>,
    pub ready_timeout: Option<String>,
    pub restart: Option<String>,
    pub backoff: Option<String>,
    pub backoff_max: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    pub kind: String,
    pub megabytes: Option<u64>,
    pub threads: Option<u32>,
    pub run: Option<String>,
    pub undo: Option<String>,
    pub probe: Option<String>,
    pub proxy: Option<String>,
    pub toxic: Option<String>,
    pub stream: Option<String>,
    pub toxicity: Option<f64>,
    pub attributes: Option<BTreeMap<String, f64>>,
    pub at: Option<String>,
    pub every: Option<String>,
    pub jitter: Option<String>,
    pub duration: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRecovery {
    pub probe_interval: Option<String>,
    pub probe_timeout: Option<String>,
}

/// How detection and recovery are timed.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct RecoveryConfig {
    #[serde(serialize_with = "crate::workload::ser_duration")]
    pub probe_interval: Duration,
    #[serde(serialize_with = "crate::workload::ser_duration")]
    pub probe_timeout: Duration,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            probe_interval: Duration::from_millis(100),
            probe_timeout: Duration::from_secs(1),
        }
    }
}

fn dur(s: &Option<String>, key: &str, default: Duration, p: &mut Vec<String>) -> Duration {
    s.as_ref()
        .and_then(|s| super::duration(s, key, p))
        .unwrap_or(default)
}

pub fn restart_policy(s: &str, key: &str, p: &mut Vec<String>) -> RestartPolicy {
    match s {
        "never" => RestartPolicy::Never,
        "on-failure" => RestartPolicy::OnFailure,
        "always" => RestartPolicy::Always,
        other => {
            p.push(format!("`{key}` = \"{other}\" is not a restart policy; use \"never\", \"on-failure\" or \"always\""));
            RestartPolicy::OnFailure
        }
    }
}

/// `url`: the target's endpoint, for `ready = "mcp"`.
pub fn launch_from(
    l: &RawLaunch,
    url: Option<&str>,
    base: Option<&Path>,
    p: &mut Vec<String>,
) -> Option<LaunchSpec> {
    let command = l.command.clone();
    if command.is_none() {
        p.push("`target.launch.command` is missing: the command that starts the server".into());
    }
    let ready = match l.ready.as_deref() {
        Some(r) if r.starts_with("http://") || r.starts_with("https://") => Some(Readiness::Http {
            url: r.to_string(),
            status: l.ready_status.unwrap_or(200),
        }),
        Some("mcp") => match url {
            Some(u) => Some(Readiness::Mcp { url: u.to_string() }),
            None => {
                p.push("`target.launch.ready` = \"mcp\" needs `target.url`: the endpoint to shake hands with".into());
                None
            }
        },
        Some(r) if r.starts_with("tcp://") => Some(Readiness::Tcp {
            addr: r.trim_start_matches("tcp://").to_string(),
        }),
        Some(r) => {
            p.push(format!("`target.launch.ready` = \"{r}\": give tcp://HOST:PORT, an http:// URL that answers when the server is ready, or \"mcp\" (an MCP handshake at target.url)"));
            None
        }
        None => {
            p.push("`target.launch.ready` is missing: how to know the server is up, tcp://127.0.0.1:PORT or http://127.0.0.1:PORT/health".into());
            None
        }
    };
    let backoff = dur(
        &l.backoff,
        "target.launch.backoff",
        Duration::from_millis(200),
        p,
    );
    let backoff_max = dur(
        &l.backoff_max,
        "target.launch.backoff_max",
        Duration::from_secs(10),
        p,
    );
    if backoff > backoff_max {
        p.push("`target.launch.backoff` is larger than `target.launch.backoff_max`".into());
    }
    let ready_timeout = dur(
        &l.ready_timeout,
        "target.launch.ready_timeout",
        Duration::from_secs(30),
        p,
    );
    let restart = restart_policy(
        l.restart.as_deref().unwrap_or("on-failure"),
        "target.launch.restart",
        p,
    );
    Some(LaunchSpec {
        command: command?,
        args: l.args.clone().unwrap_or_default(),
        env: l.env.clone().unwrap_or_default(),
        cwd: l.cwd.as_ref().map(|c| match base {
            Some(b) if Path::new(c).is_relative() => b.join(c),
            _ => PathBuf::from(c),
        }),
        ready: ready?,
        ready_timeout,
        restart,
        backoff,
        backoff_max,
    })
}

/// `proxies`: the names network faults may use (`target` when the target is proxied).
pub fn faults_from(raw: &[RawFault], proxies: &[&str], p: &mut Vec<String>) -> Vec<FaultSpec> {
    let mut out = Vec::new();
    for (i, f) in raw.iter().enumerate() {
        let key = |k: &str| format!("faults[{i}].{k}");
        let kind = match f.kind.as_str() {
            "kill" => FaultKind::Kill,
            "term" => FaultKind::Term,
            "stop" => FaultKind::Stop,
            "restart" => FaultKind::Restart,
            "memory" => match f.megabytes {
                Some(m) if m > 0 => FaultKind::Memory { megabytes: m },
                _ => {
                    p.push(format!(
                        "`{}` is missing: a memory fault takes megabytes = N (more than 0)",
                        key("megabytes")
                    ));
                    continue;
                }
            },
            "cpu" => FaultKind::Cpu {
                threads: f.threads.unwrap_or(1).max(1),
            },
            "network" => {
                let Some(toxic) = &f.toxic else {
                    p.push(format!(
                        "`{}` is missing: a network fault names a toxic ({})",
                        key("toxic"),
                        crate::proxy::toxics::KINDS
                    ));
                    continue;
                };
                let proxy = f.proxy.clone().unwrap_or_else(|| "target".into());
                if !proxies.contains(&proxy.as_str()) {
                    p.push(format!(
                        "`{}` = \"{proxy}\" is not a proxy of this run; use \"target\" (with target.proxy = true) or the name of a [[proxies]] entry",
                        key("proxy")
                    ));
                }
                match crate::proxy::toxics::Toxic::parse(
                    toxic,
                    toxic,
                    f.stream.as_deref(),
                    f.toxicity,
                    &f.attributes.clone().unwrap_or_default(),
                    &format!("faults[{i}]"),
                ) {
                    Ok(t) => FaultKind::Network { proxy, toxic: t },
                    Err(e) => {
                        p.push(e);
                        continue;
                    }
                }
            }
            "command" => match &f.run {
                Some(run) => FaultKind::Command {
                    run: run.clone(),
                    undo: f.undo.clone(),
                    probe: f.probe.clone(),
                },
                None => {
                    p.push(format!(
                        "`{}` is missing: a command fault runs a shell command, like run = \"docker compose kill redis\"",
                        key("run")
                    ));
                    continue;
                }
            },
            other => {
                p.push(format!(
                    "`{}` = \"{other}\" is not a fault; use kill, term, stop, restart, memory, cpu, command or network",
                    key("kind")
                ));
                continue;
            }
        };
        for (field, present, applies) in [
            (
                "megabytes",
                f.megabytes.is_some(),
                matches!(kind, FaultKind::Memory { .. }),
            ),
            (
                "threads",
                f.threads.is_some(),
                matches!(kind, FaultKind::Cpu { .. }),
            ),
            (
                "run",
                f.run.is_some(),
                matches!(kind, FaultKind::Command { .. }),
            ),
            (
                "undo",
                f.undo.is_some(),
                matches!(kind, FaultKind::Command { .. }),
            ),
            (
                "probe",
                f.probe.is_some(),
                matches!(kind, FaultKind::Command { .. }),
            ),
            (
                "proxy",
                f.proxy.is_some(),
                matches!(kind, FaultKind::Network { .. }),
            ),
            (
                "stream",
                f.stream.is_some(),
                matches!(kind, FaultKind::Network { .. }),
            ),
            (
                "toxicity",
                f.toxicity.is_some(),
                matches!(kind, FaultKind::Network { .. }),
            ),
            (
                "attributes",
                f.attributes.is_some(),
                matches!(kind, FaultKind::Network { .. }),
            ),
        ] {
            if present && !applies {
                p.push(format!(
                    "`{}` does not apply to a {} fault",
                    key(field),
                    f.kind
                ));
            }
        }
        let at =
            f.at.as_ref()
                .and_then(|s| super::duration(s, &key("at"), p));
        if f.at.is_none() {
            p.push(format!(
                "`{}` is missing: when the fault happens, like \"5s\" into the run",
                key("at")
            ));
        }
        let every = f
            .every
            .as_ref()
            .and_then(|s| super::duration(s, &key("every"), p));
        if every.is_some_and(|e| e.is_zero()) {
            p.push(format!("`{}` must be more than 0", key("every")));
        }
        let duration = dur(&f.duration, &key("duration"), Duration::ZERO, p);
        if kind.lasts() && duration.is_zero() {
            p.push(format!(
                "`{}` is missing: a {} fault lasts for a duration, like \"3s\"",
                key("duration"),
                f.kind
            ));
        }
        if !kind.lasts() && f.duration.is_some() {
            p.push(format!(
                "`{}` does not apply to a {} fault",
                key("duration"),
                f.kind
            ));
        }
        let jitter = dur(&f.jitter, &key("jitter"), Duration::ZERO, p);
        if let Some(at) = at {
            out.push(FaultSpec {
                kind,
                at,
                every,
                jitter,
                duration,
            });
        }
    }
    out
}

/// Stretch or squeeze a fault schedule to a run `ratio` times as long; lasting faults keep
/// at least one second, so a squeezed day still hangs the server for a visible moment.
pub fn scale(faults: &mut [FaultSpec], ratio: f64) {
    for f in faults {
        f.at = f.at.mul_f64(ratio);
        f.every = f
            .every
            .map(|e| e.mul_f64(ratio).max(Duration::from_millis(100)));
        f.jitter = f.jitter.mul_f64(ratio);
        if f.kind.lasts() {
            f.duration = f.duration.mul_f64(ratio).max(Duration::from_secs(1));
        }
    }
}

pub fn recovery_from(r: &RawRecovery, p: &mut Vec<String>) -> RecoveryConfig {
    let d = RecoveryConfig::default();
    let c = RecoveryConfig {
        probe_interval: dur(
            &r.probe_interval,
            "recovery.probe_interval",
            d.probe_interval,
            p,
        ),
        probe_timeout: dur(
            &r.probe_timeout,
            "recovery.probe_timeout",
            d.probe_timeout,
            p,
        ),
    };
    if c.probe_interval < Duration::from_millis(10) {
        p.push("`recovery.probe_interval` must be at least 10ms".into());
    }
    c
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLedgerOp {
    pub tool: String,
    pub arguments: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLedger {
    pub write: RawLedgerOp,
    pub read: RawLedgerOp,
    pub expect: Option<String>,
    pub weight: Option<u32>,
}

fn uses_seq(t: &Template) -> bool {
    match t {
        Template::SeqNumber => true,
        Template::Text(pieces) => pieces
            .iter()
            .any(|p| matches!(p, crate::workload::template::Piece::Seq)),
        Template::Object(fields) => fields.iter().any(|(_, t)| uses_seq(t)),
        Template::Array(items) => items.iter().any(uses_seq),
        Template::Literal(_) | Template::VuNumber => false,
    }
}

pub fn ledger_from(l: &RawLedger, p: &mut Vec<String>) -> Option<LedgerSpec> {
    let op = |o: &RawLedgerOp, key: &str, p: &mut Vec<String>| -> Option<LedgerOp> {
        let arguments = match &o.arguments {
            Some(v) => Template::compile(v, &format!("{key}.arguments"))
                .map_err(|e| p.push(e))
                .ok()?,
            None => Template::empty_object(),
        };
        if !uses_seq(&arguments) {
            p.push(format!("`{key}.arguments` must use {{{{seq}}}}: it is the write's unique id, and the read must name the same id"));
        }
        Some(LedgerOp {
            tool: o.tool.clone(),
            arguments,
        })
    };
    let write = op(&l.write, "ledger.write", p);
    let read = op(&l.read, "ledger.read", p);
    let expect = match &l.expect {
        Some(e) => Template::compile(&toml::Value::String(e.clone()), "ledger.expect")
            .map_err(|e| p.push(e))
            .ok(),
        None => None,
    };
    let weight = l.weight.unwrap_or(1);
    if weight == 0 {
        p.push("`ledger.weight` must be at least 1".into());
    }
    Some(LedgerSpec {
        write: write?,
        read: read?,
        expect,
        weight,
    })
}

/// A fault proxy in front of a dependency; `{{proxy.NAME}}` in `[target.launch]` becomes
/// its address, so the server reaches the dependency through it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    pub name: String,
    pub upstream: String,
}

pub fn proxies_from(raw: &[RawProxy], p: &mut Vec<String>) -> Vec<(String, std::net::SocketAddr)> {
    let mut out: Vec<(String, std::net::SocketAddr)> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        if r.name == "target" || r.name.is_empty() || out.iter().any(|(n, _)| n == &r.name) {
            p.push(format!(
                "`proxies[{i}].name` = \"{}\": give each proxy its own name (not \"target\")",
                r.name
            ));
            continue;
        }
        match r.upstream.parse() {
            Ok(addr) => out.push((r.name.clone(), addr)),
            Err(_) => p.push(format!("`proxies[{i}].upstream` = \"{}\" is not an address; write it like \"127.0.0.1:6379\"", r.upstream)),
        }
    }
    out
}
