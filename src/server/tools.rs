//! The reference server's tools: small, predictable building blocks for load
//! and fault scenarios.
//!
//! rmcp does not check arguments against the JSON Schema (only that they
//! deserialize), so every limit the schema states is enforced again here.
//! A violation is reported the way rmcp reports arguments that fail to
//! deserialize: a tool result with `isError: true` (SEP-1303), so a client
//! sees one kind of answer for every bad argument.

use std::time::Duration;

use rmcp::{
    ErrorData,
    handler::server::wrapper::Parameters,
    model::{CallToolResult, ContentBlock},
    tool, tool_router,
};
use serde_json::json;

use super::handler::ReferenceServer;

const MAX_SLEEP_MS: u64 = 60_000;
const MAX_ALLOC_BYTES: u64 = 1 << 30;
const MAX_HOLD_MS: u64 = 600_000;
const MAX_KEY_CHARS: usize = 1024;
const MAX_VALUE_CHARS: usize = 1 << 20;
/// Integers beyond this are not exact in an f64, so a sum past it is reported
/// as a float rather than a misleading integer.
const MAX_EXACT_F64_INT: f64 = 9_007_199_254_740_992.0;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(super) struct EchoArgs {
    /// Text to send back unchanged.
    message: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(super) struct AddArgs {
    /// First addend.
    a: f64,
    /// Second addend.
    b: f64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(super) struct SleepArgs {
    /// How long to sleep, in milliseconds.
    #[schemars(range(min = 0, max = 60_000))]
    ms: u64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(super) struct FailArgs {
    /// Probability that the call fails, from 0 (never) to 1 (always).
    #[serde(default = "always")]
    #[schemars(range(min = 0.0, max = 1.0))]
    error_rate: f64,
}

fn always() -> f64 {
    1.0
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(super) struct AllocArgs {
    /// How many bytes to allocate and write to (at most 1 GiB).
    #[schemars(range(min = 0, max = 1_073_741_824))]
    bytes: u64,
    /// How long to keep the memory before freeing it, in milliseconds.
    #[schemars(range(min = 0, max = 600_000))]
    hold_ms: u64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(super) struct KvPutArgs {
    /// Key to store under (1 to 1024 characters).
    #[schemars(length(min = 1, max = 1024))]
    key: String,
    /// Value to store (at most 1048576 characters).
    #[schemars(length(max = 1_048_576))]
    value: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(super) struct KvGetArgs {
    /// Key to look up.
    key: String,
}

fn text(s: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(s)])
}

fn tool_error(s: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(s)])
}

fn invalid_argument(problem: String) -> CallToolResult {
    tool_error(format!("invalid parameters: {problem}"))
}

/// `Some(error result)` when `value` exceeds `max`.
fn above(field: &str, value: u64, max: u64) -> Option<CallToolResult> {
    (value > max).then(|| invalid_argument(format!("`{field}` must be 0 to {max}, got {value}")))
}

/// `Some(error result)` when `value` is not `min..=max` characters long.
fn bad_length(field: &str, value: &str, min: usize, max: usize) -> Option<CallToolResult> {
    let len = value.chars().count();
    (len < min || len > max).then(|| {
        invalid_argument(format!(
            "`{field}` must be {min} to {max} characters long, got {len}"
        ))
    })
}

/// Allocates `bytes` and writes every byte, so the pages are really resident
/// (an untouched allocation would only reserve address space).
fn allocate_touched(bytes: usize) -> Result<Vec<u8>, String> {
    let mut block = Vec::new();
    block
        .try_reserve_exact(bytes)
        .map_err(|e| format!("cannot allocate {bytes} bytes: {e}"))?;
    block.resize(bytes, 0xA5);
    Ok(std::hint::black_box(block))
}

#[tool_router(vis = "pub(super)")]
impl ReferenceServer {
    #[tool(
        description = "Return `message` unchanged as text.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn echo(
        &self,
        Parameters(args): Parameters<EchoArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(text(args.message))
    }

    #[tool(
        description = "Add two numbers; returns the sum as text and as structuredContent {\"sum\": ...}.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn add(
        &self,
        Parameters(args): Parameters<AddArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let sum = args.a + args.b;
        if !sum.is_finite() {
            return Ok(tool_error(format!(
                "sum of {} and {} is too large for a 64-bit float",
                args.a, args.b
            )));
        }
        // Whole sums are emitted as JSON integers so `2 + 3` reads `5`, not `5.0`.
        let structured = if sum.fract() == 0.0 && sum.abs() <= MAX_EXACT_F64_INT {
            json!({ "sum": sum as i64 })
        } else {
            json!({ "sum": sum })
        };
        let mut result = text(sum.to_string());
        result.structured_content = Some(structured);
        Ok(result)
    }

    #[tool(
        description = "Sleep for `ms` milliseconds (0 to 60000), then return \"slept {ms}ms\".",
        annotations(open_world_hint = false)
    )]
    async fn sleep(
        &self,
        Parameters(args): Parameters<SleepArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        if let Some(bad) = above("ms", args.ms, MAX_SLEEP_MS) {
            return Ok(bad);
        }
        tokio::time::sleep(Duration::from_millis(args.ms)).await;
        Ok(text(format!("slept {}ms", args.ms)))
    }

    #[tool(
        description = "Fail with probability `error_rate` (0 to 1, default 1): returns isError=true, otherwise \"ok\".",
        annotations(open_world_hint = false)
    )]
    async fn fail(
        &self,
        Parameters(args): Parameters<FailArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let rate = args.error_rate;
        if !(0.0..=1.0).contains(&rate) {
            return Ok(invalid_argument(format!(
                "`error_rate` must be 0 to 1, got {rate}"
            )));
        }
        // random() is in [0, 1), so rate 0 never fails and rate 1 always does.
        if rand::random::<f64>() < rate {
            Ok(tool_error(format!("injected failure (error_rate={rate})")))
        } else {
            Ok(text("ok"))
        }
    }

    #[tool(
        description = "Allocate `bytes` (up to 1 GiB) and write to all of them so resident memory really grows, hold them for `hold_ms` milliseconds (up to 600000), then free them.",
        annotations(open_world_hint = false)
    )]
    async fn alloc(
        &self,
        Parameters(args): Parameters<AllocArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let too_big = above("bytes", args.bytes, MAX_ALLOC_BYTES)
            .or_else(|| above("hold_ms", args.hold_ms, MAX_HOLD_MS));
        if let Some(bad) = too_big {
            return Ok(bad);
        }
        let Ok(bytes) = usize::try_from(args.bytes) else {
            return Ok(invalid_argument(format!(
                "`bytes` = {} does not fit this platform's address space",
                args.bytes
            )));
        };
        // Writing up to 1 GiB takes long enough to stall a runtime worker.
        let allocated = tokio::task::spawn_blocking(move || allocate_touched(bytes))
            .await
            .map_err(|e| ErrorData::internal_error(format!("allocation task failed: {e}"), None))?;
        let block = match allocated {
            Ok(block) => block,
            Err(why) => return Ok(tool_error(why)),
        };
        tokio::time::sleep(Duration::from_millis(args.hold_ms)).await;
        drop(block);
        Ok(text(format!(
            "allocated {} bytes for {} ms",
            args.bytes, args.hold_ms
        )))
    }

    #[tool(
        description = "Store `value` under `key` in a map shared by all sessions of this server process.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn kv_put(
        &self,
        Parameters(args): Parameters<KvPutArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let bad = bad_length("key", &args.key, 1, MAX_KEY_CHARS)
            .or_else(|| bad_length("value", &args.value, 0, MAX_VALUE_CHARS));
        if let Some(bad) = bad {
            return Ok(bad);
        }
        match self.kv.put(args.key, args.value).await {
            Ok(()) => Ok(text("ok")),
            Err(e) => Ok(tool_error(e)),
        }
    }

    #[tool(
        description = "Return the value stored under `key` by kv_put (in any session); isError=true if absent.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn kv_get(
        &self,
        Parameters(args): Parameters<KvGetArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        match self.kv.get(&args.key).await {
            Ok(Some(value)) => Ok(text(value)),
            Ok(None) => Ok(tool_error(format!("not found: {}", args.key))),
            Err(e) => Ok(tool_error(e)),
        }
    }
}
