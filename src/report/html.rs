//! The HTML report: one self-contained file (`OUT/report.html`, or `mcpstorm report RUN.json
//! --html OUT.html`) that a person opens after the run. Charts over time (calls/s, latency
//! percentiles, errors, the target's RSS and CPU) with fault markers and shaded recovery
//! windows, a timeline of faults and alerts, the criteria with PASS/FAIL, per-operation and
//! per-tool tables, error samples, checks (the ledger; any other check generically) and
//! security findings.
//!
//! It reads the report and nothing else, and must never load anything: no script, no CDN,
//! no font or image from elsewhere (a Content-Security-Policy says so to the browser too).
//! Every text that came from the server or the scenario is escaped: an error sample may hold
//! `<script>`.

mod chart;

use super::{OpFigures, Report, Verdict};
use chart::{Events, Series, Style};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Text made safe for HTML element content and quoted attributes.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2933;background:#f6f7f9;margin:0}
main{max-width:1180px;margin:0 auto;padding:18px 22px 60px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d9dde3;padding-bottom:4px}
.meta{color:#52606d;margin:2px 0}
.verdict{display:inline-block;font-weight:700;padding:3px 12px;border-radius:4px;color:#fff;margin-left:8px;vertical-align:middle}
.v-pass{background:#137333}.v-fail{background:#a50e0e}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{background:#fff;border:1px solid #d9dde3;border-radius:6px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:19px}.card span{color:#52606d;font-size:12px}
.panel{background:#fff;border:1px solid #d9dde3;border-radius:6px;padding:6px 8px;margin:10px 0}
svg.chart{width:100%;height:auto;display:block}
.ct{font-weight:600;font-size:14px;fill:#1f2933}.lab{font-size:11px;fill:#52606d}.fl{fill:#7a0019;font-weight:600}
.grid{stroke:#e5e7eb;stroke-width:1}.tick{stroke:#9aa5b1}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:0 12px}
table{border-collapse:collapse;width:100%;background:#fff;margin:6px 0;font-size:13px}
th,td{border:1px solid #d9dde3;padding:4px 7px;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#137333;font-weight:700}.fail{color:#a50e0e;font-weight:700}.skip{color:#7b8794;font-weight:700}
.sev-critical,.sev-high{color:#a50e0e;font-weight:600}.sev-medium,.sev-warning{color:#9a6700;font-weight:600}
code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
pre{background:#fff;border:1px solid #d9dde3;padding:8px;overflow:auto;max-height:420px;white-space:pre-wrap;word-break:break-all}
.muted{color:#7b8794}.warn{background:#fff8e1;border:1px solid #f0d58c;padding:6px 10px;border-radius:4px;margin:4px 0}
details summary{cursor:pointer;color:#334e68}
"#;

pub fn render(r: &Report) -> String {
    let name = r
        .scenario
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("scenario");
    let pass = r.verdict == Verdict::Pass;
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mcpstorm: {} {}</title><style>{STYLE}</style></head><body><main>"#,
        esc(name),
        if pass { "PASS" } else { "FAIL" }
    );
    header(&mut h, r, name, pass);
    criteria(&mut h, r);
    charts(&mut h, r);
    faults(&mut h, r);
    alerts(&mut h, r);
    operations(&mut h, r);
    errors(&mut h, r);
    checks(&mut h, r);
    security(&mut h, r);
    run_facts(&mut h, r);
    h.push_str("</main></body></html>\n");
    h
}

fn header(h: &mut String, r: &Report, name: &str, pass: bool) {
    let t = &r.target;
    let _ = write!(
        h,
        r#"<h1>{} <span class="verdict {}" id="verdict">{}</span></h1>
<p class="meta">against {} &middot; server {} {} over {}, protocol {}</p>
<p class="meta">started {} &middot; {:.1} s &middot; mcpstorm {}</p>"#,
        esc(name),
        if pass { "v-pass" } else { "v-fail" },
        if pass { "PASS" } else { "FAIL" },
        esc(&t.description),
        esc(&t.server_name),
        esc(&t.server_version),
        esc(&t.transport),
        esc(&t.protocol_version),
        esc(&r.started_at),
        r.duration_s,
        esc(&r.tool_version)
    );
    let tot = &r.totals;
    let l = &r.latency_ms.overall;
    let cards = [
        ("calls", tot.calls.to_string()),
        ("success", format!("{:.2} %", tot.success_rate * 100.0)),
        ("failed", tot.failed.to_string()),
        ("calls/s", format!("{:.1}", tot.rps)),
        ("p50", ms(l.p50)),
        ("p95", ms(l.p95)),
        ("p99", ms(l.p99)),
        ("sessions opened", tot.sessions_opened.to_string()),
        (
            "faults",
            r.faults.iter().filter(|f| f.applied).count().to_string(),
        ),
        ("alerts", r.alerts.len().to_string()),
    ];
    h.push_str(r#"<div class="cards">"#);
    for (label, value) in cards {
        let _ = write!(
            h,
            "<div class=\"card\"><b>{}</b><span>{}</span></div>",
            esc(&value),
            label
        );
    }
    h.push_str("</div>");
    for w in &r.warnings {
        let _ = write!(h, r#"<div class="warn">{}</div>"#, esc(w));
    }
}

fn criteria(h: &mut String, r: &Report) {
    h.push_str(r#"<h2 id="criteria">Criteria</h2><table><tr><th>criterion</th><th>threshold</th><th>observed</th><th>result</th></tr>"#);
    for c in &r.criteria {
        let observed = c.observed_text();
        let _ = write!(
            h,
            r#"<tr><td><code>{}</code></td><td><code>{}</code></td><td class="n">{}</td><td class="{}">{}</td></tr>"#,
            esc(&c.name),
            esc(&c.threshold),
            esc(&observed),
            if c.passed { "pass" } else { "fail" },
            if c.passed { "PASS" } else { "FAIL" }
        );
    }
    h.push_str("</table>");
}

fn charts(h: &mut String, r: &Report) {
    let span_s = r
        .duration_s
        .max(r.series.last().map(|p| p.t as f64).unwrap_or(0.0));
    let ev = Events {
        faults: &r.faults,
        recoveries: &r.recoveries,
        alerts: &r.alerts,
        span_s,
    };
    let pick = |f: &dyn Fn(&super::SecondPoint) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
        r.series.iter().map(|p| (p.t as f64, f(p))).collect()
    };
    let latency = |f: fn(&super::SecondPoint) -> f64| pick(&|p| p.has_latency().then(|| f(p)));
    h.push_str(r#"<h2 id="charts">Over time</h2>"#);
    let mut panel = |svg: String| {
        let _ = write!(h, r#"<div class="panel">{svg}</div>"#);
    };
    panel(chart::timeline(&ev));
    panel(chart::chart(
        "calls",
        "Calls per second",
        "",
        chart::FULL,
        &[
            line("ok", chart::OK, pick(&|p| Some(p.ok as f64))),
            line("failed", chart::FAILED, pick(&|p| Some(p.failed as f64))),
            line(
                "sessions",
                chart::SESSIONS,
                pick(&|p| Some(p.active_sessions as f64)),
            ),
        ],
        &ev,
    ));
    panel(chart::chart(
        "latency",
        "Latency of successful calls",
        "ms",
        chart::FULL,
        &[
            // Drawn last, the median stays visible where the lines meet.
            line("p99", chart::P99, latency(|p| p.p99_ms)),
            line("p95", chart::P95, latency(|p| p.p95_ms)),
            line("p50", chart::P50, latency(|p| p.p50_ms)),
        ],
        &ev,
    ));
    panel(chart::chart(
        "errors",
        "Failed calls per second",
        "",
        chart::FULL,
        &[Series {
            name: "failed",
            color: chart::FAILED,
            style: Style::Bars,
            points: pick(&|p| Some(p.failed as f64)),
        }],
        &ev,
    ));
    if r.series.iter().any(|p| p.target_rss_mb.is_some()) {
        let _ = write!(
            h,
            r#"<div class="grid2"><div class="panel">{}</div><div class="panel">{}</div></div>"#,
            chart::chart(
                "rss",
                "Target RSS",
                "MB",
                chart::HALF,
                &[line("RSS", chart::RSS, pick(&|p| p.target_rss_mb))],
                &ev
            ),
            chart::chart(
                "cpu",
                "Target CPU (100 = one core)",
                "%",
                chart::HALF,
                &[line("CPU", chart::CPU, pick(&|p| p.target_cpu_pct))],
                &ev
            )
        );
    } else {
        h.push_str(r#"<p class="muted">No RSS or CPU figures: mcpstorm samples the target's processes only when it starts them (embedded, or [target.launch]).</p>"#);
    }
}

fn line(name: &'static str, color: &'static str, points: Vec<(f64, Option<f64>)>) -> Series {
    Series {
        name,
        color,
        style: Style::Line,
        points,
    }
}

fn faults(h: &mut String, r: &Report) {
    if r.faults.is_empty() {
        return;
    }
    h.push_str(r#"<h2 id="faults">Faults and recovery</h2><table><tr><th>#</th><th>fault</th><th>at</th><th>until</th><th>detail</th><th>detected after</th><th>recovered after</th><th>stable after</th><th>failed calls</th></tr>"#);
    for f in &r.faults {
        let rec = r.recoveries.iter().find(|x| x.fault_id == f.id);
        let opt = |v: Option<f64>| v.map(ms).unwrap_or_else(|| "-".into());
        let recovered = match rec {
            Some(x) if x.unrecovered() => r#"<span class="fail">not recovered</span>"#.into(),
            Some(x) => esc(&opt(x.recovered_after_ms)),
            None => "-".into(),
        };
        let _ = write!(
            h,
            r#"<tr><td class="n">{}</td><td>{}{}</td><td class="n">{:.2} s</td><td class="n">{:.2} s</td><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            f.id,
            esc(&f.kind),
            if f.applied {
                ""
            } else {
                r#" <span class="muted">(not applied)</span>"#
            },
            f.at_s,
            f.ended_at_s,
            esc(&f.detail),
            esc(&opt(rec.and_then(|x| x.detected_after_ms))),
            recovered,
            esc(&opt(rec.and_then(|x| x.stable_after_ms))),
            rec.map(|x| x.failed_calls).unwrap_or(0)
        );
    }
    h.push_str("</table>");
    if let Some(sup) = &r.supervisor {
        let _ = write!(
            h,
            r#"<p class="meta">server process: <code>{}</code> (restart {}), started {} times, {} exits</p>"#,
            esc(&sup.command),
            esc(&sup.restart),
            sup.starts,
            sup.exits.len()
        );
    }
}

fn alerts(h: &mut String, r: &Report) {
    h.push_str(r#"<h2 id="alerts">Alerts</h2>"#);
    if r.alerts.is_empty() {
        h.push_str(r#"<p class="muted">No alert was raised.</p>"#);
        return;
    }
    h.push_str("<table><tr><th>rule</th><th>severity</th><th>from</th><th>until</th><th>what was seen</th></tr>");
    for a in &r.alerts {
        let _ = write!(
            h,
            r#"<tr><td>{}</td><td class="sev-{}">{}</td><td class="n">{:.1} s</td><td class="n">{}</td><td>{}</td></tr>"#,
            esc(&a.rule),
            esc(&a.severity),
            esc(&a.severity),
            a.at_s,
            a.ended_at_s
                .map(|t| format!("{t:.1} s"))
                .unwrap_or_else(|| "end of run".into()),
            esc(&a.message)
        );
    }
    h.push_str("</table>");
}

fn operations(h: &mut String, r: &Report) {
    h.push_str(r#"<h2 id="operations">Operations</h2>"#);
    op_table(h, "operation", &r.latency_ms.by_operation, Some(r));
    if !r.latency_ms.by_tool.is_empty() {
        h.push_str(r#"<h2 id="tools">Tools</h2>"#);
        op_table(h, "tool", &r.latency_ms.by_tool, None);
    }
}

fn op_table(h: &mut String, what: &str, rows: &BTreeMap<String, OpFigures>, all: Option<&Report>) {
    let _ = write!(
        h,
        "<table><tr><th>{what}</th><th>calls</th><th>ok</th><th>failed</th><th>success</th><th>p50 ms</th><th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th><th>mean</th></tr>"
    );
    let overall = all.map(|r| ("all".to_string(), r.overall_figures()));
    for (name, f) in rows
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain(overall)
    {
        let l = &f.latency;
        let success = f
            .success_rate()
            .map(|s| format!("{:.2} %", s * 100.0))
            .unwrap_or_else(|| "-".into());
        let _ = write!(
            h,
            r#"<tr><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td>"#,
            esc(&name),
            f.calls,
            f.ok,
            f.failed,
            success
        );
        for v in [l.p50, l.p90, l.p95, l.p99, l.p999, l.max, l.mean] {
            let _ = write!(h, r#"<td class="n">{v:.2}</td>"#);
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
}

fn errors(h: &mut String, r: &Report) {
    h.push_str(r#"<h2 id="errors">Errors</h2>"#);
    if r.errors.is_empty() {
        h.push_str(r#"<p class="muted">No call failed.</p>"#);
        return;
    }
    h.push_str(
        "<table><tr><th>kind</th><th>count</th><th>samples (time, operation, message)</th></tr>",
    );
    for e in &r.errors {
        let _ = write!(
            h,
            r#"<tr><td><code>{}</code></td><td class="n">{}</td><td>"#,
            esc(&e.kind),
            e.count
        );
        for s in &e.samples {
            let _ = write!(
                h,
                r#"<div class="sample">{:.2} s &middot; {} &middot; <code>{}</code></div>"#,
                s.at_s,
                esc(&s.operation),
                esc(&s.message)
            );
        }
        h.push_str("</td></tr>");
    }
    h.push_str("</table>");
}

/// The ledger in its own table; any other check, whatever its shape, generically.
fn checks(h: &mut String, r: &Report) {
    let Ok(Value::Object(all)) = serde_json::to_value(&r.checks) else {
        return;
    };
    if all.is_empty() {
        return;
    }
    h.push_str(r#"<h2 id="checks">Checks</h2>"#);
    for (key, value) in &all {
        if key == "ledger"
            && let Some(l) = &r.checks.ledger
        {
            let verdict = if l.lost_writes == 0 { "pass" } else { "fail" };
            let _ = write!(
                h,
                r#"<h3>Ledger of acknowledged writes <span class="{verdict}">{} lost</span></h3><table><tr><th>acknowledged</th><th>failed</th><th>indeterminate</th><th>lost</th><th>unverified</th><th>untracked</th></tr><tr><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n {verdict}">{}</td><td class="n">{}</td><td class="n">{}</td></tr></table>"#,
                l.lost_writes,
                l.writes_acknowledged,
                l.writes_failed,
                l.writes_indeterminate,
                l.lost_writes,
                l.unverified,
                l.untracked
            );
            if !l.lost_ids.is_empty() {
                let _ = write!(h, "<p>lost write ids: {}</p>", ids(&l.lost_ids));
            }
            if !l.checkpoints.is_empty() {
                h.push_str("<table><tr><th>read back after fault</th><th>at</th><th>checked</th><th>lost</th><th>unverified</th><th>lost ids</th></tr>");
                for c in &l.checkpoints {
                    let _ = write!(
                        h,
                        r#"<tr><td class="n">#{}</td><td class="n">{:.1} s</td><td class="n">{}</td><td class="n {}">{}</td><td class="n">{}</td><td>{}</td></tr>"#,
                        c.fault_id,
                        c.at_s,
                        c.checked,
                        if c.lost == 0 { "pass" } else { "fail" },
                        c.lost,
                        c.unverified,
                        ids(&c.lost_ids)
                    );
                }
                h.push_str("</table>");
            }
            continue;
        }
        let _ = write!(h, "<h3>{}</h3>{}", esc(key), generic(value, 0));
    }
}

fn ids(ids: &[u64]) -> String {
    let shown: Vec<String> = ids.iter().take(50).map(u64::to_string).collect();
    let more = ids.len().saturating_sub(50);
    let mut s = shown.join(", ");
    if more > 0 {
        let _ = write!(s, " and {more} more");
    }
    s
}

/// Security findings: one row each with the fields known today; any other field of an
/// entry is shown beside them, so findings from a newer mcpstorm still render.
fn security(h: &mut String, r: &Report) {
    let Ok(Value::Array(entries)) = serde_json::to_value(&r.security) else {
        return;
    };
    h.push_str(r#"<h2 id="security">Security</h2>"#);
    if entries.is_empty() {
        h.push_str(r#"<p class="muted">No security probe ran.</p>"#);
        return;
    }
    const KNOWN: [&str; 7] = [
        "probe", "category", "severity", "outcome", "title", "evidence", "advice",
    ];
    let outcome_of = |e: &Value| text(e.get("outcome")).to_ascii_lowercase();
    let failed = entries.iter().filter(|e| outcome_of(e) == "fail").count();
    let _ = write!(
        h,
        r#"<p>{} findings, <span class="{}">{failed} failed</span></p><table><tr><th>probe</th><th>category</th><th>severity</th><th>outcome</th><th>title</th><th>evidence</th><th>advice</th><th>more</th></tr>"#,
        entries.len(),
        if failed == 0 { "pass" } else { "fail" }
    );
    for e in &entries {
        let outcome = outcome_of(e);
        let class = match outcome.as_str() {
            "pass" | "fail" | "skip" => outcome.as_str(),
            _ => "",
        };
        let severity = text(e.get("severity")).to_ascii_lowercase();
        let rest: serde_json::Map<String, Value> = match e {
            Value::Object(m) => m
                .iter()
                .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            other => [("value".to_string(), other.clone())].into_iter().collect(),
        };
        let _ = write!(
            h,
            r#"<tr><td><code>{}</code></td><td>{}</td><td class="sev-{}">{}</td><td class="{class}">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            esc(&text(e.get("probe"))),
            esc(&text(e.get("category"))),
            esc(&severity),
            esc(&text(e.get("severity"))),
            esc(&outcome.to_ascii_uppercase()),
            esc(&text(e.get("title"))),
            cell(e.get("evidence")),
            cell(e.get("advice")),
            if rest.is_empty() {
                String::new()
            } else {
                generic(&Value::Object(rest), 1)
            }
        );
    }
    h.push_str("</table>");
}

/// A field as text: strings as they are, anything else as JSON, absent as empty.
fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A field that is usually text but may be structured (evidence with request and response).
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => format!("<code>{}</code>", esc(s)),
        Some(other) => generic(other, 1),
    }
}

/// Any JSON as HTML: objects as key/value tables, arrays of objects as tables with a column
/// per key, other arrays as lists, scalars as text. Depth-limited.
fn generic(v: &Value, depth: usize) -> String {
    if depth > 4 {
        return format!("<code>{}</code>", esc(&v.to_string()));
    }
    match v {
        Value::Object(m) => {
            let mut s = String::from("<table>");
            for (k, v) in m {
                let _ = write!(
                    s,
                    "<tr><th>{}</th><td>{}</td></tr>",
                    esc(k),
                    generic(v, depth + 1)
                );
            }
            s.push_str("</table>");
            s
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            let mut keys: Vec<&String> = Vec::new();
            for item in items {
                if let Value::Object(m) = item {
                    for k in m.keys() {
                        if !keys.contains(&k) {
                            keys.push(k);
                        }
                    }
                }
            }
            let mut s = String::from("<table><tr>");
            for k in &keys {
                let _ = write!(s, "<th>{}</th>", esc(k));
            }
            s.push_str("</tr>");
            for item in items.iter().take(200) {
                s.push_str("<tr>");
                for k in &keys {
                    let cell = item.get(k.as_str()).map(|v| generic(v, depth + 1));
                    let _ = write!(s, "<td>{}</td>", cell.unwrap_or_default());
                }
                s.push_str("</tr>");
            }
            s.push_str("</table>");
            if items.len() > 200 {
                let _ = write!(s, "<p class=\"muted\">and {} more</p>", items.len() - 200);
            }
            s
        }
        Value::Array(items) => {
            let shown: Vec<String> = items
                .iter()
                .take(50)
                .map(|v| generic(v, depth + 1))
                .collect();
            let mut s = shown.join(", ");
            if items.len() > 50 {
                let _ = write!(s, " and {} more", items.len() - 50);
            }
            s
        }
        Value::String(t) => esc(t),
        Value::Null => String::from("<span class=\"muted\">none</span>"),
        other => esc(&other.to_string()),
    }
}

fn run_facts(h: &mut String, r: &Report) {
    h.push_str(r#"<h2 id="run">The run</h2>"#);
    let c = &r.client;
    let _ = write!(
        h,
        "<p>mcpstorm itself: {:.2} CPU s ({:.1} &micro;s/call), {:.0} % of {} cores, peak RSS {:.0} MB</p>",
        c.cpu_seconds,
        c.cpu_us_per_call,
        c.cpu_utilization * 100.0,
        c.cores,
        c.max_rss_mb
    );
    if let Some(l) = &r.leaks {
        let _ = write!(
            h,
            "<p>growth per hour, fitted over {:.0}-{:.0} s ({} samples): RSS {:.1} MB, open files {:.1}, threads {:.1}, connections {:.1}</p>",
            l.from_s,
            l.to_s,
            l.samples,
            l.rss_mb_per_h,
            l.open_files_per_h,
            l.threads_per_h,
            l.connections_per_h
        );
    }
    let scenario = serde_json::to_string_pretty(&r.scenario).unwrap_or_default();
    let _ = write!(
        h,
        "<details><summary>The scenario as resolved</summary><pre>{}</pre></details>",
        esc(&scenario)
    );
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else if v < 10_000.0 {
        format!("{v:.0} ms")
    } else {
        format!("{:.2} s", v / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let text = include_str!("../../tests/fixtures/report-chaos.json");
        serde_json::from_str(text).expect("the fixture is a report")
    }

    #[test]
    fn server_text_is_escaped_everywhere() {
        let mut r = report();
        let evil = "<script>alert(1)</script><img src=x onerror=alert(2)>";
        r.errors[0].samples[0].message = evil.into();
        r.target.server_name = evil.into();
        let mut f = crate::security::Finding::fail(evil, crate::security::Severity::High, evil);
        f.extra
            .insert("extra".into(), serde_json::json!({"k": evil}));
        r.security = vec![f];
        let html = render(&r);
        assert!(!html.contains("<script>"), "a script tag got through");
        assert!(!html.contains("<img"), "an img tag got through");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn security_entries_render_with_missing_and_extra_fields() {
        let mut r = report();
        let mut skipped: crate::security::Finding = serde_json::from_value(serde_json::json!({
            "probe": "rate.limit", "category": "rate", "severity": "info", "outcome": "skip",
            "title": "", "evidence": {"request": "", "response": ""}, "advice": "", "cwe": "CWE-770"
        }))
        .expect("a finding with an extra field");
        assert_eq!(skipped.extra["cwe"], "CWE-770");
        skipped.title = "no limit declared".into();
        r.security = vec![
            crate::security::Finding::fail(
                "auth.none",
                crate::security::Severity::High,
                "no token accepted",
            )
            .evidence("POST /mcp", "200 OK")
            .advice("require a token"),
            skipped,
        ];
        let html = render(&r);
        assert!(
            html.contains("2 findings") && html.contains("1 failed"),
            "{html}"
        );
        assert!(html.contains("no token accepted") && html.contains("CWE-770"));
        assert!(html.contains(r#"class="skip">SKIP"#));
    }

    #[test]
    fn unknown_checks_render_generically() {
        let v =
            serde_json::json!({"schema": {"checked": 12, "bad": [{"tool": "echo", "why": "<b>"}]}});
        let html = generic(&v, 0);
        assert!(html.contains("<th>checked</th><td>12</td>"), "{html}");
        assert!(html.contains("<th>tool</th><th>why</th>"), "{html}");
        assert!(html.contains("&lt;b&gt;"));
    }
}
