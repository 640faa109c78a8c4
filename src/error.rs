//! Errors: what can go wrong in one call (`CallError`, counted by kind in the figures) and
//! what ends a whole command (`Error`, mapped to an exit code by the CLI).
//!
//! Every variant is something a user can act on; the messages name the flag, file or key
//! and what to try. Nothing here prints.

use std::time::Duration;

/// Why one MCP exchange failed. Counted by [`ErrorKind`] in the figures, with samples.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    #[error("connection refused by {addr}: nothing is listening on that port")]
    ConnectRefused { addr: String },
    #[error("cannot resolve host {host}: {detail}")]
    Dns { host: String, detail: String },
    #[error("no answer within {after:?}")]
    Timeout { after: Duration },
    #[error("TLS handshake failed: {detail}")]
    Tls { detail: String },
    #[error("HTTP {status}{}: {body}", www_authenticate.as_deref().map(|w| format!(" (WWW-Authenticate: {w})")).unwrap_or_default())]
    HttpStatus {
        status: u16,
        body: String,
        www_authenticate: Option<String>,
    },
    #[error("JSON-RPC error {code}: {message}")]
    JsonRpc { code: i64, message: String },
    #[error("tool returned isError: {text}")]
    ToolError { text: String },
    #[error("protocol violation: {detail}")]
    Protocol { detail: String },
    /// The session is gone: HTTP 404 for our `Mcp-Session-Id`, or the stream or socket that
    /// carried it (legacy SSE, WebSocket) ended.
    #[error("the server no longer knows our session ({detail})")]
    SessionLost { detail: String },
    /// The server does not speak the protocol revision we asked for.
    #[error("the server does not speak protocol revision {revision}: {detail}")]
    RevisionRefused { revision: String, detail: String },
    /// A custom WebSocket framing's hello exchange was answered with something else.
    #[error("the hello exchange was refused: {detail}")]
    HelloRefused { detail: String },
    #[error("server process exited{}", code.map(|c| format!(" with code {c}")).unwrap_or_else(|| " (killed by a signal)".into()))]
    ProcessExited {
        code: Option<i32>,
        stderr_tail: Vec<String>,
    },
    #[error("cannot start `{command}`: {detail}")]
    Spawn { command: String, detail: String },
    #[error("connection failed: {detail}")]
    Connection { detail: String },
    /// The answer came, on time, and was wrong: a scenario check or literal failed.
    #[error("wrong answer: {detail}")]
    WrongAnswer { detail: String },
    /// `structuredContent` does not match the tool's declared `outputSchema`.
    #[error("structuredContent does not match the tool's outputSchema: {detail}")]
    SchemaMismatch { detail: String },
}

/// The class of a failed call, as it appears in the report's error taxonomy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    ConnectRefused,
    Dns,
    Timeout,
    Tls,
    HttpStatus(u16),
    JsonRpc(i64),
    ToolError,
    Protocol,
    SessionLost,
    RevisionRefused,
    HelloRefused,
    ProcessExited,
    Spawn,
    Connection,
    WrongAnswer,
    SchemaMismatch,
}

impl ErrorKind {
    /// The stable key used in reports and criteria (`errors{kind=timeout}`).
    pub fn key(&self) -> String {
        match self {
            ErrorKind::ConnectRefused => "connect_refused".into(),
            ErrorKind::Dns => "dns".into(),
            ErrorKind::Timeout => "timeout".into(),
            ErrorKind::Tls => "tls".into(),
            ErrorKind::HttpStatus(s) => format!("http_{s}"),
            ErrorKind::JsonRpc(c) => format!("jsonrpc_{c}"),
            ErrorKind::ToolError => "tool_error".into(),
            ErrorKind::Protocol => "protocol".into(),
            ErrorKind::SessionLost => "session_lost".into(),
            ErrorKind::RevisionRefused => "revision_refused".into(),
            ErrorKind::HelloRefused => "hello_refused".into(),
            ErrorKind::ProcessExited => "process_exited".into(),
            ErrorKind::Spawn => "spawn".into(),
            ErrorKind::Connection => "connection".into(),
            ErrorKind::WrongAnswer => "wrong_answer".into(),
            ErrorKind::SchemaMismatch => "schema_mismatch".into(),
        }
    }

    /// The family a key belongs to, so `errors{kind=http_status}` can match every status
    /// and `errors{kind=wrong_answer}` counts schema mismatches too.
    pub fn family(&self) -> &'static str {
        match self {
            ErrorKind::HttpStatus(_) => "http_status",
            ErrorKind::JsonRpc(_) => "jsonrpc",
            ErrorKind::SchemaMismatch => "wrong_answer",
            _ => "",
        }
    }
}

impl CallError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CallError::ConnectRefused { .. } => ErrorKind::ConnectRefused,
            CallError::Dns { .. } => ErrorKind::Dns,
            CallError::Timeout { .. } => ErrorKind::Timeout,
            CallError::Tls { .. } => ErrorKind::Tls,
            CallError::HttpStatus { status, .. } => ErrorKind::HttpStatus(*status),
            CallError::JsonRpc { code, .. } => ErrorKind::JsonRpc(*code),
            CallError::ToolError { .. } => ErrorKind::ToolError,
            CallError::Protocol { .. } => ErrorKind::Protocol,
            CallError::SessionLost { .. } => ErrorKind::SessionLost,
            CallError::RevisionRefused { .. } => ErrorKind::RevisionRefused,
            CallError::HelloRefused { .. } => ErrorKind::HelloRefused,
            CallError::ProcessExited { .. } => ErrorKind::ProcessExited,
            CallError::Spawn { .. } => ErrorKind::Spawn,
            CallError::Connection { .. } => ErrorKind::Connection,
            CallError::WrongAnswer { .. } => ErrorKind::WrongAnswer,
            CallError::SchemaMismatch { .. } => ErrorKind::SchemaMismatch,
        }
    }
}

/// What ends a command, and the exit code it maps to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad flags or a bad scenario: exit 2. The message names the file, key or flag.
    #[error("{0}")]
    Usage(String),
    /// The target could not be reached, started or spoken to: exit 3.
    #[error("{0}")]
    Target(crate::check::Diagnosis),
    /// Writing the report or logs failed: exit 2 (the user fixes a path or permission).
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Io { .. } => 2,
            Error::Target(_) => 3,
        }
    }
}

/// Cut a server's text to a length that fits in one report line, on a char boundary.
pub fn excerpt(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.len() <= max {
        return flat.to_string();
    }
    let mut end = max;
    while !flat.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &flat[..end], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable() {
        assert_eq!(ErrorKind::HttpStatus(503).key(), "http_503");
        assert_eq!(ErrorKind::JsonRpc(-32602).key(), "jsonrpc_-32602");
        assert_eq!(
            CallError::Timeout {
                after: Duration::from_secs(1)
            }
            .kind()
            .key(),
            "timeout"
        );
    }

    #[test]
    fn excerpt_cuts_on_char_boundary() {
        let s = "é".repeat(100);
        let e = excerpt(&s, 11);
        assert!(e.starts_with("ééééé"));
        assert!(e.ends_with("(200 bytes)"));
        assert_eq!(excerpt("short\nline", 50), "short line");
    }
}
