//! Reports after the run: JUnit XML for CI, `report` to re-render a saved run, and
//! `compare` to catch a regression against a baseline (and to pass identical runs).

mod common;
use common::*;
use std::process::Command;

fn sleep_run(server: &Proc, ms: u32) -> RunResult {
    let toml = format!(
        "name = \"sleepy <&> 'q'\"\nduration = \"2s\"\ncriteria = [\"p50 < 30ms\", \"success_rate == 1\"]\n[target]\nurl = {:?}\n[workload]\nvus = 4\n[[mix]]\nop = \"tools/call\"\ntool = \"sleep\"\narguments = {{ ms = {ms} }}\n",
        server.url()
    );
    run_scenario(&toml, &["--no-progress"])
}

/// `xmllint --schema` against the Jenkins xUnit plugin's JUnit schema (tests/fixtures/junit).
fn assert_valid_junit(path: &std::path::Path) {
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(fixture("junit/junit-10.xsd"))
        .arg(path)
        .output()
        .expect("xmllint is installed (.ci/run installs libxml2-utils)");
    assert!(
        out.status.success(),
        "{} does not validate: {}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
}

fn compare(old: &RunResult, new: &RunResult, extra: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("compare")
        .arg(old.out.path().join("report.json"))
        .arg(new.out.path().join("report.json"))
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn compare_flags_a_slower_tool_and_passes_identical_runs() {
    let server = reference_http();
    let base = sleep_run(&server, 20);
    let same = sleep_run(&server, 20);
    let slow = sleep_run(&server, 40);
    assert_eq!(base.code, 0, "{}", base.describe());

    assert_valid_junit(&base.out.path().join("junit.xml"));

    let (code, text) = compare(&base, &same, &["--max-p99-increase", "100"]);
    assert_eq!(code, 0, "identical runs pass: {text}");
    assert!(
        text.contains("tools/call sleep") && text.contains("no regression"),
        "{text}"
    );

    let (code, text) = compare(&base, &slow, &[]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("regressions:") && text.contains("tools/call sleep: p50"),
        "{text}"
    );
    // Twice the sleep is about half the calls/s at a fixed number of VUs.
    assert!(text.contains("calls/s"), "{text}");
}

#[test]
fn compare_refuses_files_that_are_not_reports() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.json");
    std::fs::write(&bogus, "{\"hello\": 1}").unwrap();
    let out = Command::new(BIN)
        .args(["compare"])
        .arg(&bogus)
        .arg(&bogus)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bogus.json") && stderr.contains("not an mcpstorm report"),
        "{stderr}"
    );
    let out = Command::new(BIN)
        .args(["compare", "--max-p50-increase", "-5"])
        .arg(&bogus)
        .arg(&bogus)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn junit_has_one_test_case_per_criterion_and_parses() {
    let server = reference_http();
    let run = sleep_run(&server, 40);
    assert_eq!(
        run.code,
        1,
        "p50 < 30ms cannot hold for a 40 ms sleep: {}",
        run.describe()
    );
    let junit = run.out.path().join("junit.xml");
    // A real XML parser reads it; the counts match the criteria.
    let check = r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
suite = root.find("testsuite")
cases = suite.findall("testcase")
failed = [c for c in cases if c.find("failure") is not None]
print(len(cases), len(failed), suite.get("tests"), suite.get("failures"), failed[0].get("name"))
"#;
    let out = Command::new(python())
        .arg("-c")
        .arg(check)
        .arg(&junit)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(printed.trim(), "2 1 2 1 p50 < 30ms");
    assert_valid_junit(&junit);

    // `report` renders the saved run again and writes JUnit on request.
    let again = run.out.path().join("again.xml");
    let out = Command::new(BIN)
        .arg("report")
        .arg(run.out.path().join("report.json"))
        .arg("--junit")
        .arg(&again)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("verdict: FAIL"));
    assert_eq!(
        std::fs::read_to_string(&again).unwrap(),
        std::fs::read_to_string(&junit).unwrap()
    );
}
