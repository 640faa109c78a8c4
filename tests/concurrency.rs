//! Concurrency bug probes against real servers: a FastMCP server that deadlocks when its
//! first tool calls arrive together is caught by the first-call probe, one whose answer
//! depends on overlapping calls by the race check, and the same server without its bugs and
//! the reference server raise no finding.

mod common;
use common::*;
use serde_json::Value;

fn probes(target: &str) -> String {
    format!(
        r#"duration = "1s"
{target}
[workload]
vus = 1
[[mix]]
op = "ping"
[concurrency]
first_call = {{ sessions = 12, tool = "add", arguments = {{ a = 1, b = 2 }}, deadline = "3s" }}
race = {{ sessions = 12, rounds = 3, tool = "total", arguments = {{ values = [1, 2, 3, 4, 5] }} }}
"#
    )
}

fn finding<'a>(r: &'a RunResult, probe: &str) -> &'a Value {
    r.report()["security"]
        .as_array()
        .and_then(|f| f.iter().find(|x| x["probe"] == probe))
        .unwrap_or_else(|| panic!("no {probe} finding: {}", r.describe()))
}

fn url_target(p: &Proc) -> String {
    format!("[target]\nurl = {:?}", p.url())
}

#[test]
fn a_deadlock_on_concurrent_first_calls_is_a_critical_finding() {
    let server = buggy_http("deadlock");
    let r = run_scenario(&probes(&url_target(&server)), &["--no-progress"]);
    assert_eq!(r.code, 1, "{}", r.describe());
    let f = finding(&r, "concurrency.first_call");
    assert_eq!(f["outcome"], "fail", "{f}");
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["category"], "concurrency");
    assert!(f["title"].as_str().unwrap().starts_with("deadlock:"), "{f}");
    assert!(
        f["evidence"]["details"]["hung"].as_u64().unwrap() >= 2,
        "{f}"
    );
    assert!(!f["advice"].as_str().unwrap().is_empty());
    let crit = r.report()["criteria"].as_array().unwrap();
    assert!(
        crit.iter()
            .any(|c| c["name"] == "security.failures" && c["passed"] == false),
        "{crit:?}"
    );
    assert!(
        r.stdout.contains("FAIL concurrency.first_call: deadlock:"),
        "{}",
        r.stdout
    );
}

#[test]
fn answers_that_change_under_concurrency_are_a_race_finding() {
    let server = buggy_http("race");
    let r = run_scenario(&probes(&url_target(&server)), &["--no-progress"]);
    assert_eq!(r.code, 1, "{}", r.describe());
    assert_eq!(finding(&r, "concurrency.first_call")["outcome"], "pass");
    let f = finding(&r, "concurrency.race");
    assert_eq!(f["outcome"], "fail", "{f}");
    let answers = f["evidence"]["details"]["answers"].as_array().unwrap();
    let off_baseline: u64 = answers
        .iter()
        .filter(|a| a["baseline"] == false)
        .map(|a| a["count"].as_u64().unwrap())
        .sum();
    assert!(off_baseline > 0, "{f}");
    assert!(
        f["evidence"]["details"]["baseline"]
            .as_str()
            .unwrap()
            .contains("15"),
        "{f}"
    );
}

#[test]
fn a_correct_server_raises_no_finding() {
    let server = buggy_http("correct");
    let r = run_scenario(&probes(&url_target(&server)), &["--no-progress"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    for p in ["concurrency.first_call", "concurrency.race"] {
        assert_eq!(finding(&r, p)["outcome"], "pass", "{}", r.describe());
    }
}

#[test]
fn the_reference_server_raises_no_finding_over_http_and_stdio() {
    for transport in ["embedded", "embedded-stdio"] {
        let toml = probes(&format!("[target]\ntransport = {transport:?}")).replace(
            "tool = \"total\", arguments = { values = [1, 2, 3, 4, 5] }",
            "tool = \"add\", arguments = { a = 2, b = 3 }",
        );
        let r = run_scenario(&toml, &["--no-progress"]);
        assert_eq!(r.code, 0, "{transport}: {}", r.describe());
        assert_eq!(r.report()["security"].as_array().unwrap().len(), 2);
        assert_eq!(
            r.report()["totals"]["sessions_opened"],
            2,
            "probe sessions are not the workload's"
        );
    }
}

#[test]
fn bad_probe_settings_are_exit_2() {
    let toml = r#"duration = "1s"
[concurrency]
first_call = { sessions = 1, tool = "add", deadline = "soon" }
race = { tool = "add", rounds = 0, argumentz = {} }
"#;
    let r = run_scenario(toml, &["--no-progress"]);
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(r.stderr.contains("argumentz"), "{}", r.stderr);
    let toml = r#"duration = "1s"
[concurrency]
first_call = { sessions = 1, tool = "add", deadline = "soon" }
race = { tool = "add", rounds = 0 }
"#;
    let r = run_scenario(toml, &["--no-progress"]);
    assert_eq!(r.code, 2, "{}", r.describe());
    for key in [
        "concurrency.first_call.sessions",
        "concurrency.first_call.deadline",
        "concurrency.race.rounds",
    ] {
        assert!(r.stderr.contains(key), "{key}: {}", r.stderr);
    }
}
