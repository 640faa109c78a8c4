//! rate_limit: given the limit the server declares, is a burst above it throttled near that
//! rate, is traffic under it left alone, and does every 429 say when to come back?
//!
//! Open model: arrivals are scheduled at fixed times (burst: 2x the declared rate for 3 s;
//! then a pause; then 0.5x for 2 s), never waiting for answers, so a slow server cannot slow
//! the probe down. The throttle point is the rate of accepted requests from the first
//! throttled one to the end of the burst: the bucket's initial allowance (a burst capacity)
//! is spent by then, so what is left is the steady rate the limiter lets through.

use super::RateScope;
use super::wire::{Ctx, HttpSession, retry_after, served};
use super::{Finding, Probe, Severity};
use crate::transport::http::RawResponse;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use std::time::Duration;
use tokio::time::Instant;

pub(crate) struct RateLimit;

impl Probe for RateLimit {
    fn name(&self) -> &'static str {
        "rate_limit"
    }
    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(run(ctx))
    }
}

/// The most requests one phase may send, whatever the declared rate.
const MAX_REQUESTS: usize = 20_000;
/// In flight at once; arrivals beyond it wait (and are counted late, not dropped).
const MAX_IN_FLIGHT: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Class {
    Accepted,
    Throttled { retry_after: bool },
    Failed,
}

/// One request of a phase: when it was sent (from the phase start) and how it ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub at: f64,
    pub class: Class,
}

pub(crate) fn classify(r: &Result<RawResponse, crate::error::CallError>) -> Class {
    match r {
        Ok(r) if served(r) => Class::Accepted,
        Ok(r) if r.status == 429 => Class::Throttled {
            retry_after: r.header("retry-after").is_some(),
        },
        Ok(r) => {
            // A JSON-RPC error that says it is a limit counts as throttling too (over stdio
            // or behind a 200).
            let msg = r
                .answer()
                .and_then(|a| a.get("error"))
                .map(|e| e.to_string().to_ascii_lowercase())
                .unwrap_or_default();
            if ["rate", "limit", "too many", "throttl"]
                .iter()
                .any(|w| msg.contains(w))
            {
                Class::Throttled { retry_after: true }
            } else {
                Class::Failed
            }
        }
        Err(_) => Class::Failed,
    }
}

/// Accepted requests per second from the first throttled one to the end of the phase, and
/// that window's length; `None` when nothing was throttled.
pub(crate) fn throttle_point(samples: &[Sample], phase_end: f64) -> Option<(f64, f64)> {
    let first = samples
        .iter()
        .filter(|s| matches!(s.class, Class::Throttled { .. }))
        .map(|s| s.at)
        .fold(f64::INFINITY, f64::min);
    if !first.is_finite() {
        return None;
    }
    let window = (phase_end - first).max(1e-3);
    let accepted = samples
        .iter()
        .filter(|s| s.at >= first && s.class == Class::Accepted)
        .count();
    Some((accepted as f64 / window, window))
}

async fn phase(
    ctx: &Ctx,
    sessions: &[HttpSession],
    rate: f64,
    duration: Duration,
) -> (Vec<Sample>, Vec<RawResponse>) {
    let n = ((rate * duration.as_secs_f64()) as usize).clamp(1, MAX_REQUESTS);
    let start = Instant::now();
    let mut pending = FuturesUnordered::new();
    let mut samples = Vec::with_capacity(n);
    let mut throttled_examples = Vec::new();
    let mut next = 0usize;
    while next < n || !pending.is_empty() {
        if next < n && pending.len() < MAX_IN_FLIGHT {
            let due = start + Duration::from_secs_f64(next as f64 / rate);
            let i = next;
            next += 1;
            let s = &sessions[i % sessions.len()];
            pending.push(async move {
                tokio::time::sleep_until(due).await;
                let at = start.elapsed().as_secs_f64();
                let mut req = ctx.post(
                    &s.headers,
                    super::wire::rpc(serde_json::json!(10_000 + i), "ping", None),
                    &[],
                );
                req.retry_throttled = false;
                req.alt_source = s.alt;
                let r = ctx.send_unpaced("rate_limit", req).await;
                (at, r)
            });
            continue;
        }
        if let Some((at, r)) = pending.next().await {
            let class = classify(&r);
            if matches!(class, Class::Throttled { .. })
                && throttled_examples.is_empty()
                && let Ok(resp) = &r
            {
                throttled_examples.push(resp.clone());
            }
            samples.push(Sample { at, class });
        }
    }
    (samples, throttled_examples)
}

async fn run(ctx: &Ctx) -> Vec<Finding> {
    let Some(limit) = ctx.cfg.rate_limit.clone() else {
        return vec![Finding::skip(
            "rate_limit",
            "no declared limit: pass --rate-limit N (and --rate-scope), or [security.rate_limit] declared = N",
        )];
    };
    let Some(h) = ctx.http() else {
        return vec![Finding::skip(
            "rate_limit",
            "stdio target: one process per client, a rate limit is an HTTP matter here",
        )];
    };
    if !ctx.authorized {
        return vec![Finding::skip(
            "rate_limit",
            "no session could be opened with the credentials given; pass a key or -H 'Authorization: Bearer ...'",
        )];
    }
    let mut sessions = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = ctx.open_session("rate_limit", &h.good).await {
            sessions.push(s);
        }
    }
    if sessions.is_empty() {
        return vec![Finding::fail(
            "rate_limit",
            Severity::Medium,
            "no session could be opened for the burst",
        )];
    }
    let declared = limit.declared;
    let burst_rate = declared * limit.burst_factor;
    let scope = serde_json::to_value(limit.scope)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let (bystanders, scope_skip) = bystanders(ctx, &limit).await;
    let by_rate = (declared * 0.25).max(1.0);
    let ((burst, examples), (by_samples, _)) = tokio::join!(
        phase(ctx, &sessions, burst_rate, limit.burst_duration),
        async {
            if bystanders.is_empty() {
                (Vec::new(), Vec::new())
            } else {
                phase(ctx, &bystanders, by_rate, limit.burst_duration).await
            }
        }
    );
    let burst_end = limit.burst_duration.as_secs_f64();
    // A global limit is shared with the other client: its accepted requests count too.
    let measured: Vec<Sample> = match limit.scope {
        RateScope::Global => burst.iter().chain(&by_samples).copied().collect(),
        _ => burst.clone(),
    };
    let count = |s: &[Sample], f: &dyn Fn(&Class) -> bool| s.iter().filter(|x| f(&x.class)).count();
    let accepted = count(&burst, &|c| *c == Class::Accepted);
    let throttled = count(&burst, &|c| matches!(c, Class::Throttled { .. }));
    let failed = count(&burst, &|c| *c == Class::Failed);
    let no_retry_after = count(&burst, &|c| *c == Class::Throttled { retry_after: false });
    let request = format!(
        "burst: {} pings at {burst_rate:.0}/s for {:.1} s over {} sessions ({}, declared {declared:.0}/s, {scope})",
        burst.len(),
        burst_end,
        sessions.len(),
        ctx.http().map(|h| h.good_desc.as_str()).unwrap_or("")
    );
    let burst_summary = format!("{accepted} accepted, {throttled} throttled, {failed} failed");
    let mut out = Vec::new();
    match throttle_point(&measured, burst_end) {
        None => out.push(
            Finding::fail("rate_limit.burst", Severity::High, format!("no throttling at {:.0}x the declared {declared:.0}/s", limit.burst_factor))
                .evidence(request.clone(), burst_summary.clone())
                .advice(format!("enforce the declared limit ({declared:.0}/s {scope}) with a token bucket and answer excess requests with 429 + Retry-After")),
        ),
        Some((rate, window)) => {
            let off = (rate - declared) / declared;
            let title = format!("throttled at {rate:.1}/s, declared {declared:.0}/s ({:+.1} %)", off * 100.0);
            let evidence = format!("{burst_summary}; {rate:.1} accepted/s over the {window:.2} s after the first throttled request");
            out.push(if off.abs() <= limit.tolerance {
                Finding::pass("rate_limit.burst", Severity::Medium, title).evidence(request.clone(), evidence)
            } else {
                Finding::fail("rate_limit.burst", Severity::Medium, format!("{title}: more than {:.0} % off", limit.tolerance * 100.0))
                    .evidence(request.clone(), evidence)
                    .advice("make the limiter's steady rate match what you declare (refill rate, window length), or declare what it really does")
            });
        }
    }
    match examples.first() {
        _ if throttled == 0 => {}
        Some(ex) if no_retry_after > 0 => out.push(
            Finding::fail(
                "rate_limit.retry_after",
                Severity::Low,
                format!("{no_retry_after} of {throttled} throttled answers had no Retry-After"),
            )
            .evidence(request.clone(), super::wire::describe_response(ex))
            .advice(
                "send Retry-After (seconds) with every 429 so clients back off for the right time",
            ),
        ),
        Some(ex) => out.push(
            Finding::pass(
                "rate_limit.retry_after",
                Severity::Low,
                format!(
                    "every 429 says when to retry (e.g. Retry-After: {:?})",
                    retry_after(ex)
                ),
            )
            .evidence(request.clone(), super::wire::describe_response(ex)),
        ),
        None => {}
    }
    out.push(scope_finding(
        &limit,
        &by_samples,
        by_rate,
        scope_skip,
        &request,
    ));
    for s in &bystanders {
        ctx.close_session(s).await;
    }
    // Let the limiter recover (a bucket refills, a window passes), then stay under the limit.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let under_rate = declared * limit.under_factor;
    let (under, _) = phase(ctx, &sessions, under_rate, limit.under_duration).await;
    let u_throttled = count(&under, &|c| matches!(c, Class::Throttled { .. }));
    let u_failed = count(&under, &|c| *c == Class::Failed);
    let u_request = format!(
        "{} pings at {under_rate:.0}/s for {:.1} s, 1.2 s after the burst",
        under.len(),
        limit.under_duration.as_secs_f64()
    );
    let u_summary = format!(
        "{} accepted, {u_throttled} throttled, {u_failed} failed",
        count(&under, &|c| *c == Class::Accepted)
    );
    out.push(if (u_throttled as f64) > 0.01 * under.len() as f64 {
        Finding::fail("rate_limit.under_limit", Severity::Medium, format!("traffic at {:.0} % of the declared rate was throttled ({u_throttled} of {})", limit.under_factor * 100.0, under.len()))
            .evidence(u_request, u_summary)
            .advice("the limiter throttles below the declared rate: check its rate and scope (a global bucket where per-IP was meant?)")
    } else {
        Finding::pass("rate_limit.under_limit", Severity::Medium, format!("traffic at {:.0} % of the declared rate was not throttled", limit.under_factor * 100.0)).evidence(u_request, u_summary)
    });
    for s in &sessions {
        ctx.close_session(s).await;
    }
    if let Err(e) = ctx.http_health().await {
        ctx.mark_down(format!(
            "the server stopped answering after the rate-limit burst: {e}"
        ));
        out.push(
            Finding::fail(
                "rate_limit.health",
                Severity::Critical,
                format!("server dead or hung after the burst ({e})"),
            )
            .evidence(request, burst_summary)
            .advice("shed excess load with 429s; a burst must never take the server down"),
        );
    }
    out
}

/// Sessions of a second client (another loopback address and, with a key, another
/// principal) that sends a trickle during the burst, or why there are none.
async fn bystanders(
    ctx: &Ctx,
    limit: &super::config::RateLimitConfig,
) -> (Vec<HttpSession>, Option<String>) {
    if limit.scope == RateScope::PerPrincipal {
        return (
            vec![],
            Some(
                "per_principal: not checked, a per-IP limit at the same time would hide it".into(),
            ),
        );
    }
    if !ctx.has_second_address() {
        return (vec![], Some("the target is not on IPv4 loopback, so there is no second client address to send from".into()));
    }
    let Some(h) = ctx.http() else {
        return (vec![], Some("stdio".into()));
    };
    let headers = match &ctx.minter {
        Some(m) => match m.token(super::tokens::PRINCIPAL_B, super::tokens::Flaw::None) {
            Ok((t, _)) => {
                let mut hm = h.base.clone();
                hm.insert(reqwest::header::AUTHORIZATION, super::wire::bearer(&t));
                hm
            }
            Err(e) => return (vec![], Some(e)),
        },
        None if h.good.contains_key(reqwest::header::AUTHORIZATION) => {
            return (vec![], Some("needs the server's key to act as a second principal (a per-principal limit would otherwise throttle the second client)".into()));
        }
        None => h.good.clone(),
    };
    let mut out = Vec::new();
    for _ in 0..2 {
        match ctx.open_session_from("rate_limit", &headers, true).await {
            Ok(s) => out.push(s),
            Err(e) => {
                return (
                    out,
                    Some(format!(
                        "no session from the second address: {}",
                        e.describe()
                    )),
                );
            }
        }
    }
    (out, None)
}

/// Does the limit apply to whom it says? Per IP: another client is left alone during the
/// burst. Global: another client is throttled too.
fn scope_finding(
    limit: &super::config::RateLimitConfig,
    by: &[Sample],
    by_rate: f64,
    skip: Option<String>,
    request: &str,
) -> Finding {
    let id = "rate_limit.scope";
    if let Some(why) = skip {
        return Finding::skip(id, why);
    }
    let throttled = by
        .iter()
        .filter(|s| matches!(s.class, Class::Throttled { .. }))
        .count();
    let evidence = format!(
        "a second client (127.0.0.2, another principal) sent {} pings at {by_rate:.0}/s during the burst: {throttled} throttled",
        by.len()
    );
    match limit.scope {
        RateScope::PerIp if (throttled as f64) > 0.01 * by.len() as f64 => {
            Finding::fail(id, Severity::Medium, format!("declared per IP, but another client was throttled during the burst ({throttled} of {})", by.len()))
                .evidence(request.to_string(), evidence)
                .advice("key the limiter by client IP as declared; a shared bucket lets one client lock every other out")
        }
        RateScope::Global if throttled == 0 => {
            Finding::fail(id, Severity::Medium, "declared global, but another client was not throttled while the limit was exceeded")
                .evidence(request.to_string(), evidence)
                .advice("share one bucket among all clients for a global limit, or declare the scope it really has")
        }
        _ => Finding::pass(id, Severity::Medium, format!("the limit applies {}", if limit.scope == RateScope::Global { "to all clients together" } else { "per client IP" }))
            .evidence(request.to_string(), evidence),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_point_skips_the_initial_allowance() {
        // A bucket of 50 refilled at 50/s, hit at 100/s for 3 s: all pass for the first
        // second, then every other one.
        let mut samples = Vec::new();
        let mut tokens = 50.0f64;
        let mut last = 0.0;
        for i in 0..300 {
            let at = i as f64 / 100.0;
            tokens = (tokens + (at - last) * 50.0).min(50.0);
            last = at;
            let class = if tokens >= 1.0 {
                tokens -= 1.0;
                Class::Accepted
            } else {
                Class::Throttled { retry_after: true }
            };
            samples.push(Sample { at, class });
        }
        let (rate, window) = throttle_point(&samples, 3.0).unwrap();
        assert!((rate - 50.0).abs() / 50.0 < 0.1, "{rate}");
        assert!(window > 1.5, "{window}");
        let all_ok: Vec<Sample> = samples
            .iter()
            .map(|s| Sample {
                at: s.at,
                class: Class::Accepted,
            })
            .collect();
        assert!(throttle_point(&all_ok, 3.0).is_none());
    }
}
