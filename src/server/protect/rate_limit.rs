//! Rate limits: token buckets for all requests together, per client IP and per principal
//! (the JWT `sub`); burst = rate unless `--rate-burst` says otherwise. A request over a limit
//! gets 429 with `Retry-After` (seconds until a token is back) and a JSON-RPC error that says
//! which limit it hit.
//!
//! The buckets are `governor`'s GCRA limiters (keyed ones for IPs and principals), which
//! take no lock on the hot path. Keys of idle clients are pruned periodically by
//! [`RateLimits::prune`], so a scan over many addresses cannot grow memory without bound.
//!
//! Global and per-IP limits run before auth (a flood of strangers costs no token checks);
//! the per-principal limit runs after it.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::http::StatusCode;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, NotUntil, Quota, RateLimiter};
use serde_json::json;

use super::auth::Principal;
use super::reject::{Rejection, ceil_seconds};

/// `--hardened` defaults, those of the stress protocol's example: 1000/s in total, 100/s
/// per IP; a principal gets what one IP gets.
pub const DEFAULT_GLOBAL: u32 = 1000;
pub const DEFAULT_PER_IP: u32 = 100;
pub const DEFAULT_PER_PRINCIPAL: u32 = 100;

/// Requests per second for each scope (`None` = that scope is not limited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateConfig {
    pub global: Option<u32>,
    pub per_ip: Option<u32>,
    pub per_principal: Option<u32>,
    /// Bucket size; `None` = one second's worth of the rate.
    pub burst: Option<u32>,
}

/// The live buckets.
pub(crate) struct RateLimits {
    global: Option<(u32, DefaultDirectRateLimiter)>,
    per_ip: Option<(u32, DefaultKeyedRateLimiter<IpAddr>)>,
    per_principal: Option<(u32, DefaultKeyedRateLimiter<Arc<str>>)>,
    clock: DefaultClock,
}

fn quota(rate: u32, burst: Option<u32>) -> Quota {
    // Flags are validated to be >= 1; `MIN` only guards against a caller that did not.
    let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
    let burst = burst.and_then(NonZeroU32::new).unwrap_or(rate);
    Quota::per_second(rate).allow_burst(burst)
}

impl RateLimits {
    pub(crate) fn new(c: &RateConfig) -> RateLimits {
        RateLimits {
            global: c
                .global
                .map(|r| (r, RateLimiter::direct(quota(r, c.burst)))),
            per_ip: c.per_ip.map(|r| (r, RateLimiter::keyed(quota(r, c.burst)))),
            per_principal: c
                .per_principal
                .map(|r| (r, RateLimiter::keyed(quota(r, c.burst)))),
            clock: DefaultClock::default(),
        }
    }

    fn refusal(
        &self,
        not_until: &NotUntil<<DefaultClock as governor::clock::Clock>::Instant>,
        scope: &'static str,
        rate: u32,
        whom: String,
    ) -> Rejection {
        let retry = ceil_seconds(not_until.wait_time_from(self.clock.now()));
        Rejection::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            scope,
            format!(
                "rate limit exceeded: at most {rate} requests/s {whom}; retry after {retry} s \
                 (Retry-After), or spread the requests out"
            ),
        )
        .retry_after(retry)
        .data(json!({ "limit": scope, "rate_per_s": rate }))
    }

    /// Per-IP first, so a client already over its own limit does not drain the global one.
    pub(crate) fn check_before_auth(&self, ip: Option<IpAddr>) -> Result<(), Box<Rejection>> {
        if let (Some((rate, limiter)), Some(ip)) = (&self.per_ip, ip)
            && let Err(n) = limiter.check_key(&ip)
        {
            return Err(Box::new(self.refusal(
                &n,
                "per_ip",
                *rate,
                format!("from {ip}"),
            )));
        }
        if let Some((rate, limiter)) = &self.global
            && let Err(n) = limiter.check()
        {
            return Err(Box::new(self.refusal(
                &n,
                "global",
                *rate,
                "in total".into(),
            )));
        }
        Ok(())
    }

    pub(crate) fn check_principal(
        &self,
        principal: Option<&Principal>,
    ) -> Result<(), Box<Rejection>> {
        if let (Some((rate, limiter)), Some(p)) = (&self.per_principal, principal)
            && let Err(n) = limiter.check_key(&p.0)
        {
            return Err(Box::new(self.refusal(
                &n,
                "per_principal",
                *rate,
                format!("for `{}`", p.0),
            )));
        }
        Ok(())
    }

    /// Forgets clients whose buckets are full again (they would be recreated identical).
    pub(crate) fn prune(&self) {
        if let Some((_, l)) = &self.per_ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some((_, l)) = &self.per_principal {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([127, 0, 0, last]))
    }

    #[test]
    fn a_burst_passes_then_the_next_request_is_told_to_wait() {
        let limits = RateLimits::new(&RateConfig {
            global: None,
            per_ip: Some(5),
            per_principal: None,
            burst: None,
        });
        for _ in 0..5 {
            limits.check_before_auth(ip(1)).unwrap();
        }
        let refused = limits.check_before_auth(ip(1)).unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.reason, "per_ip");
        assert_eq!(refused.retry_after_s, Some(1));
        assert!(refused.message.contains("127.0.0.1"), "{}", refused.message);
        // Another client has its own bucket.
        limits.check_before_auth(ip(2)).unwrap();
    }

    #[test]
    fn the_global_bucket_is_shared_by_everyone() {
        let limits = RateLimits::new(&RateConfig {
            global: Some(3),
            per_ip: None,
            per_principal: None,
            burst: None,
        });
        for last in 1..=3 {
            limits.check_before_auth(ip(last)).unwrap();
        }
        assert_eq!(
            limits.check_before_auth(ip(9)).unwrap_err().reason,
            "global"
        );
    }

    #[test]
    fn principals_have_their_own_buckets_and_burst_is_configurable() {
        let limits = RateLimits::new(&RateConfig {
            global: None,
            per_ip: None,
            per_principal: Some(1000),
            burst: Some(2),
        });
        let alice = Principal("alice".into());
        let bob = Principal("bob".into());
        limits.check_principal(Some(&alice)).unwrap();
        limits.check_principal(Some(&alice)).unwrap();
        assert_eq!(
            limits.check_principal(Some(&alice)).unwrap_err().reason,
            "per_principal"
        );
        limits.check_principal(Some(&bob)).unwrap();
        // No principal (auth off): nothing to limit by.
        limits.check_principal(None).unwrap();
    }
}
