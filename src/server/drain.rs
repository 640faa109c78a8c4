//! Graceful shutdown: on SIGTERM the server stops accepting connections, refuses new work
//! with 503, lets the requests in flight finish (up to the grace period), and only then
//! closes the MCP sessions and exits 0.
//!
//! The one mechanism: every POST to `/mcp` holds an [`InFlight`] token until its response
//! body ends (an MCP answer is often an SSE stream that outlives the handler), and
//! [`Drain::wait_idle`] waits until no token is left.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::Notify;

use super::metrics::ServerMetrics;
use super::protect::guarded_body::hold_until_body_ends;
use super::protect::reject::Rejection;
use super::protect::who;

#[derive(Default)]
pub(crate) struct Drain {
    in_flight: AtomicUsize,
    draining: AtomicBool,
    idle: Notify,
}

/// One request in flight; dropping it ends the request.
pub(crate) struct InFlight(Arc<Drain>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Drain {
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    pub(crate) fn start(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Returns once no request is in flight.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Register before looking, so a drop between the check and the await is seen.
            notified.as_mut().enable();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[derive(Clone)]
pub(crate) struct TrackLayer {
    pub drain: Arc<Drain>,
    pub metrics: Arc<ServerMetrics>,
}

/// Outermost layer on `/mcp`: counts answers by status, tracks POSTs in flight, and during
/// a drain refuses new ones.
pub(crate) async fn track(State(s): State<TrackLayer>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        let response = next.run(req).await;
        s.metrics.answered(response.status().as_u16());
        return response;
    }
    if s.drain.is_draining() {
        let response = Rejection::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "draining",
            "the server is shutting down and takes no new requests; retry after 5 s, against \
             another instance or this one once it is back",
        )
        .retry_after(5)
        .respond(&who(&req), Some(&s.metrics));
        s.metrics.answered(response.status().as_u16());
        return response;
    }
    let token = s.drain.begin();
    let response = next.run(req).await;
    s.metrics.answered(response.status().as_u16());
    hold_until_body_ends(response, token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wait_idle_returns_when_the_last_request_ends() {
        let drain = Arc::new(Drain::default());
        let a = drain.begin();
        let b = drain.begin();
        drain.start();
        assert!(drain.is_draining());
        let waiter = tokio::spawn({
            let d = drain.clone();
            async move { d.wait_idle().await }
        });
        drop(a);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "one request is still in flight");
        drop(b);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("wait_idle returned")
            .unwrap();
    }

    #[tokio::test]
    async fn an_idle_server_drains_at_once() {
        let drain = Arc::new(Drain::default());
        tokio::time::timeout(Duration::from_secs(1), drain.wait_idle())
            .await
            .unwrap();
    }
}
