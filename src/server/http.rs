//! Streamable HTTP transport: MCP at `/mcp` behind the protections that are switched on,
//! and the operator's `/health`, `/ready` and `/metrics` beside it (see `ops.rs`).
//!
//! The one line printed to stdout after binding is a contract: a parent process (mcpstorm
//! itself, or a CI script) reads it to learn the real URL when port 0 was asked for.
//!
//! Shutdown: when `shutdown` is cancelled the listener closes at once, in-flight requests
//! get up to the grace period to finish (see `drain.rs`), then the MCP sessions (and their
//! open SSE streams) are closed and this returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::middleware::from_fn_with_state;
use axum::{Router, routing::get};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::ServeError;
use super::drain::Drain;
use super::handler::{KvStore, Observers, ReferenceServer};
use super::metrics::ServerMetrics;
use super::ops::{self, Ops};
use super::protect::breaker::Breakers;
use super::protect::concurrency::Pool;
use super::protect::per_message::MessageGuard;
use super::protect::pipeline::Pipeline;
use super::protect::rate_limit::RateLimits;
use super::protect::session_binding::SessionOwners;
use super::protect::{self, OriginPolicy, Protections};
use super::session_ids::RandomIdSessions;

/// How often idle rate-limit keys and ended sessions' owners are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(30);
/// After the grace period, how long connections may still take to close before we exit anyway.
const HARD_STOP_MARGIN: Duration = Duration::from_secs(2);

pub(super) async fn serve_http(
    addr: SocketAddr,
    kv: KvStore,
    protections: Protections,
    conformance_tools: bool,
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

    let metrics = Arc::new(ServerMetrics::new());
    let drain = Arc::new(Drain::default());
    let sessions = Arc::new(RandomIdSessions::default());
    let breakers = protections.breaker.map(|c| Arc::new(Breakers::new(c)));
    let pool = protections.concurrency.map(|c| Arc::new(Pool::new(c)));
    let rate = protections
        .rate
        .as_ref()
        .map(|c| Arc::new(RateLimits::new(c)));
    let owners = protections
        .session_binding
        .then(|| Arc::new(SessionOwners::default()));
    // Not a child of `shutdown`: sessions must outlive the signal until the drain is over.
    let sessions_closed = CancellationToken::new();

    let observers = Observers {
        breakers: breakers.clone(),
        metrics: Some(metrics.clone()),
    };
    let factory_kv = kv.clone();
    let message_guard = Arc::new(MessageGuard {
        max_message: protections.max_body,
        rate: rate.clone(),
        memory_guard: protections.memory_guard,
        breakers: breakers.clone(),
        pool: pool.clone(),
        metrics: Some(metrics.clone()),
    });
    let ws_route = super::websocket::route(
        kv.clone(),
        observers.clone(),
        conformance_tools,
        message_guard,
        sessions_closed.clone(),
    );
    let service: StreamableHttpService<ReferenceServer, RandomIdSessions> =
        StreamableHttpService::new(
            move || {
                Ok(ReferenceServer::new(
                    factory_kv.clone(),
                    observers.clone(),
                    conformance_tools,
                ))
            },
            sessions.clone(),
            http_config(bound, &protections, sessions_closed.clone()),
        );

    // `/ws` sits behind the same pipeline: auth, rate limits and Origin checks apply to its
    // upgrade request; after it, every message goes through the same limits one by one
    // (`protect/per_message.rs`).
    let mut mcp = Router::new()
        .nest_service("/mcp", service)
        .route("/ws", ws_route);
    if conformance_tools {
        mcp = mcp.layer(axum::middleware::from_fn(
            super::conformance::close_reconnection_stream,
        ));
    }
    let pipeline = Arc::new(Pipeline {
        metrics: metrics.clone(),
        drain: drain.clone(),
        rate: rate.clone(),
        auth: protections.auth.clone(),
        max_body: protections.max_body,
        classify: protections.needs_classification(),
        owners: owners.clone(),
        memory_guard: protections.memory_guard,
        breakers: breakers.clone(),
        pool: pool.clone(),
        origin_checked: protections.origins != OriginPolicy::Off || !bound.ip().is_unspecified(),
    });
    mcp = mcp.layer(from_fn_with_state(pipeline, Pipeline::run));
    // CORS answers preflights before any check (a preflight carries no token).
    if !protections.cors_origins.is_empty() {
        mcp = mcp.layer(protect::origin::cors(&protections.cors_origins));
    }

    let ops = Ops {
        drain: drain.clone(),
        kv,
        metrics,
        pool,
        breakers,
        sessions: sessions.clone(),
    };
    let app = Router::new()
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .with_state(ops)
        .merge(mcp);

    let mut background = JoinSet::new();
    background.spawn(prune(rate, owners, sessions, shutdown.clone()));
    let drained = tokio::spawn(drain_then_close_sessions(
        drain,
        protections.shutdown_grace,
        shutdown.clone(),
        sessions_closed,
    ));

    // SSE answers go out in several small writes; with Nagle on, each waits for the
    // client's delayed ACK and every call costs ~40 ms.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let grace = protections.shutdown_grace;
    let hard_stop = async move {
        shutdown.cancelled().await;
        tokio::time::sleep(grace + HARD_STOP_MARGIN).await;
    };
    let served = tokio::select! {
        served = server => served,
        () = hard_stop => {
            tracing::warn!("connections still open {:?} after the grace period; exiting anyway", HARD_STOP_MARGIN);
            Ok(())
        }
    };
    // The connections are closed, so nothing is in flight any more: the drain ends at once
    // (and closes the sessions) unless the server stopped for another reason than a signal.
    if tokio::time::timeout(HARD_STOP_MARGIN, drained)
        .await
        .is_err()
    {
        tracing::warn!("the drain did not finish; closing anyway");
    }
    background.abort_all();
    served?;
    Ok(())
}

/// On shutdown: refuse new work, wait for in-flight requests (up to `grace`), then close
/// the MCP sessions so their streams end and the server can stop.
async fn drain_then_close_sessions(
    drain: Arc<Drain>,
    grace: Duration,
    shutdown: CancellationToken,
    sessions_closed: CancellationToken,
) {
    shutdown.cancelled().await;
    drain.start();
    let in_flight = drain.in_flight();
    tracing::info!(
        event = "shutdown",
        in_flight,
        grace_s = grace.as_secs_f64(),
        "shutting down: no new connections; waiting for requests in flight"
    );
    match tokio::time::timeout(grace, drain.wait_idle()).await {
        Ok(()) => tracing::info!(event = "shutdown", "every request in flight finished"),
        Err(_) => tracing::warn!(
            event = "shutdown",
            still_in_flight = drain.in_flight(),
            "grace period over; closing sessions with requests still in flight"
        ),
    }
    sessions_closed.cancel();
}

/// Forgets rate-limit buckets of idle clients and owners of sessions that ended.
async fn prune(
    rate: Option<Arc<RateLimits>>,
    owners: Option<Arc<SessionOwners>>,
    sessions: Arc<RandomIdSessions>,
    shutdown: CancellationToken,
) {
    if rate.is_none() && owners.is_none() {
        return;
    }
    let mut every = tokio::time::interval(PRUNE_EVERY);
    every.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Some(r) = &rate {
            r.prune();
        }
        if let Some(o) = &owners {
            let live: std::collections::HashSet<_> = sessions.ids().await.into_iter().collect();
            o.retain(|id| live.contains(id));
        }
    }
}

fn http_config(
    bound: SocketAddr,
    protections: &Protections,
    sessions_closed: CancellationToken,
) -> StreamableHttpServerConfig {
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        // Open SSE streams would otherwise hold graceful shutdown open forever.
        .with_cancellation_token(sessions_closed)
        // rmcp enforces the limit while streaming (chunked bodies); the body-limit layer
        // refuses a declared length up front.
        .with_max_request_body_bytes(protections.max_body.unwrap_or(usize::MAX));
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
    match protections.origins.allow_list(&protections.cors_origins) {
        Some(list) => config.with_allowed_origins(list),
        None => config.disable_allowed_origins(),
    }
}

/// Prints the `listening on` line and flushes, so a parent reading a pipe sees
/// it at once instead of when the buffer fills. A closed stdout must not stop a server
/// that is otherwise usable: `outln!` drops the line then.
fn announce(bound: SocketAddr) {
    crate::outln!("mcpstorm serve: listening on http://{bound}/mcp");
}
