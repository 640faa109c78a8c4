//! session: is an `Mcp-Session-Id` bound to whoever created it, and hard to guess? A session
//! of principal A used with B's token or with no token must be refused (401, 403 or 404,
//! never served); a made-up id and a deleted session must get 404; ids must carry enough
//! randomness (length and alphabet looked at over several ids).
//!
//! HTTP only: a stdio session is its process.

use super::tokens::{self, Flaw};
use super::wire::{Ctx, HttpSession, bearer, describe_outcome, served};
use super::{Finding, Probe, Severity};
use futures::future::BoxFuture;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};

pub(crate) struct SessionIsolation;

impl Probe for SessionIsolation {
    fn name(&self) -> &'static str {
        "session"
    }
    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(run(ctx))
    }
}

/// Ids below this many estimated bits fail (UUIDv4 carries 122).
const GOOD_BITS: f64 = 120.0;
/// Below this, guessing is practical: OWASP's floor for session ids.
const WEAK_BITS: f64 = 64.0;

async fn run(ctx: &Ctx) -> Vec<Finding> {
    let Some(h) = ctx.http() else {
        return vec![Finding::skip(
            "session",
            "stdio target: a stdio session is its own process, there is no session id to steal",
        )];
    };
    if !ctx.authorized {
        return vec![Finding::skip(
            "session",
            "no session could be opened with the credentials given; pass a key (--auth-hs256-secret-env) or -H 'Authorization: Bearer ...'",
        )];
    }
    let mut sessions = Vec::new();
    for _ in 0..4 {
        match ctx.open_session("session", &h.good).await {
            Ok(s) => sessions.push(s),
            Err(e) => {
                return vec![
                    Finding::fail(
                        "session.open",
                        Severity::Medium,
                        "a session could not be opened again after preflight",
                    )
                    .evidence("POST /mcp initialize", e.describe()),
                ];
            }
        }
    }
    let ids: Vec<String> = sessions.iter().filter_map(|s| s.id.clone()).collect();
    let mut out = Vec::new();
    if ids.len() < sessions.len() {
        out.push(Finding::skip(
            "session",
            "the server gives no Mcp-Session-Id (stateless): nothing to bind or guess",
        ));
        return out;
    }
    out.push(entropy(&ids));
    let first = sessions[0].clone();
    out.push(unknown_id(ctx, &first).await);
    out.push(no_token(ctx, &first).await);
    out.push(cross_principal(ctx, &first).await);
    out.push(terminated(ctx, &sessions[1]).await);
    for s in &sessions[2..] {
        ctx.close_session(s).await;
    }
    ctx.close_session(&first).await;
    out
}

/// Estimated bits of randomness in session ids: the characters that vary across samples
/// times log2 of the alphabet they are drawn from; UUIDs count their 122 random bits.
pub(crate) fn estimate_bits(ids: &[String]) -> f64 {
    if ids.is_empty() {
        return 0.0;
    }
    let uuid = |s: &str| {
        s.len() == 36
            && s.chars().enumerate().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            })
    };
    if ids.iter().all(|s| uuid(s)) {
        // Version 4: 122 random bits; other versions carry time and node, far fewer.
        return if ids.iter().all(|s| &s[14..15] == "4") {
            122.0
        } else {
            48.0
        };
    }
    let all: String = ids.concat();
    let alphabet = if all.chars().all(|c| c.is_ascii_digit()) {
        10.0
    } else if all.chars().all(|c| c.is_ascii_hexdigit()) {
        16.0
    } else if all.chars().all(|c| c.is_ascii_alphanumeric()) {
        62.0
    } else {
        64.0
    };
    // A prefix shared by every id (a fixed tag, a counter's high digits) carries nothing.
    let min_len = ids.iter().map(|s| s.chars().count()).min().unwrap_or(0);
    let shared = (0..min_len)
        .take_while(|&i| {
            let c = ids[0].chars().nth(i);
            ids.iter().all(|s| s.chars().nth(i) == c)
        })
        .count();
    let varying = ids
        .iter()
        .map(|s| {
            s.chars()
                .filter(|c| *c != '-')
                .count()
                .saturating_sub(shared)
        })
        .min()
        .unwrap_or(0);
    varying as f64 * f64::log2(alphabet)
}

/// Ids that are numbers one apart (or a shared prefix with counting suffixes) are guessable
/// whatever their length.
fn sequential(ids: &[String]) -> bool {
    let split = |s: &str| {
        let tail_len = s.chars().rev().take_while(|c| c.is_ascii_digit()).count();
        let (head, tail) = s.split_at(s.len() - tail_len);
        (head.to_string(), tail.parse::<u128>().ok())
    };
    let parts: Vec<(String, Option<u128>)> = ids.iter().map(|s| split(s)).collect();
    let digits: Vec<u128> = parts.iter().filter_map(|(_, d)| *d).collect();
    parts.iter().all(|(h, _)| *h == parts[0].0)
        && digits.len() == ids.len()
        && digits.len() > 1
        && digits.windows(2).all(|w| w[1].abs_diff(w[0]) <= 16)
}

fn entropy(ids: &[String]) -> Finding {
    let id = "session.id_entropy";
    let bits = estimate_bits(ids);
    let shown = ids
        .iter()
        .map(|i| crate::error::excerpt(i, 60))
        .collect::<Vec<_>>()
        .join(", ");
    let evidence = |f: Finding| {
        f.evidence(
            format!("{} sessions opened", ids.len()),
            format!("Mcp-Session-Id: {shown}"),
        )
    };
    let advice = "make session ids at least 128 bits from a CSPRNG (e.g. 32 hex characters or a UUIDv4), never a counter or a timestamp";
    let mut unique = ids.to_vec();
    unique.sort();
    unique.dedup();
    if unique.len() < ids.len() {
        return evidence(
            Finding::fail(id, Severity::Critical, "two sessions got the same id").advice(advice),
        );
    }
    if sequential(ids) {
        return evidence(
            Finding::fail(
                id,
                Severity::High,
                "session ids count up: the next one is guessable",
            )
            .advice(advice),
        );
    }
    let title = format!(
        "about {bits:.0} bits of randomness per id ({} characters)",
        ids[0].len()
    );
    if bits >= GOOD_BITS {
        evidence(Finding::pass(id, Severity::High, title))
    } else if bits >= WEAK_BITS {
        evidence(Finding::fail(id, Severity::Medium, format!("{title}: below 128")).advice(advice))
    } else {
        evidence(Finding::fail(id, Severity::High, format!("{title}: guessable")).advice(advice))
    }
}

fn with_session(s: &HttpSession, id: &str) -> reqwest::header::HeaderMap {
    let mut h = s.headers.clone();
    if let Ok(v) = HeaderValue::from_str(id) {
        h.insert(HeaderName::from_static("mcp-session-id"), v);
    }
    h
}

/// Send tools/list with these headers; it must not be served.
async fn must_refuse(
    ctx: &Ctx,
    id: &str,
    sev: Severity,
    headers: reqwest::header::HeaderMap,
    note: String,
    accept: &[u16],
    advice: &str,
) -> Finding {
    let req = ctx.post(
        &headers,
        super::wire::rpc(serde_json::json!(41), "tools/list", None),
        &[note],
    );
    let request = req.shown.clone();
    let r = ctx.send(id, req).await;
    let response = describe_outcome(&r);
    let f = match &r {
        Ok(resp) if served(resp) => {
            Finding::fail(id, sev, "served: the session answered").advice(advice)
        }
        Ok(resp) if accept.contains(&resp.status) => {
            Finding::pass(id, sev, format!("refused with {}", resp.status))
        }
        Ok(resp) if (400..500).contains(&resp.status) => Finding::fail(
            id,
            Severity::Low,
            format!(
                "refused, but with HTTP {} (expected {})",
                resp.status,
                accept
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        )
        .advice(advice),
        Ok(resp) => Finding::fail(
            id,
            Severity::Medium,
            format!("HTTP {} instead of a refusal", resp.status),
        )
        .advice(advice),
        Err(e) => {
            Finding::fail(id, Severity::Medium, format!("no HTTP answer: {e}")).advice(advice)
        }
    };
    f.evidence(request, response)
}

async fn unknown_id(ctx: &Ctx, s: &HttpSession) -> Finding {
    let made_up = format!("{:032x}", rand::random::<u128>());
    must_refuse(
        ctx,
        "session.unknown_id",
        Severity::Medium,
        with_session(s, &made_up),
        format!("Mcp-Session-Id: {made_up} (made up)"),
        &[404],
        "answer a session id the server did not issue with 404 (the spec's signal to start a new session); never create or serve a session for an id the client chose",
    )
    .await
}

async fn no_token(ctx: &Ctx, s: &HttpSession) -> Finding {
    let id = "session.no_token";
    let mut h = s.headers.clone();
    if h.remove(AUTHORIZATION).is_none() {
        return Finding::skip(
            id,
            "the session was opened without a token, so there is none to leave out",
        );
    }
    must_refuse(
        ctx,
        id,
        Severity::Critical,
        h,
        format!("Mcp-Session-Id of {}, no Authorization", tokens::PRINCIPAL_A),
        &[401, 403, 404],
        "check the bearer token on every request, not only on initialize: a session id alone must not be a credential",
    )
    .await
}

async fn cross_principal(ctx: &Ctx, s: &HttpSession) -> Finding {
    let id = "session.cross_principal";
    let Some(minter) = &ctx.minter else {
        return Finding::skip(
            id,
            "needs the server's signing key to act as a second principal: give --auth-hs256-secret-env VAR or --auth-rs256-private-key PATH",
        );
    };
    let (token_b, desc) = match minter.token(tokens::PRINCIPAL_B, Flaw::None) {
        Ok(t) => t,
        Err(e) => return Finding::skip(id, e),
    };
    let mut h = s.headers.clone();
    h.insert(AUTHORIZATION, bearer(&token_b));
    must_refuse(
        ctx,
        id,
        Severity::Critical,
        h,
        format!("Mcp-Session-Id of {}, Authorization: Bearer {desc}", tokens::PRINCIPAL_A),
        &[401, 403, 404],
        "bind each session to the principal (JWT sub) that created it and refuse it to anyone else with 403 or 404",
    )
    .await
}

async fn terminated(ctx: &Ctx, s: &HttpSession) -> Finding {
    let id = "session.terminated";
    let del = super::wire::Req {
        method: reqwest::Method::DELETE,
        headers: s.headers.clone(),
        body: vec![],
        shown: "DELETE /mcp".into(),
        timeout: None,
        retry_throttled: true,
        alt_source: false,
    };
    match ctx.send(id, del).await {
        Ok(r) if r.status == 405 => {
            return Finding::skip(
                id,
                "the server does not let clients end sessions (DELETE answered 405)",
            );
        }
        Ok(r) if (200..300).contains(&r.status) => {}
        other => {
            return Finding::fail(id, Severity::Low, "DELETE of the session failed")
                .evidence("DELETE /mcp [Mcp-Session-Id]", describe_outcome(&other))
                .advice("answer DELETE with 2xx (ended) or 405 (not allowed), per the spec");
        }
    }
    let sid = s.id.clone().unwrap_or_default();
    must_refuse(
        ctx,
        id,
        Severity::Medium,
        with_session(s, &sid),
        "Mcp-Session-Id of a session ended by DELETE".into(),
        &[404],
        "forget a session when the client DELETEs it; later requests with its id get 404",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_common_id_shapes() {
        let uuids: Vec<String> = (0..4)
            .map(|i| format!("6f1c1a4e-0d7b-4c5e-9a57-3f6f3c2d1b0{i}"))
            .collect();
        assert_eq!(estimate_bits(&uuids), 122.0);
        let hex: Vec<String> = (0..4)
            .map(|_| format!("{:032x}", rand::random::<u128>()))
            .collect();
        assert!(estimate_bits(&hex) >= 120.0, "{}", estimate_bits(&hex));
        let short: Vec<String> = (0..4)
            .map(|_| format!("{:08x}", rand::random::<u32>()))
            .collect();
        assert!(estimate_bits(&short) < 64.0);
        let counted: Vec<String> = (1..=4).map(|i| format!("session-{i}")).collect();
        assert!(sequential(&counted));
        assert!(entropy(&counted).failed());
        assert!(!entropy(&hex).failed());
        assert!(!sequential(&hex));
    }
}
