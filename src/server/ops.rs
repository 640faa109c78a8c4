//! The operator's endpoints, beside `/mcp` and outside every protection (no auth, no rate
//! limit), as load balancers and orchestrators expect:
//!
//! - `GET /health`: liveness. 200 `{"status":"ok"}` while the process serves at all.
//! - `GET /ready`: readiness. 200 when the server should get traffic; 503 while it drains
//!   for shutdown, or when its Redis (with `--redis`) does not answer a `PING` within 1 s.
//! - `GET /metrics`: Prometheus text exposition of [`ServerMetrics`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::drain::Drain;
use super::kv::KvStore;
use super::metrics::{ServerMetrics, Snapshot};
use super::protect::breaker::Breakers;
use super::protect::concurrency::Pool;
use super::session_ids::RandomIdSessions;

const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub(crate) struct Ops {
    pub drain: Arc<Drain>,
    pub kv: KvStore,
    pub metrics: Arc<ServerMetrics>,
    pub pool: Option<Arc<Pool>>,
    pub breakers: Option<Arc<Breakers>>,
    pub sessions: Arc<RandomIdSessions>,
}

pub(crate) async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `(ready, checks)`.
async fn readiness(ops: &Ops) -> (bool, Value) {
    let mut checks = serde_json::Map::new();
    let mut ready = true;
    if ops.drain.is_draining() {
        ready = false;
        checks.insert("shutdown".into(), json!("draining"));
    }
    if ops.kv.uses_redis() {
        let answer = tokio::time::timeout(REDIS_TIMEOUT, ops.kv.ping()).await;
        let state = match answer {
            Ok(Ok(())) => "ok".to_string(),
            Ok(Err(e)) => {
                ready = false;
                e
            }
            Err(_) => {
                ready = false;
                format!("Redis did not answer PING within {REDIS_TIMEOUT:?}")
            }
        };
        checks.insert("redis".into(), json!(state));
    }
    (ready, Value::Object(checks))
}

pub(crate) async fn ready(State(ops): State<Ops>) -> Response {
    let (ready, checks) = readiness(&ops).await;
    let (status, word) = if ready {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (status, Json(json!({ "status": word, "checks": checks }))).into_response()
}

pub(crate) async fn metrics(State(ops): State<Ops>) -> Response {
    let (ready, _) = readiness(&ops).await;
    let now = Instant::now();
    let snapshot = Snapshot {
        in_flight: ops.drain.in_flight() as i64,
        pool_busy: ops.pool.as_ref().map(|p| p.in_flight() as i64),
        pool_queued: ops.pool.as_ref().map(|p| p.waiting() as i64),
        sessions: ops.sessions.count().await as i64,
        rss_bytes: crate::metrics::process::self_rss_bytes().map(|b| b as i64),
        circuits: ops
            .breakers
            .as_ref()
            .map(|b| {
                b.states(now)
                    .into_iter()
                    .map(|(tool, s)| (tool, s as i64))
                    .collect()
            })
            .unwrap_or_default(),
        ready,
    };
    let mut response = ops.metrics.render(&snapshot).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
