//! The final summary table printed after a run: totals, per-operation latency, errors with
//! a sample each, mcpstorm's own cost, criteria and the verdict. Reads the report only.

use super::{OpFigures, Report, Verdict};
use std::fmt::Write;

pub fn render(r: &Report, report_path: Option<&std::path::Path>) -> String {
    let mut s = String::new();
    let t = &r.target;
    let name = r
        .scenario
        .get("name")
        .and_then(|v| v.as_str())
        .unwrap_or("scenario");
    let _ = writeln!(
        s,
        "\nmcpstorm {}: {} against {}",
        r.tool_version, name, t.description
    );
    let _ = writeln!(
        s,
        "server {} {} over {}, protocol {}",
        t.server_name, t.server_version, t.transport, t.protocol_version
    );
    // A report of `mcpstorm probe` has findings and no load: no table of calls.
    let probe_only = r.scenario.get("kind").and_then(|k| k.as_str()) == Some("probe");
    if probe_only {
        let _ = write!(s, "{}", crate::security::render(&r.security));
        for w in &r.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        criteria_and_verdict(&mut s, r, report_path);
        return s;
    }
    let tot = &r.totals;
    let _ = writeln!(
        s,
        "{:.1}s  {} calls  {} ok ({:.2}%)  {} failed  {:.1} calls/s  {} dropped  {} sessions opened, {} lost",
        r.duration_s,
        tot.calls,
        tot.ok,
        tot.success_rate * 100.0,
        tot.failed,
        tot.rps,
        tot.dropped_iterations,
        tot.sessions_opened,
        tot.sessions_lost
    );
    if tot.abandoned_calls > 0 {
        let _ = writeln!(
            s,
            "{} calls abandoned unanswered at the end",
            tot.abandoned_calls
        );
    }
    let _ = writeln!(
        s,
        "\n{:<34} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "operation (latency ms, ok calls)",
        "calls",
        "ok %",
        "p50",
        "p90",
        "p95",
        "p99",
        "p99.9",
        "max"
    );
    let mut row = |label: &str, f: &OpFigures| {
        let ok = f.success_rate().unwrap_or(0.0) * 100.0;
        let l = &f.latency;
        let _ = writeln!(
            s,
            "{:<34} {:>9} {:>8.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            fit(label, 34),
            f.calls,
            ok,
            l.p50,
            l.p90,
            l.p95,
            l.p99,
            l.p999,
            l.max
        );
    };
    for (tool, f) in &r.latency_ms.by_tool {
        row(&format!("tools/call {tool}"), f);
    }
    for (op, f) in r
        .latency_ms
        .by_operation
        .iter()
        .filter(|(k, _)| k.as_str() != "tools/call")
    {
        row(op, f);
    }
    row("all", &r.overall_figures());
    if !r.errors.is_empty() {
        let _ = writeln!(s, "\nerrors:");
        for e in &r.errors {
            let sample = e
                .samples
                .first()
                .map(|x| format!("{}: {}", x.operation, x.message))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  {:<18} {:>8}  e.g. {}",
                e.kind,
                e.count,
                crate::error::excerpt(&sample, 110)
            );
        }
    }
    if let Some(sup) = &r.supervisor {
        let _ = writeln!(
            s,
            "\nserver process: {} (restart {}), started {} times, {} exits",
            sup.command,
            sup.restart,
            sup.starts,
            sup.exits.len()
        );
    }
    if !r.faults.is_empty() {
        let _ = writeln!(
            s,
            "\n{:<4} {:<9} {:>8} {:>14} {:>14} {:>14} {:>13}",
            "id", "fault", "at s", "detected ms", "recovered ms", "stable ms", "failed calls"
        );
        let ms = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into());
        for f in &r.faults {
            let rec = r.recoveries.iter().find(|x| x.fault_id == f.id);
            let _ = writeln!(
                s,
                "{:<4} {:<9} {:>8.2} {:>14} {:>14} {:>14} {:>13}",
                f.id,
                f.kind,
                f.at_s,
                ms(rec.and_then(|x| x.detected_after_ms)),
                ms(rec.and_then(|x| x.recovered_after_ms)),
                ms(rec.and_then(|x| x.stable_after_ms)),
                rec.map(|x| x.failed_calls).unwrap_or(0)
            );
        }
    }
    if let Some(l) = &r.checks.ledger {
        let _ = writeln!(
            s,
            "\nledger: {} writes acknowledged, {} failed, {} indeterminate; read back: {} lost{}, {} unverified",
            l.writes_acknowledged,
            l.writes_failed,
            l.writes_indeterminate,
            l.lost_writes,
            if l.lost_ids.is_empty() {
                String::new()
            } else {
                format!(
                    " (ids {:?}{})",
                    &l.lost_ids[..l.lost_ids.len().min(10)],
                    if l.lost_ids.len() > 10 { " …" } else { "" }
                )
            },
            l.unverified
        );
    }
    if !r.security.is_empty() {
        let _ = write!(s, "{}", crate::security::render(&r.security));
    }
    let c = &r.client;
    let _ = writeln!(
        s,
        "\nmcpstorm itself: {:.2} CPU s ({:.1} us/call), {:.0}% of {} cores, peak RSS {:.0} MB",
        c.cpu_seconds,
        c.cpu_us_per_call,
        c.cpu_utilization * 100.0,
        c.cores,
        c.max_rss_mb
    );
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    criteria_and_verdict(&mut s, r, report_path);
    s
}

fn criteria_and_verdict(s: &mut String, r: &Report, report_path: Option<&std::path::Path>) {
    let _ = writeln!(s, "\ncriteria:");
    for c in &r.criteria {
        let observed = c.observed_text();
        let _ = writeln!(
            s,
            "  {}  {} {}   (observed {})",
            if c.passed { "PASS" } else { "FAIL" },
            c.name,
            c.threshold,
            observed
        );
    }
    let _ = writeln!(
        s,
        "\nverdict: {}",
        if r.verdict == Verdict::Pass {
            "PASS"
        } else {
            "FAIL"
        }
    );
    if let Some(p) = report_path {
        let _ = writeln!(s, "report:  {}", p.display());
    }
}

/// Cut a label to a column width, marking the cut.
fn fit(label: &str, width: usize) -> String {
    if label.chars().count() <= width {
        return label.to_string();
    }
    let mut s: String = label.chars().take(width - 1).collect();
    s.push('…');
    s
}
