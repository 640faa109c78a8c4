//! One virtual user: a session of its own, one operation at a time, recorded as it happened.
//!
//! A VU reconnects when its session breaks (with a short backoff so a dead server is probed,
//! not hammered in a busy loop), and when `churn_every` says so.

use super::Mix;
use super::template::{Ctx, RandomPool};
use crate::error::CallError;
use crate::metrics::Recorder;
use crate::session::Session;
use crate::target::Connector;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What every VU of a run shares.
pub struct Shared {
    pub connector: Arc<Connector>,
    pub recorder: Arc<Recorder>,
    pub mix: Mix,
    pub timeout: Duration,
    pub think_time: Duration,
    pub churn_every: u64,
    pub graceful_stop: Duration,
    pub pool: RandomPool,
    pub seq: AtomicU64,
    /// Calls sent and not yet answered; what is left after an abort was cut off.
    pub in_flight: AtomicU64,
    /// Where writes the ledger tracks are booked.
    pub ledger: Option<Arc<crate::check::ledger::Ledger>>,
    /// Where recorded sessions' traffic is written (`run --record`).
    pub trace: Option<Arc<crate::trace::record::TraceWriter>>,
    /// Start no new iteration.
    pub stop: CancellationToken,
    /// Drop what is in flight and end now.
    pub abort: CancellationToken,
}

pub struct Vu {
    pub id: u64,
    session: Option<Session>,
    ops_on_session: u64,
    backoff: Duration,
    rng: SmallRng,
    /// This session's place in the trace, when it is one of the recorded ones.
    trace: Option<crate::trace::record::TraceSession>,
}

impl Vu {
    pub fn new(id: u64) -> Self {
        Vu {
            id,
            session: None,
            ops_on_session: 0,
            backoff: Duration::ZERO,
            rng: SmallRng::from_rng(&mut rand::rng()),
            trace: None,
        }
    }

    fn opened(&mut self, sh: &Shared, s: Session, opened_at: Instant) {
        sh.recorder.session_opened();
        self.trace = sh
            .trace
            .as_ref()
            .and_then(|w| w.session_opened(&s.info, opened_at));
        self.session = Some(s);
    }

    /// Open the session now (open-model preallocation). A failure is left for the first
    /// iteration to record.
    pub async fn connect(&mut self, sh: &Shared) {
        let opened_at = Instant::now();
        if self.session.is_none()
            && let Ok(s) = sh.connector.open().await
        {
            self.opened(sh, s, opened_at);
        }
    }

    /// One operation. `intended` is the open model's scheduled start: latency counts from
    /// there, so time spent waiting for a free VU or a slow server is not hidden.
    pub async fn iterate(&mut self, sh: &Shared, intended: Option<Instant>) {
        let entry = sh.mix.pick(&mut self.rng);
        let seq = sh.seq.fetch_add(1, Ordering::Relaxed);
        let params = entry.params(&mut Ctx {
            seq,
            vu: self.id,
            rng: &mut self.rng,
            pool: &sh.pool,
        });
        let connect_start = intended.unwrap_or_else(Instant::now);
        if self.session.is_none() {
            let opened_at = Instant::now();
            match sh.connector.open().await {
                Ok(s) => {
                    self.opened(sh, s, opened_at);
                    self.ops_on_session = 0;
                    self.backoff = Duration::ZERO;
                }
                Err(e) => {
                    sh.recorder
                        .record(&entry.key, connect_start.elapsed(), Err(&e));
                    self.back_off(sh).await;
                    return;
                }
            }
        }
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let start = intended.unwrap_or_else(Instant::now);
        let timeout = entry.timeout.unwrap_or(sh.timeout);
        sh.in_flight.fetch_add(1, Ordering::Relaxed);
        let sent = Instant::now();
        let answer = session.call(entry.method, params.as_ref(), timeout).await;
        sh.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let (Some(w), Some(t)) = (&sh.trace, &mut self.trace) {
            w.exchange(t, entry.method, params.as_ref(), sent, &answer);
        }
        let outcome = match answer {
            Ok(result) => entry.judge(&result, params.as_ref()),
            Err(e) => Err(e),
        };
        sh.recorder
            .record(&entry.key, start.elapsed(), outcome.as_ref().map(|_| ()));
        if entry.ledger
            && let Some(ledger) = &sh.ledger
        {
            ledger.record(seq, sh.recorder.started().elapsed().as_secs_f64(), &outcome);
        }
        self.ops_on_session += 1;
        let broken = matches!(&outcome, Err(e) if !session.survives(e));
        if broken || (sh.churn_every > 0 && self.ops_on_session >= sh.churn_every) {
            self.close(sh).await;
        }
        match &outcome {
            Err(e) if unreachable(e) => self.back_off(sh).await,
            Err(_) => {}
            Ok(()) => self.backoff = Duration::ZERO,
        }
    }

    /// Wait a little longer each time the server can't be reached, so a dead server is
    /// probed rather than hammered in a busy loop (and the error counts stay meaningful).
    async fn back_off(&mut self, sh: &Shared) {
        self.backoff = (self.backoff * 2).clamp(BACKOFF_START, BACKOFF_MAX);
        tokio::select! {
            _ = tokio::time::sleep(self.backoff) => {}
            _ = sh.stop.cancelled() => {}
        }
    }

    pub async fn close(&mut self, sh: &Shared) {
        self.trace = None;
        if let Some(s) = self.session.take() {
            sh.recorder.session_closed();
            let _ = tokio::time::timeout(Duration::from_secs(3), s.close()).await;
        }
    }

    /// Forget the session without the polite close (abort path); the transport's drop
    /// guards still end the process tree.
    pub fn discard(&mut self, sh: &Shared) {
        self.trace = None;
        if self.session.take().is_some() {
            sh.recorder.session_closed();
        }
    }
}

fn unreachable(e: &CallError) -> bool {
    matches!(
        e,
        CallError::ConnectRefused { .. }
            | CallError::Dns { .. }
            | CallError::Tls { .. }
            | CallError::Connection { .. }
            | CallError::ProcessExited { .. }
            | CallError::Spawn { .. }
    )
}
