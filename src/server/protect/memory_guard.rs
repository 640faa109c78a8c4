//! The memory guard: while the server's own resident memory (RSS, read from `/proc`) is
//! above a threshold, heavy requests (the `alloc` tool, bodies of 1 MiB or more) are refused
//! with 503 and `Retry-After`, so a server near its memory limit sheds the requests that
//! would push it over instead of being killed by the OOM killer with everyone's work.
//!
//! Light requests still pass: they are what lets the server finish and free what it holds.
//! RSS is read only for heavy requests, so the guard costs the light path nothing.

use axum::http::StatusCode;
use serde_json::json;

use super::classify::RpcCall;
use super::human_bytes;
use super::reject::Rejection;

/// `--hardened` default threshold.
pub const DEFAULT_LIMIT_MB: u64 = 1024;
/// Tools that allocate in proportion to what they are asked.
const HEAVY_TOOLS: &[&str] = &["alloc"];
/// A body this large is heavy whatever it asks: parsing it costs several times its size.
const HEAVY_BODY_BYTES: usize = 1 << 20;
/// How long to tell a refused client to wait: memory is freed as held work ends.
const RETRY_AFTER_S: u64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryGuardConfig {
    pub limit_bytes: u64,
}

pub(crate) fn is_heavy(call: &RpcCall) -> bool {
    call.body_bytes >= HEAVY_BODY_BYTES
        || call
            .tool
            .as_deref()
            .is_some_and(|t| HEAVY_TOOLS.contains(&t))
}

/// `Err` when `rss` is above the limit and `call` is heavy.
pub(crate) fn check(
    config: &MemoryGuardConfig,
    call: &RpcCall,
    rss: impl FnOnce() -> Option<u64>,
) -> Result<(), Box<Rejection>> {
    if !is_heavy(call) {
        return Ok(());
    }
    let Some(rss) = rss() else {
        return Ok(());
    };
    if rss <= config.limit_bytes {
        return Ok(());
    }
    let what = match &call.tool {
        Some(t) if HEAVY_TOOLS.contains(&t.as_str()) => format!("the `{t}` tool"),
        _ => format!("a {} request body", human_bytes(call.body_bytes)),
    };
    Err(Box::new(
        Rejection::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "memory_guard",
            "rss_above_limit",
            format!(
                "memory guard: the server holds {} resident, above its {} limit, so heavy requests \
             ({what}) are refused until memory is freed; retry after {RETRY_AFTER_S} s, send \
             lighter requests, or raise --memory-guard-mb",
                human_bytes(rss as usize),
                human_bytes(config.limit_bytes as usize),
            ),
        )
        .retry_after(RETRY_AFTER_S)
        .data(json!({ "rss_bytes": rss, "limit_bytes": config.limit_bytes }))
        .id(call.id.as_ref()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: MemoryGuardConfig = MemoryGuardConfig {
        limit_bytes: 100 << 20,
    };

    fn call(tool: Option<&str>, body_bytes: usize) -> RpcCall {
        RpcCall {
            method: Some("tools/call".into()),
            tool: tool.map(str::to_owned),
            id: Some(json!(1)),
            body_bytes,
        }
    }

    #[test]
    fn heavy_requests_are_refused_only_above_the_limit() {
        let above = || Some(200 << 20);
        let below = || Some(50 << 20);
        let r = check(&LIMIT, &call(Some("alloc"), 100), above).unwrap_err();
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.retry_after_s, Some(RETRY_AFTER_S));
        assert!(
            r.message.contains("200 MiB") && r.message.contains("100 MiB"),
            "{}",
            r.message
        );
        assert!(check(&LIMIT, &call(Some("alloc"), 100), below).is_ok());
        assert!(check(&LIMIT, &call(Some("echo"), 2 << 20), above).is_err());
    }

    #[test]
    fn light_requests_pass_and_do_not_read_memory() {
        let never = || -> Option<u64> { panic!("RSS read for a light request") };
        assert!(check(&LIMIT, &call(Some("echo"), 100), never).is_ok());
    }
}
