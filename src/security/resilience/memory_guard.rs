//! resilience.memory_guard: heavy calls the user names (a call that makes the server hold
//! `request_mb` for a while, such as the reference server's `alloc` with a hold), started
//! one every `interval` so they overlap, until together they hold more than the server's
//! declared threshold. A guarded server refuses the next heavy call (503 with `Retry-After`)
//! instead of growing; one without a guard takes them all.
//!
//! The probe cannot read a remote server's memory, so it counts: `threshold / request + 3`
//! calls are enough to pass the threshold from any starting point, and the settings are
//! refused when that would make the server hold more than 512 MB. It stops starting calls at
//! the first refusal, asks a light `ping` meanwhile (a guard sheds heavy work, not all
//! work), and waits for every call it started, so the memory is given back before it ends.

use super::{Answer, Called, ToolCall, call, median_max_ms, with_refusal_flaws};
use crate::security::auth::after_health;
use crate::security::wire::{Ctx, HttpSession};
use crate::security::{Finding, Severity};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use serde_json::json;
use std::time::Duration;

const PROBE: &str = "resilience.memory_guard";
/// The most memory the probe may make a server hold at once.
pub const MAX_HELD_MB: u64 = 512;
/// The most heavy calls it starts.
pub const MAX_CALLS: u64 = 64;
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(250);
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize)]
pub struct MemoryGuardProbe {
    /// A call that makes the server hold memory while it runs.
    pub call: ToolCall,
    /// The server's declared threshold, MB.
    pub threshold_mb: u64,
    /// What one heavy call holds, MB.
    pub request_mb: u64,
    /// Between two heavy calls.
    #[serde(serialize_with = "crate::workload::ser_duration")]
    pub interval: Duration,
    /// A heavy call unanswered this long hung.
    #[serde(serialize_with = "crate::workload::ser_duration")]
    pub deadline: Duration,
}

impl MemoryGuardProbe {
    /// Heavy calls to start: enough to pass the threshold even from an empty process.
    pub fn calls(&self) -> u64 {
        self.threshold_mb / self.request_mb.max(1) + 3
    }

    /// Every problem with the settings, each naming `key.field` (a flag or scenario key).
    pub fn check(&self, keys: &MemoryKeys) -> Vec<String> {
        let mut p = Vec::new();
        if self.threshold_mb == 0 {
            p.push(format!("{} must be more than 0", keys.threshold));
        }
        if self.request_mb == 0 {
            p.push(format!("{} must be more than 0", keys.request));
        }
        if p.is_empty() {
            let held = self.calls() * self.request_mb;
            if self.calls() > MAX_CALLS || held > MAX_HELD_MB {
                p.push(format!(
                    "{} {} with {} {}: the probe would start {} heavy calls holding up to {held} MB; it holds at most {MAX_HELD_MB} MB and {MAX_CALLS} calls. Probe a server started with a lower threshold (e.g. --memory-guard-mb 100), or make each call heavier",
                    keys.threshold, self.threshold_mb, keys.request, self.request_mb, self.calls()
                ));
            }
        }
        if self.interval.is_zero() {
            p.push(format!("{} must be more than 0", keys.interval));
        }
        if self.deadline.is_zero() {
            p.push(format!("{} must be more than 0", keys.deadline));
        }
        p
    }
}

/// How the settings are named where they came from (flags or scenario keys).
pub struct MemoryKeys {
    pub threshold: &'static str,
    pub request: &'static str,
    pub interval: &'static str,
    pub deadline: &'static str,
}

pub(crate) async fn run(ctx: &Ctx) -> Finding {
    let Some(cfg) = &ctx.cfg.memory_guard else {
        return Finding::skip(
            PROBE,
            "no heavy call declared: give --memory-tool NAME --memory-arguments JSON --memory-request-mb N (what one call holds) with the server's --memory-threshold-mb N ([security.memory_guard] tool, arguments, request_mb, threshold_mb)",
        );
    };
    let session = match super::declared_session(ctx, PROBE, &cfg.call, "--memory-tool").await {
        Ok(s) => s,
        Err(skip) => return skip,
    };
    let f = probe(ctx, &session, cfg).await;
    ctx.close_session(&session).await;
    after_health(ctx, f).await
}

async fn probe(ctx: &Ctx, session: &HttpSession, cfg: &MemoryGuardProbe) -> Finding {
    let n = cfg.calls() as usize;
    let request = format!(
        "up to {n} heavy calls, one every {} ms so they overlap: {} (~{} MB each; the server's declared threshold {} MB); a ping while they are held",
        cfg.interval.as_millis(),
        cfg.call.shown(),
        cfg.request_mb,
        cfg.threshold_mb
    );
    // (index, answer), as they come back.
    let mut done: Vec<(usize, Called)> = Vec::new();
    let mut pending = FuturesUnordered::new();
    let mut started = 0usize;
    let mut most_in_flight = 0usize;
    let mut ping: Option<Called> = None;
    let mut next = tokio::time::Instant::now();
    loop {
        let refused = done.iter().any(|(_, c)| c.refused() && !c.throttled());
        if refused && ping.is_none() && !pending.is_empty() {
            ping = Some(light_ping(ctx, session).await);
        }
        if (refused || started == n) && pending.is_empty() {
            break;
        }
        let launch = !refused && started < n;
        tokio::select! {
            _ = tokio::time::sleep_until(next), if launch => {
                let i = started;
                pending.push(async move {
                    (i, call(ctx, PROBE, session, 100 + i as u64, &cfg.call, cfg.deadline, true).await)
                });
                started += 1;
                most_in_flight = most_in_flight.max(pending.len());
                next += cfg.interval;
            }
            Some(finished) = pending.next() => done.push(finished),
            else => break,
        }
    }
    done.sort_by_key(|(i, _)| *i);
    let first_refused = done.iter().find(|(_, c)| c.refused() && !c.throttled());
    let accepted = done
        .iter()
        .filter(|(_, c)| matches!(c.answer, Answer::Ran { .. }))
        .count();
    let broken: Vec<&Called> = done
        .iter()
        .map(|(_, c)| c)
        .filter(|c| matches!(c.answer, Answer::TimedOut | Answer::Failed { .. }))
        .collect();
    let refusals: Vec<&Called> = done
        .iter()
        .map(|(_, c)| c)
        .filter(|c| c.refused() && !c.throttled())
        .collect();
    let (refusal_ms, _) = median_max_ms(&mut refusals.iter().map(|c| c.took).collect::<Vec<_>>());
    let mut response = format!(
        "{started} started, at most {most_in_flight} held at once: {accepted} accepted, {} refused (median {refusal_ms} ms), {} failed or hung",
        refusals.len(),
        broken.len()
    );
    if let Some((i, c)) = first_refused {
        response.push_str(&format!("; heavy call #{} refused: {}", i + 1, c.shown));
    }
    if let Some(p) = &ping {
        response.push_str(&format!("; the ping meanwhile: {}", p.shown));
    }
    if let Some(c) = broken.first() {
        response.push_str(&format!("; a failure: {}", c.shown));
    }
    let details = json!({
        "started": started, "most_in_flight": most_in_flight, "accepted": accepted,
        "refused": refusals.len(), "failed": broken.len(),
        "first_refused": first_refused.map(|(i, _)| i + 1),
        "held_mb_before_refusal": first_refused.map(|(i, _)| *i as u64 * cfg.request_mb),
        "threshold_mb": cfg.threshold_mb, "request_mb": cfg.request_mb,
        "refusal_ms": refusal_ms,
        "light_request_served": ping.as_ref().map(|p| matches!(p.answer, Answer::Ran { .. })),
    });
    let f = match (first_refused, done.first()) {
        (Some((0, c)), _) => Finding::skip(
            PROBE,
            format!("the first heavy call was already refused, so the guard cannot be told from a call that is always refused: {}", c.shown),
        )
        .advice("probe when the server is below its threshold, and check the heavy call alone"),
        (_, Some((_, c))) if !matches!(c.answer, Answer::Ran { .. }) && !c.refused() => {
            Finding::skip(
                PROBE,
                format!("the first heavy call did not get an answer: {}", c.shown),
            )
            .advice("give a heavy call that succeeds alone (--memory-tool, --memory-arguments) and a deadline longer than its hold")
        }
        _ if !broken.is_empty() => Finding::fail(
            PROBE,
            Severity::Medium,
            format!(
                "{} heavy calls failed or hung under memory pressure instead of being refused",
                broken.len()
            ),
        )
        .advice("refuse heavy requests with 503 + Retry-After while memory is above the threshold, before they allocate"),
        (Some((i, _)), _) => Finding::pass(
            PROBE,
            Severity::High,
            format!(
                "heavy call #{} refused after {} held about {} MB (declared threshold {} MB){}",
                i + 1,
                i,
                *i as u64 * cfg.request_mb,
                cfg.threshold_mb,
                match &ping {
                    Some(p) if matches!(p.answer, Answer::Ran { .. }) => "; a light request was still served",
                    Some(_) => "; a light request was refused too",
                    None => "",
                }
            ),
        ),
        (None, _) if (most_in_flight as u64) * cfg.request_mb <= cfg.threshold_mb => Finding::skip(
            PROBE,
            format!(
                "the heavy calls did not overlap enough (at most {most_in_flight} at once, ~{} MB): make each hold its memory longer than {} ms",
                most_in_flight as u64 * cfg.request_mb,
                (cfg.interval * n as u32).as_millis()
            ),
        ),
        (None, _) => Finding::fail(
            PROBE,
            Severity::High,
            format!(
                "no memory guard: all {accepted} heavy calls were taken, up to {most_in_flight} at once (~{} MB held, declared threshold {} MB)",
                most_in_flight as u64 * cfg.request_mb,
                cfg.threshold_mb
            ),
        )
        .advice("watch the process's resident memory and refuse heavy requests with 503 + Retry-After while it is above a threshold, so the server sheds work instead of being killed by the OOM killer with everyone's requests"),
    };
    let mut f = with_refusal_flaws(f, &refusals);
    f.evidence.request = request;
    f.evidence.response = response;
    f.evidence.details = Some(details);
    f
}

async fn light_ping(ctx: &Ctx, session: &HttpSession) -> Called {
    let started = std::time::Instant::now();
    let r = ctx.call(PROBE, session, 99, "ping", None).await;
    let mut c = Called::of(&r, started.elapsed());
    // A ping's result is empty: any result means it was served.
    if let Ok(r) = &r
        && crate::security::wire::served(r)
    {
        c.answer = Answer::Ran { is_error: false };
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(threshold_mb: u64, request_mb: u64) -> MemoryGuardProbe {
        MemoryGuardProbe {
            call: ToolCall {
                tool: "alloc".into(),
                arguments: json!({}),
            },
            threshold_mb,
            request_mb,
            interval: DEFAULT_INTERVAL,
            deadline: DEFAULT_DEADLINE,
        }
    }

    const KEYS: MemoryKeys = MemoryKeys {
        threshold: "--memory-threshold-mb",
        request: "--memory-request-mb",
        interval: "--memory-interval",
        deadline: "--memory-deadline",
    };

    #[test]
    fn enough_calls_to_pass_the_threshold_and_never_more_than_512_mb() {
        let p = probe(100, 32);
        assert_eq!(p.calls(), 6);
        assert!(p.check(&KEYS).is_empty());
        let e = probe(1024, 32).check(&KEYS);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("--memory-threshold-mb 1024") && e[0].contains("512 MB"),
            "{e:?}"
        );
        assert!(probe(0, 0).check(&KEYS).len() == 2);
    }
}
