//! The suite's settings, validated: from `mcpstorm probe` flags or a scenario's `[security]`
//! table (raw TOML in `scenario::security`). Nothing downstream re-checks a string.

use serde::Serialize;
use std::time::Duration;

/// The key mcpstorm signs its test tokens with; the server must trust the same key.
#[derive(Clone)]
pub enum AuthKey {
    /// HS256 with this shared secret (read from the environment variable `env`).
    Hs256 { secret: Vec<u8>, env: String },
    /// RS256 with this PEM private key (read from `path`).
    Rs256 { pem: Vec<u8>, path: String },
}

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret itself: this ends up in logs and reports.
        f.write_str(&self.describe())
    }
}

impl AuthKey {
    pub fn describe(&self) -> String {
        match self {
            AuthKey::Hs256 { env, .. } => format!("HS256 secret from ${env}"),
            AuthKey::Rs256 { path, .. } => format!("RS256 private key {path}"),
        }
    }
    /// A secret's text, so the hygiene probe can look for it in error bodies.
    pub fn secret_text(&self) -> Option<String> {
        match self {
            AuthKey::Hs256 { secret, .. } => String::from_utf8(secret.clone()).ok(),
            AuthKey::Rs256 { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateScope {
    Global,
    PerIp,
    PerPrincipal,
}

impl RateScope {
    pub fn parse(s: &str) -> Option<RateScope> {
        match s {
            "global" => Some(RateScope::Global),
            "per_ip" | "per-ip" => Some(RateScope::PerIp),
            "per_principal" | "per-principal" => Some(RateScope::PerPrincipal),
            _ => None,
        }
    }
}

/// The limit the server declares, and how hard the probe pushes on it.
#[derive(Debug, Clone, Serialize)]
pub struct RateLimitConfig {
    /// Requests per second the server says it allows.
    pub declared: f64,
    pub scope: RateScope,
    /// The burst is this many times the declared rate (2.0).
    pub burst_factor: f64,
    #[serde(serialize_with = "crate::workload::ser_duration")]
    pub burst_duration: Duration,
    /// Traffic at this fraction of the declared rate must not be throttled (0.5).
    pub under_factor: f64,
    #[serde(serialize_with = "crate::workload::ser_duration")]
    pub under_duration: Duration,
    /// Accepted rate may differ from the declared one by this fraction (0.2).
    pub tolerance: f64,
}

impl RateLimitConfig {
    pub fn new(declared: f64, scope: RateScope) -> Self {
        RateLimitConfig {
            declared,
            scope,
            burst_factor: 2.0,
            burst_duration: Duration::from_secs(3),
            under_factor: 0.5,
            under_duration: Duration::from_secs(2),
            tolerance: 0.2,
        }
    }
}

/// When a scenario runs its probes, relative to the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum When {
    Before,
    After,
}

#[derive(Debug, Clone, Serialize)]
pub struct SecurityConfig {
    /// Families to run (`None`: all).
    pub only: Option<Vec<String>>,
    /// Per request.
    #[serde(serialize_with = "crate::workload::ser_duration")]
    pub timeout: Duration,
    /// How long the server has to answer the health ping after a hostile request.
    #[serde(serialize_with = "crate::workload::ser_duration")]
    pub health_timeout: Duration,
    #[serde(skip)]
    pub auth_key: Option<AuthKey>,
    pub auth_key_described: Option<String>,
    pub audience: String,
    pub issuer: Option<String>,
    pub rate_limit: Option<RateLimitConfig>,
    /// The largest body the input probes send, in bytes (50 MB).
    pub max_body: usize,
    /// Notifications in the flood.
    pub notification_flood: usize,
    /// Depth of the nested-array probe.
    pub nesting_depth: usize,
    /// Schema fuzzing: at most this many tools, this many cases each.
    pub fuzz_tools: usize,
    pub fuzz_cases: usize,
    /// Fuzz tools annotated `destructiveHint: true` too.
    pub allow_destructive: bool,
    /// Origins the server is configured to allow for CORS (none: no CORS headers expected).
    pub cors_origins: Vec<String>,
    /// The server's log (its stderr), read after the suite for the security events the
    /// probes caused (`hygiene.security_log`).
    pub server_log: Option<std::path::PathBuf>,
    pub when: When,
    /// `resilience.overload`: the slow call (or one recognised) and how many at once.
    pub overload: super::resilience::OverloadProbe,
    /// `resilience.breaker`, when the user declared a failing call.
    pub breaker: Option<super::resilience::BreakerProbe>,
    /// `resilience.memory_guard`, when the user declared a heavy call.
    pub memory_guard: Option<super::resilience::MemoryGuardProbe>,
    /// The `concurrency` family (`mcpstorm probe`); `None` in a scenario, whose
    /// `[concurrency]` table runs them before the load.
    pub concurrency: Option<super::concurrency::ConcurrencyProbes>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            only: None,
            timeout: Duration::from_secs(5),
            health_timeout: Duration::from_secs(5),
            auth_key: None,
            auth_key_described: None,
            audience: "mcpstorm".into(),
            issuer: None,
            rate_limit: None,
            max_body: 50 * 1024 * 1024,
            notification_flood: 1000,
            nesting_depth: 10_000,
            fuzz_tools: 20,
            fuzz_cases: 12,
            allow_destructive: false,
            cors_origins: vec![],
            server_log: None,
            when: When::After,
            overload: Default::default(),
            breaker: None,
            memory_guard: None,
            concurrency: None,
        }
    }
}

impl SecurityConfig {
    pub fn selected(&self, family: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|f| f == family))
    }

    /// Check `--only` / `security.only` names; the error lists the known families.
    pub fn check_only(names: &[String], key: &str) -> Result<(), String> {
        let known = super::family_names();
        let unknown: Vec<&String> = names
            .iter()
            .filter(|n| !known.contains(&n.as_str()))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{key}: unknown probe famil{} {}; known: {}",
                if unknown.len() == 1 { "y" } else { "ies" },
                unknown
                    .iter()
                    .map(|u| format!("`{u}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                known.join(", ")
            ))
        }
    }

    /// Load an HS256 secret from an environment variable; the error names `key`.
    pub fn hs256_from_env(var: &str, key: &str) -> Result<AuthKey, String> {
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(AuthKey::Hs256 {
                secret: v.into_bytes(),
                env: var.to_string(),
            }),
            Ok(_) => Err(format!(
                "{key} `{var}`: the environment variable is empty; export the server's HS256 secret in it"
            )),
            Err(_) => Err(format!(
                "{key} `{var}`: no such environment variable; export the server's HS256 secret in it (the name goes in the flag, not the secret)"
            )),
        }
    }

    /// Load an RS256 private key (PEM); the error names `key`.
    pub fn rs256_from_file(path: &str, key: &str) -> Result<AuthKey, String> {
        let pem = std::fs::read(path)
            .map_err(|e| format!("{key} `{path}`: cannot read the private key: {e}"))?;
        jsonwebtoken::EncodingKey::from_rsa_pem(&pem).map_err(|e| {
            format!("{key} `{path}`: not an RSA private key in PEM ({e}); give the key that signs, as `-----BEGIN PRIVATE KEY-----`")
        })?;
        Ok(AuthKey::Rs256 {
            pem,
            path: path.to_string(),
        })
    }
}

/// A size like `50MB`, `4MiB`, `512KB` or `1000` (bytes); MB is 1024*1024, as `{{random:NMB}}`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(end);
    let n: usize = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size; write it like 50MB, 512KB or 1000"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "`{s}`: unknown size unit `{other}`; use KB, MB or GB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("50MB").unwrap(), 50 * 1024 * 1024);
        assert_eq!(parse_size("4MiB").unwrap(), 4 * 1024 * 1024);
        assert_eq!(parse_size("512KB").unwrap(), 512 * 1024);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert!(parse_size("5PB").unwrap_err().contains("unknown size unit"));
    }

    #[test]
    fn only_names_known_families() {
        assert!(SecurityConfig::check_only(&["auth".into(), "input".into()], "--only").is_ok());
        let e = SecurityConfig::check_only(&["authz".into()], "--only").unwrap_err();
        assert!(
            e.contains("--only") && e.contains("`authz`") && e.contains("rate_limit"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_secret_variable_names_the_flag() {
        let e = SecurityConfig::hs256_from_env("MCPSTORM_NO_SUCH_VAR_X", "--auth-hs256-secret-env")
            .unwrap_err();
        assert!(
            e.contains("--auth-hs256-secret-env") && e.contains("MCPSTORM_NO_SUCH_VAR_X"),
            "{e}"
        );
    }
}
