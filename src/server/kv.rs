//! The key/value store behind `kv_put`/`kv_get`: in memory, or in Redis when the server is
//! given a Redis URL. With Redis, the connection reconnects by itself with an exponential
//! backoff, and a write is acknowledged in one of two ways:
//!
//! - `after-write` (safe): the tool answers "ok" only after Redis confirmed the SET;
//! - `before-write` (deliberately unsafe): the tool answers "ok" at once and a background
//!   writer stores the value a little later, so a crash loses acknowledged writes. It exists
//!   so the ledger can be shown to catch exactly that.
//!
//! Shared by all sessions of one process. Never panics on a storage failure: the tool
//! reports it as a tool error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::mpsc;

/// When a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    AfterWrite,
    BeforeWrite,
}

#[derive(Clone)]
pub(super) enum KvStore {
    Memory(Arc<Mutex<HashMap<String, String>>>),
    Redis {
        conn: ConnectionManager,
        pending: Option<mpsc::UnboundedSender<(String, String)>>,
    },
}

impl Default for KvStore {
    fn default() -> Self {
        KvStore::Memory(Arc::default())
    }
}

/// How long the unsafe writer lets acknowledged values sit before storing them.
const LAZY_WRITE_DELAY: Duration = Duration::from_millis(500);

impl KvStore {
    /// A Redis-backed store; connects lazily, so the server starts even while Redis is down.
    pub(super) fn redis(url: &str, ack: Ack) -> Result<KvStore, String> {
        let client = redis::Client::open(url).map_err(|e| format!("--redis {url}: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_exponent_base(2.0)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2))
            .set_number_of_retries(4)
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("--redis {url}: {e}"))?;
        let pending = match ack {
            Ack::AfterWrite => None,
            Ack::BeforeWrite => {
                let (tx, rx) = mpsc::unbounded_channel();
                // Ends when the last sender (the last store clone) is dropped.
                tokio::spawn(lazy_writer(conn.clone(), rx));
                Some(tx)
            }
        };
        Ok(KvStore::Redis { conn, pending })
    }

    pub(super) async fn put(&self, key: String, value: String) -> Result<(), String> {
        match self {
            KvStore::Memory(map) => {
                // A poisoned lock only means another call panicked mid-insert; the map is
                // still valid, so keep serving rather than cascade.
                map.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key, value);
                Ok(())
            }
            KvStore::Redis {
                pending: Some(tx), ..
            } => tx
                .send((key, value))
                .map_err(|_| "the background writer has stopped".to_string()),
            KvStore::Redis {
                conn,
                pending: None,
            } => {
                let mut conn = conn.clone();
                conn.set::<_, _, ()>(key, value)
                    .await
                    .map_err(|e| format!("storage unavailable (Redis): {e}"))
            }
        }
    }

    /// Is the store there? Always for memory; a Redis `PING` otherwise (for `/ready`).
    pub(super) async fn ping(&self) -> Result<(), String> {
        match self {
            KvStore::Memory(_) => Ok(()),
            KvStore::Redis { conn, .. } => {
                let mut conn = conn.clone();
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .map(drop)
                    .map_err(|e| format!("Redis does not answer: {e}"))
            }
        }
    }

    pub(super) fn uses_redis(&self) -> bool {
        matches!(self, KvStore::Redis { .. })
    }

    pub(super) async fn get(&self, key: &str) -> Result<Option<String>, String> {
        match self {
            KvStore::Memory(map) => Ok(map
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(key)
                .cloned()),
            KvStore::Redis { conn, .. } => {
                let mut conn = conn.clone();
                conn.get(key)
                    .await
                    .map_err(|e| format!("storage unavailable (Redis): {e}"))
            }
        }
    }
}

async fn lazy_writer(
    mut conn: ConnectionManager,
    mut rx: mpsc::UnboundedReceiver<(String, String)>,
) {
    let mut batch = Vec::new();
    loop {
        tokio::time::sleep(LAZY_WRITE_DELAY).await;
        if rx.recv_many(&mut batch, 10_000).await == 0 {
            return;
        }
        for (key, value) in batch.drain(..) {
            // Best effort by design: this mode exists to lose writes.
            let _ = conn.set::<_, _, ()>(key, value).await;
        }
    }
}
