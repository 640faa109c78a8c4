//! Writing a trace during a run (`run --record FILE`): every Nth workload session
//! (`--record-every`, default every one) has its messages written as they happen, until the
//! file reaches `--record-max` (default 100 MB); past that nothing more is written and the
//! report says so. Probe, ledger and monitoring sessions are not recorded.
//!
//! The handshake is written as mcpstorm saw it: the `initialize` request it sent and the
//! result as parsed (protocolVersion, capabilities, serverInfo, instructions). Costs nothing
//! when recording is off: the workload holds no writer then.

use super::{FORMAT, Header, VERSION};
use crate::error::CallError;
use crate::session::ServerInfo;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct RecordOptions {
    pub path: PathBuf,
    /// Record one session in this many (1: all).
    pub every: u64,
    /// Stop writing past this many bytes.
    pub max_bytes: u64,
}

pub struct TraceWriter {
    file: Mutex<std::io::BufWriter<std::fs::File>>,
    path: PathBuf,
    started: Instant,
    every: u64,
    max_bytes: u64,
    bytes: AtomicU64,
    messages: AtomicU64,
    sessions_seen: AtomicU64,
    sessions_recorded: AtomicU64,
    truncated: AtomicBool,
}

/// One recorded session, held by the virtual user that owns it.
#[derive(Debug)]
pub struct TraceSession {
    pub id: u64,
    /// Mirrors the session's own request ids (1 was `initialize`).
    next_id: u64,
}

impl TraceWriter {
    pub fn create(opts: &RecordOptions, header: &Header) -> Result<TraceWriter, String> {
        let file = std::fs::File::create(&opts.path).map_err(|e| {
            format!(
                "--record {}: cannot create the file: {e}",
                opts.path.display()
            )
        })?;
        let w = TraceWriter {
            file: Mutex::new(std::io::BufWriter::new(file)),
            path: opts.path.clone(),
            started: Instant::now(),
            every: opts.every.max(1),
            max_bytes: opts.max_bytes,
            bytes: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            sessions_seen: AtomicU64::new(0),
            sessions_recorded: AtomicU64::new(0),
            truncated: AtomicBool::new(false),
        };
        w.write(&serde_json::to_value(header).unwrap_or(Value::Null), true);
        Ok(w)
    }

    pub fn header(target: &str, transport: &str, info: &ServerInfo) -> Header {
        Header {
            format: FORMAT.into(),
            version: VERSION,
            tool_version: env!("CARGO_PKG_VERSION").into(),
            target: target.into(),
            transport: transport.into(),
            protocol_version: info.protocol_version.clone(),
            server: json!({"name": info.name, "version": info.version}),
            started_at: crate::report::now_rfc3339(),
        }
    }

    fn t(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn write(&self, line: &Value, always: bool) {
        if self.truncated.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut bytes) = serde_json::to_vec(line) else {
            return;
        };
        bytes.push(b'\n');
        let total =
            self.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed) + bytes.len() as u64;
        if !always && total > self.max_bytes {
            self.truncated.store(true, Ordering::Relaxed);
            return;
        }
        if let Ok(mut f) = self.file.lock()
            && f.write_all(&bytes).is_ok()
        {
            self.messages.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A workload session was opened at `opened_at`: record it if it is one in `every`.
    pub fn session_opened(&self, info: &ServerInfo, opened_at: Instant) -> Option<TraceSession> {
        let n = self.sessions_seen.fetch_add(1, Ordering::Relaxed);
        if !n.is_multiple_of(self.every) || self.truncated.load(Ordering::Relaxed) {
            return None;
        }
        let id = self.sessions_recorded.fetch_add(1, Ordering::Relaxed);
        let sent = opened_at
            .saturating_duration_since(self.started)
            .as_secs_f64();
        let params = json!({"protocolVersion": info.protocol_version, "capabilities": {},
            "clientInfo": {"name": "mcpstorm", "version": env!("CARGO_PKG_VERSION")}});
        let mut result = json!({"protocolVersion": info.protocol_version, "capabilities": info.capabilities,
            "serverInfo": {"name": info.name, "version": info.version}});
        if let Some(i) = &info.instructions {
            result["instructions"] = json!(i);
        }
        let t = self.t();
        self.write(
            &json!({"session": id, "dir": "send", "t": sent,
            "msg": {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}}),
            false,
        );
        self.write(
            &json!({"session": id, "dir": "recv", "t": t,
            "msg": {"jsonrpc": "2.0", "id": 1, "result": result}}),
            false,
        );
        self.write(
            &json!({"session": id, "dir": "send", "t": t,
            "msg": {"jsonrpc": "2.0", "method": "notifications/initialized"}}),
            false,
        );
        Some(TraceSession { id, next_id: 2 })
    }

    /// One request of a recorded session, sent at `sent` and answered (or not) now.
    pub fn exchange(
        &self,
        s: &mut TraceSession,
        method: &str,
        params: Option<&Value>,
        sent: Instant,
        answer: &Result<Value, CallError>,
    ) {
        let id = s.next_id;
        s.next_id += 1;
        let sent_t = sent.saturating_duration_since(self.started).as_secs_f64();
        let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if let Some(p) = params {
            msg["params"] = p.clone();
        }
        self.write(
            &json!({"session": s.id, "dir": "send", "t": sent_t, "msg": msg}),
            false,
        );
        let t = self.t();
        let line = match answer {
            Ok(result) => json!({"session": s.id, "dir": "recv", "t": t,
                "msg": {"jsonrpc": "2.0", "id": id, "result": result}}),
            Err(CallError::JsonRpc { code, message }) => {
                json!({"session": s.id, "dir": "recv", "t": t,
                "msg": {"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}})
            }
            Err(e) => json!({"session": s.id, "dir": "fail", "t": t, "id": id,
                "kind": e.kind().key(), "message": e.to_string()}),
        };
        self.write(&line, false);
    }

    /// Flush the file; a warning when it was cut at its size limit.
    pub fn finish(&self) -> Option<String> {
        if let Ok(mut f) = self.file.lock() {
            let _ = f.flush();
        }
        self.truncated.load(Ordering::Relaxed).then(|| {
            format!(
                "the trace {} reached --record-max ({} bytes) and was cut after {} messages; later traffic is not in it",
                self.path.display(),
                self.max_bytes,
                self.messages.load(Ordering::Relaxed)
            )
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn sessions_recorded(&self) -> u64 {
        self.sessions_recorded.load(Ordering::Relaxed)
    }
}
