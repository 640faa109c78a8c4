//! `timeout` {timeout_ms = 0}: no data goes through any more; the connection is closed
//! `timeout_ms` after the toxic began on it, or never when 0 (it hangs, as a dead peer
//! behind a firewall would). As in Toxiproxy, removing the toxic closes the connections it
//! held: the data it swallowed is gone, so carrying on would hand the peers a corrupt stream.

use super::{Attributes, Ending, Flow, Piece, Toxic, ToxicStub, after};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) fn build(attributes: &mut Attributes<'_>) -> Arc<dyn Toxic> {
    Arc::new(Timeout {
        timeout: attributes.millis("timeout_ms", Some(0)),
    })
}

#[derive(Debug, Clone, Copy)]
struct Timeout {
    timeout: Duration,
}

impl Toxic for Timeout {
    fn start(&self, now: Instant) -> Box<dyn ToxicStub> {
        Box::new(Holding {
            closes_at: (!self.timeout.is_zero()).then(|| after(now, self.timeout)),
        })
    }
}

struct Holding {
    closes_at: Option<Instant>,
}

impl ToxicStub for Holding {
    fn on_data(&mut self, _dropped: Piece, _out: &mut Vec<Piece>) -> Flow {
        Flow::Continue
    }

    fn deadline(&self) -> Option<(Instant, Ending)> {
        self.closes_at.map(|at| (at, Ending::Close))
    }

    fn on_removed(&self) -> Option<Ending> {
        Some(Ending::Close)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::toxics::testing::{build, piece, problems, run};
    use serde_json::json;

    #[test]
    fn parses_and_names_bad_attributes() {
        assert!(build("timeout", &[]).is_ok(), "timeout_ms defaults to 0");
        assert!(
            problems("timeout", &[("timeout_ms", json!(-5))])[0]
                .contains("`attributes.timeout_ms` = -5")
        );
    }

    #[test]
    fn swallows_data_and_closes_after_the_timeout() {
        let t0 = Instant::now();
        let mut stub = build("timeout", &[("timeout_ms", json!(100))])
            .unwrap()
            .start(t0);
        let (out, ending) = run(stub.as_mut(), [piece(10, t0), piece(10, t0)]);
        assert!(out.is_empty());
        assert_eq!(ending, None);
        assert_eq!(
            stub.deadline(),
            Some((t0 + Duration::from_millis(100), Ending::Close))
        );
        assert_eq!(stub.on_removed(), Some(Ending::Close));
    }

    #[test]
    fn zero_holds_forever() {
        let stub = build("timeout", &[("timeout_ms", json!(0))])
            .unwrap()
            .start(Instant::now());
        assert_eq!(stub.deadline(), None);
    }
}
