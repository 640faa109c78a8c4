//! Against `@modelcontextprotocol/server-everything` (npm), a server nobody here wrote, over
//! stdio and Streamable HTTP.

mod common;
use common::*;

fn mix() -> &'static str {
    r#"
[[mix]]
op = "tools/call"
tool = "echo"
weight = 3
arguments = { message = "hello {{vu}} {{seq}}" }
[[mix]]
op = "tools/call"
tool = "get-sum"
arguments = { a = "{{seq}}", b = 2 }
[[mix]]
op = "tools/list"
[[mix]]
op = "ping"
[[mix]]
op = "resources/read"
uri = "demo://resource/static/document/features.md"
[[mix]]
op = "prompts/get"
prompt = "args-prompt"
arguments = { city = "Paris" }
"#
}

fn assert_clean_run(r: &RunResult) {
    assert_eq!(r.code, 0, "{}", r.describe());
    let rep = r.report();
    assert_eq!(rep["target"]["server_name"], "mcp-servers/everything");
    assert_eq!(rep["verdict"], "PASS");
    assert!(r.total("calls") >= 50.0, "{}", r.describe());
    assert_eq!(r.total("failed"), 0.0, "{}", r.describe());
    for op in [
        "tools/call",
        "tools/list",
        "ping",
        "resources/read",
        "prompts/get",
    ] {
        assert!(
            rep["latency_ms"]["by_operation"][op]["ok"]
                .as_u64()
                .unwrap_or(0)
                > 0,
            "no ok {op}: {}",
            r.describe()
        );
    }
    let echo = &rep["latency_ms"]["by_tool"]["echo"];
    assert!(
        echo["p50"].as_f64().unwrap() > 0.0
            && echo["p50"].as_f64().unwrap() <= echo["p99"].as_f64().unwrap()
    );
    assert!(
        rep["series"].as_array().map(Vec::len).unwrap_or(0) >= 2,
        "per-second series"
    );
}

#[test]
fn everything_over_stdio_passes() {
    let (cmd, args) = everything_stdio_target();
    // 6 s, not 3: each VU's session starts a Node process inside the run's clock (0.25 s on
    // a quiet machine, 2 s and more on a busy one), and its first calls compile their code
    // paths; the assertions stay as they are.
    let toml = format!(
        "name = \"ev-stdio\"\nduration = \"6s\"\ncriteria = [\"success_rate == 1\", \"p99 < 2s\"]\n[target]\ncommand = {cmd:?}\nargs = {args:?}\nenv = {{ GZIP_ALLOWED_DOMAINS = \"127.0.0.1\" }}\n[workload]\nvus = 3\n{}",
        mix()
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_clean_run(&r);
    assert_eq!(r.report()["target"]["transport"], "stdio");
    // One process per session: 3 VUs plus the preflight session.
    assert_eq!(r.total("sessions_opened"), 4.0, "{}", r.describe());
}

#[test]
fn everything_over_streamable_http_passes() {
    let server = everything_http();
    let toml = format!(
        "name = \"ev-http\"\nduration = \"3s\"\ncriteria = [\"success_rate == 1\", \"p99 < 2s\"]\n[target]\nurl = {:?}\n[workload]\nvus = 5\n{}",
        server.url(),
        mix()
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_clean_run(&r);
    assert_eq!(r.report()["target"]["transport"], "streamable_http");
}

#[test]
fn generated_arguments_are_accepted_by_everything() {
    // No mix: tools discovered, arguments generated from each inputSchema. A schema the
    // generator got wrong would come back as JSON-RPC -32602 (invalid params).
    let (cmd, args) = everything_stdio_target();
    let toml = format!(
        "name = \"ev-auto\"\nduration = \"3s\"\n[target]\ncommand = {cmd:?}\nargs = {args:?}\nenv = {{ GZIP_ALLOWED_DOMAINS = \"127.0.0.1\" }}\n[workload]\nvus = 2\nexclude_tools = [\"gzip-file-as-resource\", \"trigger-long-running-operation\", \"simulate-research-query\"]\n"
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    let tools = r.report()["latency_ms"]["by_tool"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(
        tools.len() >= 8,
        "expected most tools to be called: {:?}",
        tools.keys()
    );
    assert!(!tools.contains_key("gzip-file-as-resource"));
    assert_eq!(r.error_count("jsonrpc_-32602"), 0, "{}", r.describe());
    assert_eq!(r.code, 0, "{}", r.describe());
    let warnings = r.report()["warnings"].to_string();
    assert!(
        warnings.contains("skipped tool gzip-file-as-resource"),
        "{warnings}"
    );
}

#[test]
fn check_lists_everything() {
    let server = everything_http();
    let r = check(&["--target", &server.url(), "--schemas"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    for needle in [
        "mcp-servers/everything",
        "protocol:  2025-11-25",
        "get-sum",
        "inputSchema",
        "args-prompt(city*, state)",
        "demo://resource/static/document/features.md",
    ] {
        assert!(r.stdout.contains(needle), "missing {needle}:\n{}", r.stdout);
    }
}

#[test]
fn wrong_path_is_diagnosed_as_404() {
    let server = everything_http();
    let url = format!("http://127.0.0.1:{}/nope", server.port);
    let r = check(&["--target", &url]);
    assert_eq!(r.code, 3, "{}", r.describe());
    assert!(
        r.stderr.contains("HTTP 404") && r.stderr.contains("/mcp"),
        "{}",
        r.stderr
    );
}
