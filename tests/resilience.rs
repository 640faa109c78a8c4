//! `mcpstorm probe`'s resilience and concurrency families against real servers: the hardened
//! reference server passes the overload, circuit-breaker and memory-guard probes, and with
//! each of those protections switched off it is caught by the matching probe; the buggy
//! FastMCP fixture's deadlock and race are caught through `mcpstorm probe` and its correct
//! mode passes; bad flags and scenario keys are usage errors that name them.

mod common;
use common::*;
use serde_json::Value;

const SECRET_VAR: &str = "MCPSTORM_TEST_RESILIENCE_SECRET";
const SECRET: &str = "resilience-probe-secret-0123456789abcdef";

/// `mcpstorm serve --hardened` with HS256 auth and small limits the probes can reach in a
/// second, plus `flags` (a `--no-...` switch goes after them and wins).
fn hardened(flags: &[&str]) -> Proc {
    let limits = [
        "--max-concurrency",
        "8",
        "--queue",
        "8",
        "--breaker-failures",
        "3",
        "--breaker-open",
        "1s",
        "--memory-guard-mb",
        "150",
    ];
    serve_hardened(SECRET_VAR, SECRET, &[&limits[..], flags].concat())
}

/// What the probes are told about the server above.
const OVERLOAD: &[&str] = &[
    "--slow-tool",
    "sleep",
    "--slow-arguments",
    r#"{"ms": 1000}"#,
    "--overload-concurrency",
    "60",
];
const BREAKER: &[&str] = &[
    "--breaker-tool",
    "fail",
    "--breaker-arguments",
    r#"{"error_rate": 1.0}"#,
    "--breaker-failures",
    "3",
    "--breaker-open",
    "1s",
];
const MEMORY: &[&str] = &[
    "--memory-tool",
    "alloc",
    "--memory-arguments",
    r#"{"bytes": 33554432, "hold_ms": 4000}"#,
    "--memory-request-mb",
    "32",
    "--memory-threshold-mb",
    "150",
];

fn probe(target: &str, args: &[&str]) -> RunResult {
    let dir = tempfile::tempdir().expect("tempdir");
    run_args_env(
        &[
            &[
                "probe",
                "--target",
                target,
                "--auth-hs256-secret-env",
                SECRET_VAR,
            ],
            args,
        ]
        .concat(),
        dir,
        &[(SECRET_VAR, SECRET)],
    )
}

fn finding<'a>(r: &'a RunResult, id: &str) -> &'a Value {
    r.report()["security"]
        .as_array()
        .and_then(|s| s.iter().find(|f| f["probe"] == id))
        .unwrap_or_else(|| panic!("no finding {id}:\n{}", r.describe()))
}

fn assert_outcome(r: &RunResult, id: &str, outcome: &str) -> Value {
    let f = finding(r, id).clone();
    assert_eq!(f["outcome"], outcome, "{id}:\n{}", r.describe());
    if outcome == "fail" {
        assert!(
            !f["evidence"]["request"].as_str().unwrap_or("").is_empty()
                && !f["advice"].as_str().unwrap_or("").is_empty(),
            "{id} needs evidence and advice: {f}"
        );
        assert_eq!(r.code, 1, "a failed finding exits 1:\n{}", r.describe());
    }
    f
}

#[test]
fn the_hardened_reference_server_passes_overload_breaker_and_memory_guard() {
    let server = hardened(&[]);
    let r = probe(
        &server.url(),
        &[&["--only", "resilience"], OVERLOAD, BREAKER, MEMORY].concat(),
    );
    assert_eq!(r.code, 0, "{}", r.describe());
    let overload = assert_outcome(&r, "resilience.overload", "pass");
    let d = &overload["evidence"]["details"];
    // 8 workers and 8 queue places: about 16 answered, the rest refused at once.
    assert!(d["refused"].as_u64().unwrap() >= 30, "{d}");
    assert!(d["answered"].as_u64().unwrap() >= 8, "{d}");
    assert_eq!(d["timed_out"], 0, "{d}");
    assert_eq!(d["refusals_by_kind"]["HTTP 503"], d["refused"], "{d}");
    let breaker = assert_outcome(&r, "resilience.breaker", "pass");
    let d = &breaker["evidence"]["details"];
    assert_eq!(d["failures"], 3, "{d}");
    assert_eq!(d["ran_while_open"], 0, "{d}");
    let half_open = d["half_open_ms"].as_u64().unwrap();
    assert!(
        (700..=3500).contains(&half_open),
        "half-open after {half_open} ms: {d}"
    );
    assert_eq!(d["reopened_after_failed_trial"], true, "{d}");
    let memory = assert_outcome(&r, "resilience.memory_guard", "pass");
    let d = &memory["evidence"]["details"];
    assert!(d["first_refused"].as_u64().unwrap() >= 2, "{d}");
    assert_eq!(d["light_request_served"], true, "{d}");
}

#[test]
fn no_concurrency_limit_is_caught_by_resilience_overload() {
    let server = hardened(&["--no-concurrency-limit"]);
    let r = probe(
        &server.url(),
        &[&["--only", "resilience"], OVERLOAD].concat(),
    );
    let f = assert_outcome(&r, "resilience.overload", "fail");
    assert_eq!(f["severity"], "high");
    assert!(
        f["title"]
            .as_str()
            .unwrap()
            .starts_with("no concurrency limit below 60"),
        "{f}"
    );
    assert_eq!(f["evidence"]["details"]["answered"], 60);
}

#[test]
fn no_breaker_is_caught_by_resilience_breaker() {
    let server = hardened(&["--no-breaker"]);
    let r = probe(
        &server.url(),
        &[&["--only", "resilience"], BREAKER].concat(),
    );
    let f = assert_outcome(&r, "resilience.breaker", "fail");
    assert_eq!(f["severity"], "medium");
    assert!(
        f["title"]
            .as_str()
            .unwrap()
            .starts_with("no circuit breaker"),
        "{f}"
    );
}

#[test]
fn no_memory_guard_is_caught_by_resilience_memory_guard() {
    let server = hardened(&["--no-memory-guard"]);
    let r = probe(&server.url(), &[&["--only", "resilience"], MEMORY].concat());
    let f = assert_outcome(&r, "resilience.memory_guard", "fail");
    assert_eq!(f["severity"], "high");
    assert!(
        f["title"].as_str().unwrap().starts_with("no memory guard"),
        "{f}"
    );
    assert_eq!(f["evidence"]["details"]["refused"], 0);
}

#[test]
fn undeclared_probes_are_skipped_with_the_flags_to_give() {
    // The default server: no slow tool named, but its `sleep` is recognised; nothing else declared.
    let server = reference_http();
    let r = probe(&server.url(), &["--only", "resilience"]);
    let f = assert_outcome(&r, "resilience.overload", "fail");
    assert!(
        f["evidence"]["request"]
            .as_str()
            .unwrap()
            .contains("`sleep` recognised by name and schema"),
        "{f}"
    );
    for (id, flag) in [
        ("resilience.breaker", "--breaker-tool"),
        ("resilience.memory_guard", "--memory-tool"),
    ] {
        let f = assert_outcome(&r, id, "skip");
        assert!(f["title"].as_str().unwrap().contains(flag), "{f}");
    }
}

// ---- the concurrency family through `mcpstorm probe` ----------------------------------------

const FIRST_CALL: &[&str] = &[
    "--only",
    "concurrency",
    "--first-call-tool",
    "add",
    "--first-call-arguments",
    r#"{"a": 1, "b": 2}"#,
    "--race-tool",
    "total",
    "--race-arguments",
    r#"{"values": [1, 2, 3, 4, 5]}"#,
    "--concurrency-sessions",
    "12",
];

#[test]
fn probe_catches_a_first_call_deadlock() {
    let server = buggy_http("deadlock");
    let r = probe(&server.url(), FIRST_CALL);
    let f = assert_outcome(&r, "concurrency.first_call", "fail");
    assert_eq!(f["severity"], "critical");
    assert!(f["title"].as_str().unwrap().starts_with("deadlock:"), "{f}");
    assert!(
        f["evidence"]["details"]["hung"].as_u64().unwrap() >= 2,
        "{f}"
    );
}

#[test]
fn probe_catches_a_race() {
    let server = buggy_http("race");
    let r = probe(&server.url(), FIRST_CALL);
    assert_outcome(&r, "concurrency.first_call", "pass");
    let f = assert_outcome(&r, "concurrency.race", "fail");
    assert_eq!(f["severity"], "high");
}

#[test]
fn probe_passes_a_correct_server_and_skips_over_stdio() {
    let server = buggy_http("correct");
    let r = probe(&server.url(), FIRST_CALL);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert_outcome(&r, "concurrency.first_call", "pass");
    assert_outcome(&r, "concurrency.race", "pass");
    let target = format!(
        "stdio:{} {} correct stdio",
        python(),
        fixture("buggy_server.py").display()
    );
    let r = probe(&target, FIRST_CALL);
    let f = assert_outcome(&r, "concurrency", "skip");
    assert!(f["title"].as_str().unwrap().contains("stdio"), "{f}");
}

// ---- bad settings --------------------------------------------------------------------------

#[test]
fn bad_resilience_flags_are_usage_errors_naming_each_flag() {
    let r = probe(
        "embedded",
        &[
            "--slow-tool",
            "sleep",
            "--slow-arguments",
            "[1]",
            "--overload-concurrency",
            "1",
            "--breaker-tool",
            "fail",
            "--breaker-open",
            "0s",
            "--memory-tool",
            "alloc",
            "--memory-request-mb",
            "32",
            "--memory-threshold-mb",
            "4096",
            "--race-tool",
            "add",
            "--race-arguments",
            "{a: 1}",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.describe());
    for flag in [
        "--slow-arguments",
        "--overload-concurrency",
        "--breaker-open",
        "--memory-threshold-mb 4096",
        "--race-arguments",
    ] {
        assert!(r.stderr.contains(flag), "no {flag}: {}", r.stderr);
    }
    let r = probe("embedded", &["--memory-tool", "alloc"]);
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(r.stderr.contains("--memory-request-mb"), "{}", r.stderr);
}

#[test]
fn bad_resilience_keys_are_named_and_concurrency_points_to_its_table() {
    let toml = r#"duration = "1s"
[target]
url = "http://127.0.0.1:9/mcp"
[security]
only = ["concurrency"]
[security.overload]
concurrency = 100000
arguments = [1]
[security.breaker]
failures = 0
[security.memory_guard]
tool = "alloc"
request_mb = 64
"#;
    let r = run_scenario(toml, &["--no-progress"]);
    assert_eq!(r.code, 2, "{}", r.describe());
    for key in [
        "security.overload.concurrency",
        "security.overload.arguments",
        "security.breaker.failures",
        "security.breaker.tool",
        "security.memory_guard.threshold_mb",
        "[concurrency]",
    ] {
        assert!(r.stderr.contains(key), "no {key}: {}", r.stderr);
    }
}

#[test]
fn a_scenario_runs_the_resilience_probes_from_its_keys() {
    let server = hardened(&["--no-auth", "--no-rate-limit", "--no-breaker"]);
    let toml = format!(
        r#"duration = "1s"
[target]
url = {:?}
[workload]
vus = 1
[[mix]]
op = "ping"
[security]
only = ["resilience"]
[security.overload]
tool = "sleep"
arguments = {{ ms = 1000 }}
concurrency = 40
[security.breaker]
tool = "fail"
arguments = {{ error_rate = 1.0 }}
failures = 3
open_for = "1s"
"#,
        server.url()
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_eq!(r.code, 1, "{}", r.describe());
    assert_outcome(&r, "resilience.overload", "pass");
    assert_outcome(&r, "resilience.breaker", "fail");
    assert_outcome(&r, "resilience.memory_guard", "skip");
}
