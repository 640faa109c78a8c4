//! `slicer` {average_size, size_variation = 0, delay_us = 0}: data is cut into small pieces
//! of `average_size` ± a random `size_variation` bytes, `delay_us` apart, as a slow or
//! fragmenting network delivers it. Content and order are unchanged; only the framing the
//! peer sees changes, which is what parsers that assume "one read = one message" trip on.

use super::{Attributes, Flow, Piece, Toxic, ToxicStub, after};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) fn build(attributes: &mut Attributes<'_>) -> Arc<dyn Toxic> {
    let average = attributes.whole("average_size", "bytes", 1, None);
    let variation = attributes.whole("size_variation", "bytes", 0, Some(0));
    if variation >= average {
        attributes.reject(
            "size_variation",
            format!("fewer bytes than `average_size` ({average}), so no piece is empty"),
        );
    }
    Arc::new(Slicer {
        average: usize::try_from(average).unwrap_or(usize::MAX),
        variation: usize::try_from(variation).unwrap_or(0),
        delay: attributes.micros("delay_us", Some(0)),
    })
}

#[derive(Debug, Clone, Copy)]
struct Slicer {
    average: usize,
    variation: usize,
    delay: Duration,
}

impl Toxic for Slicer {
    fn start(&self, now: Instant) -> Box<dyn ToxicStub> {
        Box::new(Slicing {
            toxic: *self,
            rng: StdRng::from_rng(&mut rand::rng()),
            next_at: now,
        })
    }
}

struct Slicing {
    toxic: Slicer,
    rng: StdRng,
    /// The earliest moment the next slice may go: `delay` after the previous one.
    next_at: Instant,
}

impl Slicing {
    fn slice_size(&mut self) -> usize {
        let Slicer {
            average, variation, ..
        } = self.toxic;
        let size = if variation == 0 {
            average
        } else {
            self.rng
                .random_range(average.saturating_sub(variation)..=average.saturating_add(variation))
        };
        size.max(1)
    }
}

impl ToxicStub for Slicing {
    fn on_data(&mut self, piece: Piece, out: &mut Vec<Piece>) -> Flow {
        let mut data = piece.data;
        while !data.is_empty() {
            let size = self.slice_size().min(data.len());
            let due = self.next_at.max(piece.due);
            self.next_at = after(due, self.toxic.delay);
            out.push(Piece {
                data: data.split_to(size),
                due,
            });
        }
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
        assert!(problems("slicer", &[])[0].contains("`attributes.average_size` is missing"));
        assert!(
            problems("slicer", &[("average_size", json!(0))])[0]
                .contains("expected a whole number of bytes, 1 or more")
        );
        let found = problems(
            "slicer",
            &[("average_size", json!(10)), ("size_variation", json!(10))],
        );
        assert!(
            found[0].contains("`attributes.size_variation` = 10; expected fewer bytes than"),
            "{found:?}"
        );
    }

    #[test]
    fn pieces_keep_the_content_within_the_size_range_delay_apart() {
        let t0 = Instant::now();
        let mut stub = Slicing {
            toxic: Slicer {
                average: 10,
                variation: 4,
                delay: Duration::from_micros(100),
            },
            rng: StdRng::seed_from_u64(1),
            next_at: t0,
        };
        let input = piece(2000, t0);
        let (out, ending) = run(&mut stub, [input.clone()]);
        assert_eq!(ending, None);
        let joined: Vec<u8> = out.iter().flat_map(|p| p.data.to_vec()).collect();
        assert_eq!(joined, input.data.to_vec());
        let (last, rest) = out.split_last().unwrap();
        assert!(rest.iter().all(|p| (6..=14).contains(&p.data.len())));
        assert!(last.data.len() <= 14);
        for (i, p) in out.iter().enumerate() {
            assert_eq!(p.due, t0 + Duration::from_micros(100) * i as u32);
        }
        // The next piece waits its turn behind the last slice.
        let (more, _) = run(&mut stub, [piece(5, t0)]);
        assert_eq!(more[0].due, last.due + Duration::from_micros(100));
    }

    #[test]
    fn without_variation_every_piece_but_the_last_is_the_average() {
        let t0 = Instant::now();
        let mut stub = build("slicer", &[("average_size", json!(3))])
            .unwrap()
            .start(t0);
        let (out, _) = run(stub.as_mut(), [piece(10, t0)]);
        assert_eq!(
            out.iter().map(|p| p.data.len()).collect::<Vec<_>>(),
            [3, 3, 3, 1]
        );
        assert!(out.iter().all(|p| p.due == t0), "no delay by default");
    }
}
