//! Leaks: the server's RSS, open files and threads fitted against time (least squares over
//! the per-second series, after a warm-up), reported as growth per hour. A server whose RSS
//! climbs steadily under a steady load is leaking, whatever its absolute size.

use crate::report::SecondPoint;
use serde::{Deserialize, Serialize};

/// Seconds at the start of a run left out of the fit: allocators and caches fill up first.
const MIN_WARMUP_S: f64 = 3.0;
const MIN_SAMPLES: usize = 5;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeakReport {
    /// The seconds of the run the fit covers.
    pub from_s: f64,
    pub to_s: f64,
    pub samples: usize,
    pub rss_mb_per_h: f64,
    pub open_files_per_h: f64,
    pub threads_per_h: f64,
    /// Established TCP connections held by the server (its live HTTP clients) per hour.
    #[serde(default)]
    pub connections_per_h: f64,
}

/// Slope of y over x by least squares; `None` with fewer than two distinct x.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// Fit the points between the warm-up and `load_end_s` (after it, sessions close and the
/// server shrinks, which is not a trend).
pub fn fit(series: &[SecondPoint], load_end_s: f64) -> Option<LeakReport> {
    let warmup = MIN_WARMUP_S.max(load_end_s * 0.2);
    let pts: Vec<&SecondPoint> = series
        .iter()
        .filter(|p| p.t as f64 >= warmup && p.t as f64 <= load_end_s && p.target_rss_mb.is_some())
        .collect();
    if pts.len() < MIN_SAMPLES {
        return None;
    }
    let per_hour = |f: &dyn Fn(&SecondPoint) -> Option<f64>| {
        let xy: Vec<(f64, f64)> = pts
            .iter()
            .filter_map(|p| f(p).map(|y| (p.t as f64, y)))
            .collect();
        slope(&xy).map(|s| s * 3600.0).unwrap_or(0.0)
    };
    Some(LeakReport {
        from_s: pts[0].t as f64,
        to_s: pts[pts.len() - 1].t as f64,
        samples: pts.len(),
        rss_mb_per_h: per_hour(&|p| p.target_rss_mb),
        open_files_per_h: per_hour(&|p| p.target_open_files.map(|x| x as f64)),
        threads_per_h: per_hour(&|p| p.target_threads.map(|x| x as f64)),
        connections_per_h: per_hour(&|p| p.target_connections.map(|x| x as f64)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_climb_is_measured_per_hour_and_flat_is_zero() {
        let series: Vec<SecondPoint> = (0..20)
            .map(|t| SecondPoint {
                t,
                target_rss_mb: Some(100.0 + t as f64 * 0.5),
                target_open_files: Some(10),
                target_threads: Some(4),
                ..Default::default()
            })
            .collect();
        let r = fit(&series, 19.0).unwrap();
        assert!((r.rss_mb_per_h - 1800.0).abs() < 1e-6, "{r:?}");
        assert_eq!(r.open_files_per_h, 0.0);
        assert_eq!(r.from_s, 4.0, "the first 20 % (at least 3 s) is warm-up");
        assert_eq!(r.to_s, 19.0);
        assert!(fit(&series, 6.0).is_none(), "too few samples to say");
    }
}
