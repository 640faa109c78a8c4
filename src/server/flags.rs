//! The `mcpstorm serve` flags that switch protections on, tune and switch them off, and
//! their validation into [`Protections`]: every problem is reported at once, each naming its
//! flag, what was found, what is expected and what to try.
//!
//! Rules: `--hardened` turns every protection on with its default; a flag that tunes a
//! protection (`--rate-per-ip 50`, `--max-concurrency 8`, a key flag) turns that protection
//! on by itself; a `--no-...` flag turns one off whatever else was given.

use std::path::PathBuf;
use std::time::Duration;

use super::log::LogFormat;
use super::protect::auth::{AuthKey, DEFAULT_AUDIENCE};
use super::protect::{
    AuthConfig, BreakerConfig, ConcurrencyConfig, DEFAULT_MAX_BODY, DEFAULT_SHUTDOWN_GRACE,
    MemoryGuardConfig, OriginPolicy, Protections, RateConfig, breaker, concurrency, memory_guard,
    origin, rate_limit,
};

/// RFC 7518 3.2: an HS256 key MUST be at least as long as the hash, 256 bits.
const MIN_HS256_SECRET_BYTES: usize = 32;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProtectionFlags {
    /// Every protection on with its defaults (auth also needs a key flag, or --no-auth).
    #[arg(long, help_heading = "Protections (HTTP)")]
    pub hardened: bool,
    /// Bearer JWT auth, HS256, with the secret in this environment variable (>= 32 bytes).
    #[arg(long, value_name = "VAR", help_heading = "Protections (HTTP)")]
    pub auth_hs256_secret_env: Option<String>,
    /// Bearer JWT auth, HS256, with the secret in this file (a trailing newline is dropped).
    #[arg(long, value_name = "PATH", help_heading = "Protections (HTTP)")]
    pub auth_hs256_secret_file: Option<PathBuf>,
    /// Bearer JWT auth, RS256, with this PEM public key.
    #[arg(long, value_name = "PATH", help_heading = "Protections (HTTP)")]
    pub auth_rs256_public_key: Option<PathBuf>,
    /// The `aud` tokens must carry [default: mcpstorm].
    #[arg(long, value_name = "AUD", help_heading = "Protections (HTTP)")]
    pub auth_audience: Option<String>,
    /// The `iss` tokens must carry (not checked unless given).
    #[arg(long, value_name = "ISS", help_heading = "Protections (HTTP)")]
    pub auth_issuer: Option<String>,
    /// Requests/s for all clients together [--hardened: 1000].
    #[arg(long, value_name = "N", help_heading = "Protections (HTTP)")]
    pub rate_global: Option<u32>,
    /// Requests/s per client IP [--hardened: 100].
    #[arg(long, value_name = "N", help_heading = "Protections (HTTP)")]
    pub rate_per_ip: Option<u32>,
    /// Requests/s per principal (JWT `sub`) [--hardened: 100].
    #[arg(long, value_name = "N", help_heading = "Protections (HTTP)")]
    pub rate_per_principal: Option<u32>,
    /// Token bucket size of every rate limit [default: the rate].
    #[arg(long, value_name = "N", help_heading = "Protections (HTTP)")]
    pub rate_burst: Option<u32>,
    /// Requests worked on at once [--hardened: 256].
    #[arg(long, value_name = "N", help_heading = "Protections (HTTP)")]
    pub max_concurrency: Option<usize>,
    /// Requests that may wait for a slot [default: 512].
    #[arg(long, value_name = "N", help_heading = "Protections (HTTP)")]
    pub queue: Option<usize>,
    /// How long a request may wait for a slot [default: 5s].
    #[arg(long, value_name = "DUR", value_parser = parse_duration, help_heading = "Protections (HTTP)")]
    pub queue_timeout: Option<Duration>,
    /// Largest request body, e.g. 4MB, 512KB [default: 4MB, on without --hardened].
    #[arg(long, value_name = "SIZE", value_parser = parse_size, help_heading = "Protections (HTTP)")]
    pub max_body: Option<usize>,
    /// Failures in a row that open a tool's circuit [--hardened: 5].
    #[arg(long, value_name = "N", help_heading = "Protections (HTTP)")]
    pub breaker_failures: Option<u32>,
    /// How long an open circuit refuses calls before a trial [default: 30s].
    #[arg(long, value_name = "DUR", value_parser = parse_duration, help_heading = "Protections (HTTP)")]
    pub breaker_open: Option<Duration>,
    /// Refuse heavy requests while resident memory is above N MB [--hardened: 1024].
    #[arg(long, value_name = "N", help_heading = "Protections (HTTP)")]
    pub memory_guard_mb: Option<u64>,
    /// Allowed `Origin`s, a comma list (`:*` for any port) or `*` [default: loopback, any port].
    #[arg(long, value_name = "LIST", help_heading = "Protections (HTTP)")]
    pub allowed_origins: Option<String>,
    /// Origins that get CORS headers, a comma list or `*` [default: none].
    #[arg(long, value_name = "LIST", help_heading = "Protections (HTTP)")]
    pub cors_origins: Option<String>,
    /// On SIGTERM, how long requests in flight may take to finish [default: 10s].
    #[arg(long, value_name = "DUR", value_parser = parse_duration, help_heading = "Protections (HTTP)")]
    pub shutdown_grace: Option<Duration>,
    /// Log lines as text or as one JSON object per line (security events included).
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"], default_value = "text")]
    pub log_format: String,
    #[arg(long, help_heading = "Switch one protection off")]
    pub no_auth: bool,
    #[arg(long, help_heading = "Switch one protection off")]
    pub no_rate_limit: bool,
    #[arg(long, help_heading = "Switch one protection off")]
    pub no_concurrency_limit: bool,
    #[arg(long, help_heading = "Switch one protection off")]
    pub no_body_limit: bool,
    #[arg(long, help_heading = "Switch one protection off")]
    pub no_breaker: bool,
    #[arg(long, help_heading = "Switch one protection off")]
    pub no_memory_guard: bool,
    #[arg(long, help_heading = "Switch one protection off")]
    pub no_origin_check: bool,
    #[arg(long, help_heading = "Switch one protection off")]
    pub no_session_binding: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|_| format!("`{s}` is not a duration; write it like 500ms, 30s or 5m"))
}

/// Sizes in binary units, as scenario payloads are: `4MB` = 4 MiB. Written here because
/// the size crates read `MB` as 10^6, which would disagree with the scenario file.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let units: [(&str, usize); 8] = [
        ("GIB", 1 << 30),
        ("MIB", 1 << 20),
        ("KIB", 1 << 10),
        ("GB", 1 << 30),
        ("MB", 1 << 20),
        ("KB", 1 << 10),
        ("G", 1 << 30),
        ("B", 1),
    ];
    let (number, scale) = units
        .iter()
        .find_map(|(u, scale)| upper.strip_suffix(u).map(|n| (n.trim(), *scale)))
        .unwrap_or((upper.as_str(), 1));
    number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("`{s}` is not a size; write it like 4MB, 512KB or 1048576"))
}

impl ProtectionFlags {
    /// Was any protection flag given? (They mean nothing with `--stdio`.)
    pub fn any_given(&self) -> bool {
        let defaults = ProtectionFlags {
            log_format: self.log_format.clone(),
            ..ProtectionFlags::default()
        };
        format!("{self:?}") != format!("{defaults:?}")
    }

    pub fn log_format(&self) -> LogFormat {
        if self.log_format == "json" {
            LogFormat::Json
        } else {
            LogFormat::Text
        }
    }

    /// The protections these flags ask for, or every problem with them.
    pub fn resolve(&self) -> Result<Protections, Vec<String>> {
        let mut problems = Vec::new();
        let h = self.hardened;
        let auth = self.auth(&mut problems);
        let rate = self.rate(&mut problems);
        let concurrency = self.concurrency(&mut problems);
        let max_body = match (self.no_body_limit, self.max_body) {
            (true, _) => None,
            (false, Some(0)) => {
                problems.push("--max-body 0 would refuse every request; give a size like 4MB, or --no-body-limit".into());
                None
            }
            (false, size) => Some(size.unwrap_or(DEFAULT_MAX_BODY)),
        };
        let breaker = self.breaker(&mut problems);
        let memory_guard = match (self.no_memory_guard, self.memory_guard_mb) {
            (true, _) => None,
            (false, Some(0)) => {
                problems.push(
                    "--memory-guard-mb must be at least 1 (megabytes of resident memory)".into(),
                );
                None
            }
            (false, Some(mb)) => Some(MemoryGuardConfig {
                limit_bytes: mb << 20,
            }),
            (false, None) => h.then_some(MemoryGuardConfig {
                limit_bytes: memory_guard::DEFAULT_LIMIT_MB << 20,
            }),
        };
        let origins = match (&self.allowed_origins, self.no_origin_check) {
            (_, true) => OriginPolicy::Off,
            (None, false) => OriginPolicy::Loopback,
            (Some(list), false) => OriginPolicy::parse(list).unwrap_or_else(|e| {
                problems.push(format!("--allowed-origins `{list}`: {e}"));
                OriginPolicy::Loopback
            }),
        };
        let cors_origins = match &self.cors_origins {
            None => Vec::new(),
            Some(list) => origin::parse_cors(list).unwrap_or_else(|e| {
                problems.push(format!("--cors-origins `{list}`: {e}"));
                Vec::new()
            }),
        };
        let session_binding = (h || auth.is_some()) && !self.no_session_binding;
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Protections {
            auth,
            rate,
            concurrency,
            max_body,
            breaker,
            memory_guard,
            origins,
            cors_origins,
            session_binding,
            shutdown_grace: self.shutdown_grace.unwrap_or(DEFAULT_SHUTDOWN_GRACE),
        })
    }

    fn auth(&self, problems: &mut Vec<String>) -> Option<AuthConfig> {
        let given = [
            self.auth_hs256_secret_env.is_some(),
            self.auth_hs256_secret_file.is_some(),
            self.auth_rs256_public_key.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if self.no_auth {
            return None;
        }
        if given > 1 {
            problems.push("give one auth key: --auth-hs256-secret-env, --auth-hs256-secret-file or --auth-rs256-public-key, not several".into());
            return None;
        }
        if given == 0 {
            if self.hardened {
                problems.push("--hardened turns on bearer auth, which needs a key: add --auth-hs256-secret-env VAR, --auth-hs256-secret-file PATH or --auth-rs256-public-key PATH, or --no-auth to run without it".into());
            } else if self.auth_audience.is_some() || self.auth_issuer.is_some() {
                problems.push("--auth-audience / --auth-issuer need a key flag (--auth-hs256-secret-env, --auth-hs256-secret-file or --auth-rs256-public-key)".into());
            }
            return None;
        }
        let (flag, key) = if let Some(var) = &self.auth_hs256_secret_env {
            let flag = format!("--auth-hs256-secret-env {var}");
            match std::env::var(var) {
                Ok(secret) if !secret.is_empty() => {
                    (flag, hs256(secret.into_bytes(), "the variable", problems))
                }
                _ => {
                    problems.push(format!("{flag}: the environment variable {var} is not set or empty; export the secret in it, or use --auth-hs256-secret-file"));
                    return None;
                }
            }
        } else if let Some(path) = &self.auth_hs256_secret_file {
            let flag = format!("--auth-hs256-secret-file {}", path.display());
            match std::fs::read(path) {
                Ok(mut secret) => {
                    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        secret.pop();
                    }
                    (flag, hs256(secret, "the file", problems))
                }
                Err(e) => {
                    problems.push(format!(
                        "{flag}: cannot read it ({e}); give a readable file holding the secret"
                    ));
                    return None;
                }
            }
        } else {
            let path = self.auth_rs256_public_key.as_ref()?;
            let flag = format!("--auth-rs256-public-key {}", path.display());
            match std::fs::read(path) {
                Ok(pem) => (flag, Some(AuthKey::Rs256PublicPem(pem))),
                Err(e) => {
                    problems.push(format!(
                        "{flag}: cannot read it ({e}); give the PEM file of the RSA public key"
                    ));
                    return None;
                }
            }
        };
        let key = match key {
            Some(k) => k,
            None => {
                if let Some(last) = problems.last_mut() {
                    *last = format!("{flag}: {last}");
                }
                return None;
            }
        };
        let audience = self
            .auth_audience
            .clone()
            .unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned());
        match AuthConfig::new(key, audience, self.auth_issuer.clone()) {
            Ok(c) => Some(c),
            Err(e) => {
                problems.push(format!("{flag}: {e}"));
                None
            }
        }
    }

    fn rate(&self, problems: &mut Vec<String>) -> Option<RateConfig> {
        let h = self.hardened;
        for (flag, v) in [
            ("--rate-global", self.rate_global),
            ("--rate-per-ip", self.rate_per_ip),
            ("--rate-per-principal", self.rate_per_principal),
            ("--rate-burst", self.rate_burst),
        ] {
            if v == Some(0) {
                problems.push(format!("{flag} must be at least 1 (requests per second); use --no-rate-limit to switch rate limits off"));
            }
        }
        if self.no_rate_limit {
            return None;
        }
        let config = RateConfig {
            global: self.rate_global.or(h.then_some(rate_limit::DEFAULT_GLOBAL)),
            per_ip: self.rate_per_ip.or(h.then_some(rate_limit::DEFAULT_PER_IP)),
            per_principal: self
                .rate_per_principal
                .or(h.then_some(rate_limit::DEFAULT_PER_PRINCIPAL)),
            burst: self.rate_burst,
        };
        if config.global.is_none() && config.per_ip.is_none() && config.per_principal.is_none() {
            if config.burst.is_some() {
                problems.push("--rate-burst sizes the rate limits' buckets: give a rate too (--rate-global, --rate-per-ip, --rate-per-principal) or --hardened".into());
            }
            return None;
        }
        Some(config)
    }

    fn concurrency(&self, problems: &mut Vec<String>) -> Option<ConcurrencyConfig> {
        if self.max_concurrency == Some(0) {
            problems.push("--max-concurrency must be at least 1; use --no-concurrency-limit to switch the limit off".into());
        }
        if self.no_concurrency_limit {
            return None;
        }
        let max = self
            .max_concurrency
            .or(self.hardened.then_some(concurrency::DEFAULT_MAX));
        let Some(max) = max else {
            if self.queue.is_some() || self.queue_timeout.is_some() {
                problems.push("--queue / --queue-timeout size the queue of the concurrency limit: give --max-concurrency N too, or --hardened".into());
            }
            return None;
        };
        Some(ConcurrencyConfig {
            max: max.max(1),
            queue: self.queue.unwrap_or(concurrency::DEFAULT_QUEUE),
            queue_timeout: self
                .queue_timeout
                .unwrap_or(concurrency::DEFAULT_QUEUE_TIMEOUT),
        })
    }

    fn breaker(&self, problems: &mut Vec<String>) -> Option<BreakerConfig> {
        if self.breaker_failures == Some(0) {
            problems.push(
                "--breaker-failures must be at least 1; use --no-breaker to switch the breaker off"
                    .into(),
            );
        }
        if self.breaker_open == Some(Duration::ZERO) {
            problems.push("--breaker-open must be longer than 0, like 30s".into());
        }
        if self.no_breaker {
            return None;
        }
        let failures = self
            .breaker_failures
            .or(self.hardened.then_some(breaker::DEFAULT_FAILURES));
        let Some(failures) = failures else {
            if self.breaker_open.is_some() {
                problems
                    .push("--breaker-open needs --breaker-failures N too, or --hardened".into());
            }
            return None;
        };
        Some(BreakerConfig {
            failures: failures.max(1),
            open_for: self.breaker_open.unwrap_or(breaker::DEFAULT_OPEN_FOR),
        })
    }
}

/// An HS256 key from `secret`, or `None` with the problem pushed (its flag is added by the caller).
fn hs256(secret: Vec<u8>, holder: &str, problems: &mut Vec<String>) -> Option<AuthKey> {
    if secret.len() < MIN_HS256_SECRET_BYTES {
        problems.push(format!(
            "the HS256 secret in {holder} is {} bytes; it must be at least {MIN_HS256_SECRET_BYTES} (RFC 7518: as long as the hash); generate one with `openssl rand -hex 32`",
            secret.len()
        ));
        return None;
    }
    Some(AuthKey::Hs256Secret(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> ProtectionFlags {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            f: ProtectionFlags,
        }
        <Cli as clap::Parser>::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .unwrap()
            .f
    }

    #[test]
    fn no_flags_keep_the_default_server() {
        let p = flags(&[]).resolve().unwrap();
        assert!(p.auth.is_none() && p.rate.is_none() && p.concurrency.is_none());
        assert!(p.breaker.is_none() && p.memory_guard.is_none() && !p.session_binding);
        assert_eq!(p.max_body, Some(4 << 20));
        assert_eq!(p.origins, OriginPolicy::Loopback);
        assert!(!flags(&[]).any_given());
    }

    #[test]
    fn hardened_turns_everything_on_and_no_flags_turn_one_off() {
        let p = flags(&["--hardened", "--no-auth"]).resolve().unwrap();
        assert_eq!(
            p.rate,
            Some(RateConfig {
                global: Some(1000),
                per_ip: Some(100),
                per_principal: Some(100),
                burst: None
            })
        );
        assert_eq!(p.concurrency.unwrap().max, 256);
        assert_eq!(p.breaker.unwrap().failures, 5);
        assert_eq!(p.memory_guard.unwrap().limit_bytes, 1024 << 20);
        assert!(p.session_binding);
        let p = flags(&[
            "--hardened",
            "--no-auth",
            "--no-rate-limit",
            "--no-breaker",
            "--no-session-binding",
            "--no-origin-check",
        ])
        .resolve()
        .unwrap();
        assert!(p.rate.is_none() && p.breaker.is_none() && !p.session_binding);
        assert_eq!(p.origins, OriginPolicy::Off);
    }

    #[test]
    fn a_tuning_flag_turns_its_protection_on() {
        let p = flags(&[
            "--rate-per-ip",
            "50",
            "--max-concurrency",
            "4",
            "--queue",
            "2",
            "--max-body",
            "1MB",
        ])
        .resolve()
        .unwrap();
        assert_eq!(p.rate.unwrap().per_ip, Some(50));
        assert_eq!(p.rate.unwrap().global, None);
        let c = p.concurrency.unwrap();
        assert_eq!((c.max, c.queue), (4, 2));
        assert_eq!(p.max_body, Some(1 << 20));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let problems = flags(&[
            "--hardened",
            "--rate-per-ip",
            "0",
            "--max-concurrency",
            "0",
            "--allowed-origins",
            "example.com",
            "--auth-hs256-secret-env",
            "MCPSTORM_TEST_SURELY_UNSET_VARIABLE",
        ])
        .resolve()
        .unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("--rate-per-ip must be at least 1"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("MCPSTORM_TEST_SURELY_UNSET_VARIABLE is not set"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("--allowed-origins `example.com`"))
        );
    }

    #[test]
    fn hardened_without_a_key_says_what_to_add() {
        let problems = flags(&["--hardened"]).resolve().unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("--no-auth"), "{}", problems[0]);
    }

    #[test]
    fn a_short_secret_file_is_refused_and_a_good_one_turns_auth_and_binding_on() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "tiny\n").unwrap();
        let problems = flags(&["--auth-hs256-secret-file", short.to_str().unwrap()])
            .resolve()
            .unwrap_err();
        assert!(
            problems[0].starts_with("--auth-hs256-secret-file"),
            "{}",
            problems[0]
        );
        assert!(problems[0].contains("4 bytes"), "{}", problems[0]);
        let good = dir.path().join("good");
        std::fs::write(&good, format!("{}\n", "k".repeat(32))).unwrap();
        let p = flags(&["--auth-hs256-secret-file", good.to_str().unwrap()])
            .resolve()
            .unwrap();
        assert!(p.auth.is_some() && p.session_binding);
    }

    #[test]
    fn sizes_are_binary_and_bad_ones_say_how_to_write_them() {
        assert_eq!(parse_size("4MB"), Ok(4 << 20));
        assert_eq!(parse_size("512kb"), Ok(512 << 10));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("4XB").unwrap_err().contains("like 4MB"));
    }
}
