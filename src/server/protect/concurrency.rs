//! Bounded concurrency with a bounded queue, the connection-pool semantics of the stress
//! reports: at most N requests are worked on at once; up to Q more wait for a slot, each at
//! most the acquire timeout; anything beyond is refused at once. Either refusal is 503 with
//! `Retry-After` and a message that gives the pool's state and what to do.
//!
//! A slot is held until the response body ends (see `guarded_body.rs`), since a tool's
//! answer arrives in the SSE body long after the handler returned its headers. Only POSTs
//! take a slot: a GET is a long-lived notification stream, not work.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::reject::Rejection;

pub const DEFAULT_MAX: usize = 256;
pub const DEFAULT_QUEUE: usize = 512;
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_AFTER_S: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcurrencyConfig {
    pub max: usize,
    pub queue: usize,
    pub queue_timeout: Duration,
}

pub(crate) struct Pool {
    config: ConcurrencyConfig,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// Why a request got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoSlot {
    QueueFull,
    TimedOut { waited: Duration },
}

/// Decrements the waiting count however the wait ends (slot, timeout, client gone).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Pool {
    pub(crate) fn new(config: ConcurrencyConfig) -> Pool {
        Pool {
            config,
            slots: Arc::new(Semaphore::new(config.max)),
            waiting: AtomicUsize::new(0),
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.config.max - self.slots.available_permits()
    }

    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    pub(crate) async fn acquire(&self) -> Result<OwnedSemaphorePermit, NoSlot> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        // Take a queue place only if one is free; never overshoot under a race.
        let queue = self.config.queue;
        if self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w < queue).then_some(w + 1)
            })
            .is_err()
        {
            return Err(NoSlot::QueueFull);
        }
        let _place = Waiting(&self.waiting);
        let started = Instant::now();
        match tokio::time::timeout(
            self.config.queue_timeout,
            self.slots.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it like a timeout all the same.
            Ok(Err(_)) | Err(_) => Err(NoSlot::TimedOut {
                waited: started.elapsed(),
            }),
        }
    }

    pub(crate) fn refusal(&self, why: NoSlot) -> Rejection {
        let (max, queue) = (self.config.max, self.config.queue);
        let (in_flight, waiting) = (self.in_flight(), self.waiting());
        let (reason, what, waited_ms) = match why {
            NoSlot::QueueFull => (
                "queue_full",
                format!("all {max} workers are busy and the queue of {queue} is full"),
                None,
            ),
            NoSlot::TimedOut { waited } => (
                "queue_timeout",
                format!(
                    "waited {} ms in the queue for one of {max} workers without getting one",
                    waited.as_millis()
                ),
                Some(waited.as_millis() as u64),
            ),
        };
        Rejection::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            reason,
            format!(
                "server overloaded: {what} (pool: {in_flight}/{max} busy, {waiting}/{queue} \
                 queued); retry after {RETRY_AFTER_S} s, lower the client's concurrency, or \
                 start the server with more --max-concurrency / --queue"
            ),
        )
        .retry_after(RETRY_AFTER_S)
        .data(json!({
            "in_flight": in_flight,
            "max_concurrency": max,
            "queued": waiting,
            "queue": queue,
            "queue_timeout_ms": self.config.queue_timeout.as_millis() as u64,
            "waited_ms": waited_ms,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(max: usize, queue: usize, timeout_ms: u64) -> Arc<Pool> {
        Arc::new(Pool::new(ConcurrencyConfig {
            max,
            queue,
            queue_timeout: Duration::from_millis(timeout_ms),
        }))
    }

    #[tokio::test]
    async fn beyond_slots_and_queue_requests_are_refused_at_once() {
        let p = pool(2, 1, 10_000);
        let a = p.acquire().await.unwrap();
        let _b = p.acquire().await.unwrap();
        let queued = tokio::spawn({
            let p = p.clone();
            async move { p.acquire().await.map(|_| ()) }
        });
        while p.waiting() < 1 {
            tokio::task::yield_now().await;
        }
        assert_eq!(p.acquire().await.unwrap_err(), NoSlot::QueueFull);
        let r = p.refusal(NoSlot::QueueFull);
        assert!(r.message.contains("2/2 busy, 1/1 queued"), "{}", r.message);
        assert_eq!(r.retry_after_s, Some(1));
        drop(a);
        queued.await.unwrap().unwrap();
        assert_eq!(p.waiting(), 0);
    }

    #[tokio::test]
    async fn a_queued_request_gives_up_after_the_timeout() {
        let p = pool(1, 5, 50);
        let _a = p.acquire().await.unwrap();
        match p.acquire().await {
            Err(NoSlot::TimedOut { waited }) => assert!(waited >= Duration::from_millis(50)),
            other => panic!("{other:?}"),
        }
        assert_eq!(p.waiting(), 0, "the queue place was given back");
        let r = p.refusal(NoSlot::TimedOut {
            waited: Duration::from_millis(50),
        });
        assert_eq!(r.reason, "queue_timeout");
        assert_eq!(r.body()["error"]["data"]["waited_ms"], 50);
    }
}
