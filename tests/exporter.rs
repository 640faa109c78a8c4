//! The Prometheus exporter during a real run: `/metrics` is scraped while the load goes and
//! once more after it (`--metrics-linger`), parsed as OpenMetrics by a real parser, and its
//! figures agree with report.json's: calls by tool and outcome, errors by kind, histogram
//! counts = successful calls, sessions, faults and recovery times, the target's RSS.

mod common;
use common::*;
use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

type Exposition = MetricsExposition<OpenMetricsType, OpenMetricsValue>;

/// GET /metrics with a plain HTTP/1.1 request; `None` while nothing listens.
fn scrape(port: u16) -> Option<(String, Exposition)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    let parsed = openmetrics_parser::openmetrics::parse_openmetrics(body)
        .unwrap_or_else(|e| panic!("not valid OpenMetrics ({e:?}):\n{body}"));
    Some((head.to_string(), parsed))
}

/// The samples of a family as (labels, value); histograms give their count.
fn samples(m: &Exposition, family: &str) -> Vec<(Vec<(String, String)>, f64)> {
    let Some(f) = m.families.get(family) else {
        return Vec::new();
    };
    let names = f.get_label_names().to_vec();
    f.iter_samples()
        .map(|s| {
            let set = s.get_labelset().unwrap();
            let labels = names
                .iter()
                .map(|n| (n.clone(), set.get_label_value(n).unwrap_or("").to_string()))
                .collect();
            let v = match &s.value {
                OpenMetricsValue::Counter(c) => c.value.as_f64(),
                OpenMetricsValue::Gauge(g) => g.as_f64(),
                OpenMetricsValue::Histogram(h) => h.count.unwrap_or(0) as f64,
                other => panic!("unexpected value {other:?}"),
            };
            (labels, v)
        })
        .collect()
}

fn label<'a>(labels: &'a [(String, String)], name: &str) -> &'a str {
    labels
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Sum of a family's samples whose labels include every `want`.
fn sum(m: &Exposition, family: &str, want: &[(&str, &str)]) -> f64 {
    samples(m, family)
        .iter()
        .filter(|(l, _)| want.iter().all(|(n, v)| label(l, n) == *v))
        .map(|(_, v)| v)
        .sum()
}

fn gauge(m: &Exposition, family: &str) -> f64 {
    samples(m, family)
        .first()
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("{family} missing"))
}

#[test]
fn metrics_scraped_during_and_after_a_run_agree_with_the_report() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("scenario.toml");
    std::fs::write(
        &scenario,
        r#"
name = "scraped"
duration = "6s"
criteria = ["success_rate >= 0.5"]
[target]
transport = "embedded"
[workload]
vus = 4
[[mix]]
op = "tools/call"
tool = "echo"
weight = 6
arguments = { message = "hi" }
[[mix]]
op = "tools/call"
tool = "fail"
weight = 2
arguments = { error_rate = 0.5 }
[[mix]]
op = "ping"
weight = 1
[[faults]]
kind = "kill"
at = "2s"
[[faults]]
kind = "stop"
at = "4s"
duration = "1500ms"
"#,
    )
    .unwrap();
    let mut run = Running(
        Command::new(BIN)
            .arg("run")
            .arg(&scenario)
            .args(["--no-progress", "--metrics-linger", "60s", "--metrics-addr"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--out")
            .arg(dir.path())
            .env("MCPSTORM_EXE", BIN)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );

    // During the run: calls counted and moving on, figures not final yet.
    let mut first = None;
    wait_until("a scrape with calls", Duration::from_secs(60), || {
        first = scrape(port).filter(|(_, m)| sum(m, "mcpstorm_calls", &[]) > 0.0);
        first.is_some()
    });
    let (_, first) = first.unwrap();
    assert_eq!(gauge(&first, "mcpstorm_run_finished"), 0.0);
    assert!(gauge(&first, "mcpstorm_active_sessions") >= 1.0);
    let before = sum(&first, "mcpstorm_calls", &[]);
    wait_until("the calls counter to grow", Duration::from_secs(30), || {
        scrape(port).is_some_and(|(_, m)| sum(&m, "mcpstorm_calls", &[]) > before)
    });

    // A lasting fault shows while it is in effect (the server is stopped; mcpstorm answers).
    wait_until(
        "the stop fault to be active",
        Duration::from_secs(30),
        || {
            scrape(port).is_some_and(|(_, m)| {
                gauge(&m, "mcpstorm_faults_active") == 1.0
                    && sum(&m, "mcpstorm_faults", &[("kind", "stop")]) == 1.0
            })
        },
    );

    // After the run: the final figures, then the exporter stops (one scrape was enough).
    let mut last = None;
    wait_until("the final scrape", Duration::from_secs(60), || {
        last = scrape(port).filter(|(_, m)| gauge(m, "mcpstorm_run_finished") == 1.0);
        last.is_some()
    });
    let (_, m) = last.unwrap();
    let status = run.0.wait().unwrap();
    let mut stderr = String::new();
    run.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();

    let totals = &report["totals"];
    let num = |v: &Value| v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert_eq!(sum(&m, "mcpstorm_calls", &[]), num(&totals["calls"]));
    assert_eq!(
        sum(&m, "mcpstorm_calls", &[("outcome", "error")]),
        num(&totals["failed"])
    );
    for (tool, figures) in report["latency_ms"]["by_tool"].as_object().unwrap() {
        let want = [("method", "tools/call"), ("tool", tool.as_str())];
        assert_eq!(
            sum(&m, "mcpstorm_calls", &want),
            num(&figures["calls"]),
            "{tool}"
        );
        assert_eq!(
            sum(&m, "mcpstorm_calls", &[want[0], want[1], ("outcome", "ok")]),
            num(&figures["ok"]),
            "{tool}"
        );
        // The histogram counts successful calls, as the report's percentiles do.
        assert_eq!(
            sum(&m, "mcpstorm_call_duration_seconds", &want),
            num(&figures["ok"]),
            "{tool}"
        );
    }
    let ping = &report["latency_ms"]["by_operation"]["ping"];
    assert_eq!(
        sum(
            &m,
            "mcpstorm_call_duration_seconds",
            &[("method", "ping"), ("tool", "")]
        ),
        num(&ping["ok"])
    );
    // The buckets place the report's median: half the calls at or below it.
    let echo = &report["latency_ms"]["by_tool"]["echo"];
    let p50_s = num(&echo["p50"]) / 1000.0;
    let family = &m.families["mcpstorm_call_duration_seconds"];
    let hist = family
        .iter_samples()
        .find(|s| {
            s.get_labelset()
                .unwrap()
                .get_label_value("tool")
                .is_some_and(|t| t == "echo")
        })
        .unwrap();
    let OpenMetricsValue::Histogram(h) = &hist.value else {
        panic!("not a histogram")
    };
    let count = h.count.unwrap() as f64;
    for b in &h.buckets {
        let cumulative = b.count.as_f64();
        if b.upper_bound >= p50_s {
            assert!(cumulative >= count * 0.5, "{b:?} p50 {p50_s}");
        } else {
            assert!(cumulative <= count * 0.5, "{b:?} p50 {p50_s}");
        }
    }
    let mean_s = num(&echo["mean"]) / 1000.0;
    let sum_s = h.sum.as_ref().unwrap().as_f64();
    assert!(
        (sum_s / count - mean_s).abs() <= mean_s * 0.01,
        "sum/count {} vs mean {mean_s}",
        sum_s / count
    );

    let errors = report["errors"].as_array().unwrap();
    assert!(errors.iter().any(|e| e["kind"] == "tool_error"));
    for e in errors {
        let kind = e["kind"].as_str().unwrap();
        assert_eq!(
            sum(&m, "mcpstorm_errors", &[("kind", kind)]),
            num(&e["count"]),
            "{kind}"
        );
    }
    assert_eq!(
        sum(&m, "mcpstorm_errors", &[]),
        num(&totals["failed"]),
        "every failure has a kind"
    );
    assert_eq!(
        gauge(&m, "mcpstorm_sessions_opened"),
        num(&totals["sessions_opened"])
    );
    assert_eq!(
        gauge(&m, "mcpstorm_sessions_lost"),
        num(&totals["sessions_lost"])
    );

    let kills = report["faults"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "kill" && f["applied"] == true)
        .count();
    assert_eq!(kills, 1, "{}", report["faults"]);
    assert_eq!(sum(&m, "mcpstorm_faults", &[("kind", "kill")]), 1.0);
    assert_eq!(
        gauge(&m, "mcpstorm_faults_active"),
        0.0,
        "all over at the end"
    );
    for r in report["recoveries"].as_array().unwrap() {
        let id = r["fault_id"].to_string();
        if let Some(ms) = r["recovered_after_ms"].as_f64() {
            let seen = sum(&m, "mcpstorm_fault_recovery_seconds", &[("fault_id", &id)]);
            assert!((seen - ms / 1000.0).abs() < 1e-9, "{seen} vs {ms} ms");
        }
    }
    let rss_mb = report["series"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find_map(|p| p["target_rss_mb"].as_f64())
        .expect("the embedded server's RSS is sampled");
    let rss = gauge(&m, "mcpstorm_target_resident_memory_bytes");
    assert!(
        (rss - rss_mb * 1_048_576.0).abs() <= 1.0,
        "{rss} vs {rss_mb} MB"
    );
    assert!(samples(&m, "mcpstorm_target_cpu_percent").len() == 1);
    // Every alert rule has a series, 0 or 1.
    assert_eq!(
        samples(&m, "mcpstorm_alert_firing").len(),
        report["scenario"]["alerts"]["rules"]
            .as_array()
            .unwrap()
            .len()
    );
}

#[test]
fn a_taken_metrics_port_is_a_usage_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let r = run_args(
        &[
            "run",
            "--duration",
            "1s",
            "--no-progress",
            "--metrics-addr",
            &addr,
        ],
        dir,
    );
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(
        r.stderr.contains("--metrics-addr") && r.stderr.contains(&addr),
        "{}",
        r.stderr
    );
    // Refused before anything started: no server was launched for nothing.
    assert!(!r.out.path().join("target-stdout.log").exists());
}

/// The mcpstorm run of a test, ended if the test fails before it exits (std's `kill`
/// signals only a child that has not been waited for).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
