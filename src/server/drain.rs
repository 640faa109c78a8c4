//! Graceful shutdown: on SIGTERM the server stops accepting connections, refuses new work
//! with 503, lets the requests in flight finish (up to the grace period), and only then
//! closes the MCP sessions and exits 0.
//!
//! The one mechanism: every POST to `/mcp` holds an [`InFlight`] token until its response
//! body ends (an MCP answer is often an SSE stream that outlives the handler), and
//! [`Drain::wait_idle`] waits until no token is left.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::http::StatusCode;
use tokio::sync::Notify;

use super::protect::reject::Rejection;

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

    /// The 503 for a request that arrives while draining.
    pub(crate) fn refusal(&self) -> Rejection {
        Rejection::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "draining",
            "the server is shutting down and takes no new requests; retry after 5 s, against \
             another instance or this one once it is back",
        )
        .retry_after(5)
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
