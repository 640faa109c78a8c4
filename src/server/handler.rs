//! The MCP handler: server identity, the `mcpstorm://info` resource, the
//! `greeting` prompt, and the state shared by every session of one process.
//!
//! The tools themselves live in `tools.rs`; this file wires their router in, and with
//! `--conformance-tools` the conformance suite's tools, prompts, resources, logging,
//! completion and subscriptions from `conformance.rs`.

// Logging (`SetLevelRequestParams`, the capability) is deprecated upstream by SEP-2577 but
// part of the 2025 revisions that `--conformance-tools` serves.
#![allow(deprecated)]

use std::sync::Arc;
use std::time::Instant;

use super::conformance;
pub(super) use super::kv::KvStore;
use super::metrics::ServerMetrics;
use super::protect::breaker::Breakers;
use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    handler::server::{
        router::{prompt::PromptRouter, tool::ToolRouter},
        tool::ToolCallContext,
        wrapper::Parameters,
    },
    model::{
        CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult, ErrorCode,
        GetPromptResult, Implementation, ListResourceTemplatesResult, ListResourcesResult,
        PaginatedRequestParams, PromptMessage, ReadResourceRequestParams, ReadResourceResponse,
        ReadResourceResult, Resource, ResourceContents, Role, ServerCapabilities, ServerConfig,
        SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams,
    },
    prompt, prompt_handler, prompt_router,
    service::RequestContext,
    tool_handler,
};

/// The protocol revisions this process accepts (`serve --protocol-versions`); every revision
/// rmcp knows when unset. One reference server runs per process, and `serve` sets this once
/// before any session starts.
pub(super) static PROTOCOL_VERSIONS: std::sync::OnceLock<Vec<rmcp::model::ProtocolVersion>> =
    std::sync::OnceLock::new();

pub(super) const SERVER_NAME: &str = "mcpstorm-reference";
pub(super) const VERSION: &str = env!("CARGO_PKG_VERSION");
const INFO_URI: &str = "mcpstorm://info";

/// One instance per session; clones share the [`KvStore`] and the [`Observers`].
#[derive(Clone)]
pub(super) struct ReferenceServer {
    pub(super) kv: KvStore,
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
    observers: Observers,
    /// With `--conformance-tools`: this session's log level and subscriptions.
    conformance: Option<conformance::Shared>,
}

/// Who hears how each tool call ended: the circuit breakers and `/metrics` (HTTP mode).
#[derive(Clone, Default)]
pub(super) struct Observers {
    pub breakers: Option<Arc<Breakers>>,
    pub metrics: Option<Arc<ServerMetrics>>,
}

impl ReferenceServer {
    pub(super) fn new(kv: KvStore, observers: Observers, conformance_tools: bool) -> Self {
        let (mut tool_router, mut prompt_router) = (Self::tool_router(), Self::prompt_router());
        if conformance_tools {
            tool_router += Self::conformance_tool_router();
            tool_router.add_route(conformance::json_schema_tool());
            prompt_router += Self::conformance_prompt_router();
        }
        Self {
            kv,
            tool_router,
            prompt_router,
            observers,
            conformance: conformance_tools.then(conformance::Shared::default),
        }
    }

    /// This session's conformance state (a fresh one if the tools are off, never used then).
    pub(super) fn conformance_state(&self) -> conformance::Shared {
        self.conformance.clone().unwrap_or_default()
    }

    fn observe(&self, tool: &str, outcome: &Result<CallToolResponse, ErrorData>) {
        if self.observers.breakers.is_none() && self.observers.metrics.is_none() {
            return;
        }
        // Unknown names come from clients: recording them would grow state without bound.
        if self.tool_router.get(tool).is_none() {
            return;
        }
        let failed = is_tool_failure(outcome);
        if let Some(b) = &self.observers.breakers {
            b.record(tool, failed, Instant::now());
        }
        if let Some(m) = &self.observers.metrics {
            m.tool_call(tool, failed);
        }
    }
}

/// Did the tool itself fail? A caller's bad arguments or an unknown tool are not the
/// tool's failure: counting them would let any client open a circuit for everyone.
fn is_tool_failure(outcome: &Result<CallToolResponse, ErrorData>) -> bool {
    const CALLERS_FAULT: [&str; 2] = ["invalid parameters:", "failed to deserialize parameters:"];
    match outcome {
        Ok(CallToolResponse::Complete(result)) => {
            result.is_error == Some(true)
                && !result.content.first().is_some_and(|c| {
                    c.as_text()
                        .is_some_and(|t| CALLERS_FAULT.iter().any(|p| t.text.starts_with(p)))
                })
        }
        Ok(_) => false,
        Err(e) => e.code != ErrorCode::INVALID_PARAMS && e.code != ErrorCode::METHOD_NOT_FOUND,
    }
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(super) struct GreetingArgs {
    /// Who to greet.
    name: String,
}

#[prompt_router]
impl ReferenceServer {
    #[prompt(
        name = "greeting",
        description = "Ask the model to say hello to someone."
    )]
    async fn greeting(&self, Parameters(args): Parameters<GreetingArgs>) -> GetPromptResult {
        GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            format!("Say hello to {}.", args.name),
        )])
    }
}

fn info_text() -> String {
    format!("mcpstorm reference server {VERSION}")
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for ReferenceServer {
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tool = request.name.clone();
        let outcome = self
            .tool_router
            .call(ToolCallContext::new(self, request, context))
            .await;
        self.observe(&tool, &outcome);
        outcome
    }

    fn supported_protocol_versions(
        &self,
    ) -> std::borrow::Cow<'static, [rmcp::model::ProtocolVersion]> {
        match PROTOCOL_VERSIONS.get() {
            Some(v) => std::borrow::Cow::Borrowed(v.as_slice()),
            None => std::borrow::Cow::Borrowed(rmcp::model::ProtocolVersion::KNOWN_VERSIONS),
        }
    }

    fn get_info(&self) -> ServerConfig {
        let capabilities = if self.conformance.is_some() {
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_prompts()
                .enable_logging()
                .enable_completions()
                .build()
        } else {
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .build()
        };
        ServerConfig::new(capabilities)
        .with_server_info(Implementation::new(SERVER_NAME, VERSION))
        .with_instructions(
            "Reference server for mcpstorm. Tools: echo, add, sleep, fail, alloc, kv_put, kv_get.",
        )
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let info = Resource::new(INFO_URI, "info")
            .with_description("Name and version of this server.")
            .with_mime_type("text/plain");
        let mut all = vec![info];
        if self.conformance.is_some() {
            all.extend(conformance::resources());
        }
        Ok(ListResourcesResult::with_all_items(all))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        if self.conformance.is_none() {
            return Ok(ListResourceTemplatesResult::default());
        }
        serde_json::from_value(conformance::templates())
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }

    #[allow(deprecated)] // MCP logging: deprecated upstream, still asked for by the suite.
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        match &self.conformance {
            Some(state) => {
                state.set_level(&serde_json::to_value(request.level).unwrap_or_default())
            }
            None => Err(ErrorData::method_not_found::<
                rmcp::model::SetLevelRequestMethod,
            >()),
        }
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        match &self.conformance {
            Some(_) => conformance::complete(&request.argument.value),
            None => Err(ErrorData::method_not_found::<
                rmcp::model::CompleteRequestMethod,
            >()),
        }
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        match &self.conformance {
            Some(state) => {
                state.subscribe(request.uri, true);
                Ok(())
            }
            None => Err(ErrorData::method_not_found::<
                rmcp::model::SubscribeRequestMethod,
            >()),
        }
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        match &self.conformance {
            Some(state) => {
                state.subscribe(request.uri, false);
                Ok(())
            }
            None => Err(ErrorData::method_not_found::<
                rmcp::model::UnsubscribeRequestMethod,
            >()),
        }
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if self.conformance.is_some()
            && let Some(found) = conformance::read(&request.uri)
        {
            return Ok(found.into());
        }
        if request.uri != INFO_URI {
            // rmcp rewrites this code to -32602 for peers on 2026-07-28+.
            return Err(ErrorData::resource_not_found(
                format!("resource not found: {}", request.uri),
                Some(serde_json::json!({ "uri": request.uri })),
            ));
        }
        let contents = ResourceContents::text(info_text(), INFO_URI).with_mime_type("text/plain");
        Ok(ReadResourceResult::new(vec![contents]).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{CallToolResult, ContentBlock};

    fn result(is_error: bool, text: &str) -> Result<CallToolResponse, ErrorData> {
        let content = vec![ContentBlock::text(text)];
        Ok(if is_error {
            CallToolResult::error(content)
        } else {
            CallToolResult::success(content)
        }
        .into())
    }

    #[test]
    fn only_the_tools_own_failures_count() {
        assert!(is_tool_failure(&result(
            true,
            "injected failure (error_rate=1)"
        )));
        assert!(!is_tool_failure(&result(false, "ok")));
        assert!(!is_tool_failure(&result(
            true,
            "invalid parameters: `ms` must be 0 to 60000"
        )));
        assert!(!is_tool_failure(&result(
            true,
            "failed to deserialize parameters: missing field"
        )));
        assert!(!is_tool_failure(&Err(ErrorData::invalid_params(
            "tool not found",
            None
        ))));
        assert!(is_tool_failure(&Err(ErrorData::internal_error(
            "boom", None
        ))));
    }
}
