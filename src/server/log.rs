//! The reference server's log: lifecycle lines and security events (`denied`, `throttled`,
//! `overloaded`, `too_large`, `circuit_open`, `memory_guard`, `shutting_down`) on stderr, as
//! plain text or one JSON object per line (`--log-format json`), with `event`, `reason`,
//! `client_ip`, `principal`, `http_method` and `path` as fields.
//!
//! It must never write to stdout (in stdio mode stdout is the protocol; in HTTP mode a
//! parent reads the single `listening on` line there) and never log a token or a secret.

use std::net::IpAddr;

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The `tracing` target of security events, so they can be told from lifecycle lines.
pub(crate) const SECURITY: &str = "mcpstorm::security";

/// Installs the process-wide subscriber. A second call (tests, an embedding program that
/// has its own) is ignored. A log line that cannot be written (stderr closed, `serve 2>&1 |
/// head`) is dropped: tracing's own complaint about it would be an `eprintln!`, which
/// panics there.
pub fn init(format: LogFormat) {
    let filter = Targets::new()
        .with_target("mcpstorm", Level::INFO)
        // rmcp warns about refused Host/Origin headers: security events too.
        .with_target("rmcp", Level::WARN);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .log_internal_errors(false)
                    .with_ansi(false)
                    .with_target(false),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(std::io::stderr)
                    .log_internal_errors(false),
            )
            .try_init(),
    };
}

/// Who asked, for a security event's fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SecurityEvent<'a> {
    pub client_ip: Option<IpAddr>,
    pub principal: Option<&'a str>,
    pub http_method: &'a str,
    pub path: &'a str,
}

impl SecurityEvent<'_> {
    pub(crate) fn log(&self, event: &str, reason: &str, message: &str) {
        let ip = self.client_ip.map(|ip| ip.to_string());
        tracing::warn!(
            target: SECURITY,
            event,
            reason,
            client_ip = ip.as_deref(),
            principal = self.principal,
            http_method = self.http_method,
            path = self.path,
            "{message}"
        );
    }
}
