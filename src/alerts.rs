//! Alerts: rules over the per-second figures that fire when a condition has held for a
//! while (`error_rate > 1% for 5s`), are shown live, and end up in the report.
//!
//! Criteria judge the whole run once at the end; alerts watch each second as it closes, the
//! way an operator's dashboard would. The default rules are the seeds' thresholds: error rate
//! above 1 % for 5 s, p95 above 5 s for 5 s, target RSS above 80 % of its limit for 2 min, and
//! a failed health probe. A scenario can change, replace or add rules under `[alerts]`.
//!
//! Grammar of `when`: `METRIC OP VALUE`, or `probe_failed` alone. Each second either breaches
//! the rule, clears it, or (a second with no data for the metric) leaves it as it was.

use crate::criteria::Cmp;
use crate::report::{AlertRecord, SecondPoint};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertMetric {
    ErrorRate,
    Rps,
    P50,
    P95,
    P99,
    RssMb,
    /// RSS as a percentage of the target's memory limit.
    RssPct,
    CpuPct,
    Threads,
    OpenFiles,
    Connections,
    ActiveSessions,
    ProbeFailed,
}

const METRICS: &str = "error_rate, rps, p50, p95, p99, rss_mb, rss_pct, cpu_pct, threads, open_files, connections, active_sessions, probe_failed";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRule {
    pub name: String,
    pub when: String,
    #[serde(skip)]
    pub metric: AlertMetric,
    #[serde(skip)]
    pub cmp: Cmp,
    /// In the metric's own unit: a fraction for rates, ms for latency, MB, percent.
    #[serde(skip)]
    pub threshold: f64,
    #[serde(rename = "for", serialize_with = "crate::workload::ser_duration")]
    pub hold: Duration,
    pub severity: Severity,
}

impl AlertRule {
    /// Parse `when` (`p95 > 5s`, `error_rate > 1%`, `probe_failed`).
    pub fn parse(
        name: &str,
        when: &str,
        hold: Duration,
        severity: Severity,
    ) -> Result<AlertRule, String> {
        let t = when.trim();
        if t == "probe_failed" {
            return Ok(AlertRule {
                name: name.to_string(),
                when: t.to_string(),
                metric: AlertMetric::ProbeFailed,
                cmp: Cmp::Eq,
                threshold: 1.0,
                hold,
                severity,
            });
        }
        let at = t.find(['<', '>', '=', '!']).ok_or_else(|| {
            format!(
                "`{t}` has no comparison; write METRIC OP VALUE like `p95 > 5s`, or `probe_failed`"
            )
        })?;
        let (lhs, rest) = t.split_at(at);
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
        let metric = match lhs.trim() {
            "error_rate" => AlertMetric::ErrorRate,
            "rps" => AlertMetric::Rps,
            "p50" => AlertMetric::P50,
            "p95" => AlertMetric::P95,
            "p99" => AlertMetric::P99,
            "rss_mb" => AlertMetric::RssMb,
            "rss_pct" => AlertMetric::RssPct,
            "cpu_pct" => AlertMetric::CpuPct,
            "threads" => AlertMetric::Threads,
            "open_files" => AlertMetric::OpenFiles,
            "connections" => AlertMetric::Connections,
            "active_sessions" => AlertMetric::ActiveSessions,
            "probe_failed" => {
                return Err(format!(
                    "`{t}`: probe_failed takes no comparison; write `probe_failed`"
                ));
            }
            other => return Err(format!("`{t}`: unknown metric `{other}`; known: {METRICS}")),
        };
        let threshold = value(rhs.trim(), metric).map_err(|e| format!("`{t}`: {e}"))?;
        Ok(AlertRule {
            name: name.to_string(),
            when: t.to_string(),
            metric,
            cmp,
            threshold,
            hold,
            severity,
        })
    }

    fn breached(&self, v: f64) -> bool {
        match self.cmp {
            Cmp::Lt => v < self.threshold,
            Cmp::Le => v <= self.threshold,
            Cmp::Gt => v > self.threshold,
            Cmp::Ge => v >= self.threshold,
            Cmp::Eq => (v - self.threshold).abs() < 1e-9,
            Cmp::Ne => (v - self.threshold).abs() >= 1e-9,
        }
    }
}

fn value(s: &str, metric: AlertMetric) -> Result<f64, String> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a number"))?;
    let unit = unit.trim();
    match metric {
        AlertMetric::ErrorRate => match unit {
            "%" => Ok(n / 100.0),
            "" => Ok(n),
            other => Err(format!(
                "unknown unit `{other}` for a rate; write 0.01 or 1%"
            )),
        },
        AlertMetric::P50 | AlertMetric::P95 | AlertMetric::P99 => match unit {
            "" | "ms" => Ok(n),
            "us" | "µs" => Ok(n / 1000.0),
            "s" => Ok(n * 1000.0),
            "m" | "min" => Ok(n * 60_000.0),
            other => Err(format!("unknown time unit `{other}`; use us, ms, s or m")),
        },
        AlertMetric::RssMb => match unit {
            "" | "MB" => Ok(n),
            "KB" => Ok(n / 1024.0),
            "GB" => Ok(n * 1024.0),
            other => Err(format!(
                "unknown unit `{other}` for rss_mb; use KB, MB or GB"
            )),
        },
        AlertMetric::RssPct | AlertMetric::CpuPct => match unit {
            "" | "%" => Ok(n),
            other => Err(format!(
                "unknown unit `{other}`; write a percentage like 80%"
            )),
        },
        _ => match unit {
            "" => Ok(n),
            other => Err(format!("`{other}`: this metric is a plain count")),
        },
    }
}

/// The seeds' rules, named so a scenario rule of the same name replaces one.
pub fn default_rules() -> Vec<AlertRule> {
    let rule = |name: &str, when: &str, secs: u64, severity| {
        // The texts are constants of this file and parse; a test checks it.
        AlertRule::parse(name, when, Duration::from_secs(secs), severity)
            .unwrap_or_else(|e| unreachable!("default alert rule: {e}"))
    };
    vec![
        rule("error_rate", "error_rate > 1%", 5, Severity::Critical),
        rule("p95", "p95 > 5s", 5, Severity::Warning),
        rule("rss", "rss_pct > 80%", 120, Severity::Warning),
        rule("probe", "probe_failed", 0, Severity::Critical),
    ]
}

/// The scenario's `[alerts]` table.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    /// Keep the default rules (true unless set to false).
    pub defaults: Option<bool>,
    /// The target's memory limit, for `rss_pct` ("512MB", "2GB").
    pub rss_limit: Option<String>,
    pub rules: Option<Vec<RawRule>>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Option<String>,
    pub when: String,
    #[serde(rename = "for")]
    pub hold: Option<String>,
    pub severity: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct AlertConfig {
    pub rules: Vec<AlertRule>,
    /// MB; when absent, the target's cgroup limit if it has one.
    pub rss_limit_mb: Option<f64>,
}

impl AlertConfig {
    /// Validate the `[alerts]` table, pushing every problem (naming the key) to `problems`.
    pub fn from_raw(raw: Option<&RawAlerts>, problems: &mut Vec<String>) -> AlertConfig {
        let raw = raw.cloned().unwrap_or_default();
        let mut rules = if raw.defaults.unwrap_or(true) {
            default_rules()
        } else {
            Vec::new()
        };
        for (i, r) in raw.rules.unwrap_or_default().iter().enumerate() {
            let key = format!("alerts.rules[{i}]");
            let hold = match &r.hold {
                None => Some(Duration::ZERO),
                Some(s) => crate::scenario::duration(s, &format!("{key}.for"), problems),
            };
            let severity = match r.severity.as_deref() {
                None | Some("warning") => Some(Severity::Warning),
                Some("critical") => Some(Severity::Critical),
                Some(other) => {
                    problems.push(format!(
                        "`{key}.severity` = \"{other}\" is not known; use \"warning\" or \"critical\""
                    ));
                    None
                }
            };
            let name = r.name.clone().unwrap_or_else(|| r.when.trim().to_string());
            match AlertRule::parse(&name, &r.when, Duration::ZERO, Severity::Warning) {
                Ok(mut rule) => {
                    if let (Some(hold), Some(severity)) = (hold, severity) {
                        rule.hold = hold;
                        rule.severity = severity;
                        rules.retain(|x| x.name != rule.name);
                        rules.push(rule);
                    }
                }
                Err(e) => problems.push(format!("`{key}.when`: {e}")),
            }
        }
        let rss_limit_mb = raw.rss_limit.as_deref().and_then(|s| {
            match value(s, AlertMetric::RssMb) {
                Ok(v) if v > 0.0 => Some(v),
                _ => {
                    problems.push(format!(
                        "`alerts.rss_limit` = \"{s}\" is not a memory size; write it like \"512MB\" or \"2GB\""
                    ));
                    None
                }
            }
        });
        AlertConfig {
            rules,
            rss_limit_mb,
        }
    }

    pub fn needs_probe(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.metric == AlertMetric::ProbeFailed)
    }
}

/// What one closed second looked like, for the rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct Observation<'a> {
    pub point: Option<&'a SecondPoint>,
    /// The health probe over the same second; `None` when no probe runs or it has not
    /// answered yet.
    pub probe: Option<ProbeWindow>,
    /// The target's memory limit in MB, if known.
    pub rss_limit_mb: Option<f64>,
}

/// The probe's answers since the previous observation. The probe logs only the moments its
/// answer changed, and a failure that recovered within the second must still count, so the
/// window is read from the changes, not from the latest answer alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeWindow {
    /// When the probe first failed in the window (or the failure it was already in).
    pub failed_at: Option<f64>,
    /// When it last became healthy, if it was healthy at the end of the window.
    pub healthy_since: Option<f64>,
}

impl ProbeWindow {
    /// From the probe log's changes, of which the first `seen` were read before; `None` when
    /// the probe has said nothing yet.
    pub fn of(changes: &[(f64, bool)], seen: usize) -> Option<ProbeWindow> {
        let seen = seen.min(changes.len());
        let before = seen.checked_sub(1).map(|i| changes[i]);
        let new = &changes[seen..];
        let last = new.last().copied().or(before)?;
        let failed_at = match before {
            Some((t, false)) => Some(t),
            _ => new.iter().find(|(_, ok)| !ok).map(|(t, _)| *t),
        };
        Some(ProbeWindow {
            failed_at,
            healthy_since: last.1.then_some(last.0),
        })
    }
}

#[derive(Debug, Default)]
struct RuleState {
    breach_since: Option<f64>,
    /// Index into the records while this rule's alert is firing.
    firing: Option<usize>,
}

/// The alert engine of one run: fed once per second, read by the live views and the report.
#[derive(Debug)]
pub struct Alerts {
    rules: Vec<AlertRule>,
    inner: Mutex<(Vec<RuleState>, Vec<AlertRecord>)>,
}

impl Alerts {
    pub fn new(rules: Vec<AlertRule>) -> Alerts {
        let states = rules.iter().map(|_| RuleState::default()).collect();
        Alerts {
            rules,
            inner: Mutex::new((states, Vec::new())),
        }
    }

    pub fn rules(&self) -> &[AlertRule] {
        &self.rules
    }

    /// Feed one closed second (ending `now_s` seconds into the run); returns the alerts
    /// raised by it.
    pub fn observe(&self, now_s: f64, o: Observation<'_>) -> Vec<AlertRecord> {
        let mut raised = Vec::new();
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (states, records) = &mut *g;
        for (rule, state) in self.rules.iter().zip(states.iter_mut()) {
            let Some(v) = figure(rule.metric, &o) else {
                continue;
            };
            let probe = rule.metric == AlertMetric::ProbeFailed;
            if !rule.breached(v) {
                state.breach_since = None;
                if let Some(i) = state.firing.take() {
                    // The probe knows the moment it was healthy again; a per-second figure
                    // only that this second was fine.
                    let end = match (probe, o.probe.and_then(|p| p.healthy_since)) {
                        (true, Some(t)) => t.min(now_s),
                        _ => now_s,
                    };
                    records[i].ended_at_s = Some(end.max(records[i].at_s));
                }
                continue;
            }
            // A per-second figure covers the second before `now_s`; the probe is a moment.
            let start = match (probe, o.probe.and_then(|p| p.failed_at)) {
                (true, Some(t)) => t.min(now_s),
                _ => (now_s - 1.0).max(0.0),
            };
            let since = *state.breach_since.get_or_insert(start);
            let hold = rule.hold.as_secs_f64();
            if state.firing.is_none() && now_s - since >= hold - 1e-9 {
                let record = AlertRecord {
                    rule: rule.name.clone(),
                    severity: rule.severity.as_str().to_string(),
                    // When the condition had held `for` long enough, not when this tick saw it.
                    at_s: (since + hold).min(now_s),
                    ended_at_s: None,
                    message: message(rule, v, now_s - since),
                };
                state.firing = Some(records.len());
                records.push(record.clone());
                raised.push(record);
            }
        }
        raised
    }

    /// Every alert so far, in the order raised.
    pub fn records(&self) -> Vec<AlertRecord> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    /// The alerts still firing.
    pub fn firing(&self) -> Vec<AlertRecord> {
        self.records()
            .into_iter()
            .filter(|r| r.ended_at_s.is_none())
            .collect()
    }
}

fn figure(metric: AlertMetric, o: &Observation<'_>) -> Option<f64> {
    if metric == AlertMetric::ProbeFailed {
        return o
            .probe
            .map(|p| if p.failed_at.is_some() { 1.0 } else { 0.0 });
    }
    let p = o.point?;
    match metric {
        AlertMetric::ErrorRate => p.error_rate(),
        AlertMetric::Rps => Some(p.calls as f64),
        // Latency is of successful calls; a second without one has no latency.
        AlertMetric::P50 => p.has_latency().then_some(p.p50_ms),
        AlertMetric::P95 => p.has_latency().then_some(p.p95_ms),
        AlertMetric::P99 => p.has_latency().then_some(p.p99_ms),
        AlertMetric::RssMb => p.target_rss_mb,
        AlertMetric::RssPct => match (p.target_rss_mb, o.rss_limit_mb) {
            (Some(rss), Some(limit)) if limit > 0.0 => Some(rss * 100.0 / limit),
            _ => None,
        },
        AlertMetric::CpuPct => p.target_cpu_pct,
        AlertMetric::Threads => p.target_threads.map(|x| x as f64),
        AlertMetric::OpenFiles => p.target_open_files.map(|x| x as f64),
        AlertMetric::Connections => p.target_connections.map(|x| x as f64),
        AlertMetric::ActiveSessions => Some(p.active_sessions as f64),
        AlertMetric::ProbeFailed => None,
    }
}

fn message(rule: &AlertRule, v: f64, held_s: f64) -> String {
    let seen = match rule.metric {
        AlertMetric::ProbeFailed => return "the health probe failed".to_string(),
        AlertMetric::ErrorRate => format!("error rate {:.1} %", v * 100.0),
        AlertMetric::P50 | AlertMetric::P95 | AlertMetric::P99 => {
            format!(
                "{} {:.0} ms",
                rule.when.split_whitespace().next().unwrap_or(""),
                v
            )
        }
        AlertMetric::RssMb => format!("target RSS {v:.0} MB"),
        AlertMetric::RssPct => format!("target RSS at {v:.0} % of its limit"),
        AlertMetric::CpuPct => format!("target CPU {v:.0} %"),
        _ => format!(
            "{} {v:.0}",
            rule.when.split_whitespace().next().unwrap_or("")
        ),
    };
    format!("{seen} ({}) for {:.0} s", rule.when, held_s)
}

/// The memory limit of a process's cgroup (v2 `memory.max`), in MB; `None` when unlimited
/// or unknown.
pub fn cgroup_limit_mb(pid: u32) -> Option<f64> {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let max = std::fs::read_to_string(format!("/sys/fs/cgroup{}/memory.max", path.trim())).ok()?;
    let bytes: f64 = max.trim().parse().ok()?;
    Some(bytes / 1_048_576.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(t: u64, calls: u64, failed: u64, p95_ms: f64) -> SecondPoint {
        SecondPoint {
            t,
            calls,
            ok: calls - failed,
            failed,
            p95_ms,
            ..Default::default()
        }
    }

    #[test]
    fn default_rules_parse() {
        let rules = default_rules();
        assert_eq!(rules.len(), 4);
        assert_eq!(rules[0].threshold, 0.01);
        assert_eq!(rules[1].threshold, 5000.0);
    }

    #[test]
    fn fires_after_holding_and_ends_when_cleared() {
        let alerts = Alerts::new(default_rules());
        fn o(p: &SecondPoint) -> Observation<'_> {
            Observation {
                point: Some(p),
                probe: ProbeWindow::of(&[(0.0, true)], 0),
                rss_limit_mb: None,
            }
        }
        // 4 bad seconds: not yet.
        for t in 1..=4 {
            let p = second(t, 100, 5, 1.0);
            assert!(alerts.observe(t as f64, o(&p)).is_empty(), "t={t}");
        }
        // An empty second neither breaks nor clears the streak.
        let empty = second(5, 0, 0, 0.0);
        assert!(alerts.observe(5.0, o(&empty)).is_empty());
        let p = second(6, 100, 5, 1.0);
        let raised = alerts.observe(6.0, o(&p));
        assert_eq!(raised.len(), 1, "{raised:?}");
        assert_eq!(raised[0].rule, "error_rate");
        assert!(
            raised[0].message.contains("error rate 5.0 %"),
            "{}",
            raised[0].message
        );
        // Still bad: no second alert.
        let p = second(7, 100, 5, 1.0);
        assert!(alerts.observe(7.0, o(&p)).is_empty());
        let good = second(8, 100, 0, 1.0);
        alerts.observe(8.0, o(&good));
        let records = alerts.records();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].ended_at_s, Some(8.0));
        assert!(alerts.firing().is_empty());
    }

    #[test]
    fn probe_failure_fires_at_once_and_rss_needs_a_limit() {
        let alerts = Alerts::new(default_rules());
        let mut p = second(1, 10, 0, 1.0);
        p.target_rss_mb = Some(900.0);
        let raised = alerts.observe(
            1.0,
            Observation {
                point: Some(&p),
                probe: ProbeWindow::of(&[(0.0, true), (0.3, false), (0.6, true)], 0),
                rss_limit_mb: None,
            },
        );
        assert_eq!(
            raised.len(),
            1,
            "a failure recovered within the second still counts"
        );
        assert_eq!(raised[0].severity, "critical");
        assert_eq!(
            raised[0].at_s, 0.3,
            "timed at the failed probe, not at the tick"
        );
        let alerts = Alerts::new(vec![
            AlertRule::parse("rss", "rss_pct > 80%", Duration::ZERO, Severity::Warning).unwrap(),
        ]);
        let with_limit = Observation {
            point: Some(&p),
            probe: None,
            rss_limit_mb: Some(1000.0),
        };
        assert_eq!(alerts.observe(1.0, with_limit).len(), 1);
    }

    #[test]
    fn probe_windows_read_every_change_since_the_last_look() {
        let changes = [(0.1, true), (2.2, false), (2.5, true), (4.0, false)];
        assert_eq!(ProbeWindow::of(&[], 0), None, "nothing said yet");
        let w = ProbeWindow::of(&changes[..1], 0).unwrap();
        assert_eq!((w.failed_at, w.healthy_since), (None, Some(0.1)));
        // Nothing new, still healthy.
        assert_eq!(ProbeWindow::of(&changes[..1], 1).unwrap().failed_at, None);
        let w = ProbeWindow::of(&changes[..3], 1).unwrap();
        assert_eq!((w.failed_at, w.healthy_since), (Some(2.2), Some(2.5)));
        let w = ProbeWindow::of(&changes, 3).unwrap();
        assert_eq!((w.failed_at, w.healthy_since), (Some(4.0), None));
        // Still failing, nothing new: the failure goes on.
        assert_eq!(ProbeWindow::of(&changes, 4).unwrap().failed_at, Some(4.0));

        let alerts = Alerts::new(default_rules());
        let probe = |known: usize, seen| Observation {
            point: None,
            probe: ProbeWindow::of(&changes[..known], seen),
            rss_limit_mb: None,
        };
        assert!(alerts.observe(1.0, probe(1, 0)).is_empty());
        // The probe failed at 2.2 and was back at 2.5, between two looks: an alert all the same,
        // and it ended when the probe recovered.
        let raised = alerts.observe(3.0, probe(3, 1));
        assert_eq!(raised.len(), 1);
        assert_eq!(raised[0].at_s, 2.2);
        assert_eq!(
            alerts.records()[0].ended_at_s,
            None,
            "ends on the next healthy look"
        );
        alerts.observe(4.0, probe(3, 3));
        assert_eq!(alerts.records()[0].ended_at_s, Some(2.5));
    }

    #[test]
    fn scenario_rules_replace_defaults_by_name_and_errors_name_the_key() {
        let raw: RawAlerts = toml::from_str(
            r#"
            rss_limit = "1GB"
            [[rules]]
            name = "p95"
            when = "p95 > 200ms"
            for = "3s"
            severity = "critical"
            [[rules]]
            when = "latency > 3"
            [[rules]]
            when = "p99 > 1s"
            for = "soon"
            "#,
        )
        .unwrap();
        let mut problems = Vec::new();
        let cfg = AlertConfig::from_raw(Some(&raw), &mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("alerts.rules[1].when"), "{problems:?}");
        assert!(problems[1].contains("alerts.rules[2].for"), "{problems:?}");
        let p95 = cfg.rules.iter().find(|r| r.name == "p95").unwrap();
        assert_eq!(p95.threshold, 200.0);
        assert_eq!(p95.severity, Severity::Critical);
        assert_eq!(cfg.rules.iter().filter(|r| r.name == "p95").count(), 1);
        assert_eq!(cfg.rss_limit_mb, Some(1024.0));
    }
}
