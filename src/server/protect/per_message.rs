//! The protections for MCP over WebSocket (`/ws`), message by message.
//!
//! The upgrade request goes through the pipeline like any HTTP request (Origin, auth, rate
//! limits). After it, every text frame is a request of its own that the pipeline never sees,
//! so each one is checked here, as a POST to `/mcp` would be: the rate limits (one token per
//! message with a method), the memory guard and the circuit breaker (by what it asks), and
//! a slot of the bounded pool, held until the request's answer goes out. The size limit is
//! the socket's own (`max_message_size` = `--max-body`): a larger message is never read
//! whole, and the connection is closed with 1009 (Message Too Big), as RFC 6455 says.
//!
//! A refused request gets its JSON-RPC error on the same socket (with `retry_after_s` in
//! `error.data`: a frame has no headers); a refused notification is dropped. Both are
//! logged and counted like the pipeline's refusals. Answers the client sends to the server's
//! own requests (sampling, elicitation) are not limited: refusing them would stall the tool
//! that asked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;

use super::auth::Principal;
use super::breaker::Breakers;
use super::classify::RpcCall;
use super::concurrency::Pool;
use super::memory_guard::{self, MemoryGuardConfig};
use super::rate_limit::RateLimits;
use super::reject::Rejection;
use crate::server::log::SecurityEvent;
use crate::server::metrics::ServerMetrics;

/// The protections that are on, shared by every WebSocket connection.
pub(crate) struct MessageGuard {
    /// The largest message read, in bytes (the body limit); `None` = the socket's default.
    pub max_message: Option<usize>,
    pub rate: Option<Arc<RateLimits>>,
    pub memory_guard: Option<MemoryGuardConfig>,
    pub breakers: Option<Arc<Breakers>>,
    pub pool: Option<Arc<Pool>>,
    pub metrics: Option<Arc<ServerMetrics>>,
}

/// Who is on the other end of one connection, as the upgrade request said.
#[derive(Debug, Clone, Default)]
pub(crate) struct Peer {
    pub ip: Option<IpAddr>,
    pub principal: Option<Principal>,
}

impl Peer {
    fn event(&self) -> SecurityEvent<'_> {
        SecurityEvent {
            client_ip: self.ip,
            principal: self.principal.as_ref().map(|p| p.0.as_ref()),
            http_method: "WS",
            path: "/ws",
        }
    }
}

/// What to do with one incoming message.
pub(crate) enum Verdict {
    /// Hand it to the server; the slot (if any) is released when its answer goes out.
    Pass,
    /// Answer this JSON-RPC error text instead.
    Answer(String),
    /// Drop it (a refused notification).
    Drop,
}

/// The pool slots of one connection's requests in flight, by request id (as JSON text).
#[derive(Default)]
pub(crate) struct Slots(Mutex<HashMap<String, OwnedSemaphorePermit>>);

impl Slots {
    fn hold(&self, id: &Value, permit: OwnedSemaphorePermit) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_string(), permit);
    }

    /// The answer to request `id` went out: its slot is free.
    pub(crate) fn release(&self, id: &str) {
        let mut slots = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !slots.is_empty() {
            slots.remove(id);
        }
    }
}

impl MessageGuard {
    /// Check one message (its text) from `peer`; a request let through may take a slot in
    /// `slots` until its answer.
    pub(crate) async fn admit(&self, peer: &Peer, text: &[u8], slots: &Slots) -> Verdict {
        let call = RpcCall::of(text);
        // Answers to the server's own requests, and garbage (rmcp drops it), pass as they are.
        if call.method.is_none() {
            return Verdict::Pass;
        }
        match self.check(peer, &call).await {
            Ok(None) => Verdict::Pass,
            Ok(Some(permit)) => {
                if let Some(id) = &call.id {
                    slots.hold(id, permit);
                }
                Verdict::Pass
            }
            Err(refusal) => {
                peer.event()
                    .log(refusal.event, refusal.reason, &refusal.message);
                if let Some(m) = &self.metrics {
                    m.rejected(refusal.event, refusal.reason);
                }
                match &call.id {
                    Some(id) if !id.is_null() => {
                        Verdict::Answer(refusal.id(Some(id)).body().to_string())
                    }
                    _ => Verdict::Drop,
                }
            }
        }
    }

    async fn check(
        &self,
        peer: &Peer,
        call: &RpcCall,
    ) -> Result<Option<OwnedSemaphorePermit>, Box<Rejection>> {
        if let Some(rate) = &self.rate {
            rate.check_before_auth(peer.ip)?;
            rate.check_principal(peer.principal.as_ref())?;
        }
        if let Some(config) = &self.memory_guard {
            memory_guard::check(config, call, crate::metrics::process::self_rss_bytes)?;
        }
        if let Some(breakers) = &self.breakers {
            breakers.check(call)?;
        }
        match (&self.pool, &call.id) {
            (Some(pool), Some(id)) if !id.is_null() => match pool.acquire().await {
                Ok(permit) => Ok(Some(permit)),
                Err(why) => Err(Box::new(pool.refusal(why))),
            },
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::protect::{ConcurrencyConfig, RateConfig};
    use std::time::Duration;

    fn guard() -> MessageGuard {
        MessageGuard {
            max_message: None,
            rate: Some(Arc::new(RateLimits::new(&RateConfig {
                global: None,
                per_ip: Some(2),
                per_principal: None,
                burst: None,
            }))),
            memory_guard: None,
            breakers: None,
            pool: Some(Arc::new(Pool::new(ConcurrencyConfig {
                max: 1,
                queue: 0,
                queue_timeout: Duration::from_millis(10),
            }))),
            metrics: None,
        }
    }

    fn peer() -> Peer {
        Peer {
            ip: Some([127, 0, 0, 1].into()),
            principal: None,
        }
    }

    #[tokio::test]
    async fn a_request_holds_a_slot_until_its_answer_and_the_excess_is_answered() {
        let (g, slots) = (guard(), Slots::default());
        let first = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sleep"}}"#;
        assert!(matches!(
            g.admit(&peer(), first, &slots).await,
            Verdict::Pass
        ));
        let second = br#"{"jsonrpc":"2.0","id":"b","method":"ping"}"#;
        let Verdict::Answer(text) = g.admit(&peer(), second, &slots).await else {
            panic!("the pool of one is full");
        };
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["id"], "b");
        assert_eq!(body["error"]["data"]["reason"], "queue_full");
        slots.release("1");
        // Rate: 2 per second from this IP, and both were spent.
        let Verdict::Answer(text) = g.admit(&peer(), second, &slots).await else {
            panic!("over the rate limit");
        };
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["error"]["data"]["reason"], "per_ip");
        assert!(body["error"]["data"]["retry_after_s"].as_u64().unwrap() >= 1);
        // A notification over the limit is dropped; an answer to the server is never limited.
        let note = br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#;
        assert!(matches!(
            g.admit(&peer(), note, &slots).await,
            Verdict::Drop
        ));
        let answer = br#"{"jsonrpc":"2.0","id":7,"result":{}}"#;
        assert!(matches!(
            g.admit(&peer(), answer, &slots).await,
            Verdict::Pass
        ));
    }
}
