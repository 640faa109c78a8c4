//! Toxics: what the fault proxy does to the bytes of one direction of a connection, by
//! Toxiproxy's names and meanings. A toxic is configured once ([`ToxicSpec`], checked by its
//! builder) and then started on each connection it applies to, which gives a [`ToxicStub`]
//! holding that connection's state (bytes counted so far, when the link is next free, ...).
//!
//! A stub is a pure function of the data and the clock: it gets each piece of data stamped
//! with the moment it may be written (`due`), and answers with the pieces to write and their
//! new `due` times, or with the end of the connection. It never sleeps and never touches a
//! socket; the pump does both. That keeps every toxic testable without a network and lets
//! the pump stay one loop, whatever the toxics.
//!
//! Stubs of one direction form a chain in the order the toxics were added: each sees what
//! the previous one let through, as in Toxiproxy.
//!
//! To add a toxic: one file here and one line in [`REGISTRY`]; see `CREATING_TOXICS.md`.

mod bandwidth;
mod chain;
mod down;
mod latency;
mod limit_data;
mod reset_peer;
mod slicer;
mod slow_close;
mod spec;
mod timeout;

pub(crate) use chain::{Chain, Installed};
pub(crate) use spec::Attributes;
pub use spec::{Stream, ToxicError, ToxicProblem, ToxicSpec};

use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Builds a toxic from its attributes. A bad attribute is recorded in `Attributes` (which
/// then hands back a harmless value), so one pass reports every problem at once.
type Build = fn(&mut Attributes<'_>) -> Arc<dyn Toxic>;

/// Every toxic mcpstorm knows, by the name a scenario uses for it.
const REGISTRY: &[(&str, Build)] = &[
    ("latency", latency::build),
    ("bandwidth", bandwidth::build),
    ("slow_close", slow_close::build),
    ("timeout", timeout::build),
    ("reset_peer", reset_peer::build),
    ("slicer", slicer::build),
    ("limit_data", limit_data::build),
    ("down", down::build),
];

/// The names of every toxic, in the order the registry lists them (for error messages and
/// help text).
pub fn kinds() -> Vec<&'static str> {
    REGISTRY.iter().map(|(kind, _)| *kind).collect()
}

fn registered(kind: &str) -> Option<(&'static str, Build)> {
    REGISTRY.iter().copied().find(|(name, _)| *name == kind)
}

/// A toxic as configured: built once from its spec, shared by every connection.
pub(crate) trait Toxic: Send + Sync {
    /// Begin acting on one direction of one connection at `now`.
    fn start(&self, now: Instant) -> Box<dyn ToxicStub>;
}

/// One toxic at work on one direction of one connection (Toxiproxy's "stub"). Every method
/// has the harmless default, so a toxic overrides only what it changes.
pub(crate) trait ToxicStub: Send {
    /// Reshape one piece on its way through: push what should be written next to `out`
    /// (possibly nothing, possibly several pieces), with `due` no earlier than it came in.
    fn on_data(&mut self, piece: Piece, out: &mut Vec<Piece>) -> Flow {
        out.push(piece);
        Flow::Continue
    }

    /// The sender finished (FIN): how much longer to hold the close back.
    fn on_eof(&mut self) -> Duration {
        Duration::ZERO
    }

    /// A moment at which the connection must end on its own, and how.
    fn deadline(&self) -> Option<(Instant, Ending)> {
        None
    }

    /// The toxic was removed while this connection lived: end it, or carry on.
    fn on_removed(&self) -> Option<Ending> {
        None
    }
}

/// Bytes on their way through one direction, and the earliest moment they may be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) data: Bytes,
    pub(crate) due: Instant,
}

/// What a stub says after a piece: carry on, or end the connection once the pieces it
/// pushed have been written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    End(Ending),
}

/// How a connection ends when a toxic (or `down`) ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// An orderly close: both peers see FIN.
    Close,
    /// An abortive close: SO_LINGER 0, both peers see RST (ECONNRESET).
    Reset,
}

/// `start + delay`, without the panic `Instant + Duration` has on overflow. Delays are
/// validated to at most a year, so the fallback only guards against the impossible.
pub(crate) fn after(start: Instant, delay: Duration) -> Instant {
    start
        .checked_add(delay)
        .or_else(|| start.checked_add(spec::LONGEST))
        .unwrap_or(start)
}

/// Helpers for the toxics' own tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::collections::BTreeMap;

    /// Build a toxic the way the proxy does, from a kind and `name = value` attributes.
    pub(crate) fn build(
        kind: &str,
        attributes: &[(&str, serde_json::Value)],
    ) -> Result<Arc<dyn Toxic>, ToxicError> {
        spec(kind, attributes).build()
    }

    pub(crate) fn spec(kind: &str, attributes: &[(&str, serde_json::Value)]) -> ToxicSpec {
        ToxicSpec {
            name: format!("test_{kind}"),
            kind: kind.to_string(),
            stream: Stream::Downstream,
            toxicity: 1.0,
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    /// The problems a spec has, as their messages.
    pub(crate) fn problems(kind: &str, attributes: &[(&str, serde_json::Value)]) -> Vec<String> {
        match build(kind, attributes) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems.iter().map(ToString::to_string).collect(),
        }
    }

    pub(crate) fn piece(len: usize, due: Instant) -> Piece {
        Piece {
            data: Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>()),
            due,
        }
    }

    /// Feed pieces through one stub; what came out, and whether it ended the connection.
    pub(crate) fn run(
        stub: &mut dyn ToxicStub,
        pieces: impl IntoIterator<Item = Piece>,
    ) -> (Vec<Piece>, Option<Ending>) {
        let mut out = Vec::new();
        for piece in pieces {
            if let Flow::End(ending) = stub.on_data(piece, &mut out) {
                return (out, Some(ending));
            }
        }
        (out, None)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::problems;
    use serde_json::json;

    #[test]
    fn every_registered_kind_has_a_unique_name() {
        let mut kinds = super::kinds();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), super::REGISTRY.len());
    }

    #[test]
    fn an_unknown_kind_lists_the_known_ones() {
        let found = problems("latncy", &[("latency_ms", json!(5))]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("\"latncy\""), "{found:?}");
        for kind in super::kinds() {
            assert!(found[0].contains(kind), "{found:?} should list {kind}");
        }
    }
}
