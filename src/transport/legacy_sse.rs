//! Legacy HTTP+SSE (protocol revision 2024-11-05): one long-lived `GET` event stream per
//! session; its first event, `endpoint`, names the URL every client message is POSTed to;
//! the answers come back on the stream, matched to requests by id.
//!
//! The stream is the session: when it ends or breaks, the server has forgotten us, and that
//! is `session_lost` (the session above reconnects with a new `GET`). A 404 on the message
//! endpoint says the same. The POST and the wait for the answer run together, so a server
//! that answers on the stream before it finishes the POST (or a large answer that fills the
//! socket) can never deadlock us. Connection failures use the HTTP transport's taxonomy.
//! This file never retries.

use super::sse::{Decoder, Event};
use super::{Call, Step, Transport, step};
use crate::error::{CallError, excerpt};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE};
use serde_json::Value;
use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

pub(crate) struct LegacySseTransport {
    client: reqwest::Client,
    headers: HeaderMap,
    /// Where messages go, from the `endpoint` event.
    endpoint: reqwest::Url,
    reader: Reader,
}

/// The event stream and what has been read of it but not used yet.
struct Reader {
    stream: ByteStream,
    decoder: Decoder,
    pending: VecDeque<Event>,
    scratch: Vec<Event>,
    /// The stream ended or broke: every later call fails at once.
    lost: Option<String>,
}

impl Reader {
    /// The next complete event. Cancel-safe: a chunk is decoded into `pending` as soon as it
    /// arrives, so a timeout in between loses nothing.
    async fn next_event(&mut self) -> Result<Event, CallError> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(ev);
            }
            if let Some(why) = &self.lost {
                return Err(CallError::SessionLost {
                    detail: why.clone(),
                });
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => {
                    self.decoder.feed(&chunk, &mut self.scratch);
                    self.pending.extend(self.scratch.drain(..));
                }
                Some(Err(e)) => self.lost = Some(format!("the SSE stream broke: {e}")),
                None => self.lost = Some("the server ended the SSE stream".into()),
            }
        }
    }
}

impl LegacySseTransport {
    /// Open the event stream and wait for the `endpoint` event.
    pub async fn connect(
        client: reqwest::Client,
        url: reqwest::Url,
        headers: HeaderMap,
        timeout: Duration,
    ) -> Result<Self, CallError> {
        let opened = client
            .get(url.clone())
            .headers(headers.clone())
            .header(ACCEPT, "text/event-stream")
            .send();
        let resp = match tokio::time::timeout(timeout, opened).await {
            Ok(r) => r.map_err(|e| super::http::classify(&e, &url))?,
            Err(_) => return Err(CallError::Timeout { after: timeout }),
        };
        let status = resp.status();
        if !status.is_success() {
            return Err(status_error(resp).await);
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !content_type.starts_with("text/event-stream") {
            let body = resp.text().await.unwrap_or_default();
            return Err(CallError::Protocol {
                detail: format!(
                    "GET {url} answered HTTP {status} with Content-Type `{content_type}`, not an SSE stream (text/event-stream); if this is a Streamable HTTP endpoint use transport \"http\": {}",
                    excerpt(&body, 120)
                ),
            });
        }
        let mut reader = Reader {
            stream: Box::pin(resp.bytes_stream()),
            decoder: Decoder::default(),
            pending: VecDeque::new(),
            scratch: Vec::new(),
            lost: None,
        };
        let endpoint = async {
            loop {
                let ev = reader.next_event().await?;
                if ev.event.as_deref() == Some("endpoint") {
                    return url.join(ev.data.trim()).map_err(|e| CallError::Protocol {
                        detail: format!(
                            "the `endpoint` event names `{}`, which is not a URL: {e}",
                            excerpt(&ev.data, 120)
                        ),
                    });
                }
            }
        };
        let endpoint = match tokio::time::timeout(timeout, endpoint).await {
            Ok(Ok(e)) => e,
            Ok(Err(CallError::SessionLost { detail })) => {
                return Err(CallError::Protocol {
                    detail: format!(
                        "{detail} before its `endpoint` event: is this a legacy SSE endpoint?"
                    ),
                });
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(CallError::Timeout { after: timeout }),
        };
        Ok(Self {
            client,
            headers,
            endpoint,
            reader,
        })
    }
}

/// POST one message to the endpoint; any 2xx (202 Accepted, usually) is a delivery.
async fn post_message(
    client: &reqwest::Client,
    endpoint: &reqwest::Url,
    headers: &HeaderMap,
    body: Vec<u8>,
) -> Result<(), CallError> {
    let resp = client
        .post(endpoint.clone())
        .headers(headers.clone())
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| super::http::classify(&e, endpoint))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(CallError::SessionLost {
            detail: format!("HTTP 404 for the message endpoint {}", endpoint.path()),
        });
    }
    Err(status_error(resp).await)
}

async fn status_error(resp: reqwest::Response) -> CallError {
    let status = resp.status().as_u16();
    let www_authenticate = resp
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.text().await.unwrap_or_default();
    CallError::HttpStatus {
        status,
        body: excerpt(&body, 300),
        www_authenticate,
    }
}

/// Read the stream until the answer to `id`, answering the server's own requests on the way.
async fn read_answer(
    reader: &mut Reader,
    id: u64,
    client: &reqwest::Client,
    endpoint: &reqwest::Url,
    headers: &HeaderMap,
) -> Result<Value, CallError> {
    loop {
        let ev = reader.next_event().await?;
        if !matches!(ev.event.as_deref(), None | Some("message")) {
            continue;
        }
        match step(ev.data.as_bytes(), id) {
            Step::Done(r) => return r,
            Step::Answer(answer) => post_message(client, endpoint, headers, answer).await?,
            Step::Skip => {}
        }
    }
}

impl Transport for LegacySseTransport {
    async fn request(&mut self, call: Call<'_>) -> Result<Value, CallError> {
        let Self {
            client,
            headers,
            endpoint,
            reader,
        } = self;
        let post = post_message(client, endpoint, headers, call.body);
        let read = read_answer(reader, call.id, client, endpoint, headers);
        tokio::pin!(post, read);
        tokio::select! {
            biased;
            answer = &mut read => {
                // Let the POST finish too, so its connection goes back to the pool.
                let _ = post.await;
                answer
            }
            delivered = &mut post => match delivered {
                Ok(()) => read.await,
                Err(e) => Err(e),
            },
        }
    }

    async fn notify(&mut self, body: Vec<u8>) -> Result<(), CallError> {
        post_message(&self.client, &self.endpoint, &self.headers, body).await
    }

    fn session_survives(&self, err: &CallError) -> bool {
        self.reader.lost.is_none() && !matches!(err, CallError::SessionLost { .. })
    }

    async fn close(self) {
        // Dropping the stream closes its connection, which ends the session in the server.
    }
}
