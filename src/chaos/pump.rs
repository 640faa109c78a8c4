//! One direction of one proxied connection: read from one socket, write to the other.
//!
//! While no toxic acts on the direction, this is a plain copy loop with one reused buffer
//! (the cost the proxy adds must stay close to nothing). Once a toxic acts, reads are
//! stamped with their arrival, shaped by the toxics' chain into timed pieces, queued, and
//! written in order when due; reading goes on meanwhile, up to a bounded queue, so the
//! arrival stamps stay true. When the toxics go and the queue drains, the copy loop is back.
//!
//! Both modes watch the proxy's configuration, so toxics added or removed (and `down`)
//! reach live connections at once. A pump never ends the connection itself: it returns
//! how the connection must end, and the proxy closes both sockets.

use super::proxy::Config;
use super::toxics::{Chain, Ending, Piece, Stream, after};
use bytes::BytesMut;
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::watch;

/// One read's worth; also the size of the copy loop's buffer.
const BUFFER: usize = 64 * 1024;

/// How much shaped data a direction may hold before it stops reading (the sender then
/// feels TCP backpressure, as it would behind a slow link).
const MAX_QUEUED: usize = 1024 * 1024;

pub(super) struct Pump<'a> {
    pub(super) src: ReadHalf<'a>,
    pub(super) dst: WriteHalf<'a>,
    pub(super) stream: Stream,
    pub(super) chain: Chain,
    pub(super) config: watch::Receiver<Arc<Config>>,
    /// Bytes written to `dst`, for the proxy's stats.
    pub(super) delivered: &'a AtomicU64,
}

enum Item {
    Data(Piece),
    /// The sender closed; pass the FIN on when due.
    Eof {
        due: Instant,
    },
    /// A toxic ends the connection once what was queued before has been written.
    End {
        ending: Ending,
        due: Instant,
    },
}

impl Item {
    fn due(&self) -> Instant {
        match self {
            Item::Data(piece) => piece.due,
            Item::Eof { due } | Item::End { due, .. } => *due,
        }
    }
}

#[derive(PartialEq, Eq)]
enum Progress {
    Going,
    /// The FIN went through: this direction is done.
    Finished,
}

struct State {
    buffer: Vec<u8>,
    incoming: BytesMut,
    queue: VecDeque<Item>,
    queued_bytes: usize,
    /// No more reads: the sender closed, or a toxic ends the connection.
    read_done: bool,
}

impl Pump<'_> {
    /// Run until this direction is done (`Ok`) or the connection must end (`Err`).
    pub(super) async fn run(mut self) -> Result<(), Ending> {
        let mut state = State {
            buffer: vec![0; BUFFER],
            incoming: BytesMut::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            read_done: false,
        };
        loop {
            let progress = if state.queue.is_empty() && self.chain.is_idle() {
                self.copy_step(&mut state.buffer).await?
            } else {
                self.toxic_step(&mut state).await?
            };
            if progress == Progress::Finished {
                return Ok(());
            }
        }
    }

    /// The plain path: one read, written on at once.
    async fn copy_step(&mut self, buffer: &mut [u8]) -> Result<Progress, Ending> {
        tokio::select! {
            biased;
            changed = self.config.changed() => {
                self.reload(changed)?;
                Ok(Progress::Going)
            }
            read = self.src.read(buffer) => {
                let n = read.map_err(|e| ending_for(&e))?;
                if n == 0 {
                    let _ = self.dst.shutdown().await;
                    return Ok(Progress::Finished);
                }
                self.dst.write_all(&buffer[..n]).await.map_err(|e| ending_for(&e))?;
                self.delivered.fetch_add(n as u64, Ordering::Relaxed);
                Ok(Progress::Going)
            }
        }
    }

    /// The toxic path: write what is due, then wait for the next due piece, a deadline,
    /// new data or a change of toxics, whichever comes first.
    async fn toxic_step(&mut self, state: &mut State) -> Result<Progress, Ending> {
        let now = Instant::now();
        if let Some((at, ending)) = self.chain.deadline()
            && at <= now
        {
            return Err(ending);
        }
        // Everything due is written now, in order: pieces spaced closer than the timer's
        // millisecond tick still leave at the right average pace.
        while state.queue.front().is_some_and(|item| item.due() <= now) {
            if self.write_front(state).await? == Progress::Finished {
                return Ok(Progress::Finished);
            }
        }
        let deadline = self.chain.deadline();
        let next_due = state.queue.front().map(Item::due);
        let may_read = !state.read_done && state.queued_bytes < MAX_QUEUED;
        if may_read {
            state.incoming.reserve(BUFFER);
        }
        tokio::select! {
            biased;
            changed = self.config.changed() => self.reload(changed)?,
            () = sleep_until(deadline.map(|(at, _)| at)) => {
                if let Some((_, ending)) = deadline {
                    return Err(ending);
                }
            }
            () = sleep_until(next_due) => {}
            read = self.src.read_buf(&mut state.incoming), if may_read => {
                self.take(state, read)?;
            }
        }
        Ok(Progress::Going)
    }

    /// Shape what was just read (or the sender's close) into the queue.
    fn take(&mut self, state: &mut State, read: io::Result<usize>) -> Result<(), Ending> {
        let n = read.map_err(|e| ending_for(&e))?;
        let now = Instant::now();
        if n == 0 {
            state.read_done = true;
            let due = after(now, self.chain.on_eof());
            state.queue.push_back(Item::Eof { due });
            return Ok(());
        }
        let piece = Piece {
            data: state.incoming.split().freeze(),
            due: now,
        };
        let mut shaped = Vec::new();
        let ending = self.chain.shape(piece, &mut shaped);
        for piece in shaped {
            state.queued_bytes += piece.data.len();
            state.queue.push_back(Item::Data(piece));
        }
        if let Some(ending) = ending {
            state.read_done = true;
            state.queue.push_back(Item::End { ending, due: now });
        }
        Ok(())
    }

    async fn write_front(&mut self, state: &mut State) -> Result<Progress, Ending> {
        match state.queue.pop_front() {
            Some(Item::Data(piece)) => {
                state.queued_bytes -= piece.data.len();
                self.dst
                    .write_all(&piece.data)
                    .await
                    .map_err(|e| ending_for(&e))?;
                self.delivered
                    .fetch_add(piece.data.len() as u64, Ordering::Relaxed);
                Ok(Progress::Going)
            }
            Some(Item::Eof { .. }) => {
                let _ = self.dst.shutdown().await;
                Ok(Progress::Finished)
            }
            Some(Item::End { ending, .. }) => Err(ending),
            None => Ok(Progress::Going),
        }
    }

    /// The toxics or `enabled` changed: follow them, or end the connection.
    fn reload(&mut self, changed: Result<(), watch::error::RecvError>) -> Result<(), Ending> {
        if changed.is_err() {
            // The proxy is gone.
            return Err(Ending::Close);
        }
        let config = self.config.borrow_and_update().clone();
        if !config.enabled {
            return Err(Ending::Close);
        }
        match self.chain.sync(&config.toxics, self.stream, Instant::now()) {
            Some(ending) => Err(ending),
            None => Ok(()),
        }
    }
}

/// A peer that reset the connection is passed on as a reset; any other failure as a close.
fn ending_for(error: &io::Error) -> Ending {
    match error.kind() {
        io::ErrorKind::ConnectionReset => Ending::Reset,
        _ => Ending::Close,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
