//! Record and replay against real servers: a trace recorded against a server replays with
//! zero divergences against the same server, and with exactly the expected ones against a
//! server that answers `a + b + 1` once in fifty; bad traces and flags are exit 2.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

const MIX: &str = r#"
[[mix]]
op = "tools/call"
tool = "add"
weight = 3
arguments = { a = "{{seq}}", b = 2 }
[[mix]]
op = "tools/call"
tool = "echo"
arguments = { message = "m{{seq}}" }
[[mix]]
op = "ping"
"#;

fn record(target: &str, trace: &Path, extra: &[&str]) -> RunResult {
    let toml = format!("duration = \"2s\"\n{target}\n[workload]\nvus = 2\n{MIX}");
    let mut args = vec!["--no-progress", "--record", trace.to_str().unwrap()];
    args.extend_from_slice(extra);
    let r = run_scenario(&toml, &args);
    assert_eq!(r.code, 0, "{}", r.describe());
    r
}

fn replay(trace: &Path, target: &str, extra: &[&str]) -> (RunResult, Value) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["replay", trace.to_str().unwrap(), "--target", target];
    args.extend_from_slice(extra);
    let r = run_args(&args, dir);
    let rep = std::fs::read(r.out.path().join("replay.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    (r, rep)
}

/// Requests in the trace calling tool `name`.
fn calls_of(trace: &Path, name: &str) -> u64 {
    std::fs::read_to_string(trace)
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["dir"] == "send" && l["msg"]["params"]["name"] == name)
        .count() as u64
}

#[test]
fn a_trace_replays_cleanly_against_the_same_server() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    record("", &trace, &[]);
    let text = std::fs::read_to_string(&trace).unwrap();
    let header: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["format"], "mcpstorm-trace");
    assert_eq!(header["version"], 1);
    assert_eq!(header["protocol_version"], "2025-11-25");
    let adds = calls_of(&trace, "add");
    assert!(adds > 50, "{adds}");

    let (r, rep) = replay(&trace, "embedded", &["--pace", "fast", "--copies", "2"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert_eq!(rep["divergences"], 0, "{rep}");
    let requests = rep["requests"].as_u64().unwrap();
    assert_eq!(rep["matched"].as_u64().unwrap(), requests);
    // Two copies of every recorded request (adds, echoes, pings).
    assert!(requests >= 2 * adds, "{requests} < 2 x {adds}");
    assert!(rep["latency_ms"]["replay"]["p50"].as_f64().unwrap() > 0.0);
    assert!(rep["latency_ms"]["recorded"]["p50"].as_f64().unwrap() > 0.0);
    assert!(r.stdout.contains("0 diverged"), "{}", r.stdout);
}

#[test]
fn the_recorded_pace_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    record("", &trace, &["--record-every", "2"]);
    let times: Vec<f64> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["dir"] == "send" && l["msg"]["method"] != "initialize")
        .filter_map(|l| l["t"].as_f64())
        .collect();
    let span =
        times.iter().cloned().fold(0.0, f64::max) - times.iter().cloned().fold(f64::MAX, f64::min);
    assert!(span > 1.0, "the recording spans {span}s");
    let (r, rep) = replay(&trace, "embedded-stdio", &["--pace", "recorded"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert_eq!(rep["divergences"], 0, "{rep}");
    let took = rep["duration_s"].as_f64().unwrap();
    assert!(
        took >= span * 0.95,
        "replay took {took}s for a {span}s trace"
    );
}

#[test]
fn a_changed_server_diverges_exactly_where_it_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    let correct = buggy_http("correct");
    record(&format!("[target]\nurl = {:?}", correct.url()), &trace, &[]);
    drop(correct);
    let adds = calls_of(&trace, "add");
    assert!(adds >= 50, "too few adds to see the bug: {adds}");

    let wrong = buggy_http("wrong-answer");
    let (r, rep) = replay(&trace, &wrong.url(), &["--pace", "fast"]);
    assert_eq!(r.code, 1, "{}", r.describe());
    // Every 50th add of the server process is wrong; nothing else differs.
    assert_eq!(rep["divergences"].as_u64().unwrap(), adds / 50, "{rep}");
    assert_eq!(
        rep["divergences_by_operation"]["tools/call add"]
            .as_u64()
            .unwrap(),
        adds / 50
    );
    let samples = rep["samples"].as_array().unwrap();
    let s = samples
        .iter()
        .find(|s| s["pointer"] == "/content/0/text")
        .unwrap_or_else(|| panic!("{rep}"));
    let (recorded, got): (i64, i64) = (
        s["recorded"]
            .as_str()
            .unwrap()
            .trim_matches('"')
            .parse()
            .unwrap(),
        s["got"]
            .as_str()
            .unwrap()
            .trim_matches('"')
            .parse()
            .unwrap(),
    );
    assert_eq!(got, recorded + 1, "{s}");
    assert!(
        samples
            .iter()
            .any(|s| s["pointer"] == "/structuredContent/result")
    );

    // Leaving the answers' content out of the comparison leaves nothing to differ.
    let (r, rep) = replay(
        &trace,
        &wrong.url(),
        &[
            "--pace",
            "fast",
            "--ignore",
            "/content/*/text",
            "--ignore",
            "/structuredContent",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.describe());
    assert_eq!(rep["divergences"], 0, "{rep}");
}

#[test]
fn a_capped_recording_says_it_was_cut() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    let r = record("", &trace, &["--record-max", "4KB"]);
    let size = std::fs::metadata(&trace).unwrap().len();
    assert!(size <= 4096 + 1024, "{size}");
    let warnings = r.report()["warnings"].to_string();
    assert!(warnings.contains("--record-max"), "{warnings}");
    // A cut trace still replays: requests without a recorded answer are sent, not compared.
    let (r, rep) = replay(&trace, "embedded", &["--pace", "fast"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert_eq!(rep["divergences"], 0, "{rep}");
}

#[test]
fn bad_traces_and_flags_are_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("future.jsonl");
    std::fs::write(
        &trace,
        "{\"format\":\"mcpstorm-trace\",\"version\":9,\"tool_version\":\"9\",\"target\":\"t\",\"transport\":\"stdio\",\"protocol_version\":\"2025-11-25\"}\n",
    )
    .unwrap();
    let (r, _) = replay(&trace, "embedded", &[]);
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(
        r.stderr
            .contains("future.jsonl:1: trace format version 9 is not supported"),
        "{}",
        r.stderr
    );
    let good = dir.path().join("good.jsonl");
    std::fs::write(
        &good,
        "{\"format\":\"mcpstorm-trace\",\"version\":1,\"tool_version\":\"0\",\"target\":\"t\",\"transport\":\"stdio\",\"protocol_version\":\"2025-11-25\"}\n{\"session\":0,\"dir\":\"send\",\"t\":0}\n",
    )
    .unwrap();
    let (r, _) = replay(&good, "embedded", &[]);
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(r.stderr.contains("good.jsonl:2:"), "{}", r.stderr);
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(
        &empty,
        "{\"format\":\"mcpstorm-trace\",\"version\":1,\"tool_version\":\"0\",\"target\":\"t\",\"transport\":\"stdio\",\"protocol_version\":\"2025-11-25\"}\n",
    )
    .unwrap();
    let (r, _) = replay(&empty, "embedded", &["--ignore", "content"]);
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(r.stderr.contains("--ignore content"), "{}", r.stderr);
    let r = run_scenario(
        "duration = \"1s\"\n",
        &["--record", "/nonexistent-dir/t.jsonl"],
    );
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(r.stderr.contains("--record"), "{}", r.stderr);
}
