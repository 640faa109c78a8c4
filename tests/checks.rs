//! Response checks against real servers: a FastMCP server that answers `a + b + 1` once in
//! fifty is caught by `check = "result == a + b"` (kind `wrong_answer`, criterion
//! `wrong_answers == 0`), the same server without the bug and the reference server raise
//! nothing, and a bad expression stops the run before it starts (exit 2).

mod common;
use common::*;

fn add_scenario(url: &str) -> String {
    format!(
        r#"duration = "3s"
criteria = ["wrong_answers == 0"]
[target]
url = {url:?}
[workload]
vus = 4
[[mix]]
op = "tools/call"
tool = "add"
weight = 3
arguments = {{ a = "{{{{seq}}}}", b = 7 }}
check = "result == a + b and structured.result == a + b"
[[mix]]
op = "tools/call"
tool = "echo"
arguments = {{ message = "hello {{{{vu}}}}" }}
check = "text == message and len(text) > 0"
"#
    )
}

#[test]
fn once_in_fifty_wrong_sums_are_caught_with_samples() {
    let server = buggy_http("wrong-answer");
    let r = run_scenario(&add_scenario(&server.url()), &["--no-progress"]);
    assert_eq!(r.code, 1, "{}", r.describe());
    let rep = r.report();
    let add_calls = rep["latency_ms"]["by_tool"]["add"]["calls"]
        .as_u64()
        .unwrap();
    let wrong = r.error_count("wrong_answer");
    assert!(
        add_calls >= 100,
        "too few calls to see the bug: {add_calls}"
    );
    // Every 50th add of the process is wrong; the preflight makes none.
    let expected = add_calls / 50;
    assert!(
        wrong.abs_diff(expected) <= 1,
        "{wrong} wrong answers in {add_calls} adds, expected about {expected}"
    );
    assert_eq!(r.error_count("schema_mismatch"), 0, "{}", r.describe());
    let errors = rep["errors"].as_array().unwrap();
    let sample =
        errors.iter().find(|e| e["kind"] == "wrong_answer").unwrap()["samples"][0]["message"]
            .as_str()
            .unwrap()
            .to_string();
    assert!(
        sample.contains("wrong answer: check `result == a + b") && sample.contains("a + b = "),
        "{sample}"
    );
    let crit = &rep["criteria"][0];
    assert_eq!(crit["name"], "wrong_answers");
    assert_eq!(crit["observed"].as_f64().unwrap() as u64, wrong);
    assert!(r.stdout.contains("wrong_answer"), "{}", r.stdout);
}

#[test]
fn a_correct_server_raises_no_wrong_answer() {
    let server = buggy_http("correct");
    let r = run_scenario(&add_scenario(&server.url()), &["--no-progress"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert!(r.total("calls") >= 100.0, "{}", r.describe());
    assert_eq!(r.total("failed"), 0.0, "{}", r.describe());
}

#[test]
fn the_reference_server_passes_its_checks() {
    let toml = r#"duration = "2s"
criteria = ["wrong_answers == 0", "errors{kind=wrong_answer} == 0", "success_rate == 1"]
[workload]
vus = 2
[[mix]]
op = "tools/call"
tool = "add"
arguments = { a = "{{seq}}", b = 2.5 }
check = "result == a + b and structured.sum == a + b"
[[mix]]
op = "tools/call"
tool = "echo"
arguments = { message = "m{{seq}}" }
check = "text contains message"
[[mix]]
op = "tools/call"
tool = "add"
arguments = { a = 2, b = 3 }
expect = { sum = 5 }
[[mix]]
op = "resources/read"
uri = "mcpstorm://info"
check = "text startswith 'mcpstorm reference server'"
[[mix]]
op = "tools/call"
tool = "sleep"
arguments = { ms = 99999999 }
check = "isError and text contains 'ms'"
"#;
    let r = run_scenario(toml, &["--no-progress"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert!(r.total("calls") >= 50.0, "{}", r.describe());
}

#[test]
fn a_check_that_does_not_hold_fails_the_run_on_the_reference_server() {
    let toml = r#"duration = "1s"
[workload]
vus = 1
[[mix]]
op = "tools/call"
tool = "echo"
arguments = { message = "m" }
check = "text == 'something else'"
"#;
    let r = run_scenario(toml, &["--no-progress"]);
    assert_eq!(r.code, 1, "{}", r.describe());
    assert_eq!(r.total("ok"), 0.0);
    assert_eq!(r.error_count("wrong_answer") as f64, r.total("calls"));
}

#[test]
fn a_bad_check_is_exit_2_with_key_and_column() {
    let toml = r#"duration = "1s"
[[mix]]
op = "tools/call"
tool = "add"
arguments = { a = 1, b = 2 }
check = "result == a +"
"#;
    let r = run_scenario(toml, &["--no-progress"]);
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(
        r.stderr.contains("`mix[0].check`") && r.stderr.contains("column 14"),
        "{}",
        r.stderr
    );
}

fn schema_liar(extra_workload: &str) -> String {
    format!(
        r#"duration = "2s"
criteria = ["wrong_answers == 0"]
[target]
command = {:?}
args = [{}]
[workload]
vus = 1
{extra_workload}
[[mix]]
op = "tools/call"
tool = "add"
arguments = {{ a = "{{{{seq}}}}", b = 1 }}
[[mix]]
op = "tools/call"
tool = "echo"
arguments = {{ message = "m" }}
"#,
        python(),
        toml_str(&fixture("schema_liar.py"))
    )
}

#[test]
fn structured_content_that_breaks_the_declared_output_schema_is_caught() {
    let r = run_scenario(&schema_liar(""), &["--no-progress"]);
    assert_eq!(r.code, 1, "{}", r.describe());
    let adds = r.report()["latency_ms"]["by_tool"]["add"]["calls"]
        .as_u64()
        .unwrap();
    let mismatches = r.error_count("schema_mismatch");
    assert!(adds >= 50, "{adds}");
    assert!(
        mismatches.abs_diff(adds / 10) <= 1,
        "{mismatches} mismatches in {adds} adds"
    );
    assert_eq!(r.error_count("wrong_answer"), 0);
    let sample = r.report()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "schema_mismatch")
        .unwrap()["samples"][0]["message"]
        .to_string();
    assert!(
        sample.contains("/sum") && sample.contains("integer"),
        "{sample}"
    );
    // The wrong_answers criterion counts schema mismatches too.
    assert_eq!(
        r.report()["criteria"][0]["observed"].as_f64().unwrap() as u64,
        mismatches
    );
    // echo declares no schema: never judged by one.
    assert_eq!(r.report()["latency_ms"]["by_tool"]["echo"]["failed"], 0);

    let off = run_scenario(
        &schema_liar("check_output_schema = false"),
        &["--no-progress"],
    );
    assert_eq!(off.code, 0, "{}", off.describe());
}
