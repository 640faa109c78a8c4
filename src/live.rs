//! The live view while a run goes: a plain progress line every few seconds (to stderr, so
//! stdout stays the summary). It reads the recorder and computes nothing of its own.

use crate::metrics::Recorder;
use std::io::Write;
use std::time::Duration;

pub fn progress_line(recorder: &Recorder, interval: Duration, total: Duration) -> String {
    let i = recorder.take_interval();
    let elapsed = recorder.started().elapsed().as_secs();
    let rate = i.calls as f64 / interval.as_secs_f64().max(1e-9);
    let ok = if i.calls == 0 {
        "    -".to_string()
    } else {
        format!("{:>5.1}", i.ok as f64 * 100.0 / i.calls as f64)
    };
    format!(
        "[{:>4}s/{}s] {:>8.1} calls/s  ok {}%  p50 {:>8.2}ms  p99 {:>8.2}ms  sessions {}",
        elapsed,
        total.as_secs(),
        rate,
        ok,
        i.p50_ms,
        i.p99_ms,
        recorder.active_sessions()
    )
}

/// Print a progress line every `interval` until cancelled.
pub async fn progress(
    recorder: std::sync::Arc<Recorder>,
    interval: Duration,
    total: Duration,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return,
        }
        let line = progress_line(&recorder, interval, total);
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}
