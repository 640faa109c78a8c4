//! Inline SVG charts for the HTML report: time on x, one or more series on y, the run's
//! faults as markers, their recovery windows shaded, and a timeline strip of faults and
//! alerts. Written here rather than with a charting library because the report must be one
//! file that works offline: the browser draws SVG itself, no script or CDN involved.
//!
//! It draws the figures it is given and computes none, except thinning a long series to at
//! most [`MAX_POINTS`] by keeping each bucket's maximum (so a spike is never drawn away).

use super::esc;
use crate::report::{AlertRecord, FaultRecord, RecoveryRecord};
use std::fmt::Write;

/// More points than pixels only makes the file bigger.
const MAX_POINTS: usize = 1500;
/// Width of a full-width chart; a half-width one is drawn at [`HALF`] so its text keeps
/// its size on the page.
pub const FULL: f64 = 1100.0;
pub const HALF: f64 = 545.0;
const H: f64 = 230.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 26.0;

/// Colours of the series and marks; the report's test looks for them in a screenshot.
pub const OK: &str = "#2e9d57";
pub const FAILED: &str = "#d7263d";
pub const P50: &str = "#2563eb";
pub const P95: &str = "#f08c00";
pub const P99: &str = "#8e44ad";
pub const RSS: &str = "#0f9fb5";
pub const CPU: &str = "#c0399a";
pub const SESSIONS: &str = "#6b7280";
pub const FAULT: &str = "#7a0019";
pub const RECOVERING: &str = "#fde4c4";
pub const UNRECOVERED: &str = "#f7c6c6";
pub const IN_EFFECT: &str = "#e6dcf5";
pub const CRITICAL: &str = "#c62828";
pub const WARNING: &str = "#f9a825";

pub enum Style {
    Line,
    Bars,
}

pub struct Series {
    pub name: &'static str,
    pub color: &'static str,
    pub style: Style,
    /// (seconds into the run, value); a second without a value is a gap in the line.
    pub points: Vec<(f64, Option<f64>)>,
}

/// What happened to the run, drawn behind every chart.
pub struct Events<'a> {
    pub faults: &'a [FaultRecord],
    pub recoveries: &'a [RecoveryRecord],
    pub alerts: &'a [AlertRecord],
    /// The run's length in seconds: the x axis.
    pub span_s: f64,
}

struct Frame {
    x_max: f64,
    y_max: f64,
    y_step: f64,
    width: f64,
    height: f64,
}

impl Frame {
    fn x(&self, t: f64) -> f64 {
        LEFT + (t.clamp(0.0, self.x_max) / self.x_max) * (self.width - LEFT - RIGHT)
    }
    fn y(&self, v: f64) -> f64 {
        let plot = self.height - TOP - BOTTOM;
        TOP + plot - (v.clamp(0.0, self.y_max) / self.y_max) * plot
    }
    fn bottom(&self) -> f64 {
        self.height - BOTTOM
    }
}

/// One chart, `width` wide ([`FULL`] or [`HALF`]): `id` names it for the page's anchors,
/// `unit` follows the y labels.
pub fn chart(
    id: &str,
    title: &str,
    unit: &str,
    width: f64,
    series: &[Series],
    ev: &Events,
) -> String {
    let series: Vec<Series> = series.iter().map(thin).collect();
    let top = series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|(_, v)| *v))
        .fold(0.0f64, f64::max);
    let (y_max, y_step) = y_axis(top);
    let f = Frame {
        x_max: ev.span_s.max(1.0),
        y_max,
        y_step,
        width,
        height: H,
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" id="{id}" data-series="{}" viewBox="0 0 {width} {H}" role="img" aria-label="{}">"#,
        series.len(),
        esc(title)
    );
    let _ = write!(
        s,
        r#"<text x="{LEFT}" y="18" class="ct">{}</text>"#,
        esc(title)
    );
    legend(&mut s, &f, &series);
    backdrop(&mut s, &f, ev);
    axes(&mut s, &f, unit);
    for one in &series {
        match one.style {
            Style::Line => line(&mut s, &f, one),
            Style::Bars => bars(&mut s, &f, one),
        }
    }
    fault_marks(&mut s, &f, ev);
    s.push_str("</svg>");
    s
}

/// The strip above the charts: faults and recovery windows on one row, then one row per
/// alert rule with the time it was firing.
pub fn timeline(ev: &Events) -> String {
    let mut rules: Vec<&str> = Vec::new();
    for a in ev.alerts {
        if !rules.contains(&a.rule.as_str()) {
            rules.push(&a.rule);
        }
    }
    let row = 18.0;
    let height = TOP + row * (1 + rules.len()) as f64 + BOTTOM;
    let f = Frame {
        x_max: ev.span_s.max(1.0),
        y_max: 1.0,
        y_step: 1.0,
        width: FULL,
        height,
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart timeline" id="timeline" viewBox="0 0 {FULL} {height}" role="img" aria-label="timeline of faults and alerts">"#
    );
    let _ = write!(
        s,
        r#"<text x="{LEFT}" y="18" class="ct">Timeline: faults, recovery windows, alerts</text>"#
    );
    let y0 = TOP;
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" class="lab" text-anchor="end">faults</text>"#,
        LEFT - 6.0,
        y0 + 13.0
    );
    windows(&mut s, &f, ev, y0, y0 + row - 2.0);
    for fault in ev.faults.iter().filter(|x| x.applied) {
        let x = f.x(fault.at_s);
        let _ = write!(
            s,
            r#"<rect x="{:.1}" y="{y0:.1}" width="3" height="{:.1}" fill="{FAULT}"><title>{}</title></rect>"#,
            x - 1.5,
            row - 2.0,
            esc(&format!(
                "fault #{} {} at {:.1} s {}",
                fault.id, fault.kind, fault.at_s, fault.detail
            ))
        );
    }
    for (i, rule) in rules.iter().enumerate() {
        let y = y0 + row * (i + 1) as f64;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" class="lab" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 13.0,
            esc(rule)
        );
        for a in ev.alerts.iter().filter(|a| a.rule == *rule) {
            let color = if a.severity == "critical" {
                CRITICAL
            } else {
                WARNING
            };
            let x0 = f.x(a.at_s);
            let x1 = f.x(a.ended_at_s.unwrap_or(f.x_max)).max(x0 + 3.0);
            let _ = write!(
                s,
                r#"<rect class="alert" x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{}</title></rect>"#,
                y + 2.0,
                x1 - x0,
                row - 5.0,
                esc(&format!(
                    "{} ({}) from {:.1} s: {}",
                    a.rule, a.severity, a.at_s, a.message
                ))
            );
        }
    }
    x_ticks(&mut s, &f);
    s.push_str("</svg>");
    s
}

fn legend(s: &mut String, f: &Frame, series: &[Series]) {
    let mut x = f.width - RIGHT;
    for one in series.iter().rev() {
        let width = 7.0 * one.name.len() as f64 + 26.0;
        x -= width;
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="10" width="14" height="4" fill="{}"/><text x="{:.1}" y="17" class="lab">{}</text>"#,
            one.color,
            x + 18.0,
            esc(one.name)
        );
    }
}

/// Recovery windows and faults in effect, behind the series.
fn backdrop(s: &mut String, f: &Frame, ev: &Events) {
    windows(s, f, ev, TOP, f.bottom());
}

fn windows(s: &mut String, f: &Frame, ev: &Events, y0: f64, y1: f64) {
    for fault in ev
        .faults
        .iter()
        .filter(|x| x.applied && x.ended_at_s > x.at_s)
    {
        let (x0, x1) = (f.x(fault.at_s), f.x(fault.ended_at_s));
        let _ = write!(
            s,
            r#"<rect class="effect" x="{x0:.1}" y="{y0:.1}" width="{:.1}" height="{:.1}" fill="{IN_EFFECT}"><title>{}</title></rect>"#,
            x1 - x0,
            y1 - y0,
            esc(&format!("fault #{} {} in effect", fault.id, fault.kind))
        );
    }
    for r in ev.recoveries {
        let Some(detected) = r.detected_after_ms else {
            continue;
        };
        let (end, color, what) = match r.recovered_after_ms {
            Some(ms) => (
                r.at_s + ms / 1000.0,
                RECOVERING,
                format!(
                    "fault #{} {}: detected after {detected:.0} ms, recovered after {ms:.0} ms",
                    r.fault_id, r.fault
                ),
            ),
            None => (
                f.x_max,
                UNRECOVERED,
                format!(
                    "fault #{} {}: detected after {detected:.0} ms, not recovered",
                    r.fault_id, r.fault
                ),
            ),
        };
        let (x0, x1) = (f.x(r.at_s), f.x(end));
        let _ = write!(
            s,
            r#"<rect class="recovery" x="{x0:.1}" y="{y0:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{}</title></rect>"#,
            (x1 - x0).max(2.0),
            y1 - y0,
            esc(&what)
        );
    }
}

fn fault_marks(s: &mut String, f: &Frame, ev: &Events) {
    for fault in ev.faults.iter().filter(|x| x.applied) {
        let x = f.x(fault.at_s);
        let _ = write!(
            s,
            r#"<line class="fault" x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}" stroke="{FAULT}" stroke-width="2" stroke-dasharray="5 3"><title>{}</title></line><text x="{:.1}" y="{}" class="lab fl">#{} {}</text>"#,
            f.bottom(),
            esc(&format!(
                "fault #{} {} at {:.1} s {}",
                fault.id, fault.kind, fault.at_s, fault.detail
            )),
            x + 3.0,
            TOP + 10.0,
            fault.id,
            esc(&fault.kind)
        );
    }
    for a in ev.alerts {
        let x = f.x(a.at_s);
        let color = if a.severity == "critical" {
            CRITICAL
        } else {
            WARNING
        };
        let _ = write!(
            s,
            r#"<path class="alert" d="M{x:.1} {:.1} l6 9 l-12 0 z" fill="{color}"><title>{}</title></path>"#,
            f.bottom() - 9.0,
            esc(&format!("alert {}: {}", a.rule, a.message))
        );
    }
}

fn axes(s: &mut String, f: &Frame, unit: &str) {
    let steps = (f.y_max / f.y_step).round() as usize;
    for i in 0..=steps {
        let v = f.y_step * i as f64;
        let y = f.y(v);
        let _ = write!(
            s,
            r#"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{}" y="{:.1}" class="lab" text-anchor="end">{}{}</text>"#,
            f.width - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            short(v),
            esc(unit)
        );
    }
    x_ticks(s, f);
}

fn x_ticks(s: &mut String, f: &Frame) {
    let step = nice_step(f.x_max / 8.0);
    let mut t = 0.0;
    while t <= f.x_max + 1e-9 {
        let x = f.x(t);
        // The last label would be cut at the right edge: align it to end there.
        let anchor = if x > f.width - RIGHT - 20.0 {
            "end"
        } else {
            "middle"
        };
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" class="tick"/><text x="{x:.1}" y="{:.1}" class="lab" text-anchor="{anchor}">{}</text>"#,
            f.bottom(),
            f.bottom() + 4.0,
            f.bottom() + 16.0,
            clock(t)
        );
        t += step;
    }
}

fn line(s: &mut String, f: &Frame, one: &Series) {
    let mut d = String::new();
    let mut pen_down = false;
    for (t, v) in &one.points {
        match v {
            Some(v) => {
                let _ = write!(
                    d,
                    "{}{:.1} {:.1}",
                    if pen_down { " L" } else { " M" },
                    f.x(*t),
                    f.y(*v)
                );
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    if d.is_empty() {
        return;
    }
    let _ = write!(
        s,
        r#"<path class="series" d="{}" fill="none" stroke="{}" stroke-width="2" stroke-linejoin="round"><title>{}</title></path>"#,
        d.trim_start(),
        one.color,
        esc(one.name)
    );
}

fn bars(s: &mut String, f: &Frame, one: &Series) {
    let n = one.points.len().max(1) as f64;
    let width = ((f.width - LEFT - RIGHT) / n.max(f.x_max)).max(1.0) * 0.8;
    let mut d = String::new();
    for (t, v) in &one.points {
        let Some(v) = v.filter(|v| *v > 0.0) else {
            continue;
        };
        let (x, y) = (f.x(*t) - width, f.y(v));
        let _ = write!(
            d,
            "M{x:.1} {:.1}h{width:.1}V{y:.1}h-{width:.1}z",
            f.bottom()
        );
    }
    if d.is_empty() {
        return;
    }
    let _ = write!(
        s,
        r#"<path class="series" d="{d}" fill="{}"><title>{}</title></path>"#,
        one.color,
        esc(one.name)
    );
}

/// At most [`MAX_POINTS`], each bucket's maximum at the bucket's last time.
fn thin(one: &Series) -> Series {
    let n = one.points.len();
    let points = if n <= MAX_POINTS {
        one.points.clone()
    } else {
        let per = n.div_ceil(MAX_POINTS);
        one.points
            .chunks(per)
            .map(|c| {
                let t = c.last().map(|p| p.0).unwrap_or(0.0);
                let v = c.iter().filter_map(|p| p.1).reduce(f64::max);
                (t, v)
            })
            .collect()
    };
    Series {
        name: one.name,
        color: one.color,
        style: match one.style {
            Style::Line => Style::Line,
            Style::Bars => Style::Bars,
        },
        points,
    }
}

/// The y axis for values up to `max`: a round step (1, 2 or 5 times a power of ten) that
/// reaches past `max` in 3 to 5 steps, and the top it reaches.
fn y_axis(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 0.25);
    }
    let step = nice_ceiling(max / 4.0);
    let top = (max / step).ceil().max(1.0) * step;
    (top, step)
}

/// The smallest 1, 2 or 5 times a power of ten at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * p)
}

/// A round step near `v` seconds: 1, 2, 5 times a power of ten, or whole minutes and hours.
fn nice_step(v: f64) -> f64 {
    let choices = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        10800.0, 21600.0,
    ];
    choices
        .iter()
        .copied()
        .find(|c| *c >= v)
        .unwrap_or_else(|| nice_ceiling(v))
}

fn clock(t: f64) -> String {
    let t = t.round() as u64;
    match t {
        0..120 => format!("{t}s"),
        120..7200 => format!("{}m{:02}", t / 60, t % 60),
        _ => format!("{}h{:02}", t / 3600, t % 3600 / 60),
    }
}

fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(span_s: f64) -> Events<'static> {
        Events {
            faults: &[],
            recoveries: &[],
            alerts: &[],
            span_s,
        }
    }

    #[test]
    fn a_line_breaks_at_seconds_without_a_value() {
        let one = Series {
            name: "p50",
            color: P50,
            style: Style::Line,
            points: vec![
                (1.0, Some(2.0)),
                (2.0, None),
                (3.0, Some(4.0)),
                (4.0, Some(3.0)),
            ],
        };
        let svg = chart("c", "latency", "ms", FULL, &[one], &events(4.0));
        let d = svg
            .split(r#"class="series" d=""#)
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert_eq!(d.matches('L').count(), 1, "{d}");
        assert!(svg.contains(">4ms<"), "the top is a whole step: {svg}");
    }

    #[test]
    fn long_series_are_thinned_keeping_peaks() {
        let mut points: Vec<(f64, Option<f64>)> =
            (0..86_400).map(|t| (t as f64, Some(1.0))).collect();
        points[40_000].1 = Some(500.0);
        let one = Series {
            name: "p99",
            color: P99,
            style: Style::Line,
            points,
        };
        let thinned = thin(&one);
        assert!(thinned.points.len() <= MAX_POINTS);
        assert!(thinned.points.iter().any(|p| p.1 == Some(500.0)));
    }

    #[test]
    fn ticks_and_tops_are_round() {
        assert_eq!(y_axis(2014.0), (3000.0, 1000.0));
        assert_eq!(y_axis(7.3), (8.0, 2.0));
        assert_eq!(y_axis(0.0), (1.0, 0.25));
        assert_eq!(nice_ceiling(130.0), 200.0);
        assert_eq!(nice_step(600.0 / 8.0), 120.0);
        assert_eq!(clock(0.0), "0s");
        assert_eq!(clock(150.0), "2m30");
        assert_eq!(clock(86_400.0), "24h00");
    }
}
