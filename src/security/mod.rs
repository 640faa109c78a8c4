//! The security and robustness suite (`mcpstorm probe`, and `[security]` in a scenario):
//! probes that ask whether a server keeps strangers out and survives hostile input.
//!
//! Each probe family is one file (or folder) implementing [`Probe`] (concurrency bugs, auth,
//! session isolation, malformed input, schema fuzzing, HTTP hygiene, resilience under
//! overload, failure and memory pressure, rate limits), registered in [`registry`]. A
//! probe sends requests through [`wire::Ctx`], which paces them, records every answer (so
//! `hygiene` can look for stack traces in all of them) and checks after each hostile request
//! that the server is still alive. Every check ends as a [`Finding`] with severity, evidence
//! (request, response excerpt) and advice, in the report's `security` list.
//!
//! What it must never do: send anything off loopback on its own (it only talks to the target
//! it was given), run without a deadline and a request budget, or print a real token or
//! secret in evidence (tokens are described, not shown).

pub mod command;
pub mod config;
pub mod flags;
mod stdio_proc;
mod tokens;
pub(crate) mod wire;

mod auth;
pub mod concurrency;
mod hygiene;
mod input;
mod rate_limit;
pub mod resilience;
mod schema_fuzz;
mod session;

pub use config::{AuthKey, RateScope, SecurityConfig, When};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// How bad a failed finding is. Ordered from worst to mildest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Strangers get in, or the server died.
    Critical,
    /// A protection is missing or a request hangs the server.
    High,
    /// A protection is weaker than declared, or the server fails on input it should refuse.
    Medium,
    /// A detail of the protocol or of hygiene.
    Low,
    Info,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }
    pub fn parse(s: &str) -> Option<Severity> {
        [
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Low,
            Severity::Info,
        ]
        .into_iter()
        .find(|v| v.name() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// Not applicable to this target, or missing what it needs (a key, a declared limit).
    Skip,
}

/// What was sent and what came back, cut to a readable length. Tokens are described.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub request: String,
    pub response: String,
    /// The same as data, where a probe has figures to give (the concurrency probes do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// One finding, in the shape of the report contract (BRIEF.md, "Report shape of a finding").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// `family.check`, like `auth.expired_jwt`.
    pub probe: String,
    /// The family: concurrency, auth, session, input, schema_fuzz, hygiene, resilience,
    /// rate_limit.
    pub category: String,
    pub severity: Severity,
    pub outcome: Outcome,
    pub title: String,
    pub evidence: Evidence,
    pub advice: String,
    /// Fields a newer mcpstorm (or another probe family) added, kept as they came so a report
    /// read back and written again loses nothing.
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Finding {
    fn new(probe: &str, severity: Severity, outcome: Outcome, title: impl Into<String>) -> Self {
        Finding {
            probe: probe.to_string(),
            category: probe.split('.').next().unwrap_or(probe).to_string(),
            severity,
            outcome,
            title: title.into(),
            evidence: Evidence::default(),
            advice: String::new(),
            extra: serde_json::Map::new(),
        }
    }
    pub(crate) fn pass(probe: &str, severity: Severity, title: impl Into<String>) -> Self {
        Self::new(probe, severity, Outcome::Pass, title)
    }
    pub(crate) fn fail(probe: &str, severity: Severity, title: impl Into<String>) -> Self {
        Self::new(probe, severity, Outcome::Fail, title)
    }
    pub(crate) fn skip(probe: &str, title: impl Into<String>) -> Self {
        Self::new(probe, Severity::Info, Outcome::Skip, title)
    }
    pub(crate) fn evidence(
        mut self,
        request: impl Into<String>,
        response: impl Into<String>,
    ) -> Self {
        self.evidence = Evidence {
            request: request.into(),
            response: response.into(),
            details: None,
        };
        self
    }
    pub(crate) fn advice(mut self, advice: impl Into<String>) -> Self {
        self.advice = advice.into();
        self
    }
    /// The target could not be reached when the probes were to run (in a scenario).
    pub fn unreachable(why: &str) -> Self {
        Finding::fail(
            "security.reachable",
            Severity::Critical,
            format!("the target could not be reached for the probes: {why}"),
        )
        .advice("the server went down during the run; look at its log and the run's errors")
    }
    pub fn failed(&self) -> bool {
        self.outcome == Outcome::Fail
    }
}

/// One family of probes. Adding a family is a file with this trait and a line in [`registry`].
pub(crate) trait Probe: Send + Sync {
    /// The family's name: the `category` of its findings and the word `--only` takes.
    fn name(&self) -> &'static str;
    /// Run every check of the family against the target; one finding per check.
    fn run<'a>(&'a self, ctx: &'a wire::Ctx) -> BoxFuture<'a, Vec<Finding>>;
}

/// The families in the order they run: concurrency first, so its first-call probe sends
/// the server's first tool calls; rate limits last, because their burst leaves the server's
/// buckets empty for whatever would come after; hygiene after input and fuzzing, because it
/// also reads every error body those provoked; resilience after hygiene, so its hundreds of
/// refusals are not what the leak search reads.
pub(crate) fn registry() -> Vec<Box<dyn Probe>> {
    vec![
        Box::new(concurrency::Concurrency),
        Box::new(auth::Auth),
        Box::new(session::SessionIsolation),
        Box::new(input::Input),
        Box::new(schema_fuzz::SchemaFuzz),
        Box::new(hygiene::Hygiene),
        Box::new(resilience::Resilience),
        Box::new(rate_limit::RateLimit),
    ]
}

/// The names `--only` and `security.only` accept.
pub fn family_names() -> Vec<&'static str> {
    registry().iter().map(|p| p.name()).collect()
}

/// What the suite learned and found.
#[derive(Debug, Clone)]
pub struct SuiteOutcome {
    pub findings: Vec<Finding>,
    pub server: crate::session::ServerInfo,
    pub requests_sent: u64,
}

/// Run the suite against a resolved target (HTTP URL or stdio command). `Err` when the
/// target cannot be reached or spoken to at all (exit 3); everything else is a finding.
pub async fn run_suite(
    target: &crate::target::TargetSpec,
    cfg: &SecurityConfig,
    stderr_log: std::sync::Arc<crate::transport::stdio::StderrLog>,
) -> Result<SuiteOutcome, crate::error::CallError> {
    let ctx = wire::Ctx::connect(target, cfg.clone(), stderr_log).await?;
    let mut findings = Vec::new();
    for probe in registry() {
        if !cfg.selected(probe.name()) {
            continue;
        }
        if let Some(why) = ctx.down() {
            findings.push(
                Finding::skip(probe.name(), format!("not run: {why}"))
                    .advice("fix the crash reported above and run the probes again"),
            );
            continue;
        }
        findings.extend(probe.run(&ctx).await);
    }
    // Last, so the log holds the refusals of every family, the rate-limit burst included.
    if cfg.selected("hygiene") && ctx.http().is_some() {
        findings.push(hygiene::security_log(&ctx).await);
    }
    Ok(SuiteOutcome {
        findings,
        server: ctx.server.clone(),
        requests_sent: ctx.requests_sent(),
    })
}

/// Findings grouped by severity, worst first, with evidence and advice: what `probe` prints.
pub fn render(findings: &[Finding]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let failed: Vec<&Finding> = findings.iter().filter(|f| f.failed()).collect();
    let passed = findings
        .iter()
        .filter(|f| f.outcome == Outcome::Pass)
        .count();
    let skipped = findings
        .iter()
        .filter(|f| f.outcome == Outcome::Skip)
        .count();
    let _ = writeln!(
        s,
        "\nsecurity: {} findings, {} failed, {} passed, {} skipped",
        findings.len(),
        failed.len(),
        passed,
        skipped
    );
    let mut severities: Vec<Severity> = failed.iter().map(|f| f.severity).collect();
    severities.sort();
    severities.dedup();
    for sev in severities {
        let _ = writeln!(
            s,
            "\n{} ({})",
            sev.name().to_uppercase(),
            failed.iter().filter(|f| f.severity == sev).count()
        );
        for f in failed.iter().filter(|f| f.severity == sev) {
            let _ = writeln!(s, "  FAIL {}: {}", f.probe, f.title);
            if !f.evidence.request.is_empty() {
                let _ = writeln!(s, "       request:  {}", f.evidence.request);
            }
            if !f.evidence.response.is_empty() {
                let _ = writeln!(s, "       response: {}", f.evidence.response);
            }
            if !f.advice.is_empty() {
                let _ = writeln!(s, "       advice:   {}", f.advice);
            }
        }
    }
    if passed > 0 {
        let _ = writeln!(s, "\npassed");
        for f in findings.iter().filter(|f| f.outcome == Outcome::Pass) {
            let _ = writeln!(s, "  ok   {}: {}", f.probe, f.title);
        }
    }
    if skipped > 0 {
        let _ = writeln!(s, "\nskipped");
        for f in findings.iter().filter(|f| f.outcome == Outcome::Skip) {
            let _ = writeln!(s, "  skip {}: {}", f.probe, f.title);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_serializes_in_the_contract_shape() {
        let f = Finding::fail(
            "auth.expired_jwt",
            Severity::Critical,
            "an expired token was served",
        )
        .evidence("POST /mcp", "HTTP 200")
        .advice("check exp");
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"probe": "auth.expired_jwt", "category": "auth",
                "severity": "critical", "outcome": "fail", "title": "an expired token was served",
                "evidence": {"request": "POST /mcp", "response": "HTTP 200"}, "advice": "check exp"})
        );
        let back: Finding = serde_json::from_value(v).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn render_groups_failures_by_severity_worst_first() {
        let f = vec![
            Finding::fail("input.deep_nesting", Severity::Medium, "HTTP 500"),
            Finding::pass("auth.no_token", Severity::High, "refused"),
            Finding::fail("auth.alg_none", Severity::Critical, "served"),
            Finding::skip("rate_limit.enforced", "no declared limit"),
        ];
        let text = render(&f);
        let crit = text.find("CRITICAL (1)").unwrap();
        let med = text.find("MEDIUM (1)").unwrap();
        assert!(crit < med, "{text}");
        assert!(text.contains("2 failed, 1 passed, 1 skipped"), "{text}");
    }
}
