//! MCP over WebSocket at `/ws`: one session per connection, one JSON-RPC message per text
//! frame each way. rmcp has no WebSocket transport, but it serves any pair of a message sink
//! and a message stream, so this file turns frames into messages and back, and puts the
//! per-message protections (`protect/per_message.rs`) between the socket and rmcp.
//!
//! Three parts per connection, run together until all end: the reader (frames in, checked,
//! handed to rmcp or answered with a refusal), rmcp's session, and the writer (rmcp's answers
//! and the refusals out). A frame that is not a JSON-RPC message is dropped (as rmcp's stdio
//! transport drops bad lines); a message above the size limit closes the connection with
//! 1009. The session ends when the client closes the connection or `shutdown` comes.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, Extension};
use axum::routing::{MethodRouter, get};
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use rmcp::ServiceExt as _;
use rmcp::model::JsonRpcMessage;
use rmcp::service::{RoleServer, RxJsonRpcMessage, TxJsonRpcMessage};
use tokio_util::sync::CancellationToken;

use super::handler::{KvStore, Observers, ReferenceServer};
use super::protect::auth::Principal;
use super::protect::per_message::{MessageGuard, Peer, Slots, Verdict};

/// Frames waiting to be written: rmcp's answers and refusals.
const OUT_QUEUE: usize = 64;

pub(super) fn route(
    kv: KvStore,
    observers: Observers,
    conformance_tools: bool,
    guard: Arc<MessageGuard>,
    shutdown: CancellationToken,
) -> MethodRouter {
    get(
        move |ConnectInfo(client): ConnectInfo<SocketAddr>,
              principal: Option<Extension<Principal>>,
              upgrade: WebSocketUpgrade| {
            let (kv, observers, guard) = (kv.clone(), observers.clone(), guard.clone());
            let shutdown = shutdown.clone();
            let peer = Peer {
                ip: Some(client.ip()),
                principal: principal.map(|p| p.0),
            };
            let upgrade = match guard.max_message {
                Some(max) => upgrade.max_message_size(max).max_frame_size(max),
                None => upgrade,
            };
            async move {
                upgrade.on_upgrade(move |socket| {
                    let server = ReferenceServer::new(kv, observers, conformance_tools);
                    session(socket, server, guard, peer, shutdown)
                })
            }
        },
    )
}

async fn session(
    socket: WebSocket,
    server: ReferenceServer,
    guard: Arc<MessageGuard>,
    peer: Peer,
    shutdown: CancellationToken,
) {
    let (mut socket_out, mut socket_in) = socket.split();
    let (out, mut outgoing) = mpsc::channel::<Message>(OUT_QUEUE);
    let (mut to_server, from_client) = mpsc::channel::<RxJsonRpcMessage<RoleServer>>(16);
    let slots = Arc::new(Slots::default());

    let answers = {
        let slots = slots.clone();
        out.clone()
            .sink_map_err(axum::Error::new)
            .with(move |msg: TxJsonRpcMessage<RoleServer>| {
                let slots = slots.clone();
                async move {
                    let answered = match &msg {
                        JsonRpcMessage::Response(r) => Some(&r.id),
                        JsonRpcMessage::Error(e) => e.id.as_ref(),
                        _ => None,
                    };
                    if let Some(id) = answered.and_then(|id| serde_json::to_string(id).ok()) {
                        slots.release(&id);
                    }
                    serde_json::to_string(&msg)
                        .map(|text| Message::Text(text.into()))
                        .map_err(axum::Error::new)
                }
            })
    };
    let serving = {
        let ct = shutdown.child_token();
        async move {
            if let Ok(running) = server
                .serve_with_ct((Box::pin(answers), from_client), ct)
                .await
            {
                let _ = running.waiting().await;
            }
        }
    };
    let reading = {
        let mut out = out;
        async move {
            loop {
                let frame = tokio::select! {
                    frame = socket_in.next() => frame,
                    () = shutdown.cancelled() => break,
                };
                let bytes = match frame {
                    Some(Ok(Message::Text(t))) => axum::body::Bytes::from(t),
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        // The only read error worth an answer: a message above the limit.
                        if let Some(max) = guard.max_message
                            && e.to_string().contains("too long")
                        {
                            let _ = out.send(too_big(max)).await;
                        }
                        break;
                    }
                };
                match guard.admit(&peer, &bytes, &slots).await {
                    Verdict::Pass => {
                        let Ok(text) = std::str::from_utf8(&bytes) else {
                            continue;
                        };
                        if let Ok(msg) = serde_json::from_str::<RxJsonRpcMessage<RoleServer>>(text)
                            && to_server.send(msg).await.is_err()
                        {
                            break;
                        }
                    }
                    Verdict::Answer(text) => {
                        if out.send(Message::Text(text.into())).await.is_err() {
                            break;
                        }
                    }
                    Verdict::Drop => {}
                }
            }
            // Dropping `to_server` ends rmcp's session; dropping `out` lets the writer finish.
        }
    };
    let writing = async move {
        while let Some(frame) = outgoing.next().await {
            let closing = matches!(frame, Message::Close(_));
            if socket_out.send(frame).await.is_err() || closing {
                break;
            }
        }
        let _ = socket_out.close().await;
    };
    tokio::join!(serving, reading, writing);
}

/// The close frame for a message above `max` bytes.
fn too_big(max: usize) -> Message {
    Message::Close(Some(CloseFrame {
        code: close_code::SIZE,
        // A close reason has at most 123 bytes.
        reason: format!(
            "message above {}: send smaller ones, or raise --max-body",
            super::protect::human_bytes(max)
        )
        .into(),
    }))
}
