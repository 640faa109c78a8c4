//! Recovery: for each fault, when the failure was first seen (a failed probe or call), when
//! service was back (the first successful probe after that), and when it was stable (the
//! first whole second whose success rate is back to the level before the fault). Computed
//! once, at the end, from the fault timeline, the probe's log and the recorder's figures.

use crate::report::{FaultRecord, RecoveryRecord, SecondPoint};

/// Seconds before a fault whose success rate is "the level" to come back to.
const BASELINE_SECONDS: u64 = 5;

pub fn compute(
    faults: &[FaultRecord],
    probe: &[(f64, bool)],
    first_failed_call: impl Fn(f64) -> Option<f64>,
    series: &[SecondPoint],
) -> Vec<RecoveryRecord> {
    let mut out = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        let window_end = faults.get(i + 1).map(|n| n.at_s).unwrap_or(f64::INFINITY);
        let failed_probe = probe
            .iter()
            .find(|(t, ok)| *t >= f.at_s && !ok)
            .map(|(t, _)| *t);
        let failed_call = first_failed_call(f.at_s);
        let detected = [failed_probe, failed_call]
            .into_iter()
            .flatten()
            .filter(|t| *t < window_end)
            .fold(None, |a: Option<f64>, t| Some(a.map_or(t, |a| a.min(t))));
        let recovered = detected.and_then(|d| {
            // Healthy again: the probe's first change back to ok after the failure; if the
            // probe never saw the failure, the first second after it with no failed call.
            probe
                .iter()
                .find(|(t, ok)| *t >= d && *ok && failed_probe.is_some())
                .map(|(t, _)| *t)
                .or_else(|| {
                    series
                        .iter()
                        .find(|p| p.t as f64 >= d + 1.0 && p.failed == 0 && p.ok > 0)
                        .map(|p| p.t as f64)
                })
        });
        let baseline = level(
            series
                .iter()
                .filter(|p| p.t as f64 <= f.at_s && p.t as f64 > f.at_s - BASELINE_SECONDS as f64),
        );
        let stable = recovered.and_then(|r| {
            series
                .iter()
                .filter(|p| p.t as f64 >= r)
                .find(|p| p.ok + p.failed > 0 && rate(p) >= baseline.unwrap_or(1.0) - 0.01)
                .map(|p| p.t as f64)
        });
        let until = recovered
            .unwrap_or(window_end.min(series.last().map(|p| p.t as f64).unwrap_or(f.at_s)));
        // A fault nobody noticed failed no call; counting its window would borrow the next
        // fault's failures (they land in the same second's point).
        let failed_calls = match detected {
            None => 0,
            Some(_) => series
                .iter()
                .filter(|p| p.t as f64 > f.at_s && p.t as f64 <= until.ceil().min(window_end))
                .map(|p| p.failed)
                .sum(),
        };
        let ms = |t: Option<f64>| t.map(|t| ((t - f.at_s) * 1000.0).max(0.0));
        out.push(RecoveryRecord {
            fault_id: f.id,
            fault: f.kind.clone(),
            at_s: f.at_s,
            detected_after_ms: ms(detected),
            recovered_after_ms: ms(recovered),
            stable_after_ms: ms(stable),
            failed_calls,
        });
    }
    out
}

fn rate(p: &SecondPoint) -> f64 {
    p.ok as f64 / (p.ok + p.failed).max(1) as f64
}

fn level<'a>(points: impl Iterator<Item = &'a SecondPoint>) -> Option<f64> {
    let (ok, all) = points.fold((0, 0), |(ok, all), p| (ok + p.ok, all + p.ok + p.failed));
    (all > 0).then(|| ok as f64 / all as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(t: u64, ok: u64, failed: u64) -> SecondPoint {
        SecondPoint {
            t,
            ok,
            failed,
            calls: ok + failed,
            ..Default::default()
        }
    }

    #[test]
    fn times_detection_recovery_and_stability() {
        let faults = vec![FaultRecord {
            id: 0,
            kind: "kill".into(),
            at_s: 3.0,
            ended_at_s: 3.0,
            applied: true,
            detail: String::new(),
        }];
        let probe = vec![(0.1, true), (3.2, false), (4.5, true)];
        let series: Vec<SecondPoint> = vec![
            second(1, 100, 0),
            second(2, 100, 0),
            second(3, 100, 0),
            second(4, 10, 50),
            second(5, 60, 20),
            second(6, 100, 0),
        ];
        let r = compute(&faults, &probe, |_| Some(3.05), &series);
        assert_eq!(r.len(), 1);
        let r = &r[0];
        assert!((r.detected_after_ms.unwrap() - 50.0).abs() < 1e-6, "{r:?}");
        assert!(
            (r.recovered_after_ms.unwrap() - 1500.0).abs() < 1e-6,
            "{r:?}"
        );
        assert!((r.stable_after_ms.unwrap() - 3000.0).abs() < 1e-6, "{r:?}");
        assert_eq!(r.failed_calls, 70);
    }

    #[test]
    fn a_fault_nobody_noticed_and_one_never_recovered() {
        let faults = vec![
            FaultRecord {
                id: 0,
                kind: "term".into(),
                at_s: 2.0,
                ended_at_s: 2.0,
                applied: true,
                detail: String::new(),
            },
            FaultRecord {
                id: 1,
                kind: "kill".into(),
                at_s: 5.0,
                ended_at_s: 5.0,
                applied: true,
                detail: String::new(),
            },
        ];
        let probe = vec![(0.0, true), (5.1, false)];
        let series = vec![second(1, 10, 0), second(6, 0, 10), second(7, 0, 10)];
        let r = compute(
            &faults,
            &probe,
            |t| if t <= 5.5 { Some(5.5) } else { None },
            &series,
        );
        assert_eq!(
            r[0].detected_after_ms, None,
            "the first fault's window ends at the second"
        );
        assert!(r[1].detected_after_ms.is_some());
        assert_eq!(r[1].recovered_after_ms, None);
    }
}
