//! MCP over WebSocket at `/ws`: one session per connection, one JSON-RPC message per text
//! frame each way. rmcp has no WebSocket transport, but it serves any pair of a message sink
//! and a message stream, so this file only turns frames into messages and back.
//!
//! A frame that is not a JSON-RPC message is dropped (as rmcp's stdio transport drops bad
//! lines); the session ends when the client closes the connection or `shutdown` comes.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::routing::{MethodRouter, get};
use futures::{SinkExt, StreamExt};
use rmcp::ServiceExt as _;
use rmcp::service::{RoleServer, RxJsonRpcMessage, TxJsonRpcMessage};
use tokio_util::sync::CancellationToken;

use super::handler::{KvStore, Observers, ReferenceServer};

pub(super) fn route(
    kv: KvStore,
    observers: Observers,
    conformance_tools: bool,
    shutdown: CancellationToken,
) -> MethodRouter {
    get(move |upgrade: WebSocketUpgrade| {
        let (kv, observers) = (kv.clone(), observers.clone());
        let shutdown = shutdown.clone();
        async move {
            upgrade.on_upgrade(move |socket| {
                session(socket, kv, observers, conformance_tools, shutdown)
            })
        }
    })
}

async fn session(
    socket: WebSocket,
    kv: KvStore,
    observers: Observers,
    conformance_tools: bool,
    shutdown: CancellationToken,
) {
    let (sink, stream) = socket.split();
    let sink = sink.with(|msg: TxJsonRpcMessage<RoleServer>| async move {
        serde_json::to_string(&msg)
            .map(|text| Message::Text(text.into()))
            .map_err(axum::Error::new)
    });
    let stream = stream.filter_map(|frame| async move {
        let text = match frame {
            Ok(Message::Text(t)) => t.to_string(),
            Ok(Message::Binary(b)) => String::from_utf8_lossy(&b).into_owned(),
            _ => return None,
        };
        serde_json::from_str::<RxJsonRpcMessage<RoleServer>>(&text).ok()
    });
    let server = ReferenceServer::new(kv, observers, conformance_tools);
    let transport = (Box::pin(sink), Box::pin(stream));
    if let Ok(running) = server
        .serve_with_ct(transport, shutdown.child_token())
        .await
    {
        let _ = running.waiting().await;
    }
}
