//! The order in which the protections run, as one middleware in front of `/mcp` and `/ws`.
//!
//! Each protection is its own module with its own checks and tests; this file only calls
//! the ones that are on, in the order `protect/mod.rs` explains, and does what must happen
//! after the answer (session owners learned, rmcp's refusals of unreadable requests turned
//! into JSON-RPC errors, refusals made further in logged, the concurrency slot and the
//! drain's in-flight token held until the body ends).
//!
//! Why one middleware and not one per protection: every `axum::middleware::from_fn` layer
//! boxes a future and clones the boxed inner service on every request. Measured on the
//! quickstart mix, eleven of them cost the server about 30 us of CPU per call; the checks
//! themselves cost a few.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::Response;

use super::auth::{AuthConfig, Principal};
use super::body_limit::{DISCARD_CAP, DISCARD_TIME, declared_length, discard, too_large};
use super::breaker::Breakers;
use super::classify::{RpcCall, read_body};
use super::concurrency::Pool;
use super::guarded_body::hold_until_body_ends;
use super::malformed;
use super::memory_guard::{self, MemoryGuardConfig};
use super::rate_limit::RateLimits;
use super::reject::Rejection;
use super::session_binding::{SESSION_HEADER, SessionOwners, not_found};
use super::{client_ip, who};
use crate::server::drain::Drain;
use crate::server::log::SecurityEvent;
use crate::server::metrics::ServerMetrics;

/// The protections that are on, ready to run.
pub(crate) struct Pipeline {
    pub metrics: Arc<ServerMetrics>,
    pub drain: Arc<Drain>,
    pub rate: Option<Arc<RateLimits>>,
    pub auth: Option<AuthConfig>,
    pub max_body: Option<usize>,
    /// Note what POST bodies ask for (method, tool) for the memory guard and the breaker.
    pub classify: bool,
    pub owners: Option<Arc<SessionOwners>>,
    pub memory_guard: Option<MemoryGuardConfig>,
    pub breakers: Option<Arc<Breakers>>,
    pub pool: Option<Arc<Pool>>,
    /// rmcp checks `Origin`/`Host`: log its 403s.
    pub origin_checked: bool,
}

/// Who asked, kept past the request for refusals seen in the answer.
struct Asker {
    client_ip: Option<IpAddr>,
    principal: Option<Arc<str>>,
    method: Method,
    uri: Uri,
    has_origin: bool,
}

impl Asker {
    fn of(req: &Request) -> Asker {
        Asker {
            client_ip: client_ip(req),
            principal: req.extensions().get::<Principal>().map(|p| p.0.clone()),
            method: req.method().clone(),
            uri: req.uri().clone(),
            has_origin: req.headers().contains_key(header::ORIGIN),
        }
    }

    fn log(
        &self,
        metrics: &ServerMetrics,
        event: &'static str,
        reason: &'static str,
        message: &str,
    ) {
        SecurityEvent {
            client_ip: self.client_ip,
            principal: self.principal.as_deref(),
            http_method: self.method.as_str(),
            path: self.uri.path(),
        }
        .log(event, reason, message);
        metrics.rejected(event, reason);
    }
}

/// What a request holds until its answer's body ends.
type Held = (
    Option<crate::server::drain::InFlight>,
    Option<tokio::sync::OwnedSemaphorePermit>,
);

/// A request let through, with its concurrency slot and its POST body (kept to answer a body
/// rmcp cannot read).
type Admitted = (
    Request,
    Option<tokio::sync::OwnedSemaphorePermit>,
    Option<Bytes>,
);

impl Pipeline {
    fn refuse(&self, req: &Request, refusal: Rejection) -> Response {
        refusal.respond(&who(req), Some(&self.metrics))
    }

    pub(crate) async fn run(State(p): State<Arc<Pipeline>>, req: Request, next: Next) -> Response {
        let post = req.method() == Method::POST;
        if post && p.drain.is_draining() {
            let response = p.refuse(&req, p.drain.refusal());
            p.metrics.answered(response.status().as_u16());
            return response;
        }
        let in_flight = post.then(|| p.drain.begin());
        let response = match p.admit(req).await {
            Ok((req, permit, body)) => p.pass(req, next, (in_flight, permit), body).await,
            Err(refused) => refused,
        };
        p.metrics.answered(response.status().as_u16());
        response
    }

    /// Every check before the request reaches rmcp; `Err` is the refusal to send.
    async fn admit(&self, mut req: Request) -> Result<Admitted, Response> {
        if let Some(rate) = &self.rate {
            rate.check_before_auth(client_ip(&req))
                .map_err(|r| self.refuse(&req, *r))?;
        }
        if let Some(auth) = &self.auth {
            let principal = auth
                .authenticate(req.headers())
                .map_err(|r| self.refuse(&req, *r))?;
            req.extensions_mut().insert(principal);
        }
        if let Some(rate) = &self.rate {
            rate.check_principal(req.extensions().get::<Principal>())
                .map_err(|r| self.refuse(&req, *r))?;
        }
        if let Some(max) = self.max_body
            && let Some(len) = declared_length(&req)
            && len > max as u64
        {
            let response = self.refuse(&req, too_large(Some(len), max));
            if len <= DISCARD_CAP {
                let _ = tokio::time::timeout(DISCARD_TIME, discard(req.into_body())).await;
            }
            return Err(response);
        }
        let mut body = None;
        if req.method() == Method::POST {
            let facts = Asker::of(&req);
            let (read, bytes) = read_body(req, self.max_body.unwrap_or(usize::MAX), self.classify)
                .await
                .map_err(|r| {
                    facts.log(&self.metrics, r.event, r.reason, &r.message);
                    r.into_response()
                })?;
            req = read;
            body = Some(bytes);
        }
        if let Some(owners) = &self.owners
            && let Some(session) = req
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
            && !owners.may_use(session, req.extensions().get::<Principal>().map(|p| &p.0))
        {
            who(&req).log(
                "denied",
                "session_not_owned",
                "a session was used by a principal other than the one that created it; answered as an unknown session",
            );
            self.metrics.rejected("denied", "session_not_owned");
            return Err(not_found());
        }
        if let Some(call) = req.extensions().get::<RpcCall>() {
            if let Some(config) = &self.memory_guard {
                memory_guard::check(config, call, crate::metrics::process::self_rss_bytes)
                    .map_err(|r| self.refuse(&req, *r))?;
            }
            if let Some(breakers) = &self.breakers {
                breakers.check(call).map_err(|r| self.refuse(&req, *r))?;
            }
        }
        let permit = match &self.pool {
            Some(pool) if req.method() == Method::POST => Some(
                pool.acquire()
                    .await
                    .map_err(|why| self.refuse(&req, pool.refusal(why)))?,
            ),
            _ => None,
        };
        Ok((req, permit, body))
    }

    /// Runs the request, then what must follow its answer.
    async fn pass(&self, req: Request, next: Next, held: Held, body: Option<Bytes>) -> Response {
        let session = self.owners.as_ref().map(|_| {
            (
                req.headers()
                    .get(SESSION_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                req.method() == Method::DELETE,
                req.extensions().get::<Principal>().map(|p| p.0.clone()),
            )
        });
        // Facts for logging a refusal made further in (rmcp's 403 on a foreign Origin/Host,
        // its refusal of a body it could not read); cheap clones.
        let watch = (self.origin_checked || body.is_some()).then(|| Asker::of(&req));
        let json_body = malformed::content_type_is_json(req.headers());
        let response = next.run(req).await;
        if let (Some(owners), Some((sent, deleting, principal))) = (&self.owners, session) {
            match sent {
                None => {
                    if let Some(created) = response
                        .headers()
                        .get(SESSION_HEADER)
                        .and_then(|v| v.to_str().ok())
                    {
                        owners.created(created.to_owned(), principal);
                    }
                }
                Some(id) if deleting && response.status().is_success() => owners.ended(&id),
                Some(_) => {}
            }
        }
        let response = match (&body, &watch) {
            (Some(body), Some(asker)) if malformed::is_unread(&response) => {
                let refusal = malformed::rewrite(response, json_body, body).await;
                asker.log(
                    &self.metrics,
                    refusal.event,
                    refusal.reason,
                    &refusal.message,
                );
                refusal.into_response()
            }
            _ => response,
        };
        if let Some(asker) = watch {
            match response.status() {
                StatusCode::FORBIDDEN if self.origin_checked => {
                    let reason = if asker.has_origin {
                        "origin_not_allowed"
                    } else {
                        "host_not_allowed"
                    };
                    asker.log(
                        &self.metrics,
                        "denied",
                        reason,
                        "refused a foreign Origin or Host header (cross-origin or DNS-rebinding attempt)",
                    );
                }
                _ => {}
            }
        }
        match held {
            (None, None) => response,
            held => hold_until_body_ends(response, held),
        }
    }
}
