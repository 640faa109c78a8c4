//! Against servers written with the official Python `mcp` package (PyPI), and a raw Python
//! stdio server that crashes on purpose: a crash mid-run is reported, not hung on.

mod common;
use common::*;

const MIX: &str = r#"
[[mix]]
op = "tools/call"
tool = "echo"
weight = 3
arguments = { message = "hello {{vu}} {{seq}}" }
[[mix]]
op = "tools/call"
tool = "add"
arguments = { a = "{{seq}}", b = 2 }
[[mix]]
op = "tools/list"
[[mix]]
op = "ping"
"#;

fn assert_python_run(r: &RunResult) {
    assert_eq!(r.code, 0, "{}", r.describe());
    assert!(r.total("calls") >= 20.0, "{}", r.describe());
    assert_eq!(r.total("failed"), 0.0, "{}", r.describe());
    let rep = r.report();
    assert!(rep["latency_ms"]["by_tool"]["add"]["ok"].as_u64().unwrap() > 0);
    assert_eq!(rep["target"]["protocol_version"], "2025-11-25");
}

#[test]
fn fastmcp_over_stdio_passes() {
    // 8 s, not 3: each VU's session starts a Python process inside the run's clock, and
    // importing `mcp` takes 0.6 s on a quiet machine but 3 s and more on a busy one (load 5
    // on 2 cores here), which left a 3 s run a handful of calls. The calls themselves take
    // milliseconds; the assertions stay as they are.
    let toml = format!(
        "name = \"py-stdio\"\nduration = \"8s\"\ncriteria = [\"success_rate == 1\"]\n[target]\ncommand = {:?}\nargs = [{}]\n[workload]\nvus = 2\n{MIX}",
        python(),
        toml_str(&fixture("py_server.py")) + ", \"stdio\""
    );
    assert_python_run(&run_scenario(&toml, &["--no-progress"]));
}

/// Over stdio every session is a server process of its own, the health probe's too (the
/// default `probe_failed` alert runs it on every run). One that takes longer to start than
/// the probe's 1 s timeout is not unhealthy: its start-up gets the handshake's timeout, so
/// the probe opens one session, raises no alert, and does not start process after process.
#[test]
fn a_slow_starting_stdio_server_is_not_a_failed_probe() {
    let toml = format!(
        "duration = \"4s\"\ncriteria = [\"success_rate == 1\"]\n[target]\ncommand = {:?}\nargs = [{}]\nenv = {{ START_DELAY = \"1.5\" }}\n[workload]\nvus = 1\n[[mix]]\nop = \"ping\"\n",
        python(),
        toml_str(&fixture("py_server.py")) + ", \"stdio\""
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    let alerts = &r.report()["alerts"];
    assert!(
        alerts
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x["rule"] != "probe")),
        "no probe alert for a server that starts slowly: {alerts}"
    );
    assert_eq!(
        r.total("monitor_sessions_opened"),
        1.0,
        "one probe session, not one process per probe timeout: {}",
        r.describe()
    );
}

#[test]
fn fastmcp_over_streamable_http_passes() {
    let server = python_http();
    let toml = format!(
        "name = \"py-http\"\nduration = \"3s\"\ncriteria = [\"success_rate == 1\"]\n[target]\nurl = {:?}\n[workload]\nvus = 4\n{MIX}",
        server.url()
    );
    assert_python_run(&run_scenario(&toml, &["--no-progress"]));
}

#[test]
fn generated_arguments_are_accepted_by_fastmcp() {
    let server = python_http();
    let toml = format!(
        "duration = \"2s\"\n[target]\nurl = {:?}\n[workload]\nvus = 2\nexclude_tools = [\"kv_get\"]\n",
        server.url()
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    let tools = r.report()["latency_ms"]["by_tool"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for t in ["echo", "add", "sleep", "kv_put"] {
        assert!(
            tools.get(t).and_then(|x| x["ok"].as_u64()).unwrap_or(0) > 0,
            "{t}: {}",
            r.describe()
        );
    }
}

#[test]
fn a_server_that_crashes_mid_run_is_reported_not_hung_on() {
    let toml = format!(
        "duration = \"3s\"\ncriteria = [\"errors{{kind=process_exited}} == 0\"]\n[target]\ncommand = {:?}\nargs = [{}]\nenv = {{ CRASH_AFTER = \"25\" }}\n[workload]\nvus = 2\ntimeout = \"2s\"\n[[mix]]\nop = \"tools/call\"\ntool = \"echo\"\narguments = {{ message = \"m\" }}\n",
        python(),
        toml_str(&fixture("crashy_server.py"))
    );
    let started = std::time::Instant::now();
    let r = run_scenario(&toml, &["--no-progress"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "bounded"
    );
    assert_eq!(r.code, 1, "{}", r.describe());
    let crashes = r.error_count("process_exited");
    assert!(crashes >= 2, "{}", r.describe());
    let sample = r.report()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "process_exited")
        .unwrap()["samples"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        sample.contains("exited with code 42") && sample.contains("crashing on purpose"),
        "{sample}"
    );
    // Each crash is followed by a new process that serves again.
    assert!(r.total("ok") >= 2.0 * 25.0, "{}", r.describe());
}

#[test]
fn a_chatty_stderr_never_blocks_the_server() {
    // 100k lines of stderr fill any pipe many times over; without draining the server blocks.
    let toml = format!(
        "duration = \"2s\"\ncriteria = [\"success_rate == 1\"]\n[target]\ncommand = {:?}\nargs = [{}]\nenv = {{ NOISE_LINES = \"100000\", CRASH_AFTER = \"1000000\" }}\n[workload]\nvus = 1\ntimeout = \"5s\"\n[[mix]]\nop = \"tools/call\"\ntool = \"echo\"\narguments = {{ message = \"m\" }}\n",
        python(),
        toml_str(&fixture("crashy_server.py"))
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    let log = std::fs::read_to_string(r.out.path().join("target-stderr.log")).unwrap();
    assert!(log.lines().count() >= 100_000, "stderr drained to the log");
    assert!(
        log.starts_with("[session 1] "),
        "lines are tagged by session"
    );
}

/// Processes whose environment carries `token`, found by reading /proc (never by name).
fn processes_with(token: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let env = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if env.split(|b| *b == 0).any(|kv| kv == token.as_bytes()) {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

#[test]
fn the_whole_process_tree_of_a_stdio_server_is_ended() {
    // The server forks a grandchild that would outlive a plain kill of its parent.
    let token = format!("MCPSTORM_TREE_TEST={}", std::process::id());
    let (key, value) = token.split_once('=').unwrap();
    let toml = format!(
        "duration = \"1s\"\n[target]\ncommand = \"sh\"\nargs = [\"-c\", \"sleep 300 & exec {} {}\"]\nenv = {{ {key} = \"{value}\", CRASH_AFTER = \"1000000\" }}\n[workload]\nvus = 2\n[[mix]]\nop = \"ping\"\n",
        python(),
        fixture("crashy_server.py").display()
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    wait_until(
        "every server process and its children to end",
        std::time::Duration::from_secs(5),
        || processes_with(&token).is_empty(),
    );
}
