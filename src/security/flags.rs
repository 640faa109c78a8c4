//! `mcpstorm probe`'s flags, and their validation into [`ProbeOptions`]: every problem is
//! listed at once, each naming its flag.

use super::command::ProbeOptions;
use super::concurrency::ConcurrencyProbes;
use super::config::{RateLimitConfig, parse_size};
use super::resilience::{
    BreakerProbe, MemoryGuardProbe, OverloadProbe, ToolCall, breaker, memory_guard, overload,
};
use super::{RateScope, SecurityConfig};
use crate::error::Error;
use crate::target::TargetSpec;
use std::path::PathBuf;
use std::time::Duration;

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|_| format!("`{s}` is not a duration; write it like 500ms, 30s or 5m"))
}

#[derive(clap::Args, Debug)]
pub struct ProbeArgs {
    /// embedded, embedded-stdio, http(s)://HOST:PORT/PATH, or 'stdio:COMMAND ARGS'.
    #[arg(long, default_value = "embedded")]
    target: String,
    /// An HTTP header for every request, 'Name: value' (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Run only these probe families (comma list): concurrency, auth, session, input,
    /// schema_fuzz, hygiene, resilience, rate_limit.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The largest body the input probes send (e.g. 50MB, 4MB).
    #[arg(long, default_value = "50MB")]
    max_body: String,
    /// Sign test JWTs (HS256) with the secret in this environment variable (its name, not the secret).
    #[arg(long, value_name = "VAR")]
    auth_hs256_secret_env: Option<String>,
    /// Sign test JWTs (RS256) with this PEM private key.
    #[arg(long, value_name = "PATH")]
    auth_rs256_private_key: Option<String>,
    /// The `aud` the server expects.
    #[arg(long, default_value = "mcpstorm")]
    audience: String,
    /// The `iss` the server expects, if it checks one.
    #[arg(long)]
    issuer: Option<String>,
    /// The rate limit the server declares, requests per second (enables the rate-limit probe).
    #[arg(long, value_name = "N")]
    rate_limit: Option<f64>,
    /// What the declared limit counts: per_ip, global or per_principal.
    #[arg(long, default_value = "per_ip")]
    rate_scope: String,
    /// Origins the server allows for CORS (repeatable; default none).
    #[arg(long = "cors-origin")]
    cors_origins: Vec<String>,
    /// Fuzz tools annotated destructiveHint: true too.
    #[arg(long)]
    allow_destructive: bool,
    /// The server's log (its stderr): checked for the refusals the probes caused.
    #[arg(long, value_name = "PATH")]
    server_log: Option<PathBuf>,
    /// How long to wait for each answer (and for the health ping after a hostile request).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// Overload: a slow tool to call many times at once (default: a `sleep` tool taking ms, if any).
    #[arg(long, value_name = "NAME")]
    slow_tool: Option<String>,
    /// Overload: the slow tool's arguments, a JSON object like '{"ms": 2000}'.
    #[arg(long, value_name = "JSON", requires = "slow_tool")]
    slow_arguments: Option<String>,
    /// Overload: calls sent at once (more than the server should hold).
    #[arg(long, value_name = "N", default_value_t = overload::DEFAULT_CONCURRENCY)]
    overload_concurrency: usize,
    /// Overload: a call unanswered this long hung (default: from the call's time alone).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    overload_deadline: Option<Duration>,
    /// Circuit breaker: a tool call that fails every time (enables the breaker probe).
    #[arg(long, value_name = "NAME")]
    breaker_tool: Option<String>,
    /// Circuit breaker: its arguments, a JSON object like '{"error_rate": 1.0}'.
    #[arg(long, value_name = "JSON", requires = "breaker_tool")]
    breaker_arguments: Option<String>,
    /// Circuit breaker: failures in a row after which the server opens the circuit.
    #[arg(long, value_name = "N", default_value_t = breaker::DEFAULT_FAILURES)]
    breaker_failures: u32,
    /// Circuit breaker: how long the server keeps it open before a trial call.
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = parse_duration)]
    breaker_open: Duration,
    /// Memory guard: a heavy call that makes the server hold memory (enables the memory-guard probe).
    #[arg(long, value_name = "NAME")]
    memory_tool: Option<String>,
    /// Memory guard: its arguments, a JSON object like '{"bytes": 33554432, "hold_ms": 4000}'.
    #[arg(long, value_name = "JSON", requires = "memory_tool")]
    memory_arguments: Option<String>,
    /// Memory guard: MB one heavy call holds while it runs.
    #[arg(long, value_name = "MB", requires = "memory_tool")]
    memory_request_mb: Option<u64>,
    /// Memory guard: the server's threshold, MB of resident memory.
    #[arg(long, value_name = "MB", requires = "memory_tool")]
    memory_threshold_mb: Option<u64>,
    /// Memory guard: time between two heavy calls.
    #[arg(long, value_name = "DUR", default_value = "250ms", value_parser = parse_duration)]
    memory_interval: Duration,
    /// Concurrency: the tool whose first calls are released at once (default: the first tool
    /// that takes no arguments).
    #[arg(long, value_name = "NAME")]
    first_call_tool: Option<String>,
    /// Concurrency: its arguments, a JSON object.
    #[arg(long, value_name = "JSON", requires = "first_call_tool")]
    first_call_arguments: Option<String>,
    /// Concurrency: a deterministic call sent from many sessions at once (enables the race check).
    #[arg(long, value_name = "NAME")]
    race_tool: Option<String>,
    /// Concurrency: its arguments, a JSON object.
    #[arg(long, value_name = "JSON", requires = "race_tool")]
    race_arguments: Option<String>,
    /// Concurrency: sessions each concurrency probe opens at once.
    #[arg(long, value_name = "N", default_value_t = 20)]
    concurrency_sessions: usize,
    /// A criterion on the findings (repeatable), e.g. 'security.failures{severity=critical} == 0'.
    #[arg(long = "criterion")]
    criteria: Vec<String>,
    /// Folder for report.json and junit.xml.
    #[arg(long, default_value = "mcpstorm-out")]
    out: PathBuf,
    #[arg(long, hide = true)]
    server_exe: Option<PathBuf>,
}

/// A tool and its `--x-arguments` (default `{}`); a bad JSON is a problem named by `key`.
fn tool_call(
    tool: Option<String>,
    arguments: Option<String>,
    key: &str,
    problems: &mut Vec<String>,
) -> Option<ToolCall> {
    let tool = tool?;
    let arguments = match arguments {
        Some(text) => ToolCall::parse_arguments(&text, key)
            .map_err(|e| problems.push(e))
            .ok()?,
        None => serde_json::json!({}),
    };
    Some(ToolCall { tool, arguments })
}

impl ProbeArgs {
    /// The validated options, or every problem with the flags (exit 2).
    pub fn into_options(self) -> Result<ProbeOptions, Error> {
        let target = TargetSpec::parse_flag(&self.target, &self.headers).map_err(Error::Usage)?;
        let mut problems = Vec::new();
        let timeout = self.timeout;
        let mut config = SecurityConfig {
            timeout,
            health_timeout: timeout,
            audience: self.audience,
            issuer: self.issuer,
            cors_origins: self.cors_origins,
            allow_destructive: self.allow_destructive,
            server_log: self.server_log,
            ..Default::default()
        };
        if timeout.is_zero() {
            problems.push("--timeout must be more than 0".to_string());
        }
        if !self.only.is_empty() {
            match SecurityConfig::check_only(&self.only, "--only") {
                Ok(()) => config.only = Some(self.only),
                Err(e) => problems.push(e),
            }
        }
        match parse_size(&self.max_body) {
            Ok(n) if n > 0 => config.max_body = n,
            Ok(_) => problems.push("--max-body must be more than 0".into()),
            Err(e) => problems.push(format!("--max-body {e}")),
        }
        let key = match (&self.auth_hs256_secret_env, &self.auth_rs256_private_key) {
            (Some(_), Some(_)) => {
                problems.push(
                    "give --auth-hs256-secret-env or --auth-rs256-private-key, not both".into(),
                );
                None
            }
            (Some(var), None) => SecurityConfig::hs256_from_env(var, "--auth-hs256-secret-env")
                .map_err(|e| problems.push(e))
                .ok(),
            (None, Some(path)) => SecurityConfig::rs256_from_file(path, "--auth-rs256-private-key")
                .map_err(|e| problems.push(e))
                .ok(),
            (None, None) => None,
        };
        config.auth_key_described = key.as_ref().map(|k| k.describe());
        config.auth_key = key;
        let scope = RateScope::parse(&self.rate_scope);
        if scope.is_none() {
            problems.push(format!(
                "--rate-scope `{}` is not known; use per_ip, global or per_principal",
                self.rate_scope
            ));
        }
        if let Some(n) = self.rate_limit {
            if !(n.is_finite() && n > 0.0) {
                problems.push(format!(
                    "--rate-limit {n}: give the declared requests per second, more than 0"
                ));
            } else if let Some(scope) = scope {
                config.rate_limit = Some(RateLimitConfig::new(n, scope));
            }
        }

        let slow = tool_call(
            self.slow_tool,
            self.slow_arguments,
            "--slow-arguments",
            &mut problems,
        );
        if !(2..=overload::MAX_CONCURRENCY).contains(&self.overload_concurrency) {
            problems.push(format!(
                "--overload-concurrency {}: give 2 to {} calls at once",
                self.overload_concurrency,
                overload::MAX_CONCURRENCY
            ));
        }
        if self.overload_deadline.is_some_and(|d| d.is_zero()) {
            problems.push("--overload-deadline must be more than 0".into());
        }
        config.overload = OverloadProbe {
            call: slow,
            concurrency: self.overload_concurrency,
            deadline: self.overload_deadline,
        };
        let failing = tool_call(
            self.breaker_tool,
            self.breaker_arguments,
            "--breaker-arguments",
            &mut problems,
        );
        if !(1..=breaker::MAX_FAILURES).contains(&self.breaker_failures) {
            problems.push(format!(
                "--breaker-failures {}: give 1 to {}",
                self.breaker_failures,
                breaker::MAX_FAILURES
            ));
        }
        if self.breaker_open.is_zero() || self.breaker_open > breaker::MAX_OPEN_FOR {
            problems.push(format!(
                "--breaker-open {:?}: give more than 0 and at most {:?}",
                self.breaker_open,
                breaker::MAX_OPEN_FOR
            ));
        }
        config.breaker = failing.map(|call| BreakerProbe {
            call,
            failures: self.breaker_failures,
            open_for: self.breaker_open,
        });
        let heavy = tool_call(
            self.memory_tool,
            self.memory_arguments,
            "--memory-arguments",
            &mut problems,
        );
        if let Some(call) = heavy {
            match (self.memory_request_mb, self.memory_threshold_mb) {
                (Some(request_mb), Some(threshold_mb)) => {
                    let probe = MemoryGuardProbe {
                        call,
                        threshold_mb,
                        request_mb,
                        interval: self.memory_interval,
                        deadline: memory_guard::DEFAULT_DEADLINE.max(timeout),
                    };
                    problems.extend(probe.check(&memory_guard::MemoryKeys {
                        threshold: "--memory-threshold-mb",
                        request: "--memory-request-mb",
                        interval: "--memory-interval",
                        deadline: "--timeout",
                    }));
                    config.memory_guard = Some(probe);
                }
                _ => problems.push(
                    "--memory-tool needs --memory-request-mb N (MB one call holds while it runs) and --memory-threshold-mb N (the server's threshold)".into(),
                ),
            }
        }
        let first_call = tool_call(
            self.first_call_tool,
            self.first_call_arguments,
            "--first-call-arguments",
            &mut problems,
        );
        let race = tool_call(
            self.race_tool,
            self.race_arguments,
            "--race-arguments",
            &mut problems,
        );
        if !(2..=1000).contains(&self.concurrency_sessions) {
            problems.push(format!(
                "--concurrency-sessions {}: give 2 to 1000",
                self.concurrency_sessions
            ));
        }
        config.concurrency = Some(ConcurrencyProbes {
            first_call,
            race,
            sessions: self.concurrency_sessions,
            ..Default::default()
        });

        let mut parsed = Vec::new();
        for c in &self.criteria {
            match crate::criteria::Criterion::parse(c) {
                Ok(c) => parsed.push(c),
                Err(e) => problems.push(format!("--criterion {e}")),
            }
        }
        if !problems.is_empty() {
            return Err(Error::Usage(format!(
                "{} problem{} with the flags:\n  - {}",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" },
                problems.join("\n  - ")
            )));
        }
        Ok(ProbeOptions {
            target,
            config,
            criteria: parsed,
            out: self.out,
            server_exe: self.server_exe,
        })
    }
}
