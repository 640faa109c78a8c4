//! The reference server's protections: each one a module of its own (its checks, its
//! refusal, its tests), switched on and tuned by `mcpstorm serve` flags (see `flags.rs`),
//! all on with `--hardened`, and run in one middleware by [`pipeline`].
//!
//! Order, first first, and why:
//! 1. origin/CORS (rmcp checks `Origin`/`Host` itself; CORS answers preflights before auth);
//! 2. rate limits global and per IP, before auth, so a flood of strangers costs no token checks;
//! 3. bearer auth (JWT), which names the principal;
//! 4. rate limit per principal;
//! 5. body limit (413), then the POST body read once (and classified by method and tool when a
//!    later layer needs it);
//! 6. session binding (a session belongs to the principal that created it);
//! 7. memory guard and circuit breaker, which refuse by what is asked;
//! 8. bounded concurrency with a bounded queue, closest to the work.
//!
//! After the answer, rmcp's plain-text refusals of requests it could not read (unparsable
//! JSON, not a JSON-RPC message, a bad `MCP-Protocol-Version`) become JSON-RPC errors
//! (`malformed.rs`: HTTP 400 with -32700, -32600 or -32602).
//!
//! Every refusal goes through [`reject::Rejection`]: one JSON-RPC error shape, a status,
//! `Retry-After` where waiting helps, a security event in the log and a metric.
//!
//! What this module must never do: hold a lock across an `.await`, buffer a request body
//! that no layer needs, or leak a secret, a stack trace or a file path into a response.

pub(super) mod auth;
pub(super) mod body_limit;
pub(super) mod breaker;
pub(super) mod classify;
pub(super) mod concurrency;
pub(super) mod guarded_body;
pub(super) mod malformed;
pub(super) mod memory_guard;
pub(super) mod origin;
pub(super) mod per_message;
pub(super) mod pipeline;
pub(super) mod rate_limit;
pub(super) mod reject;
pub(super) mod session_binding;

use std::time::Duration;

pub use auth::AuthConfig;
pub use breaker::BreakerConfig;
pub use concurrency::ConcurrencyConfig;
pub use memory_guard::MemoryGuardConfig;
pub use origin::OriginPolicy;
pub use rate_limit::RateConfig;

/// Every protection of the HTTP server, each `None`/off or configured.
#[derive(Debug, Clone)]
pub struct Protections {
    pub auth: Option<AuthConfig>,
    pub rate: Option<RateConfig>,
    pub concurrency: Option<ConcurrencyConfig>,
    /// Largest request body accepted, in bytes; `None` = no limit.
    pub max_body: Option<usize>,
    pub breaker: Option<BreakerConfig>,
    pub memory_guard: Option<MemoryGuardConfig>,
    pub origins: OriginPolicy,
    /// Origins that get CORS headers; empty = no CORS headers at all.
    pub cors_origins: Vec<String>,
    /// Refuse a session to any principal but the one that created it.
    pub session_binding: bool,
    /// On SIGTERM, how long in-flight requests may take to finish before sessions are closed.
    pub shutdown_grace: Duration,
}

/// The body limit that is on even without `--hardened`: it costs a load test nothing.
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;
/// How long SIGTERM waits for in-flight requests by default.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Default for Protections {
    /// `mcpstorm serve` with no flags: Origin validation and the 4 MiB body limit, nothing else.
    fn default() -> Self {
        Protections {
            auth: None,
            rate: None,
            concurrency: None,
            max_body: Some(DEFAULT_MAX_BODY),
            breaker: None,
            memory_guard: None,
            origins: OriginPolicy::Loopback,
            cors_origins: Vec::new(),
            session_binding: false,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

impl Protections {
    /// Does any layer need the request's JSON-RPC method and tool name?
    pub(super) fn needs_classification(&self) -> bool {
        self.breaker.is_some() || self.memory_guard.is_some()
    }
}

/// The client's IP address, from the accepted connection.
pub(crate) fn client_ip(req: &axum::extract::Request) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Who made `req`, for a security event.
pub(crate) fn who(req: &axum::extract::Request) -> crate::server::log::SecurityEvent<'_> {
    crate::server::log::SecurityEvent {
        client_ip: client_ip(req),
        principal: req
            .extensions()
            .get::<auth::Principal>()
            .map(|p| p.0.as_ref()),
        http_method: req.method().as_str(),
        path: req.uri().path(),
    }
}

/// `bytes` in the largest binary unit that keeps it whole-ish: `4 MiB`, `512 KiB`, `100 B`.
pub(crate) fn human_bytes(bytes: usize) -> String {
    const UNITS: [(&str, usize); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size {
            let n = bytes as f64 / size as f64;
            return if n.fract() == 0.0 {
                format!("{n:.0} {unit}")
            } else {
                format!("{n:.1} {unit}")
            };
        }
    }
    format!("{bytes} B")
}
