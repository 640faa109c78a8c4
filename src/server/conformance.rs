//! The test tools, prompts and resources of the official MCP conformance suite
//! (`@modelcontextprotocol/conformance`, server mode), served only with
//! `mcpstorm serve --conformance-tools`.
//!
//! The suite checks a server's protocol features (content types, logging, progress,
//! sampling, elicitation, resources, templates, subscriptions, prompts, completion) through
//! fixed names (`test_simple_text`, `test://static-text`, `test_simple_prompt`...). They are
//! not load-test building blocks, so they stay out of the default server's lists: a
//! generated workload must not start sampling from its client.
//!
//! Requests the server sends to the client (sampling, elicitation) and notifications
//! (logging, progress) go through the session's peer; a client that cannot answer gets a
//! tool error, never a hang past its own timeout.
//!
//! Logging and sampling are deprecated upstream (SEP-2577, for the 2026-07-28 revision) but
//! are part of the 2025 revisions the suite checks, hence the `allow(deprecated)`.
#![allow(deprecated)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rmcp::{
    ErrorData, RoleServer,
    handler::server::{router::tool::ToolRoute, wrapper::Parameters},
    model::{
        CallToolResult, CompleteResult, ContentBlock, CreateMessageRequestParams,
        ElicitRequestParams, GetPromptResult, PromptMessage, ReadResourceResult, Resource,
        ResourceContents, Role, Tool,
    },
    prompt, prompt_router,
    service::RequestContext,
    tool, tool_router,
};
use serde_json::{Value, json};

use super::handler::ReferenceServer;

/// A 1x1 red PNG.
const PNG_BASE64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
/// Eight samples of silence, 8 kHz mono 8-bit WAV.
const WAV_BASE64: &str = "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAgICAgICAgA==";
const STATIC_TEXT: &str = "test://static-text";
const STATIC_BINARY: &str = "test://static-binary";
const WATCHED: &str = "test://watched-resource";
const TEMPLATE: &str = "test://template/{id}/data";
/// How long `test_reconnection` works: long enough for the client to reconnect first.
const RECONNECTION_DELAY: Duration = Duration::from_secs(1);
/// Pause between the notifications of the logging and progress tools, as the suite asks.
const STEP: Duration = Duration::from_millis(50);

/// What one session asked for: its log level (as a severity rank) and its subscriptions.
#[derive(Debug, Default)]
pub(super) struct SessionState {
    min_log_rank: Mutex<Option<u8>>,
    subscriptions: Mutex<BTreeSet<String>>,
}

pub(super) type Shared = Arc<SessionState>;

/// The syslog severities of MCP logging, least severe first.
const LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

fn rank(level: &str) -> Option<u8> {
    LEVELS.iter().position(|l| *l == level).map(|i| i as u8)
}

impl SessionState {
    pub(super) fn set_level(&self, level: &Value) -> Result<(), ErrorData> {
        let r = level
            .as_str()
            .and_then(rank)
            .ok_or_else(|| ErrorData::invalid_params(format!("unknown log level {level}"), None))?;
        *self
            .min_log_rank
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(r);
        Ok(())
    }

    fn wants(&self, level: &str) -> bool {
        let min = *self
            .min_log_rank
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Without logging/setLevel the client gets everything from `info` up.
        rank(level) >= Some(min.unwrap_or(1))
    }

    pub(super) fn subscribe(&self, uri: String, on: bool) {
        let mut subs = self
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if on {
            subs.insert(uri);
        } else {
            subs.remove(&uri);
        }
    }
}

/// Builds an rmcp model value from its JSON form: the suite specifies its messages as JSON,
/// and several of these types are `#[non_exhaustive]`.
fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ErrorData> {
    serde_json::from_value(v).map_err(|e| ErrorData::internal_error(e.to_string(), None))
}

fn text(s: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(s)])
}

async fn log(context: &RequestContext<RoleServer>, state: &SessionState, level: &str, data: &str) {
    if state.wants(level)
        && let Ok(param) =
            from_json(json!({ "level": level, "logger": "conformance", "data": data }))
    {
        let _ = context.peer.notify_logging_message(param).await;
    }
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(super) struct SamplingArgs {
    /// The prompt to send to the client's LLM.
    prompt: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(super) struct ElicitationArgs {
    /// The message to show the user.
    message: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(super) struct PromptArgs {
    /// First test argument.
    arg1: String,
    /// Second test argument.
    arg2: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct EmbeddedResourceArgs {
    /// URI of the resource to embed.
    resource_uri: String,
}

/// Asks the client to fill `schema`; the tool's text reports the answer.
async fn elicit(
    context: &RequestContext<RoleServer>,
    message: &str,
    schema: Value,
    prefix: &str,
) -> Result<CallToolResult, ErrorData> {
    let params: ElicitRequestParams = from_json(json!({
        "mode": "form",
        "message": message,
        "requestedSchema": schema,
    }))?;
    match context.peer.create_elicitation(params).await {
        Ok(result) => {
            let v = serde_json::to_value(&result).unwrap_or(Value::Null);
            Ok(text(format!(
                "{prefix}action={}, content={}",
                v["action"].as_str().unwrap_or("?"),
                v.get("content").unwrap_or(&Value::Null)
            )))
        }
        Err(e) => Ok(CallToolResult::error(vec![ContentBlock::text(format!(
            "the client did not answer the elicitation: {e}"
        ))])),
    }
}

#[tool_router(router = conformance_tool_router, vis = "pub(super)")]
impl ReferenceServer {
    #[tool(
        description = "Conformance: answer after 1 s; its SSE stream is closed after the priming event, so the answer must be fetched by resuming (SEP-1699)."
    )]
    async fn test_reconnection(&self) -> Result<CallToolResult, ErrorData> {
        tokio::time::sleep(RECONNECTION_DELAY).await;
        Ok(text("Reconnection test completed successfully"))
    }

    #[tool(description = "Conformance: return one text content block.")]
    async fn test_simple_text(&self) -> Result<CallToolResult, ErrorData> {
        Ok(text("This is a simple text response for testing."))
    }

    #[tool(description = "Conformance: return one image content block (a 1x1 PNG).")]
    async fn test_image_content(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::image(
            PNG_BASE64,
            "image/png",
        )]))
    }

    #[tool(description = "Conformance: return one audio content block (a short WAV).")]
    async fn test_audio_content(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::audio(
            WAV_BASE64,
            "audio/wav",
        )]))
    }

    #[tool(description = "Conformance: return one embedded text resource.")]
    async fn test_embedded_resource(&self) -> Result<CallToolResult, ErrorData> {
        let resource = ResourceContents::text(
            "This is an embedded resource content.",
            "test://embedded-resource",
        )
        .with_mime_type("text/plain");
        Ok(CallToolResult::success(vec![ContentBlock::resource(
            resource,
        )]))
    }

    #[tool(description = "Conformance: return text, image and resource content together.")]
    async fn test_multiple_content_types(&self) -> Result<CallToolResult, ErrorData> {
        let resource = ResourceContents::text(
            r#"{"test":"data","value":123}"#,
            "test://mixed-content-resource",
        )
        .with_mime_type("application/json");
        Ok(CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            ContentBlock::image(PNG_BASE64, "image/png"),
            ContentBlock::resource(resource),
        ]))
    }

    #[tool(description = "Conformance: send three info log notifications 50 ms apart.")]
    async fn test_tool_with_logging(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let state = self.conformance_state();
        log(&context, &state, "info", "Tool execution started").await;
        tokio::time::sleep(STEP).await;
        log(&context, &state, "info", "Tool processing data").await;
        tokio::time::sleep(STEP).await;
        log(&context, &state, "info", "Tool execution completed").await;
        Ok(text("Tool with logging executed successfully"))
    }

    #[tool(description = "Conformance: always fail with isError=true.")]
    async fn test_error_handling(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::error(vec![ContentBlock::text(
            "This tool intentionally returns an error for testing",
        )]))
    }

    #[tool(description = "Conformance: report progress 0, 50 and 100 of 100, 50 ms apart.")]
    async fn test_tool_with_progress(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let token = context.meta.get_progress_token();
        for (i, progress) in [0, 50, 100].into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(STEP).await;
            }
            if let Some(token) = &token {
                let param = from_json(json!({
                    "progressToken": token, "progress": progress, "total": 100,
                }))?;
                let _ = context.peer.notify_progress(param).await;
            }
        }
        Ok(text("Tool with progress executed successfully"))
    }

    #[tool(
        description = "Conformance: ask the client's LLM (sampling/createMessage) and return its answer."
    )]
    async fn test_sampling(
        &self,
        Parameters(args): Parameters<SamplingArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let params: CreateMessageRequestParams = from_json(json!({
            "messages": [{ "role": "user", "content": { "type": "text", "text": args.prompt } }],
            "maxTokens": 100,
        }))?;
        match context.peer.create_message(params).await {
            Ok(result) => {
                let v = serde_json::to_value(&result).unwrap_or(Value::Null);
                let answer = v["content"]["text"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v["content"].to_string());
                Ok(text(format!("LLM response: {answer}")))
            }
            Err(e) => Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "the client did not answer the sampling request: {e}"
            ))])),
        }
    }

    #[tool(
        description = "Conformance: ask the user for a username and an email (elicitation/create)."
    )]
    async fn test_elicitation(
        &self,
        Parameters(args): Parameters<ElicitationArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let schema = json!({
            "type": "object",
            "properties": {
                "username": { "type": "string", "description": "User's response" },
                "email": { "type": "string", "description": "User's email address" },
            },
            "required": ["username", "email"],
        });
        elicit(&context, &args.message, schema, "User response: ").await
    }

    #[tool(description = "Conformance: elicitation whose fields all have defaults (SEP-1034).")]
    async fn test_elicitation_sep1034_defaults(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": { "type": "string", "default": "John Doe" },
                "age": { "type": "integer", "default": 30 },
                "score": { "type": "number", "default": 95.5 },
                "status": { "type": "string", "enum": ["active", "inactive", "pending"], "default": "active" },
                "verified": { "type": "boolean", "default": true },
            },
        });
        elicit(
            &context,
            "Please review and update the form fields with defaults",
            schema,
            "Elicitation completed: ",
        )
        .await
    }

    #[tool(description = "Conformance: elicitation with the five enum forms of SEP-1330.")]
    async fn test_elicitation_sep1330_enums(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let schema = json!({
            "type": "object",
            "properties": {
                "untitledSingle": { "type": "string", "enum": ["option1", "option2", "option3"] },
                "titledSingle": { "type": "string", "oneOf": [
                    { "const": "value1", "title": "First Option" },
                    { "const": "value2", "title": "Second Option" },
                    { "const": "value3", "title": "Third Option" },
                ]},
                "legacyEnum": { "type": "string", "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"] },
                "untitledMulti": { "type": "array",
                    "items": { "type": "string", "enum": ["option1", "option2", "option3"] } },
                "titledMulti": { "type": "array", "items": { "anyOf": [
                    { "const": "value1", "title": "First Choice" },
                    { "const": "value2", "title": "Second Choice" },
                    { "const": "value3", "title": "Third Choice" },
                ]}},
            },
        });
        elicit(
            &context,
            "Please select options from the enum fields",
            schema,
            "Elicitation completed: ",
        )
        .await
    }
}

#[prompt_router(router = "conformance_prompt_router", vis = "pub(super)")]
impl ReferenceServer {
    #[prompt(
        name = "test_simple_prompt",
        description = "Conformance: a prompt without arguments."
    )]
    async fn test_simple_prompt(&self) -> GetPromptResult {
        GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            "This is a simple prompt for testing.",
        )])
    }

    #[prompt(
        name = "test_prompt_with_arguments",
        description = "Conformance: a prompt with two arguments."
    )]
    async fn test_prompt_with_arguments(
        &self,
        Parameters(args): Parameters<PromptArgs>,
    ) -> GetPromptResult {
        GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            format!(
                "Prompt with arguments: arg1='{}', arg2='{}'",
                args.arg1, args.arg2
            ),
        )])
    }

    #[prompt(
        name = "test_prompt_with_embedded_resource",
        description = "Conformance: a prompt that embeds a resource."
    )]
    async fn test_prompt_with_embedded_resource(
        &self,
        Parameters(args): Parameters<EmbeddedResourceArgs>,
    ) -> Result<GetPromptResult, ErrorData> {
        let resource = from_json(json!({
            "role": "user",
            "content": { "type": "resource", "resource": {
                "uri": args.resource_uri, "mimeType": "text/plain",
                "text": "Embedded resource content for testing." } },
        }))?;
        Ok(GetPromptResult::new(vec![
            resource,
            PromptMessage::new_text(Role::User, "Please process the embedded resource above."),
        ]))
    }

    #[prompt(
        name = "test_prompt_with_image",
        description = "Conformance: a prompt with an image."
    )]
    async fn test_prompt_with_image(&self) -> Result<GetPromptResult, ErrorData> {
        let image = from_json(json!({
            "role": "user",
            "content": { "type": "image", "data": PNG_BASE64, "mimeType": "image/png" },
        }))?;
        Ok(GetPromptResult::new(vec![
            image,
            PromptMessage::new_text(Role::User, "Please analyze the image above."),
        ]))
    }
}

/// `json_schema_2020_12_tool`: its input schema, in JSON Schema 2020-12 with `$schema`,
/// `$defs` and `additionalProperties`, must reach `tools/list` untouched (SEP-1613). Built
/// by hand because a derived schema would be rewritten by schemars.
pub(super) fn json_schema_tool() -> ToolRoute<ReferenceServer> {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": { "address": { "type": "object", "properties": {
            "street": { "type": "string" }, "city": { "type": "string" } } } },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" },
        },
        "additionalProperties": false,
    });
    let schema = schema.as_object().cloned().unwrap_or_default();
    ToolRoute::new_dyn(
        Tool::new(
            "json_schema_2020_12_tool",
            "Conformance: a tool whose input schema uses JSON Schema 2020-12 features",
            schema,
        ),
        |context| {
            let args = context.arguments.clone().unwrap_or_default();
            Box::pin(async move { Ok(text(format!("received {}", Value::Object(args))).into()) })
        },
    )
}

/// The HTTP half of `test_reconnection`: its POST's SSE stream ends right after the first
/// event (the priming event, which carries the id to resume from), as a server polling its
/// clients would close it; rmcp keeps the request's channel, and the answer reaches the
/// client on its `GET` with `Last-Event-ID`. No tool can close its own stream in rmcp.
pub(super) async fn close_reconnection_stream(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if req.method() != axum::http::Method::POST {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return next
            .run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::empty(),
            ))
            .await;
    };
    let reconnection = super::protect::classify::RpcCall::of(&bytes)
        .tool
        .as_deref()
        == Some("test_reconnection");
    let response = next
        .run(axum::extract::Request::from_parts(
            parts,
            axum::body::Body::from(bytes),
        ))
        .await;
    if !reconnection {
        return response;
    }
    response.map(|body| {
        let first_event = futures::stream::unfold(
            (body.into_data_stream(), Vec::<u8>::new(), false),
            |(mut stream, mut seen, done)| async move {
                use futures::StreamExt as _;
                if done {
                    return None;
                }
                let chunk = stream.next().await?.ok()?;
                seen.extend_from_slice(&chunk);
                let ended = seen.windows(2).any(|w| w == b"\n\n");
                Some((Ok::<_, axum::Error>(chunk), (stream, seen, ended)))
            },
        );
        axum::body::Body::from_stream(first_event)
    })
}

/// The conformance resources, for `resources/list`.
pub(super) fn resources() -> Vec<Resource> {
    vec![
        Resource::new(STATIC_TEXT, "static-text")
            .with_description("Conformance: a static text resource.")
            .with_mime_type("text/plain"),
        Resource::new(STATIC_BINARY, "static-binary")
            .with_description("Conformance: a static binary resource (a PNG).")
            .with_mime_type("image/png"),
        Resource::new(WATCHED, "watched-resource")
            .with_description("Conformance: a resource to subscribe to.")
            .with_mime_type("text/plain"),
    ]
}

/// `resources/templates/list`'s answer, as JSON.
pub(super) fn templates() -> Value {
    json!({ "resourceTemplates": [{
        "uriTemplate": TEMPLATE, "name": "template-data",
        "description": "Conformance: data for any id.", "mimeType": "application/json",
    }]})
}

/// Reads a conformance resource; `None` when `uri` is not one.
pub(super) fn read(uri: &str) -> Option<ReadResourceResult> {
    let contents = match uri {
        STATIC_TEXT => {
            ResourceContents::text("This is the content of the static text resource.", uri)
                .with_mime_type("text/plain")
        }
        STATIC_BINARY => ResourceContents::blob(PNG_BASE64, uri).with_mime_type("image/png"),
        WATCHED => {
            ResourceContents::text("Watched resource content.", uri).with_mime_type("text/plain")
        }
        _ => {
            let id = uri
                .strip_prefix("test://template/")?
                .strip_suffix("/data")
                .filter(|id| !id.is_empty() && !id.contains('/'))?;
            let body =
                json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") });
            ResourceContents::text(body.to_string(), uri).with_mime_type("application/json")
        }
    };
    Some(ReadResourceResult::new(vec![contents]))
}

/// `completion/complete`: suggestions for the conformance prompt's arguments.
pub(super) fn complete(argument_value: &str) -> Result<CompleteResult, ErrorData> {
    let values: Vec<&str> = ["paris", "park", "party", "test", "testing"]
        .into_iter()
        .filter(|v| v.starts_with(argument_value))
        .collect();
    from_json(
        json!({ "completion": { "values": values, "total": values.len(), "hasMore": false } }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_filter_by_severity() {
        let s = SessionState::default();
        assert!(s.wants("info") && !s.wants("debug"));
        s.set_level(&json!("warning")).unwrap();
        assert!(!s.wants("info") && s.wants("error"));
        assert!(s.set_level(&json!("loud")).is_err());
    }

    #[test]
    fn the_template_substitutes_its_id_and_unknown_uris_are_none() {
        let r = serde_json::to_value(read("test://template/123/data").unwrap()).unwrap();
        let text = r["contents"][0]["text"].as_str().unwrap();
        assert!(text.contains("\"id\":\"123\""), "{text}");
        assert!(read("test://template//data").is_none());
        assert!(read("test://nothing").is_none());
        let bin = serde_json::to_value(read(STATIC_BINARY).unwrap()).unwrap();
        assert_eq!(bin["contents"][0]["blob"], PNG_BASE64);
    }

    #[test]
    fn completion_filters_by_prefix() {
        let v = serde_json::to_value(complete("par").unwrap()).unwrap();
        assert_eq!(v["completion"]["values"], json!(["paris", "park", "party"]));
    }
}
