//! The toxics at work on one direction of one connection, in the order they were added.
//! The chain follows the proxy's installed toxics as they change: it starts a stub for a
//! toxic it meets for the first time (if the toxicity draw says so), keeps the stubs of
//! toxics that stay, and drops those of removed ones.
//!
//! The toxicity draw happens once per connection and toxic, here, and is remembered even
//! when it says no, so a toxic never applies to half of a connection's life by chance.

use super::{Ending, Flow, Piece, Stream, Toxic, ToxicStub};
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A toxic the proxy has installed; `id` tells a re-added toxic of the same name apart.
#[derive(Clone)]
pub(crate) struct Installed {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) stream: Stream,
    pub(crate) toxicity: f64,
    pub(crate) toxic: Arc<dyn Toxic>,
}

struct Link {
    id: u64,
    /// `None`: the toxicity draw said this toxic leaves this connection alone.
    stub: Option<Box<dyn ToxicStub>>,
}

#[derive(Default)]
pub(crate) struct Chain {
    links: Vec<Link>,
}

impl Chain {
    /// Follow the installed toxics of `stream`. Returns how the connection must end when
    /// a removed toxic's stub asks for it (a `timeout` that dropped data).
    pub(crate) fn sync(
        &mut self,
        installed: &[Installed],
        stream: Stream,
        now: Instant,
    ) -> Option<Ending> {
        let mut old = std::mem::take(&mut self.links);
        for toxic in installed.iter().filter(|t| t.stream == stream) {
            let link = match old.iter().position(|l| l.id == toxic.id) {
                Some(at) => old.swap_remove(at),
                None => Link {
                    id: toxic.id,
                    stub: applies(toxic.toxicity).then(|| toxic.toxic.start(now)),
                },
            };
            self.links.push(link);
        }
        old.iter()
            .filter_map(|removed| removed.stub.as_ref()?.on_removed())
            .next()
    }

    /// No toxic acts on this direction: the pump may use its plain copy loop.
    pub(crate) fn is_idle(&self) -> bool {
        self.links.iter().all(|l| l.stub.is_none())
    }

    /// Pass one piece through every stub in order. The connection ends after the pieces
    /// pushed to `out` if a stub says so; a later stub that ends it cuts in earlier.
    pub(crate) fn shape(&mut self, piece: Piece, out: &mut Vec<Piece>) -> Option<Ending> {
        let mut pieces = vec![piece];
        let mut ending = None;
        for stub in self.links.iter_mut().filter_map(|l| l.stub.as_mut()) {
            let mut next = Vec::with_capacity(pieces.len());
            for piece in pieces {
                if let Flow::End(end) = stub.on_data(piece, &mut next) {
                    ending = Some(end);
                    break;
                }
            }
            pieces = next;
        }
        out.extend(pieces);
        ending
    }

    /// The sender closed: how long the stubs hold the close back, in sum (each one holds
    /// what the one before it let go).
    pub(crate) fn on_eof(&mut self) -> Duration {
        self.links
            .iter_mut()
            .filter_map(|l| l.stub.as_mut())
            .map(|s| s.on_eof())
            .fold(Duration::ZERO, Duration::saturating_add)
    }

    /// The earliest moment a stub ends the connection on its own.
    pub(crate) fn deadline(&self) -> Option<(Instant, Ending)> {
        self.links
            .iter()
            .filter_map(|l| l.stub.as_ref()?.deadline())
            .min_by_key(|(at, _)| *at)
    }
}

/// The toxicity draw: never for 0, always for 1.
fn applies(toxicity: f64) -> bool {
    toxicity >= 1.0 || (toxicity > 0.0 && rand::rng().random::<f64>() < toxicity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::toxics::testing::{build, piece};
    use serde_json::json;

    fn installed(id: u64, kind: &str, attributes: &[(&str, serde_json::Value)]) -> Installed {
        Installed {
            id,
            name: format!("{kind}{id}"),
            stream: Stream::Downstream,
            toxicity: 1.0,
            toxic: build(kind, attributes).unwrap(),
        }
    }

    #[test]
    fn toxicity_zero_never_applies_and_one_always_does() {
        let now = Instant::now();
        for _ in 0..200 {
            let mut never = installed(1, "down", &[]);
            never.toxicity = 0.0;
            let mut chain = Chain::default();
            chain.sync(&[never], Stream::Downstream, now);
            assert!(chain.is_idle());
            let mut chain = Chain::default();
            chain.sync(&[installed(1, "down", &[])], Stream::Downstream, now);
            assert!(!chain.is_idle());
        }
    }

    #[test]
    fn a_toxicity_of_a_half_applies_to_about_half_the_connections() {
        let mut half = installed(1, "down", &[]);
        half.toxicity = 0.5;
        let applied = (0..2000)
            .filter(|_| {
                let mut chain = Chain::default();
                chain.sync(
                    std::slice::from_ref(&half),
                    Stream::Downstream,
                    Instant::now(),
                );
                !chain.is_idle()
            })
            .count();
        assert!((800..1200).contains(&applied), "{applied} of 2000");
    }

    #[test]
    fn the_draw_is_kept_while_the_toxic_stays_and_redone_when_it_is_re_added() {
        let now = Instant::now();
        let mut never = installed(1, "down", &[]);
        never.toxicity = 0.0;
        let mut chain = Chain::default();
        chain.sync(std::slice::from_ref(&never), Stream::Downstream, now);
        // The same toxic, now at toxicity 1 in the proxy's list, keeps this connection's draw.
        never.toxicity = 1.0;
        chain.sync(&[never], Stream::Downstream, now);
        assert!(chain.is_idle());
        // Re-added (a new id): drawn again.
        chain.sync(&[installed(2, "down", &[])], Stream::Downstream, now);
        assert!(!chain.is_idle());
    }

    #[test]
    fn only_toxics_of_its_own_stream_apply() {
        let mut up = installed(1, "down", &[]);
        up.stream = Stream::Upstream;
        let mut chain = Chain::default();
        chain.sync(&[up], Stream::Downstream, Instant::now());
        assert!(chain.is_idle());
    }

    #[test]
    fn stubs_compose_in_the_order_toxics_were_added() {
        let now = Instant::now();
        let mut chain = Chain::default();
        chain.sync(
            &[
                installed(1, "latency", &[("latency_ms", json!(10))]),
                installed(2, "limit_data", &[("bytes", json!(15))]),
            ],
            Stream::Downstream,
            now,
        );
        let mut out = Vec::new();
        assert_eq!(chain.shape(piece(10, now), &mut out), None);
        assert_eq!(chain.shape(piece(10, now), &mut out), Some(Ending::Close));
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].data.len(), 5, "the limit cut the second piece");
        assert!(out.iter().all(|p| p.due == now + Duration::from_millis(10)));
    }

    #[test]
    fn removing_a_timeout_ends_the_connection_it_held_but_removing_latency_does_not() {
        let now = Instant::now();
        let mut chain = Chain::default();
        let latency = installed(1, "latency", &[("latency_ms", json!(10))]);
        let timeout = installed(2, "timeout", &[]);
        chain.sync(&[latency.clone(), timeout], Stream::Downstream, now);
        assert_eq!(
            chain.sync(std::slice::from_ref(&latency), Stream::Downstream, now),
            Some(Ending::Close)
        );
        assert_eq!(chain.sync(&[], Stream::Downstream, now), None);
        assert!(chain.is_idle());
    }

    #[test]
    fn the_earliest_deadline_wins_and_close_delays_add_up() {
        let now = Instant::now();
        let mut chain = Chain::default();
        chain.sync(
            &[
                installed(1, "timeout", &[("timeout_ms", json!(200))]),
                installed(2, "reset_peer", &[("timeout_ms", json!(100))]),
                installed(3, "slow_close", &[("delay_ms", json!(30))]),
                installed(4, "slow_close", &[("delay_ms", json!(20))]),
            ],
            Stream::Downstream,
            now,
        );
        assert_eq!(
            chain.deadline(),
            Some((now + Duration::from_millis(100), Ending::Reset))
        );
        assert_eq!(chain.on_eof(), Duration::from_millis(50));
    }
}
