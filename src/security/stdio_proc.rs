//! One stdio server process driven by hand for the probes: the handshake, raw lines in,
//! lines out, requests matched by id (answering the server's own requests on the way), and
//! the stdio health check, a ping on that same process.
//!
//! It never retries and never outlives its caller: `close` ends the process group.

use super::wire::{initialize_body, rpc};
use crate::error::{CallError, excerpt};
use crate::session::ServerInfo;
use crate::transport::stdio::StdioTransport;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// One stdio server process driven by hand: raw lines in, lines out, pings.
pub(crate) struct StdioProc {
    t: StdioTransport,
    next_id: u64,
    pub info: ServerInfo,
}

impl StdioProc {
    /// Shake hands on a freshly spawned process (`initialize`, then `initialized`).
    pub(crate) async fn start(
        t: StdioTransport,
        startup: Duration,
    ) -> Result<StdioProc, CallError> {
        let mut p = StdioProc {
            t,
            next_id: 1,
            info: ServerInfo::default(),
        };
        let version = crate::session::SUPPORTED_VERSIONS[0];
        let init = tokio::time::timeout(startup, async {
            p.t.write_line_raw(&initialize_body(version)).await?;
            p.read_answer(&json!(1), startup).await
        })
        .await
        .map_err(|_| CallError::Timeout { after: startup })??;
        if let Some(e) = init.get("error") {
            return Err(CallError::JsonRpc {
                code: e["code"].as_i64().unwrap_or(0),
                message: e["message"].as_str().unwrap_or("").to_string(),
            });
        }
        p.info = crate::session::parse_initialize(&init["result"])?;
        p.t.write_line_raw(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await?;
        p.next_id = 2;
        Ok(p)
    }

    /// Write one line exactly as given.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), CallError> {
        self.t.write_line_raw(bytes).await
    }

    /// The next line within `within`, if any.
    pub async fn next_line(&mut self, within: Duration) -> Result<Option<Vec<u8>>, CallError> {
        self.t.read_line_within(within).await
    }

    /// Read until the answer to `id` (answering the server's own requests on the way).
    async fn read_answer(&mut self, id: &Value, within: Duration) -> Result<Value, CallError> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = self.t.read_line_within(left).await? else {
                return Err(CallError::Timeout { after: within });
            };
            let Ok(msg) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            if msg.get("id") == Some(id) && msg.get("method").is_none() {
                return Ok(msg);
            }
            if let (Some(sid), Some(m)) = (msg.get("id"), msg.get("method").and_then(Value::as_str))
            {
                let answer = crate::jsonrpc::answer_server_request(sid, m);
                self.t
                    .write_line_raw(&serde_json::to_vec(&answer).unwrap_or_default())
                    .await?;
            }
        }
    }

    /// Send a request and return the whole answer message (`result` or `error`).
    pub async fn request(
        &mut self,
        method: &str,
        params: Option<Value>,
        within: Duration,
    ) -> Result<Value, CallError> {
        let id = json!(self.next_id);
        self.next_id += 1;
        self.t
            .write_line_raw(&rpc(id.clone(), method, params))
            .await?;
        self.read_answer(&id, within).await
    }

    /// The stdio health check: a ping on this same process, answered within `within`.
    pub async fn ping(&mut self, within: Duration) -> Result<Duration, CallError> {
        let started = Instant::now();
        let m = self.request("ping", None, within).await?;
        match m.get("result") {
            Some(_) => Ok(started.elapsed()),
            None => Err(CallError::Protocol {
                detail: format!("ping answered with {}", excerpt(&m.to_string(), 200)),
            }),
        }
    }

    pub async fn exited(&mut self) -> Option<CallError> {
        self.t.exit_if_ended().await
    }

    pub async fn close(self) {
        crate::transport::Transport::close(self.t).await;
    }
}
