//! Criteria: thresholds on a run's figures (`success_rate >= 0.95`, `p95 < 5s`,
//! `p99{tool=echo} < 200ms`, `errors{kind=timeout} == 0`), parsed once into a small
//! expression type and evaluated against the finished report into a verdict.
//!
//! Grammar: `METRIC[{KEY=VALUE}] OP NUMBER[UNIT]`. Latencies are compared in milliseconds
//! (units us, ms, s, m; a bare number is ms); rates are fractions (`0.95`) or percentages
//! (`95%`). It never computes a figure: it only reads the report.

use crate::report::Report;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    SuccessRate,
    ErrorRate,
    Calls,
    Ok,
    Failed,
    Rps,
    DroppedIterations,
    SessionsLost,
    Errors,
    /// Failed response checks and outputSchema mismatches (`errors{kind=wrong_answer}`).
    WrongAnswers,
    Latency(Stat),
    /// Fault → first success after the failure was seen, over all faults (ms).
    Recovery(Stat),
    /// Fault → first failure seen (ms).
    Detection(Stat),
    /// Faults that never came back before the run ended.
    Unrecovered,
    /// Acknowledged writes absent when read back (needs a `[ledger]`).
    LostWrites,
    /// Growth per hour of the supervised server's RSS (MB/h), open files or threads (per h).
    RssGrowth,
    FdGrowth,
    ThreadGrowth,
    ConnectionGrowth,
    /// Failed security findings, all or `{severity=critical}` / `{category=auth}`.
    SecurityFailures,
}

impl Metric {
    /// The unit the observed figure is in (see [`CriterionResult::unit`]).
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Latency(_) | Metric::Recovery(_) | Metric::Detection(_) => "ms",
            Metric::Rps => "calls/s",
            Metric::RssGrowth => "MB/h",
            Metric::FdGrowth | Metric::ThreadGrowth | Metric::ConnectionGrowth => "per h",
            Metric::SuccessRate | Metric::ErrorRate => "fraction",
            Metric::Calls
            | Metric::Ok
            | Metric::Failed
            | Metric::DroppedIterations
            | Metric::SessionsLost
            | Metric::Errors
            | Metric::WrongAnswers
            | Metric::Unrecovered
            | Metric::LostWrites
            | Metric::SecurityFailures => "count",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    P50,
    P90,
    P95,
    P99,
    P999,
    Max,
    Mean,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    Tool(String),
    Op(String),
    Kind(String),
    /// A security finding's severity (critical, high, medium, low, info).
    Severity(String),
    /// A security finding's category (auth, session, rate_limit, input, schema_fuzz, hygiene).
    Category(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Criterion {
    pub text: String,
    pub metric: Metric,
    pub selector: Option<Selector>,
    pub cmp: Cmp,
    pub threshold: f64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct CriterionResult {
    pub name: String,
    pub threshold: String,
    /// `None` when the run produced no data for it (a tool that was never called); may be
    /// infinite (a fault never recovered), which the JSON writes as `"inf"`.
    #[serde(default, with = "crate::report::num::opt_f64")]
    pub observed: Option<f64>,
    /// What `observed` is counted in: `ms` for latencies, recovery and detection,
    /// `calls/s`, `MB/h`, `per h`, `fraction` for rates, `count` for the rest. Reports
    /// written before it existed read back as `""` and print bare numbers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    pub passed: bool,
}

impl CriterionResult {
    /// The observed figure for people, in the criterion's unit: `20.80 ms`, `99.91%`,
    /// `3`, `no data`, `infinite`.
    pub fn observed_text(&self) -> String {
        crate::report::num::observed_text(self.observed, &self.unit)
    }
}

const METRICS: &str = "success_rate, error_rate, calls, ok, failed, rps, dropped_iterations, sessions_lost, errors, wrong_answers, p50, p90, p95, p99, p999, max, mean, recovery.max, recovery.mean, detection.max, detection.mean, unrecovered, lost_writes, rss_growth, fd_growth, thread_growth, connection_growth, security.failures";

impl Criterion {
    pub fn parse(text: &str) -> Result<Criterion, String> {
        let t = text.trim();
        let op_at = comparison_at(t).ok_or_else(|| {
            format!("`{t}` has no comparison; expected METRIC OP VALUE, like `p95 < 5s` or `success_rate >= 0.95`")
        })?;
        let (lhs, rest) = t.split_at(op_at);
        let (cmp, rhs) = [
            ("<=", Cmp::Le),
            (">=", Cmp::Ge),
            ("==", Cmp::Eq),
            ("!=", Cmp::Ne),
            ("<", Cmp::Lt),
            (">", Cmp::Gt),
        ]
        .iter()
        .find_map(|(s, c)| rest.strip_prefix(s).map(|r| (*c, r)))
        .ok_or_else(|| format!("`{t}`: unknown comparison; use one of < <= > >= == !="))?;
        let lhs = lhs.trim();
        let (name, selector) = match lhs.split_once('{') {
            Some((n, sel)) => {
                let sel = sel
                    .strip_suffix('}')
                    .ok_or_else(|| format!("`{t}`: `{{` without a closing `}}`"))?;
                let (k, v) = sel.split_once('=').ok_or_else(|| {
                    format!("`{t}`: selector `{{{sel}}}` must be KEY=VALUE, like {{tool=echo}}")
                })?;
                let v = v.trim().trim_matches('"').to_string();
                let s = match k.trim() {
                    "tool" => Selector::Tool(v),
                    "op" => Selector::Op(v),
                    "kind" => Selector::Kind(v),
                    "severity" => {
                        if crate::security::Severity::parse(&v).is_none() {
                            return Err(format!(
                                "`{t}`: severity `{v}` is not known; use critical, high, medium, low or info"
                            ));
                        }
                        Selector::Severity(v)
                    }
                    "category" => Selector::Category(v),
                    other => {
                        return Err(format!(
                            "`{t}`: unknown selector key `{other}`; use tool, op, kind (errors), severity or category (security.failures)"
                        ));
                    }
                };
                (n.trim(), Some(s))
            }
            None => (lhs, None),
        };
        let metric = match name {
            "success_rate" => Metric::SuccessRate,
            "error_rate" => Metric::ErrorRate,
            "calls" => Metric::Calls,
            "ok" => Metric::Ok,
            "failed" => Metric::Failed,
            "rps" => Metric::Rps,
            "dropped_iterations" => Metric::DroppedIterations,
            "sessions_lost" => Metric::SessionsLost,
            "errors" => Metric::Errors,
            "wrong_answers" => Metric::WrongAnswers,
            "p50" | "median" => Metric::Latency(Stat::P50),
            "p90" => Metric::Latency(Stat::P90),
            "p95" => Metric::Latency(Stat::P95),
            "p99" => Metric::Latency(Stat::P99),
            "p999" | "p99.9" => Metric::Latency(Stat::P999),
            "max" => Metric::Latency(Stat::Max),
            "mean" | "avg" => Metric::Latency(Stat::Mean),
            "recovery.max" => Metric::Recovery(Stat::Max),
            "recovery.mean" => Metric::Recovery(Stat::Mean),
            "detection.max" => Metric::Detection(Stat::Max),
            "detection.mean" => Metric::Detection(Stat::Mean),
            "unrecovered" => Metric::Unrecovered,
            "lost_writes" => Metric::LostWrites,
            "rss_growth" => Metric::RssGrowth,
            "fd_growth" => Metric::FdGrowth,
            "thread_growth" => Metric::ThreadGrowth,
            "connection_growth" => Metric::ConnectionGrowth,
            "security.failures" => Metric::SecurityFailures,
            other => return Err(format!("`{t}`: unknown metric `{other}`; known: {METRICS}")),
        };
        match (&metric, &selector) {
            (
                Metric::SecurityFailures,
                Some(Selector::Severity(_) | Selector::Category(_)) | None,
            ) => {}
            (Metric::SecurityFailures, _) => {
                return Err(format!(
                    "`{t}`: `security.failures` takes {{severity=...}} or {{category=...}}"
                ));
            }
            (_, Some(Selector::Severity(_) | Selector::Category(_))) => {
                return Err(format!(
                    "`{t}`: {{severity=...}} and {{category=...}} go with `security.failures` only"
                ));
            }
            (Metric::Errors, Some(Selector::Kind(_)) | None) => {}
            (Metric::Errors, _) => return Err(format!("`{t}`: `errors` takes {{kind=...}}")),
            (_, Some(Selector::Kind(_))) => {
                return Err(format!("`{t}`: {{kind=...}} goes with `errors` only"));
            }
            (
                Metric::Rps
                | Metric::DroppedIterations
                | Metric::SessionsLost
                | Metric::WrongAnswers
                | Metric::Recovery(_)
                | Metric::Detection(_)
                | Metric::Unrecovered
                | Metric::LostWrites
                | Metric::RssGrowth
                | Metric::FdGrowth
                | Metric::ThreadGrowth
                | Metric::ConnectionGrowth,
                Some(_),
            ) => {
                return Err(format!("`{t}`: `{name}` takes no selector"));
            }
            _ => {}
        }
        let threshold = parse_value(rhs.trim(), &metric).map_err(|e| format!("`{t}`: {e}"))?;
        Ok(Criterion {
            text: t.to_string(),
            metric,
            selector,
            cmp,
            threshold,
        })
    }

    /// The observed figure, from the report; `None` when there is no data.
    pub fn observe(&self, r: &Report) -> Option<f64> {
        let ops = |sel: &Option<Selector>| -> Option<crate::report::OpFigures> {
            match sel {
                None => Some(r.overall_figures()),
                Some(Selector::Tool(t)) => r.latency_ms.by_tool.get(t).cloned(),
                Some(Selector::Op(o)) => r.latency_ms.by_operation.get(o).cloned(),
                Some(Selector::Kind(_) | Selector::Severity(_) | Selector::Category(_)) => None,
            }
        };
        match self.metric {
            Metric::SuccessRate => ops(&self.selector).and_then(|f| f.success_rate()),
            Metric::ErrorRate => ops(&self.selector).and_then(|f| f.error_rate()),
            Metric::Calls => ops(&self.selector).map(|f| f.calls as f64),
            Metric::Ok => ops(&self.selector).map(|f| f.ok as f64),
            Metric::Failed => ops(&self.selector).map(|f| f.failed as f64),
            Metric::Rps => Some(r.totals.rps),
            Metric::DroppedIterations => Some(r.totals.dropped_iterations as f64),
            Metric::SessionsLost => Some(r.totals.sessions_lost as f64),
            Metric::Errors => Some(match &self.selector {
                Some(Selector::Kind(k)) => {
                    r.errors
                        .iter()
                        .filter(|e| &e.kind == k || e.family == *k)
                        .map(|e| e.count as f64)
                        .sum::<f64>()
                        + 0.0
                }
                // `+ 0.0`: an empty float sum is -0.0, which would print as "-0".
                _ => r.errors.iter().map(|e| e.count as f64).sum::<f64>() + 0.0,
            }),
            Metric::WrongAnswers => Some(
                r.errors
                    .iter()
                    .filter(|e| e.kind == "wrong_answer" || e.family == "wrong_answer")
                    .map(|e| e.count as f64)
                    .sum::<f64>()
                    + 0.0,
            ),
            Metric::Recovery(stat) => fault_stat(r, stat, |x| x.recovered_after_ms),
            Metric::Detection(stat) => fault_stat(r, stat, |x| x.detected_after_ms),
            Metric::Unrecovered => {
                Some(r.recoveries.iter().filter(|x| x.unrecovered()).count() as f64)
            }
            Metric::LostWrites => r.checks.ledger.as_ref().map(|l| l.lost_writes as f64),
            Metric::RssGrowth => r.leaks.as_ref().map(|l| l.rss_mb_per_h),
            Metric::FdGrowth => r.leaks.as_ref().map(|l| l.open_files_per_h),
            Metric::ThreadGrowth => r.leaks.as_ref().map(|l| l.threads_per_h),
            Metric::ConnectionGrowth => r.leaks.as_ref().map(|l| l.connections_per_h),
            // No findings at all: the probes did not run, which is no data, not a pass.
            Metric::SecurityFailures if r.security.is_empty() => None,
            Metric::SecurityFailures => Some(
                r.security
                    .iter()
                    .filter(|f| f.failed())
                    .filter(|f| match &self.selector {
                        Some(Selector::Severity(s)) => f.severity.name() == s,
                        Some(Selector::Category(c)) => &f.category == c,
                        _ => true,
                    })
                    .count() as f64,
            ),
            Metric::Latency(stat) => ops(&self.selector)
                .filter(|f| f.latency.count > 0)
                .map(|f| {
                    let l = &f.latency;
                    match stat {
                        Stat::P50 => l.p50,
                        Stat::P90 => l.p90,
                        Stat::P95 => l.p95,
                        Stat::P99 => l.p99,
                        Stat::P999 => l.p999,
                        Stat::Max => l.max,
                        Stat::Mean => l.mean,
                    }
                }),
        }
    }

    pub fn evaluate(&self, r: &Report) -> CriterionResult {
        let observed = self.observe(r);
        let passed = observed.is_some_and(|v| match self.cmp {
            Cmp::Lt => v < self.threshold,
            Cmp::Le => v <= self.threshold,
            Cmp::Gt => v > self.threshold,
            Cmp::Ge => v >= self.threshold,
            Cmp::Eq => (v - self.threshold).abs() < 1e-9,
            Cmp::Ne => (v - self.threshold).abs() >= 1e-9,
        });
        let (name, threshold) = match comparison_at(&self.text) {
            Some(i) => (
                self.text[..i].trim().to_string(),
                self.text[i..].trim().to_string(),
            ),
            None => (self.text.clone(), String::new()),
        };
        CriterionResult {
            name,
            threshold,
            observed,
            unit: self.metric.unit().to_string(),
            passed,
        }
    }
}

/// Max or mean over the faults that were noticed; a fault that was noticed and never
/// recovered counts as infinitely long, so `recovery.max < 30s` fails on it.
fn fault_stat(
    r: &Report,
    stat: Stat,
    pick: impl Fn(&crate::report::RecoveryRecord) -> Option<f64>,
) -> Option<f64> {
    let values: Vec<f64> = r
        .recoveries
        .iter()
        .filter(|x| x.detected_after_ms.is_some())
        .map(|x| pick(x).unwrap_or(f64::INFINITY))
        .collect();
    if values.is_empty() {
        return None;
    }
    Some(match stat {
        Stat::Mean => values.iter().sum::<f64>() / values.len() as f64,
        _ => values.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
    })
}

/// Where the comparison starts: the first `<>=!` after any `{selector}`.
fn comparison_at(t: &str) -> Option<usize> {
    let from = t.find('}').map(|i| i + 1).unwrap_or(0);
    t[from..].find(['<', '>', '=', '!']).map(|i| i + from)
}

fn parse_value(s: &str, metric: &Metric) -> Result<f64, String> {
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(num_end);
    let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a number"))?;
    let unit = unit.trim();
    match metric {
        Metric::Latency(_) | Metric::Recovery(_) | Metric::Detection(_) => match unit {
            "" | "ms" => Ok(n),
            "us" | "µs" => Ok(n / 1000.0),
            "s" => Ok(n * 1000.0),
            "m" | "min" => Ok(n * 60_000.0),
            other => Err(format!("unknown time unit `{other}`; use us, ms, s or m")),
        },
        Metric::RssGrowth => match unit {
            "" | "MB/h" => Ok(n),
            "KB/h" => Ok(n / 1024.0),
            "GB/h" => Ok(n * 1024.0),
            other => Err(format!(
                "unknown unit `{other}` for rss_growth; use KB/h, MB/h or GB/h"
            )),
        },
        Metric::FdGrowth | Metric::ThreadGrowth | Metric::ConnectionGrowth => match unit {
            "" | "/h" => Ok(n),
            other => Err(format!(
                "unknown unit `{other}`; growth is counted per hour, like `fd_growth < 100/h`"
            )),
        },
        Metric::SuccessRate | Metric::ErrorRate => match unit {
            "" if (0.0..=1.0).contains(&n) => Ok(n),
            "" => Err(format!(
                "a rate is a fraction from 0 to 1 (or a percentage like `{n}%`), found {n}"
            )),
            "%" => Ok(n / 100.0),
            other => Err(format!(
                "unknown unit `{other}` for a rate; use a fraction or %"
            )),
        },
        _ if unit.is_empty() => Ok(n),
        _ => Err(format!(
            "`{unit}` is not a unit for this metric; give a plain number"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seed_criteria() {
        let c = Criterion::parse("success_rate >= 0.95").unwrap();
        assert_eq!(
            (c.metric, c.cmp, c.threshold),
            (Metric::SuccessRate, Cmp::Ge, 0.95)
        );
        let c = Criterion::parse("p95 < 5s").unwrap();
        assert_eq!(
            (c.metric, c.threshold),
            (Metric::Latency(Stat::P95), 5000.0)
        );
        let c = Criterion::parse("p99{tool=echo} <= 250us").unwrap();
        assert_eq!(c.selector, Some(Selector::Tool("echo".into())));
        assert_eq!(c.threshold, 0.25);
        let c = Criterion::parse("wrong_answers == 0").unwrap();
        assert_eq!((c.metric, c.threshold), (Metric::WrongAnswers, 0.0));
        assert!(Criterion::parse("wrong_answers{tool=add} == 0").is_err());
        let c = Criterion::parse("errors{kind=timeout} == 0").unwrap();
        assert_eq!(c.selector, Some(Selector::Kind("timeout".into())));
        assert_eq!(Criterion::parse("error_rate < 1%").unwrap().threshold, 0.01);
        let c = Criterion::parse("security.failures{severity=critical} == 0").unwrap();
        assert_eq!(
            (c.metric, c.selector),
            (
                Metric::SecurityFailures,
                Some(Selector::Severity("critical".into()))
            )
        );
    }

    #[test]
    fn bad_criteria_say_what_is_expected() {
        for (bad, hint) in [
            ("p95 5s", "no comparison"),
            ("p96 < 5s", "unknown metric"),
            ("p95 < 5h", "unknown time unit"),
            ("success_rate >= 95", "fraction"),
            ("p95{host=a} < 1s", "unknown selector"),
            ("rps{tool=echo} > 1", "takes no selector"),
            (
                "security.failures{severity=urgent} == 0",
                "severity `urgent`",
            ),
            ("security.failures{tool=echo} == 0", "takes {severity"),
            ("p95{severity=high} < 1s", "security.failures` only"),
        ] {
            let e = Criterion::parse(bad).unwrap_err();
            assert!(e.contains(hint), "{bad}: {e}");
        }
    }
}
