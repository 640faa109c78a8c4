//! The report: the run's figures in the versioned JSON contract of DESIGN.md, and the ways
//! to show it (the final summary table here; JSON written by `write_json`).
//!
//! The report is filled from the recorder once, at the end; nothing here computes a figure
//! that the recorder did not produce.

pub mod compare;
pub mod html;
pub mod junit;
pub mod num;
pub mod summary;

use crate::criteria::CriterionResult;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const SCHEMA_VERSION: u32 = 1;

/// The `--out` folder, made (with its parents) before anything runs, so a folder that
/// cannot be written ends the command at once, with the folder and the flag named.
pub fn create_out_dir(out: &Path) -> Result<(), crate::error::Error> {
    std::fs::create_dir_all(out).map_err(|source| crate::error::Error::Io {
        what: format!("creating the output folder {} (--out)", out.display()),
        source,
    })
}

/// Now, as a report's `started_at` (RFC 3339, UTC).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `part` out of `whole` as a fraction, `None` when there is no `whole`: the one definition
/// of a rate that the report, the criteria, the alerts and the live views share.
pub fn fraction(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool_version: String,
    pub started_at: String,
    pub duration_s: f64,
    pub scenario: serde_json::Value,
    pub target: TargetReport,
    pub totals: Totals,
    pub latency_ms: LatencyReport,
    pub errors: Vec<ErrorReport>,
    pub series: Vec<SecondPoint>,
    #[serde(default)]
    pub faults: Vec<FaultRecord>,
    #[serde(default)]
    pub recoveries: Vec<RecoveryRecord>,
    /// Growth of the supervised server's RSS, open files and threads per hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaks: Option<crate::leaks::LeakReport>,
    /// The server process mcpstorm started and supervised, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<SupervisorReport>,
    #[serde(default)]
    pub checks: Checks,
    #[serde(default)]
    pub security: Vec<crate::security::Finding>,
    /// Alerts raised during the run by the scenario's rules (or the default rules).
    #[serde(default)]
    pub alerts: Vec<AlertRecord>,
    pub client: ClientReport,
    pub warnings: Vec<String>,
    pub criteria: Vec<CriterionResult>,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Fail,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TargetReport {
    pub transport: String,
    pub description: String,
    pub server_name: String,
    pub server_version: String,
    pub protocol_version: String,
    /// How sessions started: `session` (initialize), `stateless` (server/discover, 2026-07-28)
    /// or `framing` (a custom WebSocket envelope).
    #[serde(default)]
    pub era: String,
    pub capabilities: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Totals {
    pub calls: u64,
    pub ok: u64,
    pub failed: u64,
    pub success_rate: f64,
    pub error_rate: f64,
    pub rps: f64,
    pub dropped_iterations: u64,
    /// Calls cut off unanswered at the end of the run (after `graceful_stop`).
    #[serde(default)]
    pub abandoned_calls: u64,
    /// Sessions of the workload, the preflight's included.
    pub sessions_opened: u64,
    /// Sessions mcpstorm opened to watch the run (health probe, ledger read-backs); not in
    /// `sessions_opened`.
    #[serde(default)]
    pub monitor_sessions_opened: u64,
    pub sessions_lost: u64,
}

/// Latency percentiles in milliseconds, over successful calls.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

/// Counts and latency of one operation or tool.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct OpFigures {
    pub calls: u64,
    pub ok: u64,
    pub failed: u64,
    #[serde(flatten)]
    pub latency: Percentiles,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct LatencyReport {
    pub overall: Percentiles,
    /// By MCP method: `tools/call`, `tools/list`, `ping`, ...
    pub by_operation: BTreeMap<String, OpFigures>,
    /// By tool name, for `tools/call`.
    pub by_tool: BTreeMap<String, OpFigures>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorReport {
    /// Stable key: `timeout`, `http_503`, `jsonrpc_-32602`, `tool_error`, ...
    pub kind: String,
    /// `http_status` or `jsonrpc` for keys with a code, else empty.
    #[serde(default)]
    pub family: String,
    pub count: u64,
    pub samples: Vec<ErrorSample>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorSample {
    pub at_s: f64,
    pub operation: String,
    pub message: String,
}

/// One alert: a rule whose condition held long enough, from `at_s` until `ended_at_s`
/// (absent while it still held at the end of the run).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AlertRecord {
    /// The rule's name, such as `error_rate` or `p95`.
    pub rule: String,
    /// `warning` or `critical`.
    pub severity: String,
    pub at_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_s: Option<f64>,
    /// What was seen, in words with the figures: "error rate 4.2 % > 1 % for 5 s".
    pub message: String,
}

/// One second of the run.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct SecondPoint {
    pub t: u64,
    pub calls: u64,
    pub ok: u64,
    pub failed: u64,
    pub p50_ms: f64,
    #[serde(default)]
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub active_sessions: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rss_mb: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cpu_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_threads: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_open_files: Option<u64>,
    /// Established TCP connections of the server's tree (an HTTP server's live clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_connections: Option<u64>,
}

/// Correctness checks of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Checks {
    /// Acknowledged writes read back after the run; absent when the scenario has no ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<crate::check::ledger::LedgerReport>,
    /// Checks this version does not know (a report from a newer mcpstorm), kept so that
    /// `mcpstorm report` still shows them.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// One fault as it happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultRecord {
    pub id: u32,
    pub kind: String,
    pub at_s: f64,
    /// Infinite while the fault is still in effect (`"inf"` in JSON, see `num`).
    #[serde(with = "num::f64_null_is_inf")]
    pub ended_at_s: f64,
    pub applied: bool,
    pub detail: String,
}

/// What one fault did to the service, timed from the moment it was applied.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecoveryRecord {
    pub fault_id: u32,
    pub fault: String,
    pub at_s: f64,
    /// First failed probe or call after the fault; `None`: nothing failed.
    pub detected_after_ms: Option<f64>,
    /// First successful probe after the failure was seen; `None`: never, before the run ended.
    pub recovered_after_ms: Option<f64>,
    /// End of the first second after recovery whose success rate is back to the pre-fault level.
    pub stable_after_ms: Option<f64>,
    /// Calls that failed between the fault and recovery (by whole seconds).
    pub failed_calls: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SupervisorReport {
    pub command: String,
    pub restart: String,
    pub starts: u32,
    pub exits: Vec<crate::target::launch::ExitRecord>,
}

/// mcpstorm's own cost, to tell when the client and not the server was the limit.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ClientReport {
    pub cpu_seconds: f64,
    pub cpu_us_per_call: f64,
    /// CPU seconds over wall seconds times cores: 1.0 means every core was busy.
    pub cpu_utilization: f64,
    pub cores: usize,
    pub max_rss_mb: f64,
}

impl RecoveryRecord {
    /// The failure was seen and service never came back before the run ended.
    pub fn unrecovered(&self) -> bool {
        self.detected_after_ms.is_some() && self.recovered_after_ms.is_none()
    }
}

impl FaultRecord {
    /// In effect at `t` seconds into the run.
    pub fn active_at(&self, t: f64) -> bool {
        self.applied && self.at_s <= t && t < self.ended_at_s
    }
}

impl OpFigures {
    pub fn success_rate(&self) -> Option<f64> {
        fraction(self.ok, self.calls)
    }
    pub fn error_rate(&self) -> Option<f64> {
        fraction(self.failed, self.calls)
    }
}

impl SecondPoint {
    pub fn success_rate(&self) -> Option<f64> {
        fraction(self.ok, self.calls)
    }
    pub fn error_rate(&self) -> Option<f64> {
        fraction(self.failed, self.calls)
    }
    /// Latency is of successful calls: a second without one has none.
    pub fn has_latency(&self) -> bool {
        self.ok > 0
    }
}

impl Report {
    pub fn overall_figures(&self) -> OpFigures {
        OpFigures {
            calls: self.totals.calls,
            ok: self.totals.ok,
            failed: self.totals.failed,
            latency: self.latency_ms.overall.clone(),
        }
    }

    pub fn write_junit(&self, path: &Path) -> Result<(), crate::error::Error> {
        std::fs::write(path, junit::render(self)).map_err(|source| crate::error::Error::Io {
            what: format!("writing {}", path.display()),
            source,
        })
    }

    pub fn write_html(&self, path: &Path) -> Result<(), crate::error::Error> {
        std::fs::write(path, html::render(self)).map_err(|source| crate::error::Error::Io {
            what: format!("writing {}", path.display()),
            source,
        })
    }

    pub fn write_json(&self, path: &Path) -> Result<(), crate::error::Error> {
        let io = |source| crate::error::Error::Io {
            what: format!("writing {}", path.display()),
            source,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        std::fs::write(path, json).map_err(io)
    }
}
