//! Preflight (`mcpstorm check`): reach the target, shake hands, list what it offers; and the
//! diagnosis that turns a failed first contact into one root cause in plain words plus what
//! to try. `run` uses the same diagnosis before it starts any load, so a run against a dead
//! target ends in seconds with exit 3 instead of "0/150 calls successful". The ledger of
//! acknowledged writes lives in `ledger`; response checks (is each answer right?) in `answer`,
//! with their expression language in `expr`.

pub mod answer;
pub mod expr;
pub mod ledger;

use crate::error::CallError;
use crate::session::Session;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// One root cause, and what to try.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub target: String,
    pub cause: String,
    pub details: Vec<String>,
    pub advice: String,
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "cannot use target {}", self.target)?;
        writeln!(f, "  cause: {}", self.cause)?;
        for d in &self.details {
            writeln!(f, "         {d}")?;
        }
        write!(f, "  try:   {}", self.advice)
    }
}

pub fn diagnose(target: &str, err: &CallError, timeout: Duration) -> Diagnosis {
    let mut details = Vec::new();
    let (cause, advice) = match err {
        CallError::ConnectRefused { addr } => (
            format!("connection refused: nothing is listening on {addr}"),
            "start the server first, or check the host and port in the URL".to_string(),
        ),
        CallError::Dns { host, detail } => {
            details.push(detail.clone());
            (format!("DNS: the host name `{host}` does not resolve"), "check the host name; for a local server use 127.0.0.1".into())
        }
        CallError::Timeout { .. } => (
            format!("timeout: no answer to `initialize` within {timeout:?}"),
            "the server took the connection but did not answer: check its log for a startup hang, or raise the timeout (--timeout / workload.timeout)".into(),
        ),
        CallError::Tls { detail } => {
            details.push(detail.clone());
            ("TLS: the secure connection could not be set up".into(), "use http:// if the server speaks plain HTTP, or fix its certificate".into())
        }
        CallError::HttpStatus { status, body, www_authenticate } => {
            if !body.is_empty() {
                details.push(format!("body: {body}"));
            }
            if let Some(w) = www_authenticate {
                details.push(format!("WWW-Authenticate: {w}"));
            }
            match status {
                401 => ("HTTP 401 Unauthorized: the server wants credentials".into(), "pass a token with --header 'Authorization: Bearer TOKEN' (or target.headers in the scenario)".into()),
                403 => ("HTTP 403 Forbidden: the credentials were refused, or the Origin/Host is not allowed".into(), "check the token's scope and audience, and the server's allowed hosts".into()),
                404 => ("HTTP 404: no MCP endpoint at this path".into(), "check the path in the URL; most servers serve Streamable HTTP at /mcp; a legacy HTTP+SSE server is reached with --target sse+http://HOST:PORT/sse (transport = \"sse\")".into()),
                405 => ("HTTP 405: the endpoint does not accept POST".into(), "this may be a legacy HTTP+SSE endpoint: use --target sse+http://HOST:PORT/sse (transport = \"sse\"), or point at the Streamable HTTP endpoint, usually /mcp".into()),
                406 => ("HTTP 406: the server did not accept our Accept header".into(), "the server should accept `application/json, text/event-stream` per the spec; check its version".into()),
                s if *s >= 500 => (format!("HTTP {s}: the server failed while handling initialize"), "look at the server's log for the error".into()),
                s => (format!("HTTP {s} in answer to initialize"), "check the URL and the server's log".into()),
            }
        }
        CallError::RevisionRefused { revision, detail } => (
            format!("the server does not speak protocol revision {revision}: {detail}"),
            "set protocol_version = \"auto\" (or --protocol-version auto) to use the revision it speaks, or name another; `mcpstorm run SCENARIO --protocol-matrix` shows every revision it accepts".into(),
        ),
        CallError::HelloRefused { detail } => (
            format!("the WebSocket framing's hello was refused: {detail}"),
            "check target.framing.token (and the environment variable it reads) and target.framing.hello.expect".into(),
        ),
        CallError::JsonRpc { code, message } => (
            format!("the server refused `initialize` with JSON-RPC error {code}: {message}"),
            "check that the server speaks MCP and which protocol version it wants (--protocol-version / target.protocol_version)".into(),
        ),
        CallError::Protocol { detail } if detail.contains("protocol version mismatch") => {
            (detail.clone(), "set target.protocol_version to a revision both sides speak".into())
        }
        CallError::Protocol { detail } if detail.contains("not JSON-RPC") => (
            format!("the server wrote something that is not JSON-RPC on stdout: {detail}"),
            "a stdio server must write only JSON-RPC messages to stdout; send logs and banners to stderr".into(),
        ),
        CallError::Protocol { detail } => (format!("protocol violation: {detail}"), "check that the target is an MCP server and its version".into()),
        CallError::ProcessExited { code, stderr_tail } => {
            details.extend(stderr_tail.iter().rev().take(8).rev().map(|l| format!("stderr: {l}")));
            let how = match code {
                Some(c) => format!("with code {c}"),
                None => "killed by a signal".into(),
            };
            (format!("the server process exited {how} before answering"), "run the command by hand to see why it stops; its last stderr lines are above".into())
        }
        CallError::Spawn { command, detail } => (format!("cannot start `{command}`: {detail}"), "check the command and its path".into()),
        CallError::SessionLost { .. }
        | CallError::Connection { .. }
        | CallError::ToolError { .. }
        | CallError::WrongAnswer { .. }
        | CallError::SchemaMismatch { .. } => {
            (err.to_string(), "check the server's log".into())
        }
    };
    Diagnosis {
        target: target.to_string(),
        cause,
        details,
        advice,
    }
}

/// What `check` learned: the server and everything it lists.
pub struct Inventory {
    pub tools: Vec<Value>,
    pub resources: Vec<Value>,
    pub prompts: Vec<Value>,
}

/// List a paginated collection (`tools/list` → `tools`), up to a sane number of pages.
pub async fn list_all(
    session: &mut Session,
    method: &str,
    field: &str,
    timeout: Duration,
) -> Result<Vec<Value>, CallError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let params = cursor.as_ref().map(|c| serde_json::json!({"cursor": c}));
        let result = session.call(method, params.as_ref(), timeout).await?;
        if let Some(items) = result.get(field).and_then(Value::as_array) {
            out.extend(items.iter().cloned());
        }
        match result.get("nextCursor").and_then(Value::as_str) {
            Some(c) if !c.is_empty() => cursor = Some(c.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

pub async fn inventory(session: &mut Session, timeout: Duration) -> Result<Inventory, CallError> {
    let caps = session.info.capabilities.clone();
    let has = |k: &str| caps.get(k).is_some();
    Ok(Inventory {
        tools: if has("tools") {
            list_all(session, "tools/list", "tools", timeout).await?
        } else {
            vec![]
        },
        resources: if has("resources") {
            list_all(session, "resources/list", "resources", timeout).await?
        } else {
            vec![]
        },
        prompts: if has("prompts") {
            list_all(session, "prompts/list", "prompts", timeout).await?
        } else {
            vec![]
        },
    })
}

/// The human-readable check output.
pub fn render(session: &Session, inv: &Inventory, with_schemas: bool) -> String {
    use std::fmt::Write;
    let i = &session.info;
    let mut s = String::new();
    let _ = writeln!(s, "server:    {} {}", i.name, i.version);
    let era = match i.era {
        crate::session::Era::Session => "session: initialize",
        crate::session::Era::Stateless => "stateless: server/discover, _meta on every request",
        crate::session::Era::Framing => "no MCP lifecycle: the framing's hello",
    };
    let _ = writeln!(s, "protocol:  {} ({era})", i.protocol_version);
    let caps: Vec<&str> = i
        .capabilities
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "capabilities: {}",
        if caps.is_empty() {
            "(none)".into()
        } else {
            caps.join(", ")
        }
    );
    let _ = writeln!(s, "\ntools ({}):", inv.tools.len());
    for t in &inv.tools {
        let name = t.get("name").and_then(Value::as_str).unwrap_or("?");
        let desc = t.get("description").and_then(Value::as_str).unwrap_or("");
        let _ = writeln!(s, "  {name}  {}", crate::error::excerpt(desc, 80));
        if let Some(a) = t.get("annotations").filter(|a| a.is_object()) {
            let _ = writeln!(s, "    annotations: {a}");
        }
        if let Some(line) = t
            .get("inputSchema")
            .and_then(crate::transport::mcp_param::describe)
        {
            let _ = writeln!(s, "    {line}");
        }
        if with_schemas && let Some(schema) = t.get("inputSchema") {
            let _ = writeln!(s, "    inputSchema: {schema}");
        }
    }
    let _ = writeln!(s, "\nresources ({}):", inv.resources.len());
    for r in &inv.resources {
        let uri = r.get("uri").and_then(Value::as_str).unwrap_or("?");
        let name = r.get("name").and_then(Value::as_str).unwrap_or("");
        let _ = writeln!(s, "  {uri}  {name}");
    }
    let _ = writeln!(s, "\nprompts ({}):", inv.prompts.len());
    for p in &inv.prompts {
        let name = p.get("name").and_then(Value::as_str).unwrap_or("?");
        let args: Vec<String> = p
            .get("arguments")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|x| {
                        let n = x.get("name").and_then(Value::as_str).unwrap_or("?");
                        if x.get("required").and_then(Value::as_bool) == Some(true) {
                            format!("{n}*")
                        } else {
                            n.to_string()
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let _ = writeln!(s, "  {name}({})", args.join(", "));
    }
    s
}

/// `mcpstorm check`: connect, handshake, list everything; the rendered inventory or a
/// diagnosis (exit 3).
pub async fn check(
    target: &crate::target::TargetSpec,
    protocol: &crate::session::Protocol,
    timeout: Duration,
    with_schemas: bool,
    server_exe: Option<&std::path::Path>,
) -> Result<String, crate::error::Error> {
    use crate::target::Connector;
    use crate::transport::stdio::StderrLog;
    let describe = target.describe();
    let fail = |e: &CallError| crate::error::Error::Target(diagnose(&describe, e, timeout));
    let exe = crate::target::server_exe(server_exe);
    let (resolved, _embedded) = crate::target::resolve_embedded(target, &exe)
        .await
        .map_err(|e| fail(&e))?;
    let connector = Connector::new(
        &resolved,
        protocol,
        timeout,
        std::sync::Arc::new(StderrLog::default()),
        1,
    )
    .map_err(crate::error::Error::Usage)?;
    let mut session = connector.open().await.map_err(|e| fail(&e))?;
    let inv = inventory(&mut session, timeout).await.map_err(|e| fail(&e));
    let text = inv.map(|inv| {
        format!(
            "target:    {describe}\n{}",
            render(&session, &inv, with_schemas)
        )
    });
    session.close().await;
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_comes_with_advice() {
        let d = diagnose(
            "http://127.0.0.1:1/mcp",
            &CallError::ConnectRefused {
                addr: "127.0.0.1:1".into(),
            },
            Duration::from_secs(1),
        );
        assert!(
            d.to_string()
                .contains("nothing is listening on 127.0.0.1:1")
        );
        let d = diagnose(
            "x",
            &CallError::HttpStatus {
                status: 401,
                body: "no".into(),
                www_authenticate: Some("Bearer realm=\"mcp\"".into()),
            },
            Duration::from_secs(1),
        );
        let text = d.to_string();
        assert!(
            text.contains("401")
                && text.contains("WWW-Authenticate: Bearer")
                && text.contains("--header"),
            "{text}"
        );
        let d = diagnose(
            "x",
            &CallError::ProcessExited {
                code: Some(42),
                stderr_tail: vec!["boom".into()],
            },
            Duration::from_secs(1),
        );
        assert!(
            d.to_string().contains("exited with code 42") && d.to_string().contains("stderr: boom")
        );
    }
}
