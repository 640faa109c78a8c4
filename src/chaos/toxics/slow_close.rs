//! `slow_close` {delay_ms}: when the sender closes its side (FIN), the close reaches the
//! other peer `delay_ms` later. Data is untouched.

use super::{Attributes, Toxic, ToxicStub};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) fn build(attributes: &mut Attributes<'_>) -> Arc<dyn Toxic> {
    Arc::new(SlowClose {
        delay: attributes.millis("delay_ms", None),
    })
}

#[derive(Debug, Clone, Copy)]
struct SlowClose {
    delay: Duration,
}

impl Toxic for SlowClose {
    fn start(&self, _now: Instant) -> Box<dyn ToxicStub> {
        Box::new(*self)
    }
}

impl ToxicStub for SlowClose {
    fn on_eof(&mut self) -> Duration {
        self.delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::toxics::testing::{build, piece, problems, run};
    use serde_json::json;

    #[test]
    fn parses_and_names_bad_attributes() {
        assert!(problems("slow_close", &[])[0].contains("`attributes.delay_ms` is missing"));
        assert!(problems("slow_close", &[("delay_ms", json!("1s"))])[0].contains("\"1s\""));
    }

    #[test]
    fn holds_the_close_back_and_leaves_data_alone() {
        let t0 = Instant::now();
        let mut stub = build("slow_close", &[("delay_ms", json!(300))])
            .unwrap()
            .start(t0);
        let (out, ending) = run(stub.as_mut(), [piece(10, t0)]);
        assert_eq!((out, ending), (vec![piece(10, t0)], None));
        assert_eq!(stub.on_eof(), Duration::from_millis(300));
        assert_eq!(stub.deadline(), None);
    }
}
