//! Executors: how iterations are started. Closed model (a number of virtual users, constant
//! or ramped) and open model (an arrival rate, constant or ramped, with a cap on iterations
//! in flight; arrivals that find no free VU are counted as dropped, never queued silently).
//!
//! Every task an executor spawns is owned by a `JoinSet` it drains before returning.

use super::vu::{Shared, Vu};
use super::{Executor, Stage, staged_value};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

const CONTROL_TICK: Duration = Duration::from_millis(100);

pub async fn run(sh: Arc<Shared>, executor: &Executor) {
    match executor {
        Executor::ConstantVus { vus, duration } => {
            let stages = vec![Stage {
                duration: *duration,
                target: *vus as f64,
            }];
            closed(sh, *vus as f64, &stages).await
        }
        Executor::RampingVus { start_vus, stages } => closed(sh, *start_vus as f64, stages).await,
        Executor::ConstantArrivalRate {
            rate,
            duration,
            max_in_flight,
            preallocate,
        } => {
            let stages = vec![Stage {
                duration: *duration,
                target: *rate,
            }];
            open(sh, *rate, &stages, *max_in_flight, *preallocate).await
        }
        Executor::RampingArrivalRate {
            start_rate,
            stages,
            max_in_flight,
            preallocate,
        } => open(sh, *start_rate, stages, *max_in_flight, *preallocate).await,
    }
}

async fn closed(sh: Arc<Shared>, start: f64, stages: &[Stage]) {
    let total: Duration = stages.iter().map(|s| s.duration).sum();
    let desired = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    let mut spawned = 0u64;
    let begin = Instant::now();
    loop {
        let t = begin.elapsed();
        if t >= total || sh.stop.is_cancelled() {
            break;
        }
        let want = staged_value(start, stages, t).round().max(0.0) as u64;
        desired.store(want, Ordering::Relaxed);
        while spawned < want {
            tasks.spawn(vu_loop(sh.clone(), desired.clone(), spawned));
            spawned += 1;
        }
        tokio::select! {
            _ = tokio::time::sleep(CONTROL_TICK.min(total - t)) => {}
            _ = sh.stop.cancelled() => break,
        }
    }
    sh.stop.cancel();
    drain(&sh, tasks).await;
}

async fn vu_loop(sh: Arc<Shared>, desired: Arc<AtomicU64>, id: u64) {
    let mut vu = Vu::new(id);
    while !sh.stop.is_cancelled() {
        if id >= desired.load(Ordering::Relaxed) {
            // Ramped down: hold no session while parked.
            vu.close(&sh).await;
            tokio::select! {
                _ = tokio::time::sleep(CONTROL_TICK) => {}
                _ = sh.stop.cancelled() => {}
            }
            continue;
        }
        tokio::select! {
            _ = vu.iterate(&sh, None) => {}
            _ = sh.abort.cancelled() => {
                vu.discard(&sh);
                return;
            }
        }
        if !sh.think_time.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(sh.think_time) => {}
                _ = sh.stop.cancelled() => {}
            }
        }
    }
    if sh.abort.is_cancelled() {
        vu.discard(&sh);
    } else {
        vu.close(&sh).await;
    }
}

/// Let in-flight work finish for `graceful_stop`, then abort what is left.
async fn drain<T: 'static>(sh: &Shared, mut tasks: JoinSet<T>) -> Vec<T> {
    let mut done = Vec::new();
    let deadline = tokio::time::sleep(sh.graceful_stop);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = tasks.join_next() => match next {
                Some(Ok(v)) => done.push(v),
                Some(Err(_)) => {}
                None => return done,
            },
            _ = &mut deadline, if !sh.abort.is_cancelled() => sh.abort.cancel(),
        }
    }
}

async fn open(
    sh: Arc<Shared>,
    start_rate: f64,
    stages: &[Stage],
    max_in_flight: u32,
    preallocate: u32,
) {
    let total: Duration = stages.iter().map(|s| s.duration).sum();
    let mut idle: Vec<Vu> = {
        let mut pre = JoinSet::new();
        for id in 0..preallocate as u64 {
            let sh = sh.clone();
            pre.spawn(async move {
                let mut vu = Vu::new(id);
                vu.connect(&sh).await;
                vu
            });
        }
        pre.join_all().await
    };
    let mut created = preallocate as u64;
    let mut inflight: JoinSet<Vu> = JoinSet::new();
    let begin = tokio::time::Instant::now();
    let mut offset = Duration::ZERO;
    while offset < total && !sh.stop.is_cancelled() {
        let next = begin + offset;
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = sh.stop.cancelled() => break,
        }
        let rate = staged_value(start_rate, stages, offset);
        if rate > 0.0 {
            while let Some(done) = inflight.try_join_next() {
                if let Ok(vu) = done {
                    idle.push(vu);
                }
            }
            let vu = match idle.pop() {
                Some(vu) => Some(vu),
                None if created < max_in_flight as u64 => {
                    created += 1;
                    Some(Vu::new(created - 1))
                }
                None => None,
            };
            match vu {
                Some(mut vu) => {
                    let sh2 = sh.clone();
                    let intended = next.into_std();
                    inflight.spawn(async move {
                        tokio::select! {
                            _ = vu.iterate(&sh2, Some(intended)) => {}
                            _ = sh2.abort.cancelled() => vu.discard(&sh2),
                        }
                        vu
                    });
                }
                None => sh.recorder.dropped_iteration(),
            }
            offset += Duration::from_secs_f64(1.0 / rate);
        } else {
            offset += Duration::from_millis(10);
        }
    }
    sh.stop.cancel();
    idle.extend(drain(&sh, inflight).await);
    let mut closing = JoinSet::new();
    for mut vu in idle {
        let sh = sh.clone();
        closing.spawn(async move {
            if sh.abort.is_cancelled() {
                vu.discard(&sh);
            } else {
                vu.close(&sh).await;
            }
        });
    }
    closing.join_all().await;
}
