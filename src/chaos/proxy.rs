//! The fault proxy: listens on one address and, for each client it accepts, connects to
//! the upstream and runs two pumps (client to server, server to client) through the
//! toxics of each direction.
//!
//! The configuration (toxics and `enabled`) is one immutable snapshot behind a `watch`
//! channel: a change replaces the snapshot, and every live pump sees it at its next step.
//! Nothing on the data path takes a lock.
//!
//! Ownership: the listener task owns a `JoinSet` of connection tasks; a connection task
//! owns both sockets and runs both pumps itself. `shutdown` cancels the listener task, which
//! aborts and awaits every connection; dropping the handle aborts the listener task, which
//! drops the set and so aborts every connection. No task outlives the proxy.

use super::pump::Pump;
use super::toxics::{Chain, Ending, Installed, Stream, ToxicError, ToxicSpec};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// How long a new connection waits for the upstream to accept before giving up on it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The proxy's own counts since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProxyStats {
    /// Client connections accepted, including those closed at once while down.
    pub connections_accepted: u64,
    /// Client connections open now.
    pub connections_active: u64,
    /// Bytes delivered to the upstream (client to server).
    pub bytes_up: u64,
    /// Bytes delivered to clients (server to client).
    pub bytes_down: u64,
}

/// What every connection follows; replaced whole on each change.
#[derive(Clone)]
pub(super) struct Config {
    pub(super) enabled: bool,
    pub(super) toxics: Vec<Installed>,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    active: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

/// A running fault proxy. Dropping it (or `shutdown().await`) stops the listener and
/// every connection.
pub struct Proxy {
    local: SocketAddr,
    config: watch::Sender<Arc<Config>>,
    counters: Arc<Counters>,
    next_id: AtomicU64,
    stop: CancellationToken,
    listener: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listen on `listen` (port 0 picks a free one) and forward to `upstream`.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(listen).await?;
        let local = listener.local_addr()?;
        let (config, _) = watch::channel(Arc::new(Config {
            enabled: true,
            toxics: Vec::new(),
        }));
        let counters = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept_loop(
            listener,
            upstream,
            config.subscribe(),
            counters.clone(),
            stop.clone(),
        ));
        Ok(Proxy {
            local,
            config,
            counters,
            next_id: AtomicU64::new(0),
            stop,
            listener: Some(task),
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Install a toxic; a toxic of the same name is replaced in place. It applies to new
    /// connections and to the data live connections receive from now on (its toxicity is
    /// drawn once for each of them).
    pub fn add_toxic(&self, spec: ToxicSpec) -> Result<(), ToxicError> {
        let installed = Installed {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            toxic: spec.build()?,
            name: spec.name,
            stream: spec.stream,
            toxicity: spec.toxicity,
        };
        self.config.send_modify(|config| {
            let mut next = Config::clone(config);
            match next.toxics.iter_mut().find(|t| t.name == installed.name) {
                Some(same_name) => *same_name = installed,
                None => next.toxics.push(installed),
            }
            *config = Arc::new(next);
        });
        Ok(())
    }

    /// Remove a toxic by name; false if there was none. Live connections go back to
    /// normal (a `timeout` closes the connections it held, as in Toxiproxy).
    pub fn remove_toxic(&self, name: &str) -> bool {
        self.config.send_if_modified(|config| {
            if !config.toxics.iter().any(|t| t.name == name) {
                return false;
            }
            let mut next = Config::clone(config);
            next.toxics.retain(|t| t.name != name);
            *config = Arc::new(next);
            true
        })
    }

    /// Down (`false`): live connections are closed, new ones accepted and closed at once.
    /// Up (`true`): normal service again.
    pub fn set_enabled(&self, enabled: bool) {
        self.config.send_if_modified(|config| {
            if config.enabled == enabled {
                return false;
            }
            let mut next = Config::clone(config);
            next.enabled = enabled;
            *config = Arc::new(next);
            true
        });
    }

    pub fn stats(&self) -> ProxyStats {
        let c = &self.counters;
        ProxyStats {
            connections_accepted: c.accepted.load(Ordering::Relaxed),
            connections_active: c.active.load(Ordering::Relaxed),
            bytes_up: c.bytes_up.load(Ordering::Relaxed),
            bytes_down: c.bytes_down.load(Ordering::Relaxed),
        }
    }

    /// Stop listening, close every connection, and wait until all of it has ended.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.listener.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.listener.take() {
            // Aborting drops the task's JoinSet, which aborts every connection task.
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    config: watch::Receiver<Arc<Config>>,
    counters: Arc<Counters>,
    stop: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    counters.accepted.fetch_add(1, Ordering::Relaxed);
                    let active = ActiveGuard::new(counters.clone());
                    connections.spawn(serve(client, upstream, config.clone(), active));
                }
                // Out of file descriptors, most likely: wait a little instead of spinning.
                Err(_) => tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                },
            },
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Counts a connection as active for as long as its task lives, however it ends.
struct ActiveGuard(Arc<Counters>);

impl ActiveGuard {
    fn new(counters: Arc<Counters>) -> Self {
        counters.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(counters)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut config: watch::Receiver<Arc<Config>>,
    active: ActiveGuard,
) {
    let now = Instant::now();
    let current = config.borrow_and_update().clone();
    if !current.enabled {
        return;
    }
    // The toxicity of every installed toxic is drawn here, once for this connection.
    let mut up = Chain::default();
    let mut down = Chain::default();
    up.sync(&current.toxics, Stream::Upstream, now);
    down.sync(&current.toxics, Stream::Downstream, now);
    let immediate = [up.deadline(), down.deadline()]
        .into_iter()
        .flatten()
        .find(|(at, _)| *at <= now);
    if let Some((_, ending)) = immediate {
        // `down` (or a reset at 0 ms): the upstream never hears of this client.
        end(&client, None, ending);
        return;
    }
    let server = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream)).await {
        Ok(Ok(server)) => server,
        _ => return,
    };
    let mut server = server;
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let counters = &active.0;
    let (client_read, client_write) = client.split();
    let (server_read, server_write) = server.split();
    let upstream_pump = Pump {
        src: client_read,
        dst: server_write,
        stream: Stream::Upstream,
        chain: up,
        config: config.clone(),
        delivered: &counters.bytes_up,
    };
    let downstream_pump = Pump {
        src: server_read,
        dst: client_write,
        stream: Stream::Downstream,
        chain: down,
        config,
        delivered: &counters.bytes_down,
    };
    // Each direction ends on its own when its sender closes (half-close is kept); a
    // toxic, `down` or a failure ends both at once.
    if let Err(ending) = tokio::try_join!(upstream_pump.run(), downstream_pump.run()) {
        end(&client, Some(&server), ending);
    }
}

/// Close the sockets (when they drop) the way `ending` says.
fn end(client: &TcpStream, server: Option<&TcpStream>, ending: Ending) {
    if ending == Ending::Reset {
        let _ = client.set_zero_linger();
        if let Some(server) = server {
            let _ = server.set_zero_linger();
        }
    }
}
