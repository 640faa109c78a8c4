//! `latency` {latency_ms, jitter_ms = 0}: every piece is held until `latency_ms` ± a random
//! `jitter_ms` after it reached the proxy. Timing from arrival (not from when the previous
//! piece left) keeps the pieces of one answer each late by the latency, not by the latency
//! times their number. Order is kept: the pump writes pieces in order, so a short jitter
//! draw never overtakes an earlier piece.

use super::{Attributes, Flow, Piece, Toxic, ToxicStub, after};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) fn build(attributes: &mut Attributes<'_>) -> Arc<dyn Toxic> {
    Arc::new(Latency {
        latency: attributes.millis("latency_ms", None),
        jitter: attributes.millis("jitter_ms", Some(0)),
    })
}

#[derive(Debug, Clone, Copy)]
struct Latency {
    latency: Duration,
    jitter: Duration,
}

impl Toxic for Latency {
    fn start(&self, _now: Instant) -> Box<dyn ToxicStub> {
        Box::new(Delaying {
            toxic: *self,
            rng: StdRng::from_rng(&mut rand::rng()),
        })
    }
}

struct Delaying {
    toxic: Latency,
    rng: StdRng,
}

impl Delaying {
    /// The latency with this piece's jitter, uniform in [latency - jitter, latency + jitter],
    /// never below zero.
    fn delay(&mut self) -> Duration {
        let Latency { latency, jitter } = self.toxic;
        if jitter.is_zero() {
            return latency;
        }
        let jitter = jitter.as_secs_f64() * self.rng.random_range(-1.0..=1.0);
        Duration::try_from_secs_f64((latency.as_secs_f64() + jitter).max(0.0)).unwrap_or(latency)
    }
}

impl ToxicStub for Delaying {
    fn on_data(&mut self, mut piece: Piece, out: &mut Vec<Piece>) -> Flow {
        piece.due = after(piece.due, self.delay());
        out.push(piece);
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::toxics::testing::{build, piece, problems, run};
    use serde_json::json;

    #[test]
    fn parses_and_names_bad_attributes() {
        assert!(
            build(
                "latency",
                &[("latency_ms", json!(50)), ("jitter_ms", json!(5))]
            )
            .is_ok()
        );
        assert!(problems("latency", &[])[0].contains("`attributes.latency_ms` is missing"));
        assert!(
            problems("latency", &[("latency_ms", json!(-1))])[0]
                .contains("`attributes.latency_ms` = -1; expected a number of milliseconds")
        );
        assert!(
            problems("latency", &[("latency", json!(50))])
                .iter()
                .any(|p| p.contains("`attributes.latency` does not apply to `latency`"))
        );
    }

    #[test]
    fn every_piece_is_due_latency_after_it_arrived() {
        let t0 = Instant::now();
        let toxic = build("latency", &[("latency_ms", json!(50))]).unwrap();
        let mut stub = toxic.start(t0);
        let arrivals = [
            t0,
            t0 + Duration::from_millis(1),
            t0 + Duration::from_millis(7),
        ];
        let (out, ending) = run(stub.as_mut(), arrivals.map(|at| piece(100, at)));
        assert_eq!(ending, None);
        let dues: Vec<_> = out.iter().map(|p| p.due).collect();
        assert_eq!(dues, arrivals.map(|at| at + Duration::from_millis(50)));
        assert!(out.iter().all(|p| p.data.len() == 100));
    }

    #[test]
    fn jitter_stays_within_bounds_and_never_goes_below_zero() {
        let mut stub = Delaying {
            toxic: Latency {
                latency: Duration::from_millis(5),
                jitter: Duration::from_millis(10),
            },
            rng: StdRng::seed_from_u64(7),
        };
        let delays: Vec<_> = (0..1000).map(|_| stub.delay()).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(15)));
        assert!(delays.iter().any(|d| d.is_zero()), "clamped at zero");
        assert!(delays.iter().any(|d| *d > Duration::from_millis(10)));
    }
}
