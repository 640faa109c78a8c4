//! `[security]` in a scenario: the probe suite run with the load (sub-tables `auth`,
//! `rate_limit`, `input`, `hygiene`, `overload`, `breaker`, `memory_guard`), validated into a
//! [`SecurityConfig`] with every problem named by its key.

use crate::security::config::{RateLimitConfig, parse_size};
use crate::security::resilience::{
    BreakerProbe, MemoryGuardProbe, OverloadProbe, ToolCall, breaker, memory_guard, overload,
};
use crate::security::{RateScope, SecurityConfig, When};
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawSecurity {
    /// "after" (default) or "before" the load.
    pub when: Option<String>,
    pub only: Option<Vec<String>>,
    /// The server's log, checked for the refusals the probes caused (default: the stderr of
    /// a server mcpstorm started).
    pub server_log: Option<String>,
    pub timeout: Option<String>,
    pub auth: Option<RawAuth>,
    pub rate_limit: Option<RawRateLimit>,
    pub input: Option<RawInput>,
    pub hygiene: Option<RawHygiene>,
    pub overload: Option<RawOverload>,
    pub breaker: Option<RawBreaker>,
    pub memory_guard: Option<RawMemoryGuard>,
    /// Not a key: the concurrency probes run from the scenario's `[concurrency]` table.
    pub concurrency: Option<toml::Value>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawOverload {
    pub tool: Option<String>,
    pub arguments: Option<toml::Value>,
    pub concurrency: Option<usize>,
    pub deadline: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    pub tool: Option<String>,
    pub arguments: Option<toml::Value>,
    pub failures: Option<u32>,
    pub open_for: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawMemoryGuard {
    pub tool: Option<String>,
    pub arguments: Option<toml::Value>,
    pub threshold_mb: Option<u64>,
    pub request_mb: Option<u64>,
    pub interval: Option<String>,
    pub deadline: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub hs256_secret_env: Option<String>,
    pub rs256_private_key: Option<String>,
    pub audience: Option<String>,
    pub issuer: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub declared: Option<f64>,
    pub scope: Option<String>,
    pub burst_factor: Option<f64>,
    pub burst_duration: Option<String>,
    pub under_factor: Option<f64>,
    pub under_duration: Option<String>,
    pub tolerance: Option<f64>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawInput {
    pub max_body: Option<String>,
    pub notification_flood: Option<usize>,
    pub nesting_depth: Option<usize>,
    pub fuzz_tools: Option<usize>,
    pub fuzz_cases: Option<usize>,
    pub allow_destructive: Option<bool>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawHygiene {
    pub cors_origins: Option<Vec<String>>,
}

fn positive(v: Option<f64>, key: &str, default: f64, p: &mut Vec<String>) -> f64 {
    match v {
        Some(x) if x.is_finite() && x > 0.0 => x,
        Some(x) => {
            p.push(format!("`{key}` = {x} must be more than 0"));
            default
        }
        None => default,
    }
}

/// Validate `[security]`; relative key paths resolve from `base` (the scenario's folder).
pub fn security_from(
    raw: &RawSecurity,
    base: Option<&Path>,
    p: &mut Vec<String>,
) -> Option<SecurityConfig> {
    let before = p.len();
    let when = match raw.when.as_deref() {
        None | Some("after") => When::After,
        Some("before") => When::Before,
        Some(other) => {
            p.push(format!(
                "`security.when` = \"{other}\" is not known; use \"after\" (the default: probe the server the load has been through) or \"before\""
            ));
            When::After
        }
    };
    let mut c = SecurityConfig {
        when,
        ..Default::default()
    };
    if let Some(only) = &raw.only {
        match SecurityConfig::check_only(only, "`security.only`") {
            Ok(()) => c.only = Some(only.clone()),
            Err(e) => p.push(e),
        }
    }
    if let Some(t) = &raw.timeout
        && let Some(d) = super::duration(t, "security.timeout", p)
    {
        if d.is_zero() {
            p.push("`security.timeout` must be more than 0".into());
        } else {
            c.timeout = d;
            c.health_timeout = d;
        }
    }
    let auth = raw.auth.clone().unwrap_or_default();
    c.auth_key = match (&auth.hs256_secret_env, &auth.rs256_private_key) {
        (Some(_), Some(_)) => {
            p.push("`security.auth`: give hs256_secret_env or rs256_private_key, not both".into());
            None
        }
        (Some(var), None) => {
            SecurityConfig::hs256_from_env(var, "`security.auth.hs256_secret_env`")
                .map_err(|e| p.push(e))
                .ok()
        }
        (None, Some(path)) => {
            let path = match base {
                Some(b) if Path::new(path).is_relative() => b.join(path).display().to_string(),
                _ => path.clone(),
            };
            SecurityConfig::rs256_from_file(&path, "`security.auth.rs256_private_key`")
                .map_err(|e| p.push(e))
                .ok()
        }
        (None, None) => None,
    };
    c.auth_key_described = c.auth_key.as_ref().map(|k| k.describe());
    if let Some(a) = auth.audience {
        c.audience = a;
    }
    c.issuer = auth.issuer;
    if let Some(rl) = &raw.rate_limit {
        match rl.declared {
            None => p.push("`security.rate_limit.declared` is missing: the requests per second the server allows".into()),
            Some(d) if !(d.is_finite() && d > 0.0) => {
                p.push(format!("`security.rate_limit.declared` = {d} must be more than 0"));
            }
            Some(d) => {
                let scope = match rl.scope.as_deref() {
                    None => RateScope::PerIp,
                    Some(s) => RateScope::parse(s).unwrap_or_else(|| {
                        p.push(format!("`security.rate_limit.scope` = \"{s}\" is not known; use \"per_ip\", \"global\" or \"per_principal\""));
                        RateScope::PerIp
                    }),
                };
                let mut r = RateLimitConfig::new(d, scope);
                r.burst_factor = positive(rl.burst_factor, "security.rate_limit.burst_factor", r.burst_factor, p);
                if r.burst_factor <= 1.0 {
                    p.push("`security.rate_limit.burst_factor` must be more than 1: the burst goes over the limit".into());
                }
                r.under_factor = positive(rl.under_factor, "security.rate_limit.under_factor", r.under_factor, p);
                if r.under_factor >= 1.0 {
                    p.push("`security.rate_limit.under_factor` must be less than 1: that traffic stays under the limit".into());
                }
                r.tolerance = positive(rl.tolerance, "security.rate_limit.tolerance", r.tolerance, p);
                for (key, value, slot) in [
                    ("security.rate_limit.burst_duration", &rl.burst_duration, &mut r.burst_duration),
                    ("security.rate_limit.under_duration", &rl.under_duration, &mut r.under_duration),
                ] {
                    if let Some(s) = value
                        && let Some(d) = super::duration(s, key, p)
                    {
                        if d.is_zero() {
                            p.push(format!("`{key}` must be more than 0"));
                        }
                        *slot = d;
                    }
                }
                c.rate_limit = Some(r);
            }
        }
    }
    let input = raw.input.clone().unwrap_or_default();
    if let Some(s) = &input.max_body {
        match parse_size(s) {
            Ok(n) if n > 0 && n <= 1024 * 1024 * 1024 => c.max_body = n,
            Ok(_) => p.push(format!(
                "`security.input.max_body` = \"{s}\" must be more than 0 and at most 1GB"
            )),
            Err(e) => p.push(format!("`security.input.max_body` {e}")),
        }
    }
    for (key, value, slot, max) in [
        (
            "security.input.notification_flood",
            input.notification_flood,
            &mut c.notification_flood,
            100_000,
        ),
        (
            "security.input.nesting_depth",
            input.nesting_depth,
            &mut c.nesting_depth,
            1_000_000,
        ),
        (
            "security.input.fuzz_tools",
            input.fuzz_tools,
            &mut c.fuzz_tools,
            1000,
        ),
        (
            "security.input.fuzz_cases",
            input.fuzz_cases,
            &mut c.fuzz_cases,
            1000,
        ),
    ] {
        match value {
            Some(v) if v == 0 || v > max => {
                p.push(format!("`{key}` = {v} must be from 1 to {max}"))
            }
            Some(v) => *slot = v,
            None => {}
        }
    }
    c.allow_destructive = input.allow_destructive.unwrap_or(false);
    c.server_log = raw.server_log.as_ref().map(|l| match base {
        Some(b) if Path::new(l).is_relative() => b.join(l),
        _ => std::path::PathBuf::from(l),
    });
    if let Some(h) = &raw.hygiene {
        c.cors_origins = h.cors_origins.clone().unwrap_or_default();
    }
    resilience_from(raw, &mut c, p);
    if raw.concurrency.is_some()
        || c.only
            .as_ref()
            .is_some_and(|o| o.iter().any(|f| f == "concurrency"))
    {
        p.push("`security.concurrency`: in a scenario the concurrency probes run from the `[concurrency]` table, before the load (the first-call probe must send the server's first tool calls); move them there, e.g. [concurrency] first_call = { tool = \"add\", arguments = { a = 1, b = 2 } }".into());
    }
    (p.len() == before).then_some(c)
}

/// `[security.overload]`, `[security.breaker]`, `[security.memory_guard]`.
fn resilience_from(raw: &RawSecurity, c: &mut SecurityConfig, p: &mut Vec<String>) {
    let duration_of = |s: &Option<String>, key: &str, p: &mut Vec<String>| {
        let d = s.as_ref().and_then(|s| super::duration(s, key, p));
        if d.is_some_and(|d| d.is_zero()) {
            p.push(format!("`{key}` must be more than 0"));
        }
        d
    };
    if let Some(o) = &raw.overload {
        let call = call_of(&o.tool, &o.arguments, "security.overload", false, p);
        let concurrency = o.concurrency.unwrap_or(overload::DEFAULT_CONCURRENCY);
        if !(2..=overload::MAX_CONCURRENCY).contains(&concurrency) {
            p.push(format!(
                "`security.overload.concurrency` = {concurrency}: give 2 to {} calls at once",
                overload::MAX_CONCURRENCY
            ));
        }
        c.overload = OverloadProbe {
            call,
            concurrency,
            deadline: duration_of(&o.deadline, "security.overload.deadline", p),
        };
    }
    if let Some(b) = &raw.breaker {
        let failures = b.failures.unwrap_or(breaker::DEFAULT_FAILURES);
        if !(1..=breaker::MAX_FAILURES).contains(&failures) {
            p.push(format!(
                "`security.breaker.failures` = {failures}: give 1 to {}",
                breaker::MAX_FAILURES
            ));
        }
        let open_for = duration_of(&b.open_for, "security.breaker.open_for", p)
            .unwrap_or(breaker::DEFAULT_OPEN_FOR);
        if open_for > breaker::MAX_OPEN_FOR {
            p.push(format!(
                "`security.breaker.open_for` = {open_for:?}: at most {:?}",
                breaker::MAX_OPEN_FOR
            ));
        }
        c.breaker =
            call_of(&b.tool, &b.arguments, "security.breaker", true, p).map(|call| BreakerProbe {
                call,
                failures,
                open_for,
            });
    }
    if let Some(m) = &raw.memory_guard {
        let call = call_of(&m.tool, &m.arguments, "security.memory_guard", true, p);
        for (key, v) in [
            ("threshold_mb", m.threshold_mb),
            ("request_mb", m.request_mb),
        ] {
            if v.is_none() {
                p.push(format!(
                    "`security.memory_guard.{key}` is missing: {}",
                    match key {
                        "threshold_mb" => "the server's memory threshold, MB",
                        _ => "MB one heavy call makes the server hold while it runs",
                    }
                ));
            }
        }
        let interval = duration_of(&m.interval, "security.memory_guard.interval", p);
        let deadline = duration_of(&m.deadline, "security.memory_guard.deadline", p);
        if let (Some(call), Some(threshold_mb), Some(request_mb)) =
            (call, m.threshold_mb, m.request_mb)
        {
            let probe = MemoryGuardProbe {
                call,
                threshold_mb,
                request_mb,
                interval: interval.unwrap_or(memory_guard::DEFAULT_INTERVAL),
                deadline: deadline.unwrap_or(memory_guard::DEFAULT_DEADLINE),
            };
            p.extend(probe.check(&memory_guard::MemoryKeys {
                threshold: "`security.memory_guard.threshold_mb`",
                request: "`security.memory_guard.request_mb`",
                interval: "`security.memory_guard.interval`",
                deadline: "`security.memory_guard.deadline`",
            }));
            c.memory_guard = Some(probe);
        }
    }
}

/// A table's `tool` and `arguments` (a table of arguments, default empty).
fn call_of(
    tool: &Option<String>,
    arguments: &Option<toml::Value>,
    table: &str,
    required: bool,
    p: &mut Vec<String>,
) -> Option<ToolCall> {
    let arguments = match arguments {
        None => serde_json::json!({}),
        Some(t @ toml::Value::Table(_)) => serde_json::to_value(t).unwrap_or_default(),
        Some(other) => {
            p.push(format!(
                "`{table}.arguments` must be a table of arguments like {{ ms = 2000 }}, found {}",
                other.type_str()
            ));
            return None;
        }
    };
    match tool {
        Some(t) if !t.trim().is_empty() => Some(ToolCall {
            tool: t.clone(),
            arguments,
        }),
        _ if required => {
            p.push(format!("`{table}.tool` is missing: the tool to call"));
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Option<SecurityConfig>, Vec<String>) {
        let raw: RawSecurity = toml::from_str(text).unwrap();
        let mut p = Vec::new();
        (security_from(&raw, None, &mut p), p)
    }

    #[test]
    fn a_full_table_validates() {
        let (c, p) = parse(
            "when = \"before\"\nonly = [\"input\", \"rate_limit\"]\ntimeout = \"2s\"\n[rate_limit]\ndeclared = 100\nscope = \"global\"\n[input]\nmax_body = \"4MB\"\n[hygiene]\ncors_origins = [\"https://app.example\"]\n",
        );
        assert!(p.is_empty(), "{p:?}");
        let c = c.unwrap();
        assert_eq!(c.when, When::Before);
        assert_eq!(c.max_body, 4 * 1024 * 1024);
        assert_eq!(c.rate_limit.unwrap().scope, RateScope::Global);
        assert_eq!(c.cors_origins, vec!["https://app.example".to_string()]);
    }

    #[test]
    fn every_problem_names_its_key() {
        let (c, p) = parse(
            "when = \"during\"\nonly = [\"authz\"]\n[auth]\nhs256_secret_env = \"MCPSTORM_NO_SUCH_VAR_Y\"\n[rate_limit]\nscope = \"per_moon\"\n[input]\nmax_body = \"huge\"\nfuzz_cases = 0\n",
        );
        assert!(c.is_none());
        let all = p.join("\n");
        for key in [
            "security.when",
            "security.only",
            "security.auth.hs256_secret_env",
            "security.rate_limit.declared",
            "security.input.max_body",
            "security.input.fuzz_cases",
        ] {
            assert!(all.contains(key), "no {key} in:\n{all}");
        }
    }
}
