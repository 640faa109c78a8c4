//! `mcpstorm compare OLD.json NEW.json`: per-operation deltas between two runs (calls/s,
//! p50, p99, error rate) and a regression verdict against thresholds from the command line,
//! for CI baselines. Reads two reports; computes only differences of their figures.

use super::{OpFigures, Report};
use std::fmt::Write;

/// How much worse NEW may be than OLD before it counts as a regression.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Allowed p50 increase, as a fraction (0.10 = +10 %).
    pub p50_increase: f64,
    pub p99_increase: f64,
    /// Allowed calls/s decrease, as a fraction.
    pub rps_decrease: f64,
    /// Allowed error-rate increase, in absolute points (0.01 = +1 point).
    pub error_rate_increase: f64,
}

pub struct Comparison {
    pub table: String,
    pub regressions: Vec<String>,
}

fn rate(f: &OpFigures) -> f64 {
    f.error_rate().unwrap_or(0.0)
}

fn change(old: f64, new: f64) -> f64 {
    if old == 0.0 {
        if new == 0.0 { 0.0 } else { f64::INFINITY }
    } else {
        (new - old) / old
    }
}

pub fn compare(old: &Report, new: &Report, t: &Thresholds) -> Comparison {
    let mut rows: Vec<(String, OpFigures, OpFigures)> =
        vec![("all".into(), old.overall_figures(), new.overall_figures())];
    for (k, o) in &old.latency_ms.by_tool {
        if let Some(n) = new.latency_ms.by_tool.get(k) {
            rows.push((format!("tools/call {k}"), o.clone(), n.clone()));
        }
    }
    for (k, o) in old
        .latency_ms
        .by_operation
        .iter()
        .filter(|(k, _)| k.as_str() != "tools/call")
    {
        if let Some(n) = new.latency_ms.by_operation.get(k) {
            rows.push((k.clone(), o.clone(), n.clone()));
        }
    }
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<30} {:>20} {:>24} {:>24} {:>20}",
        "operation", "calls/s", "p50 ms", "p99 ms", "error rate"
    );
    let mut regressions = Vec::new();
    for (label, o, n) in &rows {
        let o_rps = o.calls as f64 / old.duration_s.max(1e-9);
        let n_rps = n.calls as f64 / new.duration_s.max(1e-9);
        let d_rps = change(o_rps, n_rps);
        let d_p50 = change(o.latency.p50, n.latency.p50);
        let d_p99 = change(o.latency.p99, n.latency.p99);
        let d_err = rate(n) - rate(o);
        let _ = writeln!(
            table,
            "{:<30} {:>8.1}→{:<8.1}{:>+5.0}% {:>8.2}→{:<8.2}{:>+6.0}% {:>8.2}→{:<8.2}{:>+6.0}% {:>7.4}→{:<7.4}{:>+5.1}pt",
            label,
            o_rps,
            n_rps,
            d_rps * 100.0,
            o.latency.p50,
            n.latency.p50,
            d_p50 * 100.0,
            o.latency.p99,
            n.latency.p99,
            d_p99 * 100.0,
            rate(o),
            rate(n),
            d_err * 100.0
        );
        if d_p50 > t.p50_increase {
            regressions.push(format!(
                "{label}: p50 {:.2} → {:.2} ms (+{:.0}% > +{:.0}%)",
                o.latency.p50,
                n.latency.p50,
                d_p50 * 100.0,
                t.p50_increase * 100.0
            ));
        }
        if d_p99 > t.p99_increase {
            regressions.push(format!(
                "{label}: p99 {:.2} → {:.2} ms (+{:.0}% > +{:.0}%)",
                o.latency.p99,
                n.latency.p99,
                d_p99 * 100.0,
                t.p99_increase * 100.0
            ));
        }
        if -d_rps > t.rps_decrease {
            regressions.push(format!(
                "{label}: calls/s {o_rps:.1} → {n_rps:.1} ({:.0}% < -{:.0}%)",
                d_rps * 100.0,
                t.rps_decrease * 100.0
            ));
        }
        if d_err > t.error_rate_increase {
            regressions.push(format!(
                "{label}: error rate {:.4} → {:.4} (+{:.2} points > +{:.2})",
                rate(o),
                rate(n),
                d_err * 100.0,
                t.error_rate_increase * 100.0
            ));
        }
    }
    for (label, _) in old
        .latency_ms
        .by_tool
        .iter()
        .filter(|(k, _)| !new.latency_ms.by_tool.contains_key(*k))
    {
        let _ = writeln!(
            table,
            "{:<30} only in the old run",
            format!("tools/call {label}")
        );
    }
    Comparison { table, regressions }
}

/// Read a report file; the error names the file and what is wrong with it.
pub fn load(path: &std::path::Path) -> Result<Report, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "{}: not an mcpstorm report (the report.json that `mcpstorm run` writes): {e}",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_handles_zero() {
        assert_eq!(change(0.0, 0.0), 0.0);
        assert!(change(0.0, 1.0).is_infinite());
        assert!((change(10.0, 12.0) - 0.2).abs() < 1e-9);
    }
}
