//! The terminal dashboard (ratatui), shown when stdout is a terminal and `--no-tui` is not
//! given: key figures, a fault timeline with recovery windows and alerts, charts of calls/s,
//! success rate, latency percentiles and the target's RSS and CPU over time, a per-tool table,
//! and the latest faults and alerts ([`view`]). `q` (or Esc, or Ctrl-C) stops the run
//! cleanly; the report is still written. A second Ctrl-C aborts calls in flight.
//!
//! It runs on a thread of its own (terminal input is blocking), redraws twice a second, and
//! reads only [`LiveState`]. The terminal is given back by a guard when the thread ends, by
//! `Dashboard`'s `Drop` when the run ends early on an error, and by ratatui's panic hook on a
//! panic: it is never left in raw mode on the alternate screen.

mod view;

use super::LiveState;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use view::View;

const REDRAW: Duration = Duration::from_millis(500);

/// The dashboard of one run; `stop` ends the run cleanly, `abort` cuts calls in flight.
/// Dropping it stops the drawing and gives the terminal back.
pub struct Dashboard {
    done: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Gives the terminal back (raw mode off, main screen) when dropped, even by a panic.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

impl Dashboard {
    /// Take over the terminal; `None` when it cannot (then the caller prints plain lines).
    pub fn start(
        state: Arc<LiveState>,
        stop: CancellationToken,
        abort: CancellationToken,
    ) -> Option<Dashboard> {
        let terminal = match ratatui::try_init() {
            Ok(t) => t,
            Err(_) => {
                // Half set up (raw mode without the alternate screen) is worse than none.
                ratatui::restore();
                return None;
            }
        };
        let restore = Restore;
        let done = CancellationToken::new();
        let until = done.clone();
        let thread = std::thread::Builder::new()
            .name("mcpstorm-tui".into())
            .spawn(move || {
                let _restore = restore;
                let mut terminal = terminal;
                let mut view = View::default();
                while !until.is_cancelled() {
                    view.refresh(&state);
                    let _ = terminal.draw(|f| view.draw(f, &state, stop.is_cancelled()));
                    if let Ok(true) = event::poll(REDRAW)
                        && let Ok(Event::Key(k)) = event::read()
                        && k.kind == KeyEventKind::Press
                    {
                        // Raw mode: Ctrl-C arrives as a key, not as SIGINT.
                        let ctrl_c = k.code == KeyCode::Char('c')
                            && k.modifiers.contains(KeyModifiers::CONTROL);
                        if matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c {
                            if stop.is_cancelled() && ctrl_c {
                                abort.cancel();
                            }
                            stop.cancel();
                        }
                    }
                }
            })
            .ok()?;
        Some(Dashboard {
            done,
            thread: Some(thread),
        })
    }

    /// Give the terminal back (the summary is printed after this).
    pub fn finish(self) {
        drop(self);
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.done.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
