//! `[security]` in a scenario: the probe suite run with the load (sub-tables `auth`,
//! `rate_limit`, `input`, `hygiene`), validated into a [`SecurityConfig`] with every problem
//! named by its key.

use crate::security::config::{RateLimitConfig, parse_size};
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
    (p.len() == before).then_some(c)
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
