//! The version matrix (`mcpstorm run SCENARIO --protocol-matrix`): the same workload once
//! per protocol revision, each run a whole run of its own (report in `OUT/REVISION/`), then
//! one side-by-side table (calls/s, p50, p99, error rate, errors by kind) on stdout and in
//! `OUT/matrix.json`.
//!
//! A revision the server does not speak is not a failure of the matrix: it shows as
//! `refused` with the reason (the preflight's diagnosis, or the revision the server answered
//! with instead). It only reads finished reports; it computes no figure of its own.

use crate::error::Error;
use crate::report::{Report, Verdict};
use crate::run::RunOptions;
use crate::session::Protocol;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One revision's line of the matrix.
#[derive(Debug, Clone, Serialize)]
pub struct MatrixRow {
    pub revision: String,
    /// `ok` (the run happened) or `refused`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The run's report.json, relative to the matrix's folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    pub calls: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub error_rate: f64,
    pub errors: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    pub schema_version: u32,
    pub scenario: String,
    pub target: String,
    pub revisions: Vec<MatrixRow>,
}

/// `--protocol-matrix[=LIST]`: `all`, or revisions separated by commas.
pub fn parse_revisions(list: &str) -> Result<Vec<String>, String> {
    if list == "all" {
        return Ok(crate::session::all_versions()
            .into_iter()
            .map(str::to_string)
            .collect());
    }
    let mut out = Vec::new();
    for r in list.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        match Protocol::parse(r) {
            Ok(Protocol::Revision(v)) if !out.contains(&v) => out.push(v),
            Ok(Protocol::Revision(_)) => {}
            Ok(Protocol::Auto) => {
                return Err("--protocol-matrix lists revisions; `auto` is not one (leave the list out for all of them)".into());
            }
            Err(e) => return Err(format!("--protocol-matrix: {e}")),
        }
    }
    if out.is_empty() {
        return Err("--protocol-matrix: no revision given; write --protocol-matrix for all, or --protocol-matrix=2026-07-28,2025-11-25".into());
    }
    Ok(out)
}

/// Run the workload once per revision; the exit code: 0 every revision that ran passed,
/// 1 one failed its criteria, 3 the server refused every revision.
pub async fn run(opts: RunOptions, revisions: &[String]) -> Result<u8, Error> {
    if opts.overrides.protocol.is_some() {
        return Err(Error::Usage(
            "--protocol-matrix runs every revision itself; leave out --protocol-version".into(),
        ));
    }
    let plan = crate::run::plan(&opts)?;
    if let crate::target::TargetSpec::WebSocket {
        framing: Some(_), ..
    } = &plan.target
    {
        return Err(Error::Usage(format!(
            "{}: --protocol-matrix needs an MCP target; a custom framing (target.framing) has no protocol revisions",
            plan.source
        )));
    }
    let mut rows = Vec::new();
    for revision in revisions {
        crate::errln!("mcpstorm: protocol matrix: revision {revision}");
        let mut one = opts.clone();
        one.overrides.protocol = Some(Protocol::Revision(revision.clone()));
        one.out = opts.out.join(revision);
        one.tui = false;
        one.exact_protocol = true;
        one.metrics_addr = None;
        // One trace per revision, beside its report, rather than each overwriting the last.
        if let Some(r) = one.record.as_mut() {
            let name = r.path.file_name().map(std::ffi::OsStr::to_os_string);
            r.path = one.out.join(name.unwrap_or_else(|| "trace.jsonl".into()));
        }
        rows.push(match crate::run::run(one).await {
            Ok(report) => row(revision, &report),
            Err(Error::Target(d)) => refused(revision, d.cause.clone()),
            Err(e) => return Err(e),
        });
    }
    let matrix = Matrix {
        schema_version: 1,
        scenario: plan.name.clone(),
        target: plan.target.describe(),
        revisions: rows,
    };
    crate::outln!("{}", render(&matrix));
    let path = opts.out.join("matrix.json");
    std::fs::create_dir_all(&opts.out)
        .and_then(|()| {
            let text = serde_json::to_vec_pretty(&matrix).map_err(std::io::Error::other)?;
            std::fs::write(&path, text)
        })
        .map_err(|source| Error::Io {
            what: format!("writing {}", path.display()),
            source,
        })?;
    crate::outln!("matrix:  {}", path.display());
    let ran: Vec<&MatrixRow> = matrix
        .revisions
        .iter()
        .filter(|r| r.status == "ok")
        .collect();
    Ok(if ran.is_empty() {
        3
    } else if ran.iter().all(|r| r.verdict == Some(Verdict::Pass)) {
        0
    } else {
        1
    })
}

fn row(revision: &str, r: &Report) -> MatrixRow {
    let spoken = &r.target.protocol_version;
    if spoken != revision {
        // The server answered `initialize` with another revision: the run measured that one.
        return MatrixRow {
            report: Some(format!("{revision}/report.json")),
            ..refused(
                revision,
                format!("the server answered initialize with {spoken} instead"),
            )
        };
    }
    MatrixRow {
        revision: revision.to_string(),
        status: "ok".into(),
        reason: None,
        report: Some(format!("{revision}/report.json")),
        verdict: Some(r.verdict),
        calls: r.totals.calls,
        rps: r.totals.rps,
        p50_ms: r.latency_ms.overall.p50,
        p99_ms: r.latency_ms.overall.p99,
        error_rate: r.totals.error_rate,
        errors: r.errors.iter().map(|e| (e.kind.clone(), e.count)).collect(),
    }
}

fn refused(revision: &str, reason: String) -> MatrixRow {
    MatrixRow {
        revision: revision.to_string(),
        status: "refused".into(),
        reason: Some(reason),
        report: None,
        verdict: None,
        calls: 0,
        rps: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        error_rate: 0.0,
        errors: BTreeMap::new(),
    }
}

/// The side-by-side table.
pub fn render(m: &Matrix) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "protocol matrix: {} against {}\n", m.scenario, m.target);
    let _ = writeln!(
        s,
        "{:<12} {:<8} {:>8} {:>10} {:>9} {:>9} {:>8}  errors by kind",
        "revision", "status", "calls", "calls/s", "p50 ms", "p99 ms", "error %"
    );
    for r in &m.revisions {
        if r.status != "ok" {
            let _ = writeln!(
                s,
                "{:<12} {:<8} {}",
                r.revision,
                r.status,
                r.reason.as_deref().unwrap_or("")
            );
            continue;
        }
        let errors = if r.errors.is_empty() {
            "-".to_string()
        } else {
            r.errors
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let verdict = match r.verdict {
            Some(Verdict::Pass) => "PASS",
            _ => "FAIL",
        };
        let _ = writeln!(
            s,
            "{:<12} {:<8} {:>8} {:>10.1} {:>9.2} {:>9.2} {:>8.2}  {errors}",
            r.revision,
            verdict,
            r.calls,
            r.rps,
            r.p50_ms,
            r.p99_ms,
            r.error_rate * 100.0
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_parse_and_name_the_flag() {
        assert_eq!(parse_revisions("all").unwrap().len(), 5);
        assert_eq!(
            parse_revisions("2026-07-28, 2025-06-18,2026-07-28").unwrap(),
            vec!["2026-07-28", "2025-06-18"]
        );
        assert!(
            parse_revisions("auto")
                .unwrap_err()
                .contains("--protocol-matrix")
        );
        assert!(
            parse_revisions("1999-01-01")
                .unwrap_err()
                .contains("--protocol-matrix")
        );
    }

    #[test]
    fn refused_revisions_show_their_reason_in_the_table() {
        let m = Matrix {
            schema_version: 1,
            scenario: "s".into(),
            target: "t".into(),
            revisions: vec![refused("2024-11-05", "no such revision here".into())],
        };
        let t = render(&m);
        assert!(
            t.contains("2024-11-05   refused  no such revision here"),
            "{t}"
        );
    }
}
