//! mcpstorm's own TCP fault proxy: it sits between clients and a server (or a server and its
//! database), forwards bytes both ways, and applies toxics (see `toxics`) that can be added
//! and removed while connections are live. `mcpstorm proxy` runs it on its own; a run starts
//! one in front of the target or a dependency when the scenario asks.
//!
//! With no toxic the data path is a plain copy loop with one reused buffer per direction.
//! Every task it starts is owned by the proxy and ends when it shuts down or is dropped.

pub mod toxics;

use rand::Rng;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use toxics::{Kind, Stream, Toxic};

const BUF: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ProxyStats {
    pub accepted: u64,
    pub active: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

struct Shared {
    upstream: SocketAddr,
    toxics: RwLock<Vec<Toxic>>,
    /// Bumped on every change of toxics or of `enabled`, so live pumps re-read them.
    version: watch::Sender<u64>,
    enabled: AtomicBool,
    accepted: AtomicU64,
    active: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

pub struct Proxy {
    local: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(listen).await?;
        let local = listener.local_addr()?;
        let (version, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            upstream,
            toxics: RwLock::new(Vec::new()),
            version,
            enabled: AtomicBool::new(true),
            accepted: AtomicU64::new(0),
            active: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
        });
        let cancel = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, shared.clone(), cancel.clone()));
        Ok(Proxy {
            local,
            shared,
            cancel,
            task: Some(task),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Add a toxic (replacing one of the same name); it applies to live connections too.
    pub fn add_toxic(&self, toxic: Toxic) {
        if matches!(toxic.kind, Kind::Down) {
            self.set_enabled(false);
        }
        if let Ok(mut t) = self.shared.toxics.write() {
            t.retain(|x| x.name != toxic.name);
            t.push(toxic);
        }
        self.shared.version.send_modify(|v| *v += 1);
    }

    pub fn remove_toxic(&self, name: &str) -> bool {
        let removed = match self.shared.toxics.write() {
            Ok(mut t) => {
                let before = t.len();
                let was_down = t
                    .iter()
                    .any(|x| x.name == name && matches!(x.kind, Kind::Down));
                t.retain(|x| x.name != name);
                if was_down {
                    self.shared.enabled.store(true, Ordering::Relaxed);
                }
                t.len() != before
            }
            Err(_) => false,
        };
        self.shared.version.send_modify(|v| *v += 1);
        removed
    }

    /// Down (false): live connections are closed, new ones closed at once. Up (true): normal.
    pub fn set_enabled(&self, enabled: bool) {
        self.shared.enabled.store(enabled, Ordering::Relaxed);
        self.shared.version.send_modify(|v| *v += 1);
    }

    pub fn stats(&self) -> ProxyStats {
        let s = &self.shared;
        ProxyStats {
            accepted: s.accepted.load(Ordering::Relaxed),
            active: s.active.load(Ordering::Relaxed),
            bytes_up: s.bytes_up.load(Ordering::Relaxed),
            bytes_down: s.bytes_down.load(Ordering::Relaxed),
        }
    }

    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = cancel.cancelled() => break,
        };
        while conns.try_join_next().is_some() {}
        let Ok((client, _)) = accepted else { continue };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        if !shared.enabled.load(Ordering::Relaxed) {
            drop(client);
            continue;
        }
        conns.spawn(connection(client, shared.clone(), cancel.child_token()));
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

async fn connection(client: TcpStream, shared: Arc<Shared>, cancel: CancellationToken) {
    let server =
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(shared.upstream))
            .await
        {
            Ok(Ok(s)) => s,
            _ => return,
        };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    shared.active.fetch_add(1, Ordering::Relaxed);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    // Toxicity is drawn once per connection and toxic name, shared by both directions.
    let draws = Arc::new(std::sync::Mutex::new(HashMap::new()));
    tokio::join!(
        pump(cr, sw, Stream::Upstream, &shared, &cancel, &draws),
        pump(sr, cw, Stream::Downstream, &shared, &cancel, &draws),
    );
    shared.active.fetch_sub(1, Ordering::Relaxed);
}

type Draws = Arc<std::sync::Mutex<HashMap<String, bool>>>;

/// The toxics that apply to this direction of this connection now.
fn active(shared: &Shared, stream: Stream, draws: &Draws) -> Vec<Toxic> {
    let toxics = match shared.toxics.read() {
        Ok(t) => t
            .iter()
            .filter(|t| t.stream == stream && !matches!(t.kind, Kind::Down))
            .cloned()
            .collect::<Vec<_>>(),
        Err(_) => return Vec::new(),
    };
    let Ok(mut d) = draws.lock() else {
        return toxics;
    };
    toxics
        .into_iter()
        .filter(|t| {
            *d.entry(t.name.clone())
                .or_insert_with(|| rand::rng().random_bool(t.toxicity.clamp(0.0, 1.0)))
        })
        .collect()
}

/// A deadline set by a timeout or reset_peer toxic when it became active.
fn deadline(toxics: &[Toxic], since: Instant) -> Option<(Instant, bool)> {
    toxics.iter().find_map(|t| match t.kind {
        Kind::Timeout { timeout } if !timeout.is_zero() => Some((since + timeout, false)),
        Kind::ResetPeer { timeout } => Some((since + timeout, true)),
        _ => None,
    })
}

/// One direction of a connection. A reader stamps each chunk with when it arrived and hands
/// it on; the writer applies the toxics and writes it. Stamping on arrival (not when the
/// writer gets to it) keeps latency from compounding over the pieces of one answer.
async fn pump(
    src: OwnedReadHalf,
    mut dst: OwnedWriteHalf,
    stream: Stream,
    shared: &Shared,
    cancel: &CancellationToken,
    draws: &Draws,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, bytes::Bytes)>(64);
    let reader = read_chunks(src, tx, cancel);
    let writer = async {
        let mut version = shared.version.subscribe();
        let mut toxics = active(shared, stream, draws);
        let mut limit_sent = 0u64;
        let mut due = deadline(&toxics, Instant::now());
        let counter = if stream == Stream::Upstream {
            &shared.bytes_up
        } else {
            &shared.bytes_down
        };
        loop {
            let sleep_until = due.map(|(t, _)| tokio::time::Instant::from_std(t));
            let next = tokio::select! {
                next = rx.recv() => next,
                changed = version.changed() => {
                    if changed.is_err() || !shared.enabled.load(Ordering::Relaxed) {
                        // Down: close this connection now.
                        cancel.cancel();
                        return;
                    }
                    toxics = active(shared, stream, draws);
                    due = deadline(&toxics, Instant::now());
                    continue;
                }
                _ = async { match sleep_until { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                    if let Some((_, true)) = due {
                        reset_on_close(&dst);
                        // No FIN first: the peer must see the reset, not an orderly end.
                        dst.forget();
                    }
                    cancel.cancel();
                    return;
                }
                _ = cancel.cancelled() => return,
            };
            let Some((arrived, data)) = next else {
                let slow_close = toxics.iter().find_map(|t| {
                    if let Kind::SlowClose { delay } = t.kind {
                        Some(delay)
                    } else {
                        None
                    }
                });
                if let Some(delay) = slow_close {
                    tokio::time::sleep(delay).await;
                }
                let _ = dst.shutdown().await;
                return;
            };
            if toxics
                .iter()
                .any(|t| matches!(t.kind, Kind::Timeout { .. } | Kind::ResetPeer { .. }))
            {
                // Data goes nowhere while the toxic holds.
                continue;
            }
            let mut chunk = &data[..];
            let mut close_after = false;
            let limit = toxics.iter().find_map(|t| {
                if let Kind::LimitData { bytes } = t.kind {
                    Some(bytes)
                } else {
                    None
                }
            });
            if let Some(limit) = limit {
                let left = limit.saturating_sub(limit_sent) as usize;
                if chunk.len() >= left {
                    chunk = &chunk[..left];
                    close_after = true;
                }
                limit_sent += chunk.len() as u64;
            }
            if !write_with_toxics(&mut dst, chunk, &toxics, arrived).await {
                cancel.cancel();
                return;
            }
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if close_after {
                cancel.cancel();
                return;
            }
        }
    };
    tokio::join!(reader, writer);
}

async fn read_chunks(
    mut src: OwnedReadHalf,
    tx: tokio::sync::mpsc::Sender<(Instant, bytes::Bytes)>,
    cancel: &CancellationToken,
) {
    let mut buf = bytes::BytesMut::with_capacity(BUF);
    loop {
        buf.reserve(BUF);
        let read = tokio::select! {
            r = src.read_buf(&mut buf) => r,
            _ = cancel.cancelled() => return,
        };
        match read {
            Ok(0) => return,
            Ok(_) => {
                if tx
                    .send((Instant::now(), buf.split().freeze()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(_) => {
                cancel.cancel();
                return;
            }
        }
    }
}

/// SO_LINGER with a zero timeout makes the coming close a TCP RST. Zero cannot block on
/// close (tokio deprecates `set_linger` because nonzero values can), so set it directly.
fn reset_on_close(half: &OwnedWriteHalf) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            half.as_ref().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Write one chunk through latency, slicer and bandwidth toxics; false when the peer is gone.
async fn write_with_toxics(
    dst: &mut OwnedWriteHalf,
    chunk: &[u8],
    toxics: &[Toxic],
    arrived: Instant,
) -> bool {
    for t in toxics {
        if let Kind::Latency { latency, jitter } = t.kind {
            // Delay from when the chunk arrived, as Toxiproxy does: the pieces of one answer
            // are each late by the latency, not by the latency times their number.
            let j = if jitter.is_zero() {
                0.0
            } else {
                rand::rng().random_range(-1.0..1.0) * jitter.as_secs_f64()
            };
            let due = arrived + Duration::from_secs_f64((latency.as_secs_f64() + j).max(0.0));
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        }
    }
    let slicer = toxics.iter().find_map(|t| match t.kind {
        Kind::Slicer {
            average,
            variation,
            delay,
        } => Some((average, variation, delay)),
        _ => None,
    });
    let rate = toxics.iter().find_map(|t| {
        if let Kind::Bandwidth { bytes_per_s } = t.kind {
            Some(bytes_per_s)
        } else {
            None
        }
    });
    let mut rest = chunk;
    while !rest.is_empty() {
        let take = match slicer {
            Some((avg, var, _)) => {
                let size = if var == 0 {
                    avg
                } else {
                    rand::rng().random_range(avg.saturating_sub(var).max(1)..=avg + var)
                };
                size.min(rest.len())
            }
            // Bandwidth: write in pieces of a tenth of a second's worth, pacing between them.
            None => rate
                .map(|r| ((r / 10).max(1) as usize).min(rest.len()))
                .unwrap_or(rest.len()),
        };
        if dst.write_all(&rest[..take]).await.is_err() {
            return false;
        }
        rest = &rest[take..];
        if let Some(r) = rate {
            tokio::time::sleep(Duration::from_secs_f64(take as f64 / r as f64)).await;
        }
        if let Some((_, _, delay)) = slicer
            && !delay.is_zero()
            && !rest.is_empty()
        {
            tokio::time::sleep(delay).await;
        }
    }
    true
}
