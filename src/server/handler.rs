//! The MCP handler: server identity, the `mcpstorm://info` resource, the
//! `greeting` prompt, and the state shared by every session of one process.
//!
//! The tools themselves live in `tools.rs`; this file wires their router in.

use std::sync::Arc;
use std::time::Instant;

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
        CallToolRequestParams, CallToolResponse, ErrorCode, GetPromptResult, Implementation,
        ListResourcesResult, PaginatedRequestParams, PromptMessage, ReadResourceRequestParams,
        ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, Role,
        ServerCapabilities, ServerConfig,
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
}

/// Who hears how each tool call ended: the circuit breakers and `/metrics` (HTTP mode).
#[derive(Clone, Default)]
pub(super) struct Observers {
    pub breakers: Option<Arc<Breakers>>,
    pub metrics: Option<Arc<ServerMetrics>>,
}

impl ReferenceServer {
    pub(super) fn new(kv: KvStore, observers: Observers) -> Self {
        Self {
            kv,
            tool_router: Self::tool_router(),
            prompt_router: Self::prompt_router(),
            observers,
        }
    }

    fn observe(&self, tool: &str, outcome: &Result<CallToolResponse, ErrorData>) {
        if self.observers.breakers.is_none() && self.observers.metrics.is_none() {
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
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
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
        Ok(ListResourcesResult::with_all_items(vec![info]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
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
