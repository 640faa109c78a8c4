//! The reference MCP server behind `mcpstorm serve`.
//!
//! It exists so mcpstorm always has a known-good target: the quickstart runs
//! against it, the test suite drives it, and users can compare their own server
//! with it. Its tools are small, deterministic building blocks for load and
//! fault scenarios (`echo`, `add`, `sleep`, `fail`, `alloc`, `kv_put`,
//! `kv_get`), plus one resource (`mcpstorm://info`) and one prompt
//! (`greeting`).
//!
//! Three transports are offered: Streamable HTTP at `/mcp` (with `/health`,
//! `/ready` and `/metrics` beside it), MCP over WebSocket at `/ws` (one JSON-RPC message per text frame, one session
//! per connection) on the same port, and a single session over stdin/stdout.
//! Every protocol revision rmcp knows is served at once: the session revisions
//! through `initialize`, the stateless 2026-07-28 through `server/discover` and
//! per-request `_meta`; `--protocol-versions` narrows the set.
//!
//! Over HTTP it is also the example of a resilient server that mcpstorm's security and
//! resilience probes must pass: bearer JWT auth, rate limits, bounded concurrency with a
//! bounded queue, a body limit, per-tool circuit breakers, a memory guard, session binding,
//! Origin checks, graceful shutdown and security events in the log, each one switchable
//! (see `protect/` and `flags.rs`).
//!
//! What it must never do:
//! - panic on anything a client sends: bad arguments become JSON-RPC errors or
//!   tool results with `isError: true`;
//! - write to stdout in stdio mode other than protocol messages, because stdout
//!   *is* the protocol there;
//! - print anything to stdout in HTTP mode but the single `listening on` line,
//!   which a parent process parses to learn the URL;
//! - keep serving after `shutdown` is cancelled.

mod conformance;
mod drain;
pub mod flags;
mod handler;
mod http;
mod kv;
pub mod log;
mod metrics;
mod ops;
pub mod protect;
mod session_ids;
mod stdio;
mod tools;
mod websocket;

use std::net::{IpAddr, SocketAddr};

use tokio_util::sync::CancellationToken;

/// How `mcpstorm serve` should run.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to bind in HTTP mode; ignored in stdio mode.
    pub host: IpAddr,
    /// Port to bind in HTTP mode; 0 picks a free one. Ignored in stdio mode.
    pub port: u16,
    /// Serve one session over stdin/stdout instead of HTTP.
    pub stdio: bool,
    /// Keep `kv_put`/`kv_get` in Redis at this URL instead of in memory.
    pub redis: Option<String>,
    /// With Redis: when a write is acknowledged.
    pub ack: kv::Ack,
    /// Also serve the conformance suite's test tools, prompts and resources.
    pub conformance_tools: bool,
    /// HTTP mode: which protections are on.
    pub protections: protect::Protections,
    /// The protocol revisions to accept; `None`: every revision rmcp knows.
    pub protocol_versions: Option<Vec<String>>,
}

pub use kv::Ack;

/// Why the reference server could not start or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(
        "cannot listen on {addr}: the port is already in use by another process; pick another with --port (0 picks a free one) or stop the process that holds it"
    )]
    PortInUse { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The stdio client broke the MCP handshake, e.g. its first message was
    /// not `initialize`; the client, not the server, needs fixing.
    #[error("stdio session ended before it started: {0}")]
    StdioHandshake(String),
    /// The session task died unexpectedly; this is a bug in mcpstorm.
    #[error("stdio session crashed: {0}; please report this as a bug")]
    SessionCrashed(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Storage(String),
}

/// Runs the reference server until `shutdown` is cancelled (both modes) or
/// stdin closes (stdio mode).
///
/// In HTTP mode, prints `mcpstorm serve: listening on http://HOST:PORT/mcp`
/// to stdout once the port is bound.
pub async fn serve(opts: ServeOptions, shutdown: CancellationToken) -> Result<(), ServeError> {
    if let Some(list) = &opts.protocol_versions {
        let known = rmcp::model::ProtocolVersion::KNOWN_VERSIONS;
        let mut versions = Vec::new();
        for v in list {
            match known.iter().find(|k| k.as_str() == v) {
                Some(k) => versions.push(k.clone()),
                None => {
                    let names: Vec<&str> = known.iter().map(|k| k.as_str()).collect();
                    return Err(ServeError::Storage(format!(
                        "--protocol-versions: `{v}` is not a revision this server knows; use some of {}",
                        names.join(", ")
                    )));
                }
            }
        }
        let _ = handler::PROTOCOL_VERSIONS.set(versions);
    }
    let kv = match &opts.redis {
        Some(url) => kv::KvStore::redis(url, opts.ack).map_err(ServeError::Storage)?,
        None => kv::KvStore::default(),
    };
    if opts.stdio {
        stdio::serve_stdio(kv, opts.conformance_tools, shutdown).await
    } else {
        http::serve_http(
            SocketAddr::new(opts.host, opts.port),
            kv,
            opts.protections,
            opts.conformance_tools,
            shutdown,
        )
        .await
    }
}
