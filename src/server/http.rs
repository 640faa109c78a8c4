//! Streamable HTTP transport: MCP at `/mcp`, liveness at `GET /health`.
//!
//! The one line printed to stdout after binding is a contract: a parent
//! process (mcpstorm itself, or a CI script) reads it to learn the real URL
//! when port 0 was asked for.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::{Json, Router, routing::get};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use tokio_util::sync::CancellationToken;

use super::ServeError;
use super::handler::{KvStore, ReferenceServer};

pub(super) async fn serve_http(
    addr: SocketAddr,
    kv: KvStore,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AddrInUse => ServeError::PortInUse { addr },
            _ => ServeError::Bind { addr, source },
        })?;
    let bound = listener.local_addr()?;
    announce(bound);

    let kv_ws = kv.clone();
    let service: StreamableHttpService<ReferenceServer, LocalSessionManager> =
        StreamableHttpService::new(
            move || Ok(ReferenceServer::new(kv.clone())),
            Arc::new(LocalSessionManager::default()),
            http_config(bound, &shutdown),
        );
    let app = Router::new()
        .route(
            "/health",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .nest_service("/mcp", service)
        .route("/ws", super::websocket::route(kv_ws, shutdown.clone()));

    // SSE answers go out in several small writes; with Nagle on, each waits for the
    // client's delayed ACK and every call costs ~40 ms.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

fn http_config(bound: SocketAddr, shutdown: &CancellationToken) -> StreamableHttpServerConfig {
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        // Open SSE streams would otherwise hold graceful shutdown open forever.
        .with_cancellation_token(shutdown.child_token());
    if bound.ip().is_unspecified() {
        // Binding 0.0.0.0 or :: asks for remote clients, whose Host header is a
        // name we cannot know; loopback-only Host checks would refuse them all.
        config = config.disable_allowed_hosts();
    } else {
        config = config.with_allowed_hosts([
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            bound.ip().to_string(),
        ]);
    }
    config
}

/// Prints the `listening on` line and flushes, so a parent reading a pipe sees
/// it at once instead of when the buffer fills.
fn announce(bound: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let written =
        writeln!(out, "mcpstorm serve: listening on http://{bound}/mcp").and_then(|()| out.flush());
    if let Err(e) = written {
        // A closed stdout must not stop a server that is otherwise usable.
        eprintln!("mcpstorm serve: could not print the listening address to stdout: {e}");
    }
}
