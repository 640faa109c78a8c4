//! `down`: the proxy is down for the connections this toxic applies to: live ones are
//! closed and new ones are accepted and closed at once, before any connection to the
//! upstream is made. It is Toxiproxy's `enabled = false` as a toxic, so a fault schedule
//! can add and remove it like any other (and, with a toxicity below 1, cut only some
//! connections). `Proxy::set_enabled(false)` does the same for every connection.

use super::{Attributes, Ending, Flow, Piece, Toxic, ToxicStub};
use std::sync::Arc;
use std::time::Instant;

pub(super) fn build(_attributes: &mut Attributes<'_>) -> Arc<dyn Toxic> {
    Arc::new(Down)
}

#[derive(Debug, Clone, Copy)]
struct Down;

impl Toxic for Down {
    fn start(&self, now: Instant) -> Box<dyn ToxicStub> {
        Box::new(Cut { at: now })
    }
}

struct Cut {
    at: Instant,
}

impl ToxicStub for Cut {
    fn on_data(&mut self, _dropped: Piece, _out: &mut Vec<Piece>) -> Flow {
        Flow::End(Ending::Close)
    }

    fn deadline(&self) -> Option<(Instant, Ending)> {
        Some((self.at, Ending::Close))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::toxics::testing::{build, piece, problems, run};
    use serde_json::json;

    #[test]
    fn takes_no_attributes() {
        assert!(build("down", &[]).is_ok());
        assert!(
            problems("down", &[("timeout_ms", json!(5))])[0]
                .contains("does not apply to `down`; it takes: no attributes")
        );
    }

    #[test]
    fn ends_the_connection_at_once() {
        let t0 = Instant::now();
        let mut stub = build("down", &[]).unwrap().start(t0);
        assert_eq!(stub.deadline(), Some((t0, Ending::Close)));
        let (out, ending) = run(stub.as_mut(), [piece(10, t0)]);
        assert!(out.is_empty());
        assert_eq!(ending, Some(Ending::Close));
    }
}
