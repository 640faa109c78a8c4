//! WebSocket: one connection per session. By default every message is one JSON-RPC text
//! frame each way (MCP's lifecycle runs on top as on any other wire). With a custom
//! [`Framing`], the connection opens with the framing's hello exchange and each request is
//! the framing's frame; answers are recognised and unwrapped by the framing.
//!
//! The connection is the session: a close frame or a dropped socket is `session_lost`, and
//! the session above reconnects. Connect failures use the same taxonomy as HTTP (refused,
//! DNS, TLS, an HTTP status when the upgrade is refused). WebSocket pings are answered by
//! tungstenite itself. This file never retries.

use super::framing::{Framing, Request};
use super::{Call, Step, Transport, step};
use crate::error::{CallError, excerpt};
use futures::{SinkExt, StreamExt};
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) struct WebSocketTransport {
    ws: Ws,
    framing: Option<Arc<Framing>>,
    /// The connection closed or broke: every later call fails at once.
    lost: Option<String>,
}

impl WebSocketTransport {
    /// Connect, and run the framing's hello exchange if it has one.
    pub async fn connect(
        url: &reqwest::Url,
        headers: &HeaderMap,
        framing: Option<Arc<Framing>>,
        timeout: Duration,
    ) -> Result<Self, CallError> {
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| connect_error(e, url))?;
        for (k, v) in headers {
            request.headers_mut().insert(k.clone(), v.clone());
        }
        // rustls needs one process-wide crypto provider for wss://.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (ws, _) = match tokio::time::timeout(
            timeout,
            tokio_tungstenite::connect_async_with_config(request, None, true),
        )
        .await
        {
            Ok(r) => r.map_err(|e| connect_error(e, url))?,
            Err(_) => return Err(CallError::Timeout { after: timeout }),
        };
        let mut t = WebSocketTransport {
            ws,
            framing,
            lost: None,
        };
        if let Some((hello, expect)) = t.framing.as_ref().and_then(|f| f.hello()) {
            let expect = expect.clone();
            match tokio::time::timeout(timeout, t.hello(hello, &expect)).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(CallError::HelloRefused {
                        detail: format!(
                            "no answer to the hello within {timeout:?} (expected a frame with {expect})"
                        ),
                    });
                }
            }
        }
        Ok(t)
    }

    async fn hello(&mut self, hello: String, expect: &Value) -> Result<(), CallError> {
        self.send(hello).await?;
        let refused = |detail: String| CallError::HelloRefused { detail };
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    return match Framing::hello_accepted(expect, t.as_str()) {
                        true => Ok(()),
                        false => Err(refused(format!(
                            "expected a frame with {expect}, the server answered {}",
                            excerpt(t.as_str(), 200)
                        ))),
                    };
                }
                Some(Ok(Message::Binary(b))) => {
                    let text = String::from_utf8_lossy(&b);
                    return match Framing::hello_accepted(expect, &text) {
                        true => Ok(()),
                        false => Err(refused(format!(
                            "expected a frame with {expect}, the server answered {}",
                            excerpt(&text, 200)
                        ))),
                    };
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(refused(format!(
                        "the server closed the connection after the hello{}",
                        close_reason(frame.as_ref())
                    )));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    return Err(refused(format!(
                        "the connection broke after the hello: {e}"
                    )));
                }
                None => {
                    return Err(refused(
                        "the connection ended after the hello, with no answer".into(),
                    ));
                }
            }
        }
    }

    async fn send(&mut self, text: String) -> Result<(), CallError> {
        if let Some(why) = &self.lost {
            return Err(CallError::SessionLost {
                detail: why.clone(),
            });
        }
        if let Err(e) = self.ws.send(Message::text(text)).await {
            return Err(self.lose(format!("the WebSocket broke while sending: {e}")));
        }
        Ok(())
    }

    fn lose(&mut self, why: String) -> CallError {
        self.lost = Some(why.clone());
        CallError::SessionLost { detail: why }
    }

    /// The next data frame's bytes; control frames are tungstenite's business.
    async fn next_data(&mut self) -> Result<Vec<u8>, CallError> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => return Ok(t.as_bytes().to_vec()),
                Some(Ok(Message::Binary(b))) => return Ok(b.to_vec()),
                Some(Ok(Message::Close(frame))) => {
                    let why = format!(
                        "the server closed the WebSocket{}",
                        close_reason(frame.as_ref())
                    );
                    return Err(self.lose(why));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(self.lose(format!("the WebSocket broke: {e}"))),
                None => return Err(self.lose("the WebSocket connection ended".into())),
            }
        }
    }
}

fn close_reason(frame: Option<&tokio_tungstenite::tungstenite::protocol::CloseFrame>) -> String {
    match frame {
        Some(f) if f.reason.is_empty() => format!(" (code {})", u16::from(f.code)),
        Some(f) => format!(
            " (code {}: {})",
            u16::from(f.code),
            excerpt(f.reason.as_str(), 120)
        ),
        None => String::new(),
    }
}

impl Transport for WebSocketTransport {
    async fn request(&mut self, call: Call<'_>) -> Result<Value, CallError> {
        let id = call.id;
        let Some(framing) = self.framing.clone() else {
            let text = String::from_utf8(call.body).map_err(|e| CallError::Protocol {
                detail: format!("the request is not UTF-8: {e}"),
            })?;
            self.send(text).await?;
            loop {
                let data = self.next_data().await?;
                match step(&data, id) {
                    Step::Done(r) => return r,
                    Step::Answer(answer) => {
                        self.send(String::from_utf8_lossy(&answer).into_owned())
                            .await?
                    }
                    Step::Skip => {}
                }
            }
        };
        let encoded = framing.encode(&Request {
            id,
            method: call.method,
            params: call.params,
        })?;
        self.send(encoded.frame).await?;
        loop {
            let data = self.next_data().await?;
            if let Some(r) = framing.decode(&data, id, &encoded.id_texts, call.method) {
                return r;
            }
        }
    }

    async fn notify(&mut self, body: Vec<u8>) -> Result<(), CallError> {
        if self.framing.is_some() {
            // A custom envelope has no notifications (initialized, cancelled).
            return Ok(());
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        self.send(text).await
    }

    fn session_survives(&self, err: &CallError) -> bool {
        self.lost.is_none()
            && !matches!(
                err,
                CallError::SessionLost { .. } | CallError::HelloRefused { .. }
            )
    }

    fn framing_info(&self) -> Option<crate::session::ServerInfo> {
        self.framing.as_ref().map(|f| f.server_info())
    }

    async fn close(mut self) {
        if self.lost.is_none() {
            let _ = tokio::time::timeout(Duration::from_millis(500), self.ws.close(None)).await;
        }
    }
}

/// A failed connect or upgrade, in the taxonomy.
fn connect_error(e: WsError, url: &reqwest::Url) -> CallError {
    let addr = format!(
        "{}:{}",
        url.host_str().unwrap_or("?"),
        url.port_or_known_default().unwrap_or(0)
    );
    match e {
        WsError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            CallError::ConnectRefused { addr }
        }
        WsError::Io(io) => {
            let text = io.to_string();
            if text.contains("failed to lookup address") || text.contains("Name or service") {
                CallError::Dns {
                    host: url.host_str().unwrap_or("?").to_string(),
                    detail: text,
                }
            } else {
                CallError::Connection { detail: text }
            }
        }
        WsError::Tls(t) => CallError::Tls {
            detail: t.to_string(),
        },
        WsError::Http(resp) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            CallError::HttpStatus {
                status: resp.status().as_u16(),
                body: excerpt(&body, 300),
                www_authenticate: resp
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            }
        }
        WsError::Url(u) => CallError::Connection {
            detail: format!("{url} is not a WebSocket URL: {u}"),
        },
        other => CallError::Connection {
            detail: format!("WebSocket handshake with {addr} failed: {other}"),
        },
    }
}
