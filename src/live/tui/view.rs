//! One frame of the dashboard: what it shows, gathered from [`LiveState`] by
//! [`View::refresh`] and drawn by [`View::draw`]. It reads figures and lays them out; the
//! rates it shows come from the report's own definitions ([`crate::report::fraction`]),
//! never from arithmetic of its own.

use crate::live::LiveState;
use crate::report::{AlertRecord, FaultRecord, OpFigures, RecoveryRecord, SecondPoint};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Cell, Chart, Dataset, Gauge, GraphType, Paragraph, Row, Table,
};

/// One line of a chart: its legend, colour and points.
type ChartLine = (&'static str, Color, Vec<(f64, f64)>);

/// Seconds of history the charts show.
const WINDOW_S: u64 = 120;

/// What one frame shows, gathered from the live state.
#[derive(Default)]
pub(crate) struct View {
    series: Vec<SecondPoint>,
    tools: Vec<(String, OpFigures)>,
    faults: Vec<FaultRecord>,
    recoveries: Vec<RecoveryRecord>,
    alerts: Vec<AlertRecord>,
    totals: (u64, u64, u64),
    active: u64,
    elapsed_s: f64,
}

impl View {
    pub fn refresh(&mut self, s: &LiveState) {
        // The charts show the last two minutes; a day-long series is not copied twice a second.
        self.series = s.recorder.series_tail(WINDOW_S as usize + 1);
        let mut tools: Vec<(String, OpFigures)> =
            s.recorder.by_operation_and_tool().1.into_iter().collect();
        tools.sort_by_key(|(_, f)| std::cmp::Reverse(f.calls));
        self.tools = tools;
        self.faults = s.faults();
        self.recoveries = s.recoveries();
        self.alerts = s.alerts.records();
        self.totals = s.recorder.totals();
        self.active = s.recorder.active_sessions();
        self.elapsed_s = s.elapsed().as_secs_f64();
    }

    pub fn draw(&self, f: &mut Frame, s: &LiveState, stopping: bool) {
        let [head, strip, charts, middle, events, foot] = Layout::vertical([
            Constraint::Length(4),
            Constraint::Length(4),
            Constraint::Percentage(38),
            Constraint::Percentage(32),
            Constraint::Min(5),
            Constraint::Length(1),
        ])
        .areas(f.area());
        self.header(f, head, s);
        self.timeline(f, strip, s);
        let [calls, success, latency] = Layout::horizontal([
            Constraint::Ratio(1, 3),
            Constraint::Ratio(1, 3),
            Constraint::Ratio(1, 3),
        ])
        .areas(charts);
        self.calls_chart(f, calls);
        self.success_chart(f, success);
        self.latency_chart(f, latency);
        let [tools, resources] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(middle);
        self.tool_table(f, tools);
        self.resource_chart(f, resources);
        let [faults, alerts] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(events);
        self.fault_list(f, faults);
        self.alert_list(f, alerts);
        let help = if stopping {
            " stopping: finishing calls in flight, then the report (Ctrl-C again aborts them)"
                .yellow()
        } else {
            " q stop the run (the report is still written)".dark_gray()
        };
        f.render_widget(Paragraph::new(help), foot);
    }

    fn last(&self) -> Option<&SecondPoint> {
        self.series.last()
    }

    fn header(&self, f: &mut Frame, area: Rect, s: &LiveState) {
        let block = Block::bordered().title(Line::from(vec![
            " mcpstorm ".bold(),
            format!("· {} → {} ", s.name, s.target).into(),
        ]));
        let inner = block.inner(area);
        f.render_widget(block, area);
        let [figures, gauge] =
            Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(inner);
        let (calls, ok, _) = self.totals;
        let last = self.last();
        let rate = last.map(|p| p.calls).unwrap_or(0);
        // A second without a successful call has no latency, not a latency of 0.
        let timed = last.filter(|p| p.has_latency());
        let success = match crate::report::fraction(ok, calls) {
            None => "-".to_string(),
            Some(r) => format!("{:.2} %", r * 100.0),
        };
        let mut spans = vec![
            "calls/s ".dark_gray(),
            format!("{rate:<8}").bold(),
            "ok ".dark_gray(),
            format!("{success:<9}").bold(),
            "p50 ".dark_gray(),
            format!("{:<9}", ms(timed.map(|p| p.p50_ms))).into(),
            "p95 ".dark_gray(),
            format!("{:<9}", ms(timed.map(|p| p.p95_ms))).into(),
            "p99 ".dark_gray(),
            format!("{:<9}", ms(timed.map(|p| p.p99_ms))).into(),
            "sessions ".dark_gray(),
            format!("{:<6}", self.active).into(),
            "calls ".dark_gray(),
            format!("{calls:<10}").into(),
        ];
        if let Some(p) = last
            && let Some(rss) = p.target_rss_mb
        {
            spans.push("target ".dark_gray());
            spans.push(format!("{rss:.0} MB").into());
            if let Some(cpu) = p.target_cpu_pct {
                spans.push(format!(" {cpu:.0} % CPU").into());
            }
        }
        f.render_widget(Paragraph::new(Line::from(spans)), figures);
        let total = s.total.as_secs_f64().max(1e-9);
        let ratio = (self.elapsed_s / total).clamp(0.0, 1.0);
        f.render_widget(
            Gauge::default()
                .ratio(ratio)
                .label(format!("{:.0} s / {:.0} s", self.elapsed_s, total))
                .gauge_style(Style::default().fg(Color::Cyan)),
            gauge,
        );
    }

    /// One cell per slice of the run: faults in red, recovery windows in yellow, alerts as ▲.
    fn timeline(&self, f: &mut Frame, area: Rect, s: &LiveState) {
        let block = Block::bordered().title(Line::from(vec![
            " timeline ".into(),
            "█ fault ".red(),
            "▒ recovering ".yellow(),
            "▲ alert ".magenta(),
        ]));
        let inner = block.inner(area);
        f.render_widget(block, area);
        let width = inner.width as usize;
        if width == 0 {
            return;
        }
        let total = s.total.as_secs_f64().max(self.elapsed_s).max(1.0);
        let per_cell = total / width as f64;
        let mut cells: Vec<Span> = Vec::with_capacity(width);
        for i in 0..width {
            let (a, b) = (i as f64 * per_cell, (i + 1) as f64 * per_cell);
            let overlaps = |from: f64, to: f64| from < b && to >= a;
            let fault = self.faults.iter().any(|x| {
                let end = x.ended_at_s.min(self.elapsed_s);
                overlaps(x.at_s, end.max(x.at_s + per_cell * 0.5))
            });
            let recovering = self.recoveries.iter().any(|r| {
                let end = r
                    .recovered_after_ms
                    .map(|ms| r.at_s + ms / 1000.0)
                    .unwrap_or(self.elapsed_s);
                r.detected_after_ms.is_some() && overlaps(r.at_s, end)
            });
            let alert = self.alerts.iter().any(|x| x.at_s >= a && x.at_s < b);
            let past = a <= self.elapsed_s;
            cells.push(if alert {
                "▲".magenta()
            } else if fault {
                "█".red()
            } else if recovering {
                "▒".yellow()
            } else if past {
                "─".green()
            } else {
                "·".dark_gray()
            });
        }
        let ticks = format!(
            "0 s{:>w$}",
            format!("{total:.0} s"),
            w = width.saturating_sub(3)
        );
        f.render_widget(
            Paragraph::new(vec![Line::from(cells), Line::from(ticks.dark_gray())]),
            inner,
        );
    }

    fn window(&self) -> (f64, f64, &[SecondPoint]) {
        let end = self.last().map(|p| p.t).unwrap_or(0);
        let start = end.saturating_sub(WINDOW_S);
        let from = self.series.partition_point(|p| p.t <= start);
        (
            start as f64,
            (end.max(start + 10)) as f64,
            &self.series[from..],
        )
    }

    fn chart(&self, f: &mut Frame, area: Rect, title: &str, unit: &str, lines: Vec<ChartLine>) {
        let (x0, x1, _) = self.window();
        let top = lines
            .iter()
            .flat_map(|(_, _, d)| d.iter().map(|(_, y)| *y))
            .fold(0.0f64, f64::max);
        let top = nice_ceiling(top);
        let datasets: Vec<Dataset> = lines
            .iter()
            .map(|(name, color, data)| {
                Dataset::default()
                    .name(*name)
                    .marker(Marker::Braille)
                    .graph_type(GraphType::Line)
                    .style(Style::default().fg(*color))
                    .data(data)
            })
            .collect();
        let chart = Chart::new(datasets)
            .block(Block::bordered().title(format!(" {title} ")))
            // ratatui hides a legend taller than a quarter of the chart: three lines are.
            .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)))
            .x_axis(
                Axis::default()
                    .bounds([x0, x1])
                    .labels([format!("{x0:.0}s"), format!("{x1:.0}s")])
                    .style(Style::default().fg(Color::DarkGray)),
            )
            .y_axis(
                Axis::default()
                    .bounds([0.0, top])
                    .labels([format!("0{unit}"), format!("{}{unit}", short(top))])
                    .style(Style::default().fg(Color::DarkGray)),
            );
        f.render_widget(chart, area);
    }

    fn points(&self, pick: impl Fn(&SecondPoint) -> Option<f64>) -> Vec<(f64, f64)> {
        let (_, _, pts) = self.window();
        pts.iter()
            .filter_map(|p| pick(p).map(|v| (p.t as f64, v)))
            .collect()
    }

    fn calls_chart(&self, f: &mut Frame, area: Rect) {
        let lines = vec![
            ("ok/s", Color::Green, self.points(|p| Some(p.ok as f64))),
            (
                "failed/s",
                Color::Red,
                self.points(|p| Some(p.failed as f64)),
            ),
        ];
        self.chart(f, area, "calls/s", "", lines);
    }

    fn success_chart(&self, f: &mut Frame, area: Rect) {
        let lines = vec![(
            "success %",
            Color::Cyan,
            self.points(|p| p.success_rate().map(|r| r * 100.0)),
        )];
        self.chart(f, area, "success rate", "%", lines);
    }

    fn latency_chart(&self, f: &mut Frame, area: Rect) {
        let has = SecondPoint::has_latency;
        let lines = vec![
            (
                "p50",
                Color::Green,
                self.points(|p| has(p).then_some(p.p50_ms)),
            ),
            (
                "p95",
                Color::Yellow,
                self.points(|p| has(p).then_some(p.p95_ms)),
            ),
            (
                "p99",
                Color::Red,
                self.points(|p| has(p).then_some(p.p99_ms)),
            ),
        ];
        self.chart(f, area, "latency", "ms", lines);
    }

    fn resource_chart(&self, f: &mut Frame, area: Rect) {
        if self.series.iter().all(|p| p.target_rss_mb.is_none()) {
            f.render_widget(
                Paragraph::new(
                    "no figures: mcpstorm sees the target's process only when it starts it \
                     (embedded, or [target.launch])",
                )
                .wrap(ratatui::widgets::Wrap { trim: true })
                .block(Block::bordered().title(" target RSS and CPU ")),
                area,
            );
            return;
        }
        let [rss, cpu] =
            Layout::horizontal([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)]).areas(area);
        let rss_line = vec![("RSS MB", Color::Blue, self.points(|p| p.target_rss_mb))];
        self.chart(f, rss, "target RSS", "MB", rss_line);
        let cpu_line = vec![("CPU %", Color::Magenta, self.points(|p| p.target_cpu_pct))];
        self.chart(f, cpu, "target CPU", "%", cpu_line);
    }

    fn tool_table(&self, f: &mut Frame, area: Rect) {
        let header = Row::new(["tool", "calls", "ok %", "p50", "p95", "p99"])
            .style(Style::default().add_modifier(Modifier::BOLD));
        let rows = self.tools.iter().map(|(name, t)| {
            let ok = t.success_rate().unwrap_or(0.0) * 100.0;
            let ok_cell = Cell::from(format!("{ok:.2}")).style(if ok < 99.0 {
                Style::default().fg(Color::Red)
            } else {
                Style::default()
            });
            Row::new(vec![
                Cell::from(name.clone()),
                Cell::from(t.calls.to_string()),
                ok_cell,
                Cell::from(ms(Some(t.latency.p50))),
                Cell::from(ms(Some(t.latency.p95))),
                Cell::from(ms(Some(t.latency.p99))),
            ])
        });
        let table = Table::new(
            rows,
            [
                Constraint::Min(12),
                Constraint::Length(10),
                Constraint::Length(7),
                Constraint::Length(9),
                Constraint::Length(9),
                Constraint::Length(9),
            ],
        )
        .header(header)
        .block(Block::bordered().title(" tools "));
        f.render_widget(table, area);
    }

    fn fault_list(&self, f: &mut Frame, area: Rect) {
        let mut lines: Vec<Line> = Vec::new();
        for fault in self.faults.iter().rev() {
            let r = self.recoveries.iter().find(|r| r.fault_id == fault.id);
            let status: Span = match r {
                _ if !fault.applied => "not applied".dark_gray(),
                Some(RecoveryRecord {
                    detected_after_ms: None,
                    ..
                })
                | None => "no failure seen".green(),
                Some(RecoveryRecord {
                    detected_after_ms: Some(d),
                    recovered_after_ms: Some(rec),
                    ..
                }) => format!("detected +{d:.0} ms, recovered +{rec:.0} ms").green(),
                Some(RecoveryRecord {
                    detected_after_ms: Some(d),
                    ..
                }) => format!("detected +{d:.0} ms, NOT RECOVERED").red().bold(),
            };
            let mut spans = vec![
                format!("{:>6.1}s ", fault.at_s).dark_gray(),
                format!("#{} {} ", fault.id, fault.kind).bold(),
            ];
            if !fault.ended_at_s.is_finite() {
                spans.push("IN EFFECT ".magenta().bold());
            }
            spans.push(status);
            lines.push(Line::from(spans));
        }
        if lines.is_empty() {
            lines.push("no faults in this scenario".dark_gray().into());
        }
        f.render_widget(
            Paragraph::new(lines).block(Block::bordered().title(" faults and recoveries ")),
            area,
        );
    }

    fn alert_list(&self, f: &mut Frame, area: Rect) {
        let mut lines: Vec<Line> = Vec::new();
        for a in self.alerts.iter().rev() {
            let style = match (a.ended_at_s, a.severity.as_str()) {
                (Some(_), _) => Style::default().fg(Color::DarkGray),
                (None, "critical") => Style::default().fg(Color::Red).bold(),
                (None, _) => Style::default().fg(Color::Yellow),
            };
            let when = match a.ended_at_s {
                Some(end) => format!("{:>6.1}s–{end:.1}s ", a.at_s),
                None => format!("{:>6.1}s FIRING ", a.at_s),
            };
            lines.push(Line::from(vec![
                Span::styled(when, style),
                Span::styled(format!("{} ", a.rule), style.bold()),
                Span::styled(a.message.clone(), style),
            ]));
        }
        if lines.is_empty() {
            lines.push("no alerts".green().into());
        }
        f.render_widget(
            Paragraph::new(lines).block(Block::bordered().title(" alerts ")),
            area,
        );
    }
}

fn ms(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v < 10.0 => format!("{v:.2}ms"),
        Some(v) if v < 1000.0 => format!("{v:.0}ms"),
        Some(v) => format!("{:.2}s", v / 1000.0),
    }
}

fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The smallest 1, 2 or 5 times a power of ten at or above `v` (a chart's top).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Alerts;
    use crate::metrics::{OpKey, Recorder};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn draws_figures_tools_faults_and_alerts() {
        let recorder = Arc::new(Recorder::default());
        let op = OpKey {
            method: "tools/call",
            tool: Some("echo".into()),
        };
        for _ in 0..50 {
            recorder.record(&op, Duration::from_millis(3), Ok(()));
        }
        recorder.tick(None);
        let alerts = Arc::new(Alerts::new(crate::alerts::default_rules()));
        let p = recorder.last_point().unwrap();
        alerts.observe(
            1.0,
            crate::alerts::Observation {
                point: Some(&p),
                probe: crate::alerts::ProbeWindow::of(&[(0.2, false)], 0),
                rss_limit_mb: None,
            },
        );
        let state = LiveState {
            name: "unit".into(),
            target: "embedded".into(),
            total: Duration::from_secs(20),
            recorder,
            timeline: Arc::new(std::sync::Mutex::new(vec![FaultRecord {
                id: 1,
                kind: "kill".into(),
                at_s: 0.5,
                ended_at_s: 0.5,
                applied: true,
                detail: String::new(),
            }])),
            probe_log: Arc::default(),
            alerts,
            sessions_opened: Arc::new(|| 0),
            finished: Default::default(),
        };
        let mut terminal = Terminal::new(TestBackend::new(160, 48)).unwrap();
        let mut view = View::default();
        view.refresh(&state);
        terminal.draw(|f| view.draw(f, &state, false)).unwrap();
        let text: String = terminal
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        for want in [
            "calls/s",
            "echo",
            "#1 kill",
            "probe",
            "q stop the run",
            "latency",
        ] {
            assert!(text.contains(want), "`{want}` missing from the frame");
        }
        // A small or tiny terminal squeezes the panels but draws.
        for (w, h) in [(80, 24), (20, 6), (1, 1)] {
            let mut small = Terminal::new(TestBackend::new(w, h)).unwrap();
            small.draw(|f| view.draw(f, &state, true)).unwrap();
        }
    }

    #[test]
    fn chart_tops_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.3), 10.0);
        assert_eq!(nice_ceiling(130.0), 200.0);
        assert_eq!(nice_ceiling(4000.0), 5000.0);
    }
}
