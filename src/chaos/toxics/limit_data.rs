//! `limit_data` {bytes}: the connection is closed once `bytes` bytes have gone through this
//! direction since the toxic began on it. The piece that crosses the limit is cut at it.

use super::{Attributes, Ending, Flow, Piece, Toxic, ToxicStub};
use std::sync::Arc;
use std::time::Instant;

pub(super) fn build(attributes: &mut Attributes<'_>) -> Arc<dyn Toxic> {
    Arc::new(LimitData {
        bytes: attributes.whole("bytes", "bytes", 0, None),
    })
}

#[derive(Debug, Clone, Copy)]
struct LimitData {
    bytes: u64,
}

impl Toxic for LimitData {
    fn start(&self, _now: Instant) -> Box<dyn ToxicStub> {
        Box::new(Counting {
            limit: self.bytes,
            passed: 0,
        })
    }
}

struct Counting {
    limit: u64,
    passed: u64,
}

impl ToxicStub for Counting {
    fn on_data(&mut self, mut piece: Piece, out: &mut Vec<Piece>) -> Flow {
        let left = usize::try_from(self.limit.saturating_sub(self.passed)).unwrap_or(usize::MAX);
        piece.data.truncate(left);
        self.passed += piece.data.len() as u64;
        if !piece.data.is_empty() {
            out.push(piece);
        }
        if self.passed >= self.limit {
            Flow::End(Ending::Close)
        } else {
            Flow::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::toxics::testing::{build, piece, problems, run};
    use serde_json::json;

    #[test]
    fn parses_and_names_bad_attributes() {
        assert!(problems("limit_data", &[])[0].contains("`attributes.bytes` is missing"));
        assert!(
            problems("limit_data", &[("bytes", json!(-1))])[0]
                .contains("expected a whole number of bytes, 0 or more")
        );
    }

    #[test]
    fn cuts_at_the_limit_across_pieces_and_then_closes() {
        let t0 = Instant::now();
        let mut stub = build("limit_data", &[("bytes", json!(1000))])
            .unwrap()
            .start(t0);
        let (out, ending) = run(
            stub.as_mut(),
            [piece(600, t0), piece(600, t0), piece(9, t0)],
        );
        assert_eq!(ending, Some(Ending::Close));
        assert_eq!(
            out.iter().map(|p| p.data.len()).collect::<Vec<_>>(),
            [600, 400]
        );
    }

    #[test]
    fn exactly_the_limit_closes_and_zero_closes_on_the_first_data() {
        let t0 = Instant::now();
        let mut stub = build("limit_data", &[("bytes", json!(10))])
            .unwrap()
            .start(t0);
        assert_eq!(run(stub.as_mut(), [piece(10, t0)]).1, Some(Ending::Close));
        let mut stub = build("limit_data", &[("bytes", json!(0))])
            .unwrap()
            .start(t0);
        let (out, ending) = run(stub.as_mut(), [piece(10, t0)]);
        assert!(out.is_empty());
        assert_eq!(ending, Some(Ending::Close));
    }
}
