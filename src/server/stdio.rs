//! stdio transport: exactly one MCP session over stdin/stdout.
//!
//! stdout carries only protocol messages; anything else written there would
//! corrupt the stream the client parses, so diagnostics go to stderr or into
//! the returned error.

use rmcp::{ServiceExt as _, service::ServerInitializeError, transport::stdio_pipes};
use tokio_util::sync::CancellationToken;

use super::ServeError;
use super::handler::{KvStore, Observers, ReferenceServer};

pub(super) async fn serve_stdio(
    kv: KvStore,
    conformance_tools: bool,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let server = ReferenceServer::new(kv, Observers::default(), conformance_tools);
    // stdio_pipes, unlike stdio(), reads pipes without a blocking thread, so a
    // cancelled session does not leave runtime shutdown waiting on stdin; on a
    // terminal or file it falls back to stdio() behaviour.
    let running = match server
        .serve_with_ct(stdio_pipes(), shutdown.child_token())
        .await
    {
        Ok(running) => running,
        // stdin closed, or shutdown came, before a client said anything: a
        // normal end, not a failure.
        Err(ServerInitializeError::ConnectionClosed(_) | ServerInitializeError::Cancelled) => {
            return Ok(());
        }
        // The default message dumps the offending message's Debug form; what
        // the user needs to know is which rule the client broke.
        Err(ServerInitializeError::ExpectedInitializeRequest(_)) => {
            return Err(ServeError::StdioHandshake(
                "the client's first message was not an `initialize` request; \
                 an MCP client must send `initialize` before anything else"
                    .to_owned(),
            ));
        }
        Err(e) => return Err(ServeError::StdioHandshake(e.to_string())),
    };
    // The session's own token is a child of `shutdown`, so this returns on
    // cancellation as well as when stdin reaches EOF.
    running
        .waiting()
        .await
        .map_err(|e| ServeError::SessionCrashed(e.to_string()))?;
    Ok(())
}
