//! concurrency: the first-call deadlock probe and the race check of `crate::concurrency`,
//! as a family of `mcpstorm probe`. They need whole MCP sessions, many at once, which the
//! suite's context opens through its connector with the good credentials.
//!
//! The family runs first in the suite, so the first-call probe really sends the server's
//! first tool calls (the other families call tools too). First-call takes the tool the user
//! names, else the first tool that takes no arguments and is not destructive (read-only ones
//! first, and never the tools named for the breaker or memory-guard probes: those fail or
//! hold memory on purpose); the race check needs a deterministic call named by the user.
//!
//! In a scenario these probes run from its `[concurrency]` table, before the load, and this
//! family sends nothing (its settings are `None`).

use super::auth::after_health;
use super::resilience::ToolCall;
use super::wire::Ctx;
use super::{Finding, Probe};
use crate::concurrency::first_call::FirstCall;
use crate::concurrency::race::Race;
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

pub(crate) struct Concurrency;

impl Probe for Concurrency {
    fn name(&self) -> &'static str {
        "concurrency"
    }
    fn run<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(run(ctx))
    }
}

/// What `mcpstorm probe` was told about the concurrency probes.
#[derive(Debug, Clone, Serialize)]
pub struct ConcurrencyProbes {
    /// The first calls; `None`: the first tool with no required arguments.
    pub first_call: Option<ToolCall>,
    /// The deterministic call of the race check; `None`: skipped.
    pub race: Option<ToolCall>,
    /// Sessions each probe opens at once.
    pub sessions: usize,
    /// Race rounds.
    pub rounds: usize,
    /// A call unanswered this long is hung.
    #[serde(serialize_with = "crate::workload::ser_duration")]
    pub deadline: Duration,
}

impl Default for ConcurrencyProbes {
    fn default() -> Self {
        ConcurrencyProbes {
            first_call: None,
            race: None,
            sessions: 20,
            rounds: 5,
            deadline: Duration::from_secs(5),
        }
    }
}

/// The first tool that takes no arguments at all: read-only ones first, never a destructive
/// one (unless allowed) or one of `avoid`. Not merely "no required arguments": an optional
/// one may default to something slow (server-everything's `trigger-long-running-operation`
/// runs 10 s by default), and a slow first call would read as a deadlock.
pub(crate) fn no_argument_tool(
    tools: &[Value],
    avoid: &[&str],
    allow_destructive: bool,
) -> Option<ToolCall> {
    let callable = |t: &&Value| {
        let takes_arguments = t["inputSchema"]["required"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
            || t["inputSchema"]["properties"]
                .as_object()
                .is_some_and(|p| !p.is_empty());
        let name = t["name"].as_str().unwrap_or_default();
        !takes_arguments
            && !name.is_empty()
            && !avoid.contains(&name)
            && (allow_destructive || t["annotations"]["destructiveHint"] != true)
    };
    let read_only = |t: &&Value| t["annotations"]["readOnlyHint"] == true;
    let pick = tools
        .iter()
        .filter(callable)
        .find(read_only)
        .or_else(|| tools.iter().find(callable))?;
    Some(ToolCall {
        tool: pick["name"].as_str()?.to_string(),
        arguments: Value::Object(Default::default()),
    })
}

async fn run(ctx: &Ctx) -> Vec<Finding> {
    let Some(cfg) = &ctx.cfg.concurrency else {
        return vec![];
    };
    if ctx.is_stdio() {
        return vec![Finding::skip(
            "concurrency",
            "stdio target: every session is a server process of its own, so sessions share no state to deadlock or race on; probe the server over HTTP",
        )];
    }
    let Some(connector) = ctx.connector() else {
        return vec![Finding::skip(
            "concurrency",
            "no session could be opened with the credentials given; pass a key (--auth-hs256-secret-env) or -H 'Authorization: Bearer ...'",
        )];
    };
    let mut avoid: Vec<&str> = Vec::new();
    if let Some(b) = &ctx.cfg.breaker {
        avoid.push(&b.call.tool);
    }
    if let Some(m) = &ctx.cfg.memory_guard {
        avoid.push(&m.call.tool);
    }
    let first = cfg.first_call.clone().map(|c| (c, false)).or_else(|| {
        no_argument_tool(&ctx.tools, &avoid, ctx.cfg.allow_destructive).map(|c| (c, true))
    });
    let mut out = Vec::new();
    match first {
        Some((call, _)) if call.missing_from(&ctx.tools).is_some() => out.push(Finding::skip(
            "concurrency.first_call",
            format!(
                "{}: check --first-call-tool",
                call.missing_from(&ctx.tools).unwrap_or_default()
            ),
        )),
        Some((call, picked)) => {
            let probe = FirstCall {
                sessions: cfg.sessions,
                tool: call.tool.clone(),
                arguments: call.arguments.clone(),
                deadline: cfg.deadline,
            };
            let mut f = probe.run(connector).await;
            if picked {
                f.title
                    .push_str(" (picked: the first tool that takes no arguments)");
            }
            out.push(after_health(ctx, f).await);
        }
        None => out.push(Finding::skip(
            "concurrency.first_call",
            "no tool to call: name one with --first-call-tool NAME --first-call-arguments JSON (no tool takes zero arguments without being destructive)",
        )),
    }
    if ctx.down().is_some() {
        return out;
    }
    match &cfg.race {
        Some(call) if call.missing_from(&ctx.tools).is_some() => out.push(Finding::skip(
            "concurrency.race",
            format!(
                "{}: check --race-tool",
                call.missing_from(&ctx.tools).unwrap_or_default()
            ),
        )),
        Some(call) => {
            let probe = Race {
                sessions: cfg.sessions,
                rounds: cfg.rounds,
                tool: call.tool.clone(),
                arguments: call.arguments.clone(),
                deadline: cfg.deadline,
            };
            let f = probe.run(connector).await;
            out.push(after_health(ctx, f).await);
        }
        None => out.push(Finding::skip(
            "concurrency.race",
            "no deterministic call declared: name one with --race-tool NAME --race-arguments JSON (a call whose right answer never changes)",
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_call_tool_needs_no_arguments_and_prefers_read_only_ones() {
        let tools = vec![
            json!({"name": "echo", "inputSchema": {"type": "object", "required": ["message"]}}),
            json!({"name": "fail", "inputSchema": {"type": "object", "properties": {"error_rate": {}}}}),
            json!({"name": "wipe", "inputSchema": {"type": "object"}, "annotations": {"destructiveHint": true}}),
            json!({"name": "status", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": true}}),
        ];
        assert_eq!(no_argument_tool(&tools, &[], false).unwrap().tool, "status");
        assert_eq!(
            no_argument_tool(&tools[..3], &[], false),
            None,
            "optional arguments may default to a slow call"
        );
        assert_eq!(
            no_argument_tool(&tools[..3], &[], true).unwrap().tool,
            "wipe"
        );
        assert_eq!(
            no_argument_tool(&tools, &["status"], true).unwrap().tool,
            "wipe"
        );
    }
}
