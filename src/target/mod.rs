//! The target: which server to reach and how. Opens sessions for the workload (`Connector`)
//! and starts the embedded reference server when no other target is named.
//!
//! It never decides what to send; it only knows how to get a live session. Starting and
//! supervising a server process lives in `launch`.

pub mod launch;

use crate::error::CallError;
use crate::session::{Protocol, Session};
use crate::transport::framing::Framing;
use crate::transport::http::HttpTransport;
use crate::transport::legacy_sse::LegacySseTransport;
use crate::transport::mcp_param::ParamHeaders;
use crate::transport::stdio::{StderrLog, StdioSpec, StdioTransport};
use crate::transport::websocket::WebSocketTransport;
use crate::transport::{AnyTransport, http};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// A validated target, as the plan holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "transport", rename_all = "snake_case")]
pub enum TargetSpec {
    /// The reference server of this binary, over HTTP or stdio.
    Embedded {
        stdio: bool,
    },
    Stdio(StdioSpec),
    Http {
        url: String,
        #[serde(serialize_with = "redacted")]
        headers: BTreeMap<String, String>,
    },
    /// Legacy HTTP+SSE (2024-11-05): `GET` the event stream at `url`, POST to its endpoint.
    Sse {
        url: String,
        #[serde(serialize_with = "redacted")]
        headers: BTreeMap<String, String>,
    },
    /// WebSocket: JSON-RPC text frames, or a custom envelope.
    #[serde(rename = "websocket")]
    WebSocket {
        url: String,
        #[serde(serialize_with = "redacted")]
        headers: BTreeMap<String, String>,
        #[serde(serialize_with = "shown_framing")]
        framing: Option<Arc<Framing>>,
    },
}

fn shown_framing<S: serde::Serializer>(f: &Option<Arc<Framing>>, s: S) -> Result<S::Ok, S::Error> {
    f.as_ref().map(|f| &f.shown).serialize(s)
}

fn redacted<S: serde::Serializer>(h: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
    let shown: BTreeMap<&str, String> = h
        .iter()
        .map(|(k, v)| {
            let secret =
                ["authorization", "cookie", "x-api-key"].contains(&k.to_ascii_lowercase().as_str());
            (
                k.as_str(),
                if secret {
                    "<redacted>".to_string()
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    shown.serialize(s)
}

impl TargetSpec {
    /// Parse `--target`: `embedded`, `embedded-stdio`, an http(s) URL (Streamable HTTP),
    /// `sse+http(s)://...` (legacy HTTP+SSE), a ws(s) URL, or `stdio:COMMAND ARGS`.
    pub fn parse_flag(s: &str, headers: &[String]) -> Result<TargetSpec, String> {
        let headers = parse_headers(headers)?;
        if s == "embedded" {
            return Ok(TargetSpec::Embedded { stdio: false });
        }
        if s == "embedded-stdio" {
            return Ok(TargetSpec::Embedded { stdio: true });
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            reqwest::Url::parse(s)
                .map_err(|e| format!("--target `{s}` is not a valid URL: {e}"))?;
            return Ok(TargetSpec::Http {
                url: s.to_string(),
                headers,
            });
        }
        if let Some(url) = s.strip_prefix("sse+") {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "--target `{s}`: after `sse+` comes the SSE stream's http(s) URL, like sse+http://127.0.0.1:3001/sse"
                ));
            }
            reqwest::Url::parse(url)
                .map_err(|e| format!("--target `{s}` is not a valid URL: {e}"))?;
            return Ok(TargetSpec::Sse {
                url: url.to_string(),
                headers,
            });
        }
        if s.starts_with("ws://") || s.starts_with("wss://") {
            reqwest::Url::parse(s)
                .map_err(|e| format!("--target `{s}` is not a valid URL: {e}"))?;
            return Ok(TargetSpec::WebSocket {
                url: s.to_string(),
                headers,
                framing: None,
            });
        }
        if let Some(cmd) = s.strip_prefix("stdio:") {
            let words = shlex::split(cmd)
                .ok_or_else(|| format!("--target `{s}`: the command has unbalanced quotes"))?;
            let (command, args) = words.split_first().ok_or_else(|| {
                format!(
                    "--target `{s}`: no command after `stdio:` (example: stdio:python3 server.py)"
                )
            })?;
            return Ok(TargetSpec::Stdio(StdioSpec {
                command: command.clone(),
                args: args.to_vec(),
                env: BTreeMap::new(),
                cwd: None,
            }));
        }
        Err(format!(
            "--target `{s}` is not a target: expected `embedded`, `embedded-stdio`, an http(s):// URL (Streamable HTTP), sse+http(s)://HOST/sse (legacy HTTP+SSE), a ws(s):// URL (WebSocket), or `stdio:COMMAND ARGS`"
        ))
    }

    pub fn transport_name(&self) -> &'static str {
        match self {
            TargetSpec::Embedded { stdio: true } | TargetSpec::Stdio(_) => "stdio",
            TargetSpec::Embedded { stdio: false } | TargetSpec::Http { .. } => "streamable_http",
            TargetSpec::Sse { .. } => "sse",
            TargetSpec::WebSocket { .. } => "websocket",
        }
    }

    /// The URL of a network target (not stdio, not embedded).
    pub fn url(&self) -> Option<&str> {
        match self {
            TargetSpec::Http { url, .. }
            | TargetSpec::Sse { url, .. }
            | TargetSpec::WebSocket { url, .. } => Some(url),
            _ => None,
        }
    }

    /// The same target at another URL (a fault proxy in front of it).
    pub fn with_url(&self, new: String) -> TargetSpec {
        let mut t = self.clone();
        if let TargetSpec::Http { url, .. }
        | TargetSpec::Sse { url, .. }
        | TargetSpec::WebSocket { url, .. } = &mut t
        {
            *url = new;
        }
        t
    }

    pub fn describe(&self) -> String {
        match self {
            TargetSpec::Embedded { stdio: false } => "embedded reference server (HTTP)".into(),
            TargetSpec::Embedded { stdio: true } => "embedded reference server (stdio)".into(),
            TargetSpec::Stdio(s) => format!("stdio: {}", s.display()),
            TargetSpec::Http { url, .. } => url.clone(),
            TargetSpec::Sse { url, .. } => format!("sse+{url}"),
            TargetSpec::WebSocket { url, framing, .. } => match framing {
                Some(_) => format!("{url} (custom framing)"),
                None => url.clone(),
            },
        }
    }
}

/// `Name: value` header flags into a map; the error names the flag.
pub fn parse_headers(raw: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for h in raw {
        let Some((k, v)) = h.split_once(':') else {
            return Err(format!("--header `{h}` has no `:`; expected `Name: value`"));
        };
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

pub fn header_map(headers: &BTreeMap<String, String>, key: &str) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("{key}: `{k}` is not a valid HTTP header name"))?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| format!("{key}: the value of `{k}` is not a valid HTTP header value"))?;
        map.insert(name, value);
    }
    Ok(map)
}

/// The reference server started as a child process of this run; ended on drop.
pub struct EmbeddedServer {
    child: tokio::process::Child,
    pub url: String,
}

impl EmbeddedServer {
    pub async fn start(exe: &Path, log: Option<&Path>) -> Result<EmbeddedServer, CallError> {
        let mut cmd = tokio::process::Command::new(exe);
        cmd.args(["serve", "--host", "127.0.0.1", "--port", "0"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        match log.map(std::fs::File::create) {
            Some(Ok(f)) => cmd.stderr(f),
            _ => cmd.stderr(std::process::Stdio::null()),
        };
        let command = format!("{} serve --port 0", exe.display());
        let mut child = cmd.spawn().map_err(|e| CallError::Spawn {
            command: command.clone(),
            detail: e.to_string(),
        })?;
        let stdout = child.stdout.take().ok_or_else(|| CallError::Spawn {
            command: command.clone(),
            detail: "no stdout pipe".into(),
        })?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
        let url = match first {
            Ok(Ok(Some(line))) => line.split("listening on ").nth(1).map(str::to_string),
            _ => None,
        };
        match url {
            Some(url) => Ok(EmbeddedServer { child, url }),
            None => {
                let code = child.try_wait().ok().flatten().and_then(|s| s.code());
                let _ = child.kill().await;
                Err(CallError::ProcessExited {
                    code,
                    stderr_tail: vec![],
                })
            }
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// The embedded reference server over stdio: `EXE serve --stdio`, one process per session.
pub fn embedded_stdio(exe: &Path) -> StdioSpec {
    StdioSpec {
        command: exe.display().to_string(),
        args: vec!["serve".into(), "--stdio".into()],
        env: Default::default(),
        cwd: None,
    }
}

/// A target sessions can reach, for the commands that do not supervise a server (`check`,
/// `probe`, `replay`): the embedded HTTP server is started, and ended when the returned
/// server is dropped; the embedded stdio server becomes its command; the rest as given.
pub async fn resolve_embedded(
    target: &TargetSpec,
    exe: &Path,
) -> Result<(TargetSpec, Option<EmbeddedServer>), CallError> {
    Ok(match target {
        TargetSpec::Embedded { stdio: false } => {
            let server = EmbeddedServer::start(exe, None).await?;
            let spec = TargetSpec::Http {
                url: server.url.clone(),
                headers: Default::default(),
            };
            (spec, Some(server))
        }
        TargetSpec::Embedded { stdio: true } => (TargetSpec::Stdio(embedded_stdio(exe)), None),
        other => (other.clone(), None),
    })
}

/// Where a stdio target's stderr goes: `OUT/target-stderr.log` (its lines also explain a
/// failed handshake); other targets have none.
pub fn stderr_log_for(
    target: &TargetSpec,
    out: &Path,
) -> Result<Arc<StderrLog>, crate::error::Error> {
    match target {
        TargetSpec::Stdio(_) => {
            let path = out.join("target-stderr.log");
            StderrLog::to_file(&path)
                .map(Arc::new)
                .map_err(|source| crate::error::Error::Io {
                    what: format!("creating {}", path.display()),
                    source,
                })
        }
        _ => Ok(Arc::new(StderrLog::default())),
    }
}

/// Where the reference server binary is: `MCPSTORM_EXE`, else this executable.
pub fn server_exe(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("MCPSTORM_EXE") {
        return PathBuf::from(p);
    }
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("mcpstorm"))
}

enum Wire {
    Stdio(StdioSpec),
    Http {
        client: reqwest::Client,
        url: reqwest::Url,
        headers: HeaderMap,
        /// `x-mcp-header` annotations every session learns from and sends by.
        params: Arc<ParamHeaders>,
    },
    Sse {
        client: reqwest::Client,
        url: reqwest::Url,
        headers: HeaderMap,
    },
    WebSocket {
        url: reqwest::Url,
        headers: HeaderMap,
        framing: Option<Arc<Framing>>,
    },
}

/// Opens sessions to one target. Shared by every virtual user of a run.
pub struct Connector {
    wire: Wire,
    /// What sessions speak; `auto` becomes the revision found by the first session.
    protocol: std::sync::Mutex<Protocol>,
    handshake_timeout: Duration,
    stderr_log: Arc<StderrLog>,
    opened: AtomicU64,
    /// Sessions mcpstorm opened for its own questions (the health probe, the ledger's
    /// read-backs): counted apart so that watching a run does not change its figures.
    monitor_opened: AtomicU64,
    /// Numbers every session, of either kind, to tag a stdio server's stderr lines.
    tags: AtomicU64,
}

impl Connector {
    /// `spec` must not be `Embedded` any more: the caller resolved it to what it started.
    pub fn new(
        spec: &TargetSpec,
        protocol: &Protocol,
        handshake_timeout: Duration,
        stderr_log: Arc<StderrLog>,
        pool_size: usize,
    ) -> Result<Connector, String> {
        let wire = match spec {
            TargetSpec::Stdio(s) => Wire::Stdio(s.clone()),
            TargetSpec::Http { url, headers } => Wire::Http {
                client: http::client(pool_size),
                url: reqwest::Url::parse(url).map_err(|e| format!("target url `{url}`: {e}"))?,
                headers: header_map(headers, "target headers")?,
                params: Arc::default(),
            },
            TargetSpec::Sse { url, headers } => Wire::Sse {
                client: http::client(pool_size),
                url: reqwest::Url::parse(url).map_err(|e| format!("target url `{url}`: {e}"))?,
                headers: header_map(headers, "target headers")?,
            },
            TargetSpec::WebSocket {
                url,
                headers,
                framing,
            } => Wire::WebSocket {
                url: reqwest::Url::parse(url).map_err(|e| format!("target url `{url}`: {e}"))?,
                headers: header_map(headers, "target headers")?,
                framing: framing.clone(),
            },
            TargetSpec::Embedded { .. } => {
                return Err("internal: the embedded target must be started first".into());
            }
        };
        Ok(Connector {
            wire,
            protocol: std::sync::Mutex::new(protocol.clone()),
            handshake_timeout,
            stderr_log,
            opened: AtomicU64::new(0),
            monitor_opened: AtomicU64::new(0),
            tags: AtomicU64::new(0),
        })
    }

    /// Open a session of the workload (or the preflight): transport and handshake.
    pub async fn open(&self) -> Result<Session, CallError> {
        self.opened.fetch_add(1, Ordering::Relaxed);
        self.open_session().await
    }

    /// Open a session for mcpstorm's own monitoring (probe, ledger read-back); it is not
    /// one of the run's `sessions_opened`.
    pub async fn open_monitor(&self) -> Result<Session, CallError> {
        self.monitor_opened.fetch_add(1, Ordering::Relaxed);
        self.open_session().await
    }

    /// Open a transport and start a session. With `auto`, the first session that starts
    /// settles the revision for every later one (one detection per run, not per session).
    async fn open_session(&self) -> Result<Session, CallError> {
        let n = self.tags.fetch_add(1, Ordering::Relaxed) + 1;
        let protocol = self.protocol();
        let transport = match &self.wire {
            Wire::Stdio(spec) => {
                AnyTransport::Stdio(StdioTransport::spawn(spec, self.stderr_log.clone(), n).await?)
            }
            Wire::Http {
                client,
                url,
                headers,
                params,
            } => AnyTransport::Http(HttpTransport::new(
                client.clone(),
                url.clone(),
                headers.clone(),
                params.clone(),
            )),
            Wire::Sse {
                client,
                url,
                headers,
            } => AnyTransport::LegacySse(
                LegacySseTransport::connect(
                    client.clone(),
                    url.clone(),
                    headers.clone(),
                    self.handshake_timeout,
                )
                .await?,
            ),
            Wire::WebSocket {
                url,
                headers,
                framing,
            } => AnyTransport::WebSocket(
                WebSocketTransport::connect(url, headers, framing.clone(), self.handshake_timeout)
                    .await?,
            ),
        };
        let session = Session::open(transport, &protocol, self.handshake_timeout).await?;
        if protocol == Protocol::Auto
            && let Ok(mut p) = self.protocol.lock()
        {
            *p = Protocol::Revision(session.info.protocol_version.clone());
        }
        Ok(session)
    }

    /// What the next session will speak (`auto` until the first session settled it).
    pub fn protocol(&self) -> Protocol {
        self.protocol
            .lock()
            .map(|p| p.clone())
            .unwrap_or(Protocol::Auto)
    }

    pub fn sessions_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    pub fn monitor_sessions_opened(&self) -> u64 {
        self.monitor_opened.load(Ordering::Relaxed)
    }

    pub fn flush_logs(&self) {
        self.stderr_log.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_target_form() {
        assert_eq!(
            TargetSpec::parse_flag("embedded", &[]).unwrap(),
            TargetSpec::Embedded { stdio: false }
        );
        let TargetSpec::Stdio(s) =
            TargetSpec::parse_flag("stdio:python3 'my server.py' -v", &[]).unwrap()
        else {
            panic!("not stdio")
        };
        assert_eq!(s.command, "python3");
        assert_eq!(s.args, vec!["my server.py", "-v"]);
        let h = vec!["Authorization: Bearer abc".to_string()];
        let TargetSpec::Http { headers, .. } =
            TargetSpec::parse_flag("http://127.0.0.1:1/mcp", &h).unwrap()
        else {
            panic!("not http")
        };
        assert_eq!(headers["Authorization"], "Bearer abc");
        let err = TargetSpec::parse_flag("server.py", &[]).unwrap_err();
        assert!(err.contains("--target"), "{err}");
        assert!(
            TargetSpec::parse_flag("stdio:", &[])
                .unwrap_err()
                .contains("no command")
        );
        assert!(
            parse_headers(&["NoColon".into()])
                .unwrap_err()
                .contains("--header")
        );
    }

    #[test]
    fn secrets_are_redacted_in_reports() {
        let mut headers = BTreeMap::new();
        headers.insert("Authorization".to_string(), "Bearer secret".to_string());
        let spec = TargetSpec::Http {
            url: "http://127.0.0.1:1/mcp".into(),
            headers,
        };
        let json = serde_json::to_string(&spec).unwrap();
        assert!(!json.contains("secret"), "{json}");
    }
}
