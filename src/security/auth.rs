//! auth: does the server refuse requests without a valid bearer token? No token, malformed
//! headers, garbage, `alg: none`, a bad signature, expired, not yet valid, wrong audience:
//! each must get 401 with `WWW-Authenticate: Bearer` (403 is accepted where a token was
//! presented), and never a result. A valid token minted from the user's key must be served,
//! or the negative results prove nothing.
//!
//! HTTP only: a stdio server's client is the process that started it.

use super::tokens::{self, Flaw};
use super::wire::{Ctx, bearer, describe_outcome, initialize_body, served};
use super::{Finding, Probe, Severity};
use crate::error::CallError;
use crate::transport::http::RawResponse;
use futures::future::BoxFuture;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

pub(crate) struct Auth;

impl Probe for Auth {
    fn name(&self) -> &'static str {
        "auth"
    }
    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(run(ctx))
    }
}

const NEEDS_KEY: &str = "needs the server's signing key: give --auth-hs256-secret-env VAR or --auth-rs256-private-key PATH (security.auth in a scenario)";

async fn run(ctx: &Ctx) -> Vec<Finding> {
    let Some(h) = ctx.http() else {
        return vec![Finding::skip(
            "auth",
            "stdio target: no HTTP authorization layer (a stdio server takes its credentials from the environment of the process that starts it)",
        )];
    };
    let mut out = Vec::new();
    let no_token = refused(
        ctx,
        "auth.no_token",
        Severity::High,
        &h.base,
        "no Authorization header",
        true,
    )
    .await;
    let open = no_token.failed() && no_token.title.starts_with("served");
    out.push(no_token);
    if open {
        out.push(
            Finding::skip("auth.tokens", "the server asks for no token at all (see auth.no_token), so bad tokens were not tried")
                .advice("put bearer-token auth in front of /mcp, then run the probes again"),
        );
        return out;
    }

    let with = |value: &str| {
        let mut hm = h.base.clone();
        hm.insert(
            AUTHORIZATION,
            HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("Bearer")),
        );
        hm
    };
    // Malformed headers: the worst answer among the variants is the finding.
    let mut worst: Option<Finding> = None;
    for (value, shown) in [
        ("Bearer", "Authorization: Bearer (no token)"),
        (
            "Basic bWNwc3Rvcm06cHJvYmU=",
            "Authorization: Basic <user:password>",
        ),
        ("Bearer a b c", "Authorization: Bearer a b c"),
        (
            "Token mcpstorm-probe",
            "Authorization: Token mcpstorm-probe",
        ),
    ] {
        let f = refused(
            ctx,
            "auth.malformed_header",
            Severity::Critical,
            &with(value),
            shown,
            false,
        )
        .await;
        if worst.as_ref().is_none_or(|w| !w.failed() && f.failed()) {
            worst = Some(f);
        }
    }
    out.extend(worst);
    out.push(
        refused(
            ctx,
            "auth.invalid_token",
            Severity::Critical,
            &with("Bearer mcpstorm-probe-not-a-jwt"),
            "Authorization: Bearer mcpstorm-probe-not-a-jwt",
            false,
        )
        .await,
    );
    let (none, none_desc) = tokens::alg_none(&ctx.cfg.audience, ctx.cfg.issuer.as_deref());
    out.push(
        refused(
            ctx,
            "auth.alg_none",
            Severity::Critical,
            &bearer_headers(&h.base, &none),
            &format!("Authorization: Bearer {none_desc}"),
            false,
        )
        .await,
    );

    let Some(minter) = &ctx.minter else {
        let (foreign, desc) = tokens::foreign_key(&ctx.cfg.audience, ctx.cfg.issuer.as_deref());
        out.push(
            refused(
                ctx,
                "auth.bad_signature",
                Severity::Critical,
                &bearer_headers(&h.base, &foreign),
                &format!("Authorization: Bearer {desc}"),
                false,
            )
            .await,
        );
        for id in [
            "auth.expired_jwt",
            "auth.not_yet_valid",
            "auth.wrong_audience",
            "auth.valid_token",
        ] {
            out.push(Finding::skip(id, NEEDS_KEY));
        }
        return out;
    };
    for (id, flaw, sev) in [
        ("auth.bad_signature", Flaw::BadSignature, Severity::Critical),
        ("auth.expired_jwt", Flaw::Expired, Severity::Critical),
        ("auth.not_yet_valid", Flaw::NotYetValid, Severity::High),
        (
            "auth.wrong_audience",
            Flaw::WrongAudience,
            Severity::Critical,
        ),
    ] {
        match minter.token(tokens::PRINCIPAL_A, flaw) {
            Ok((t, desc)) => out.push(
                refused(
                    ctx,
                    id,
                    sev,
                    &bearer_headers(&h.base, &t),
                    &format!("Authorization: Bearer {desc}"),
                    false,
                )
                .await,
            ),
            Err(e) => out.push(Finding::skip(id, e)),
        }
    }
    out.push(valid_token(ctx).await);
    out
}

fn bearer_headers(base: &HeaderMap, token: &str) -> HeaderMap {
    let mut hm = base.clone();
    hm.insert(AUTHORIZATION, bearer(token));
    hm
}

/// Send `initialize` with these credentials; it must be refused with 401 + WWW-Authenticate
/// (or 403 when a token was presented and `strict_401` is off).
async fn refused(
    ctx: &Ctx,
    id: &str,
    sev: Severity,
    headers: &HeaderMap,
    shown: &str,
    strict_401: bool,
) -> Finding {
    let version = crate::session::SUPPORTED_VERSIONS[0];
    let req = ctx.post(headers, initialize_body(version), &[shown.to_string()]);
    let request = req.shown.clone();
    let r = ctx.send(id, req).await;
    let response = describe_outcome(&r);
    let f = judge(id, sev, &r, strict_401).evidence(request, response);
    after_health(ctx, f).await
}

fn judge(id: &str, sev: Severity, r: &Result<RawResponse, CallError>, strict_401: bool) -> Finding {
    let r = match r {
        Ok(r) => r,
        Err(CallError::Timeout { after }) => {
            return Finding::fail(id, Severity::High, format!("no answer within {after:?}"))
                .advice("a request with bad credentials must be refused at once, before any work");
        }
        Err(e) => {
            return Finding::fail(id, Severity::Medium, format!("no HTTP answer: {e}"))
                .advice("refuse bad credentials with 401 and a WWW-Authenticate header instead of dropping the connection");
        }
    };
    if served(r) {
        return Finding::fail(id, sev, "served: the request was answered with a result")
            .advice("validate the bearer token (signature, alg, exp, nbf, aud) on every request before it reaches the MCP handler; answer 401 with WWW-Authenticate: Bearer");
    }
    let www = r.header("www-authenticate").unwrap_or("");
    match r.status {
        401 if www.to_ascii_lowercase().starts_with("bearer") => {
            Finding::pass(id, sev, format!("refused with 401, WWW-Authenticate: {}", crate::error::excerpt(www, 80)))
        }
        401 => Finding::fail(id, Severity::Low, "refused with 401 but without `WWW-Authenticate: Bearer ...`")
            .advice("add `WWW-Authenticate: Bearer realm=\"mcp\"` (with error=\"invalid_token\" for a bad token) so clients know how to authenticate (RFC 6750, MCP authorization)"),
        403 if !strict_401 => Finding::pass(id, sev, "refused with 403"),
        s if (400..500).contains(&s) => Finding::fail(id, Severity::Low, format!("refused, but with HTTP {s} instead of 401"))
            .advice("answer a missing or bad token with 401 Unauthorized and a WWW-Authenticate header, so clients can tell an auth failure from a bad request"),
        s if s >= 500 => Finding::fail(id, Severity::Medium, format!("HTTP {s}: the server failed on a bad credential instead of refusing it"))
            .advice("validate the token before anything else and answer 401; a 5xx here means the bad token reached code that did not expect it"),
        s => Finding::fail(id, sev, format!("HTTP {s} without a result: not clearly refused"))
            .advice("answer a missing or bad token with 401 Unauthorized and a WWW-Authenticate header"),
    }
}

/// The positive case: a token minted from the user's key must get in.
async fn valid_token(ctx: &Ctx) -> Finding {
    let id = "auth.valid_token";
    let Some(h) = ctx.http() else {
        return Finding::skip(id, "stdio target");
    };
    let r = ctx.open_session(id, &h.good).await;
    let request = format!("POST /mcp [{}] initialize", h.good_desc);
    match r {
        Ok(s) => {
            ctx.close_session(&s).await;
            Finding::pass(id, Severity::High, "a valid token is served").evidence(request, "HTTP 200 with an initialize result")
        }
        Err(e) => Finding::fail(id, Severity::High, "the valid token was refused, so the refusals above prove nothing")
            .evidence(request, e.describe())
            .advice("check that the server trusts the key you gave (--auth-hs256-secret-env / --auth-rs256-private-key) and expects this audience (--audience) and issuer (--issuer)"),
    }
}

/// The health check after a request: a server that died or hangs turns the finding critical.
pub(crate) async fn after_health(ctx: &Ctx, f: Finding) -> Finding {
    match ctx.http_health().await {
        Ok(_) => f,
        Err(e) => {
            let why = format!("the server stopped answering after {}: {e}", f.probe);
            ctx.mark_down(why.clone());
            let mut dead = Finding::fail(&f.probe, Severity::Critical, format!("server dead or hung after this request ({e})"))
                .advice("a request must never take the server down: find the crash in the server's log and handle this input");
            dead.evidence = f.evidence;
            dead.evidence.response = format!("{}; then health ping: {e}", dead.evidence.response);
            dead
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn resp(status: u16, www: Option<&str>, body: &str) -> RawResponse {
        let mut headers = HeaderMap::new();
        if let Some(w) = www {
            headers.insert("www-authenticate", HeaderValue::from_str(w).unwrap());
        }
        let messages = serde_json::from_str(body).ok().into_iter().collect();
        RawResponse {
            status,
            headers,
            body: body.as_bytes().to_vec(),
            messages,
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn only_a_401_with_bearer_challenge_passes() {
        let ok = judge(
            "auth.x",
            Severity::Critical,
            &Ok(resp(401, Some("Bearer error=\"invalid_token\""), "")),
            false,
        );
        assert!(!ok.failed(), "{ok:?}");
        let served = judge(
            "auth.x",
            Severity::Critical,
            &Ok(resp(200, None, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#)),
            false,
        );
        assert!(served.failed() && served.severity == Severity::Critical);
        let bare = judge(
            "auth.x",
            Severity::Critical,
            &Ok(resp(401, None, "")),
            false,
        );
        assert!(bare.failed() && bare.severity == Severity::Low);
        let forbidden = judge(
            "auth.no_token",
            Severity::High,
            &Ok(resp(403, None, "")),
            true,
        );
        assert!(forbidden.failed());
        assert!(!judge("auth.x", Severity::High, &Ok(resp(403, None, "")), false).failed());
        let crashed = judge(
            "auth.x",
            Severity::Critical,
            &Ok(resp(500, None, "boom")),
            false,
        );
        assert!(crashed.failed() && crashed.severity == Severity::Medium);
    }
}
