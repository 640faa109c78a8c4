//! `bandwidth` {rate_kbps}: at most `rate_kbps` kilobytes per second (1 KB = 1000 bytes, as
//! in Toxiproxy). Data is cut into slices of a tenth of a second's worth, and each slice is
//! due when a link of that rate would have finished carrying it: a burst spreads out evenly,
//! and an idle link earns no credit for later.

use super::{Attributes, Flow, Piece, Toxic, ToxicStub, after};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) fn build(attributes: &mut Attributes<'_>) -> Arc<dyn Toxic> {
    let kilobytes = attributes.whole("rate_kbps", "KB/s (1 KB = 1000 bytes)", 1, None);
    Arc::new(Bandwidth {
        bytes_per_second: kilobytes.saturating_mul(1000),
    })
}

#[derive(Debug, Clone, Copy)]
struct Bandwidth {
    bytes_per_second: u64,
}

impl Toxic for Bandwidth {
    fn start(&self, now: Instant) -> Box<dyn ToxicStub> {
        Box::new(Pacing {
            bytes_per_second: self.bytes_per_second.max(1),
            free_at: now,
        })
    }
}

struct Pacing {
    bytes_per_second: u64,
    /// When the simulated link finishes what it carries now.
    free_at: Instant,
}

impl Pacing {
    fn carrying(&self, bytes: usize) -> Duration {
        let nanos = bytes as u128 * 1_000_000_000 / u128::from(self.bytes_per_second);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

impl ToxicStub for Pacing {
    fn on_data(&mut self, piece: Piece, out: &mut Vec<Piece>) -> Flow {
        let slice = usize::try_from(self.bytes_per_second / 10)
            .unwrap_or(usize::MAX)
            .max(1);
        let mut data = piece.data;
        while !data.is_empty() {
            let part = data.split_to(slice.min(data.len()));
            let start = self.free_at.max(piece.due);
            self.free_at = after(start, self.carrying(part.len()));
            out.push(Piece {
                data: part,
                due: self.free_at,
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
        assert!(build("bandwidth", &[("rate_kbps", json!(100))]).is_ok());
        assert!(problems("bandwidth", &[])[0].contains("`attributes.rate_kbps` is missing"));
        assert!(
            problems("bandwidth", &[("rate_kbps", json!(0))])[0]
                .contains("`attributes.rate_kbps` = 0; expected a whole number of KB/s")
        );
        assert!(problems("bandwidth", &[("rate_kbps", json!(1.5))])[0].contains("1.5"));
    }

    #[test]
    fn fifty_kb_at_a_hundred_kb_per_second_takes_half_a_second() {
        let t0 = Instant::now();
        let mut stub = build("bandwidth", &[("rate_kbps", json!(100))])
            .unwrap()
            .start(t0);
        let (out, _) = run(stub.as_mut(), [piece(50_000, t0)]);
        assert_eq!(out.len(), 5, "slices of a tenth of a second");
        assert!(out.iter().all(|p| p.data.len() == 10_000));
        assert_eq!(
            out.last().map(|p| p.due),
            Some(t0 + Duration::from_millis(500))
        );
        let bytes: Vec<u8> = out.iter().flat_map(|p| p.data.to_vec()).collect();
        assert_eq!(bytes, piece(50_000, t0).data.to_vec(), "content unchanged");
    }

    #[test]
    fn back_to_back_pieces_queue_and_idle_time_earns_no_credit() {
        let t0 = Instant::now();
        let mut stub = build("bandwidth", &[("rate_kbps", json!(1))])
            .unwrap()
            .start(t0);
        let (out, _) = run(
            stub.as_mut(),
            [
                piece(100, t0),
                piece(100, t0),
                piece(100, t0 + Duration::from_secs(10)),
            ],
        );
        let dues: Vec<_> = out.iter().map(|p| p.due - t0).collect();
        assert_eq!(
            dues,
            [100, 200, 10_100].map(Duration::from_millis),
            "1 KB/s: 100 bytes take 100 ms"
        );
    }
}
