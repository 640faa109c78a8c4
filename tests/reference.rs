//! Against our own reference server: the quickstart, every executor, templated payloads,
//! session churn, impossible criteria, and a server restarted under load (sessions lost).

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn quickstart_preset_passes_against_the_embedded_server() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_args(
        &["run", "--duration", "3s", "--progress-interval", "1s"],
        dir,
    );
    assert_eq!(r.code, 0, "{}", r.describe());
    let rep = r.report();
    assert_eq!(rep["schema_version"], 1);
    assert_eq!(rep["target"]["server_name"], "mcpstorm-reference");
    assert!(r.total("calls") > 300.0, "{}", r.describe());
    for tool in ["echo", "add", "kv_put", "sleep", "fail"] {
        assert!(
            rep["latency_ms"]["by_tool"][tool]["calls"]
                .as_u64()
                .unwrap_or(0)
                > 0,
            "{tool} not called"
        );
    }
    // The sleep tool sleeps 20 ms: its median says so, give or take scheduling.
    let sleep_p50 = rep["latency_ms"]["by_tool"]["sleep"]["p50"]
        .as_f64()
        .unwrap();
    assert!((20.0..60.0).contains(&sleep_p50), "sleep p50 {sleep_p50}");
    assert_eq!(rep["criteria"].as_array().unwrap().len(), 4);
    assert!(r.stdout.contains("verdict: PASS"), "{}", r.stdout);
    assert!(
        r.stderr.contains("calls/s"),
        "progress lines on stderr: {}",
        r.stderr
    );
    assert!(rep["client"]["cpu_seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn embedded_stdio_runs_with_one_process_per_session() {
    let toml = r#"
name = "ref-stdio"
duration = "2s"
criteria = ["success_rate == 1"]
[target]
transport = "embedded-stdio"
[workload]
vus = 3
[[mix]]
op = "tools/call"
tool = "echo"
arguments = { message = "{{random:1MB}}" }
[[mix]]
op = "tools/call"
tool = "add"
arguments = { a = 2, b = "{{seq}}" }
"#;
    let r = run_scenario(toml, &["--no-progress"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert_eq!(r.total("sessions_opened"), 4.0);
    assert!(
        r.report()["latency_ms"]["by_tool"]["echo"]["ok"]
            .as_u64()
            .unwrap()
            > 5,
        "1 MB echoes went through"
    );
}

#[test]
fn criteria_that_cannot_hold_exit_1() {
    let server = reference_http();
    let toml = format!(
        "duration = \"1s\"\ncriteria = [\"p50 < 1us\", \"calls > 1000000000\", \"success_rate >= 0.5\"]\n[target]\nurl = {:?}\n[workload]\nvus = 2\n[[mix]]\nop = \"ping\"\n",
        server.url()
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_eq!(r.code, 1, "{}", r.describe());
    let crit = r.report()["criteria"].as_array().unwrap().clone();
    assert_eq!(
        crit.iter()
            .map(|c| c["passed"].as_bool().unwrap())
            .collect::<Vec<_>>(),
        vec![false, false, true]
    );
    assert_eq!(r.report()["verdict"], "FAIL");
    assert!(r.stdout.contains("FAIL  p50 < 1us"), "{}", r.stdout);
}

#[test]
fn tool_errors_are_counted_by_kind_with_samples() {
    let server = reference_http();
    let toml = format!(
        "duration = \"2s\"\ncriteria = [\"errors{{kind=tool_error}} > 0\", \"success_rate < 0.8\"]\n[target]\nurl = {:?}\n[workload]\nvus = 2\n[[mix]]\nop = \"tools/call\"\ntool = \"fail\"\narguments = {{ error_rate = 0.5 }}\n[[mix]]\nop = \"tools/call\"\ntool = \"no_such_tool\"\n",
        server.url()
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert!(r.error_count("tool_error") > 0);
    let errors = r.report()["errors"].as_array().unwrap().clone();
    let unknown: Vec<_> = errors
        .iter()
        .filter(|e| e["kind"] != "tool_error")
        .collect();
    assert!(
        !unknown.is_empty(),
        "an unknown tool is an error of its own kind: {errors:?}"
    );
    let sample = &errors[0]["samples"][0];
    assert!(
        sample["operation"]
            .as_str()
            .unwrap()
            .starts_with("tools/call")
    );
    assert!(!sample["message"].as_str().unwrap().is_empty());
}

#[test]
fn constant_arrival_rate_hits_its_rate_without_drops() {
    let server = reference_http();
    let toml = format!(
        "duration = \"3s\"\n[target]\nurl = {:?}\n[workload]\nexecutor = \"constant-arrival-rate\"\nrate = 200\nmax_in_flight = 20\n[[mix]]\nop = \"tools/call\"\ntool = \"echo\"\narguments = {{ message = \"x\" }}\n",
        server.url()
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    let calls = r.total("calls");
    assert!(
        (570.0..=630.0).contains(&calls),
        "200/s for 3 s gave {calls} calls"
    );
    assert_eq!(r.total("dropped_iterations"), 0.0);
}

#[test]
fn an_overloaded_open_model_drops_and_measures_from_the_intended_start() {
    // 50 arrivals/s, but each call takes 200 ms and only 4 may be in flight: at most 20/s
    // complete; the rest are dropped, and nothing hides the queueing.
    let server = reference_http();
    let toml = format!(
        "duration = \"3s\"\n[target]\nurl = {:?}\n[workload]\nexecutor = \"constant-arrival-rate\"\nrate = 50\nmax_in_flight = 4\npreallocate = 4\n[[mix]]\nop = \"tools/call\"\ntool = \"sleep\"\narguments = {{ ms = 200 }}\n",
        server.url()
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    let dropped = r.total("dropped_iterations");
    let calls = r.total("calls");
    assert!(dropped >= 60.0, "dropped {dropped}: {}", r.describe());
    assert!(
        (50.0..=70.0).contains(&calls),
        "4 in flight x 5/s x 3 s = 60, got {calls}"
    );
    assert!(r.report()["warnings"].to_string().contains("dropped"));
    let p50 = r.report()["latency_ms"]["overall"]["p50"].as_f64().unwrap();
    assert!(p50 >= 199.0, "p50 {p50}");
}

#[test]
fn ramping_vus_follow_their_stages() {
    let server = reference_http();
    let toml = format!(
        "[target]\nurl = {:?}\n[workload]\nexecutor = \"ramping-vus\"\nstages = [{{ duration = \"2s\", target = 6 }}, {{ duration = \"2s\", target = 6 }}, {{ duration = \"1s\", target = 0 }}]\nthink_time = \"50ms\"\n[[mix]]\nop = \"ping\"\n",
        server.url()
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    let series = r.report()["series"].as_array().unwrap().clone();
    let active: Vec<u64> = series
        .iter()
        .map(|p| p["active_sessions"].as_u64().unwrap())
        .collect();
    assert!(active.contains(&6), "peak of 6 sessions: {active:?}");
    assert!(active[0] < 6, "ramp starts low: {active:?}");
    assert!(active.iter().all(|a| *a <= 6), "{active:?}");
    // 6 VUs x ~20 pings/s (50 ms think) for the plateau alone.
    assert!(r.total("calls") > 150.0, "{}", r.describe());
}

#[test]
fn session_churn_reconnects_every_n_operations() {
    let server = reference_http();
    let toml = format!(
        "duration = \"2s\"\n[target]\nurl = {:?}\n[workload]\nvus = 2\nchurn_every = 5\n[[mix]]\nop = \"ping\"\n",
        server.url()
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    let calls = r.total("calls");
    let sessions = r.total("sessions_opened");
    let expected = calls / 5.0;
    assert!(
        (sessions - 1.0 - expected).abs() <= 3.0,
        "{sessions} sessions for {calls} calls"
    );
}

#[test]
fn a_restarted_server_loses_sessions_and_the_run_reports_it() {
    let port = free_port();
    let mut server = reference_http_on(port);
    let scenario = tempfile::tempdir().unwrap();
    let path = scenario.path().join("s.toml");
    std::fs::write(
        &path,
        format!("duration = \"5s\"\n[target]\nurl = \"http://127.0.0.1:{port}/mcp\"\n[workload]\nvus = 2\ntimeout = \"2s\"\n[[mix]]\nop = \"tools/call\"\ntool = \"echo\"\narguments = {{ message = \"hi\" }}\n"),
    )
    .unwrap();
    let out = scenario.path().join("out");
    let mut run = Command::new(BIN)
        .args([
            "run",
            path.to_str().unwrap(),
            "--progress-interval",
            "1s",
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for proof that load is flowing: the first progress line with calls in it.
    let mut stderr = BufReader::new(run.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "mcpstorm ended before any progress"
        );
        if line.contains("calls/s") && !line.contains(" 0.0 calls/s") {
            break;
        }
    }
    server.kill();
    let _server2 = reference_http_on(port);
    let status = run.wait().unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let lost = report["totals"]["sessions_lost"].as_u64().unwrap();
    assert!(lost >= 1, "sessions lost: {report}");
    let kinds: Vec<String> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.contains(&"session_lost".to_string()), "{kinds:?}");
    // The VUs re-initialized on the new server and went on.
    let last = report["series"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|p| p["calls"].as_u64().unwrap() > 0)
        .unwrap()
        .clone();
    assert!(
        last["ok"].as_u64().unwrap() > 0,
        "calls succeed after the restart: {last}"
    );
    assert!(status.code().is_some());
    let _ = Duration::ZERO;
}

#[test]
fn calls_still_running_at_the_end_are_counted_as_abandoned() {
    let server = reference_http();
    let toml = format!(
        "duration = \"1s\"\n[target]\nurl = {:?}\n[workload]\nvus = 3\ngraceful_stop = \"500ms\"\ntimeout = \"30s\"\n[[mix]]\nop = \"tools/call\"\ntool = \"sleep\"\narguments = {{ ms = 20000 }}\n",
        server.url()
    );
    let started = std::time::Instant::now();
    let r = run_scenario(&toml, &["--no-progress"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the run ends at duration + graceful_stop"
    );
    assert_eq!(r.total("abandoned_calls"), 3.0, "{}", r.describe());
    assert_eq!(r.total("calls"), 0.0);
    assert_eq!(r.code, 1, "no completed call is a failed run");
    assert!(r.report()["warnings"].to_string().contains("abandoned"));
}
