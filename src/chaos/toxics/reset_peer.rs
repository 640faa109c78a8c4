//! `reset_peer` {timeout_ms = 0}: `timeout_ms` after the toxic began on a connection, the
//! connection is reset: SO_LINGER 0 on both sockets, so each peer gets a TCP RST
//! (ECONNRESET) instead of an orderly FIN. Data arriving meanwhile is dropped, as in
//! Toxiproxy. Unlike Toxiproxy, the clock starts when the toxic meets the connection, not
//! at its next data, so idle connections are reset on schedule too.

use super::{Attributes, Ending, Flow, Piece, Toxic, ToxicStub, after};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) fn build(attributes: &mut Attributes<'_>) -> Arc<dyn Toxic> {
    Arc::new(ResetPeer {
        timeout: attributes.millis("timeout_ms", Some(0)),
    })
}

#[derive(Debug, Clone, Copy)]
struct ResetPeer {
    timeout: Duration,
}

impl Toxic for ResetPeer {
    fn start(&self, now: Instant) -> Box<dyn ToxicStub> {
        Box::new(Resetting {
            resets_at: after(now, self.timeout),
        })
    }
}

struct Resetting {
    resets_at: Instant,
}

impl ToxicStub for Resetting {
    fn on_data(&mut self, _dropped: Piece, _out: &mut Vec<Piece>) -> Flow {
        Flow::Continue
    }

    fn deadline(&self) -> Option<(Instant, Ending)> {
        Some((self.resets_at, Ending::Reset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::toxics::testing::{build, piece, problems, run};
    use serde_json::json;

    #[test]
    fn parses_and_names_bad_attributes() {
        assert!(build("reset_peer", &[]).is_ok(), "timeout_ms defaults to 0");
        assert!(
            problems("reset_peer", &[("timeout", json!(5))])[0].contains(
                "`attributes.timeout` does not apply to `reset_peer`; it takes: timeout_ms"
            )
        );
    }

    #[test]
    fn resets_after_the_timeout_and_drops_data_meanwhile() {
        let t0 = Instant::now();
        let mut stub = build("reset_peer", &[("timeout_ms", json!(250))])
            .unwrap()
            .start(t0);
        let (out, ending) = run(stub.as_mut(), [piece(10, t0)]);
        assert!(out.is_empty());
        assert_eq!(ending, None);
        assert_eq!(
            stub.deadline(),
            Some((t0 + Duration::from_millis(250), Ending::Reset))
        );
    }
}
