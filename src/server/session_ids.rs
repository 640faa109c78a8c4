//! MCP sessions with 256-bit random ids.
//!
//! rmcp's in-memory session manager names sessions with UUIDv4s: 122 random bits. A session
//! id is a bearer secret for as long as the session lives, and the security contract asks
//! for at least 128 bits, so this manager delegates everything to rmcp's
//! [`LocalSessionManager`] except the naming: 32 bytes from the thread's CSPRNG, as hex.

use std::fmt::Write as _;

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::WorkerTransport;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker, create_local_session,
};
use rmcp::transport::streamable_http_server::session::{
    RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
};

const ID_BYTES: usize = 32;

#[derive(Debug, Default)]
pub(crate) struct RandomIdSessions {
    inner: LocalSessionManager,
}

pub(crate) fn new_session_id() -> SessionId {
    let bytes: [u8; ID_BYTES] = rand::random();
    let mut id = String::with_capacity(ID_BYTES * 2);
    for b in bytes {
        let _ = write!(id, "{b:02x}");
    }
    id.into()
}

impl RandomIdSessions {
    /// Live sessions now.
    pub(crate) async fn count(&self) -> usize {
        self.inner.sessions.read().await.len()
    }

    /// The ids of every live session.
    pub(crate) async fn ids(&self) -> Vec<SessionId> {
        self.inner.sessions.read().await.keys().cloned().collect()
    }
}

impl SessionManager for RandomIdSessions {
    type Error = LocalSessionManagerError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let id = new_session_id();
        let (handle, worker) = create_local_session(id.clone(), self.inner.session_config.clone());
        self.inner.sessions.write().await.insert(id.clone(), handle);
        Ok((id, WorkerTransport::spawn(worker)))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.resume(id, last_event_id).await
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        self.inner.restore_session(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_256_random_bits() {
        let a = new_session_id();
        let b = new_session_id();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
