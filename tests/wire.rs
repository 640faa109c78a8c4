//! Wires and protocol eras: legacy HTTP+SSE against server-everything, the stateless
//! 2026-07-28 revision against the reference server and a FastMCP server, `auto` detecting
//! each era, and a clear diagnosis when a server refuses a revision.

mod common;
use common::*;

fn everything_mix() -> &'static str {
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
"#
}

fn reference_mix() -> &'static str {
    r#"
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
op = "resources/read"
uri = "mcpstorm://info"
[[mix]]
op = "prompts/get"
prompt = "greeting"
arguments = { name = "load" }
"#
}

fn assert_all_ok(r: &RunResult, min_calls: f64) {
    assert_eq!(r.code, 0, "{}", r.describe());
    assert_eq!(r.report()["verdict"], "PASS", "{}", r.describe());
    assert!(r.total("calls") >= min_calls, "{}", r.describe());
    assert_eq!(r.total("failed"), 0.0, "{}", r.describe());
}

#[test]
fn everything_over_legacy_sse_passes_under_load() {
    let server = everything_sse();
    let toml = format!(
        "duration = \"3s\"\ncriteria = [\"success_rate == 1\", \"p99 < 2s\", \"errors{{kind=session_lost}} == 0\"]\n[target]\ntransport = \"sse\"\nurl = \"http://127.0.0.1:{}/sse\"\n[workload]\nvus = 4\n{}",
        server.port,
        everything_mix()
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_all_ok(&r, 50.0);
    let t = &r.report()["target"];
    assert_eq!(t["transport"], "sse");
    assert_eq!(t["server_name"], "mcp-servers/everything");
    assert_eq!(t["era"], "session");
    for op in ["tools/call", "tools/list", "ping", "resources/read"] {
        assert!(
            r.report()["latency_ms"]["by_operation"][op]["ok"]
                .as_u64()
                .unwrap_or(0)
                > 0,
            "no ok {op}: {}",
            r.describe()
        );
    }
}

#[test]
fn check_reaches_legacy_sse_and_explains_a_wrong_wire() {
    let server = everything_sse();
    let r = check(&[
        "--target",
        &format!("sse+http://127.0.0.1:{}/sse", server.port),
    ]);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert!(
        r.stdout.contains("mcp-servers/everything") && r.stdout.contains("  echo "),
        "{}",
        r.describe()
    );
    // Streamable HTTP spoken to a legacy SSE server: POST /sse is refused; the advice names
    // the sse+ target form.
    let r = check(&["--target", &format!("http://127.0.0.1:{}/sse", server.port)]);
    assert_eq!(r.code, 3, "{}", r.describe());
    assert!(r.stderr.contains("sse+http://"), "{}", r.describe());
    // The legacy SSE wire pointed at a Streamable HTTP server: no event stream there.
    let http = everything_http();
    let r = check(&["--target", &format!("sse+{}", http.url())]);
    assert_eq!(r.code, 3, "{}", r.describe());
    assert!(r.stderr.contains("cause:"), "{}", r.describe());
}

#[test]
fn the_reference_server_speaks_both_eras_over_http() {
    let server = reference_http();
    for (version, era) in [("2026-07-28", "stateless"), ("2025-06-18", "session")] {
        let toml = format!(
            "duration = \"2s\"\ncriteria = [\"success_rate == 1\"]\n[target]\nurl = \"{}\"\nprotocol_version = \"{version}\"\n[workload]\nvus = 3\n{}",
            server.url(),
            reference_mix()
        );
        let r = run_scenario(&toml, &["--no-progress"]);
        assert_all_ok(&r, 30.0);
        let t = &r.report()["target"];
        assert_eq!(t["protocol_version"], version, "{}", r.describe());
        assert_eq!(t["era"], era, "{}", r.describe());
        assert_eq!(t["server_name"], "mcpstorm-reference");
    }
}

#[test]
fn the_reference_server_speaks_the_stateless_era_over_stdio() {
    let toml = "duration = \"2s\"\ncriteria = [\"success_rate == 1\"]\n[target]\ntransport = \"embedded-stdio\"\nprotocol_version = \"2026-07-28\"\n[workload]\nvus = 2\n[[mix]]\nop = \"tools/call\"\ntool = \"echo\"\narguments = { message = \"hi\" }\n[[mix]]\nop = \"ping\"\n";
    let r = run_scenario(toml, &["--no-progress"]);
    assert_all_ok(&r, 20.0);
    assert_eq!(r.report()["target"]["era"], "stateless");
    let warnings = r.report()["warnings"].to_string();
    assert!(
        warnings.contains("sent as `server/discover`"),
        "ping has no place in 2026-07-28 and the report says what was sent: {warnings}"
    );
}

#[test]
fn fastmcp_runs_in_the_stateless_era_and_auto_finds_it() {
    let server = python_http();
    let toml = format!(
        "duration = \"2s\"\ncriteria = [\"success_rate == 1\"]\n[target]\nurl = \"{}\"\nprotocol_version = \"2026-07-28\"\n[workload]\nvus = 2\n[[mix]]\nop = \"tools/call\"\ntool = \"echo\"\narguments = {{ message = \"hi {{{{seq}}}}\" }}\n[[mix]]\nop = \"tools/call\"\ntool = \"add\"\narguments = {{ a = 1, b = 2 }}\n",
        server.url()
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_all_ok(&r, 10.0);
    assert_eq!(r.report()["target"]["server_name"], "py-fixture");
    assert_eq!(r.report()["target"]["era"], "stateless");
    let r = check(&["--target", &server.url(), "--protocol-version", "auto"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert!(
        r.stdout.contains("protocol:  2026-07-28"),
        "{}",
        r.describe()
    );
}

/// 2026-07-28 over HTTP: arguments annotated `x-mcp-header` also travel as `Mcp-Param-*`
/// headers. FastMCP refuses a call whose headers do not match its arguments (-32020, HTTP
/// 400), and its `route` tool answers with the header values it received, decoded, which
/// the checks compare with the arguments: plain ASCII, non-ASCII and edge spaces (Base64),
/// an integer and booleans.
#[test]
fn fastmcp_gets_mcp_param_headers_that_match_the_arguments() {
    let server = python_http();
    let answer_check = "check = \"result.region == region and result.priority == str(priority) and result.urgent == str(urgent)\"";
    // check_output_schema = false: nothing but the Mcp-Param headers makes the run list tools.
    let toml = format!(
        r#"
duration = "3s"
criteria = ["success_rate == 1", "wrong_answers == 0"]
[target]
url = "{url}"
protocol_version = "2026-07-28"
[workload]
vus = 2
check_output_schema = false
[[mix]]
op = "tools/call"
tool = "route"
arguments = {{ region = "eu-west-{{{{vu}}}}", priority = "{{{{seq}}}}", urgent = false }}
{answer_check}
[[mix]]
op = "tools/call"
tool = "route"
arguments = {{ region = "Zürich – 東京 {{{{vu}}}}", priority = 7, urgent = true }}
{answer_check}
[[mix]]
op = "tools/call"
tool = "route"
arguments = {{ region = " padded ", priority = -3, urgent = true }}
{answer_check}
"#,
        url = server.url()
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_all_ok(&r, 10.0);
    assert!(
        r.report()["latency_ms"]["by_tool"]["route"]["ok"]
            .as_u64()
            .unwrap_or(0)
            >= 10,
        "{}",
        r.describe()
    );
    // Generated arguments (no [[mix]]): route is called with whatever the schema allows.
    let toml = format!(
        "duration = \"2s\"\ncriteria = [\"success_rate == 1\"]\n[target]\nurl = \"{}\"\nprotocol_version = \"2026-07-28\"\n[workload]\nvus = 2\nexclude_tools = [\"kv_get\"]\n",
        server.url()
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert!(
        r.report()["latency_ms"]["by_tool"]["route"]["ok"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{}",
        r.describe()
    );
    let r = check(&["--target", &server.url()]);
    assert!(
        r.stdout.contains("region -> Mcp-Param-Region"),
        "check shows which argument goes to which header: {}",
        r.describe()
    );
}

#[test]
fn auto_detects_each_era() {
    // A dual-era server is reached in the newest era.
    let dual = reference_http();
    let r = check(&["--target", &dual.url(), "--protocol-version", "auto"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert!(
        r.stdout.contains("protocol:  2026-07-28 (stateless"),
        "{}",
        r.describe()
    );
    // Session-era servers: the reference server narrowed to them, server-everything over
    // Streamable HTTP and over legacy SSE.
    let legacy = reference_http_with(&["--protocol-versions", "2025-11-25,2025-06-18"]);
    let everything = everything_http();
    let sse = everything_sse();
    for target in [
        legacy.url(),
        everything.url(),
        format!("sse+http://127.0.0.1:{}/sse", sse.port),
    ] {
        let r = check(&["--target", &target, "--protocol-version", "auto"]);
        assert_eq!(r.code, 0, "{target}: {}", r.describe());
        assert!(
            r.stdout.contains("protocol:  2025-11-25 (session"),
            "{target}: {}",
            r.describe()
        );
    }
    // A stateless-only server: auto finds 2026-07-28 in a run, and the report says so.
    let modern = reference_http_with(&["--protocol-versions", "2026-07-28"]);
    let toml = format!(
        "duration = \"1s\"\n[target]\nurl = \"{}\"\nprotocol_version = \"auto\"\n[workload]\nvus = 2\n[[mix]]\nop = \"tools/call\"\ntool = \"echo\"\narguments = {{ message = \"x\" }}\n",
        modern.url()
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_all_ok(&r, 5.0);
    assert_eq!(r.report()["target"]["protocol_version"], "2026-07-28");
}

#[test]
fn a_refused_revision_is_named_in_the_diagnosis() {
    let modern = reference_http_with(&["--protocol-versions", "2026-07-28"]);
    let r = check(&[
        "--target",
        &modern.url(),
        "--protocol-version",
        "2025-11-25",
    ]);
    assert_eq!(r.code, 3, "{}", r.describe());
    assert!(
        r.stderr
            .contains("does not speak protocol revision 2025-11-25")
            && r.stderr.contains("2026-07-28"),
        "{}",
        r.describe()
    );
    let legacy = reference_http_with(&["--protocol-versions", "2025-11-25"]);
    let r = check(&[
        "--target",
        &legacy.url(),
        "--protocol-version",
        "2026-07-28",
    ]);
    assert_eq!(r.code, 3, "{}", r.describe());
    assert!(
        r.stderr
            .contains("does not speak protocol revision 2026-07-28")
            && r.stderr.contains("auto"),
        "{}",
        r.describe()
    );
    let everything = everything_http();
    let r = check(&[
        "--target",
        &everything.url(),
        "--protocol-version",
        "2026-07-28",
    ]);
    assert_eq!(r.code, 3, "{}", r.describe());
    assert!(
        r.stderr
            .contains("does not speak protocol revision 2026-07-28"),
        "{}",
        r.describe()
    );
    // A bad value is a usage error that lists what is accepted.
    let r = check(&[
        "--target",
        &legacy.url(),
        "--protocol-version",
        "2030-01-01",
    ]);
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(
        r.stderr.contains("auto") && r.stderr.contains("2026-07-28"),
        "{}",
        r.describe()
    );
}

#[test]
fn plain_websocket_reaches_the_reference_server_in_both_eras() {
    let server = reference_http();
    let ws = format!("ws://127.0.0.1:{}/ws", server.port);
    for (version, era) in [("2025-11-25", "session"), ("2026-07-28", "stateless")] {
        let toml = format!(
            "duration = \"2s\"\ncriteria = [\"success_rate == 1\"]\n[target]\nurl = \"{ws}\"\nprotocol_version = \"{version}\"\n[workload]\nvus = 4\n{}",
            reference_mix()
        );
        let r = run_scenario(&toml, &["--no-progress"]);
        assert_all_ok(&r, 50.0);
        let t = &r.report()["target"];
        assert_eq!(t["transport"], "websocket");
        assert_eq!(
            (t["protocol_version"].as_str(), t["era"].as_str()),
            (Some(version), Some(era))
        );
    }
    let r = check(&["--target", &ws, "--protocol-version", "auto"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert!(
        r.stdout.contains("protocol:  2026-07-28"),
        "{}",
        r.describe()
    );
}

fn daemon_scenario(port: u16, extra_mix: &str) -> String {
    format!(
        r#"duration = "2s"
criteria = ["success_rate{{tool=echo}} == 1", "success_rate{{tool=add}} == 1"]
[target]
transport = "websocket"
url = "ws://127.0.0.1:{port}/"
[target.framing]
token = "{{{{env.DAEMON_TOKEN}}}}"
hello = {{ send = {{ op = "hello", token = "{{{{token}}}}" }}, expect = {{ op = "hello_ack" }} }}
[target.framing.requests."tools/call"]
op = "call_tool"
request_id = "{{{{id}}}}"
name = "{{{{params.name}}}}"
arguments = "{{{{params.arguments}}}}"
[target.framing.response]
id = "request_id"
result = "result"
error = "error"
error_code = "error.code"
error_message = "error.message"
[workload]
vus = 4
[[mix]]
op = "tools/call"
tool = "echo"
weight = 2
arguments = {{ message = "m-{{{{vu}}}}-{{{{seq}}}}" }}
check = "structured.echo == message"
[[mix]]
op = "tools/call"
tool = "add"
arguments = {{ a = "{{{{seq}}}}", b = 7 }}
check = "structured.sum == a + b"
{extra_mix}"#
    )
}

#[test]
fn a_custom_websocket_envelope_carries_load_with_right_answers() {
    let daemon = ws_daemon("tok-123");
    let nope = "[[mix]]\nop = \"tools/call\"\ntool = \"nope\"\narguments = {}\n";
    let r = run_scenario_env(
        &daemon_scenario(daemon.port, nope),
        &["--no-progress"],
        &[("DAEMON_TOKEN", "tok-123")],
    );
    assert_eq!(r.code, 0, "{}", r.describe());
    let rep = r.report();
    assert_eq!(rep["target"]["era"], "framing");
    assert_eq!(rep["target"]["transport"], "websocket");
    for tool in ["echo", "add"] {
        let ok = rep["latency_ms"]["by_tool"][tool]["ok"]
            .as_u64()
            .unwrap_or(0);
        assert!(ok >= 50, "{tool}: {ok} ok\n{}", r.describe());
    }
    // The daemon's own error for an unknown tool, with its code, and nothing else failed:
    // answers were matched to their requests (checks would fail on a crossed answer) and its
    // event frames were skipped.
    assert!(r.error_count("jsonrpc_404") > 0, "{}", r.describe());
    assert_eq!(r.error_count("wrong_answer"), 0, "{}", r.describe());
    assert_eq!(
        r.total("failed") as u64,
        r.error_count("jsonrpc_404"),
        "{}",
        r.describe()
    );
    let shown = rep["scenario"].to_string();
    assert!(
        !shown.contains("tok-123"),
        "the token is not in the report: {shown}"
    );
}

#[test]
fn a_wrong_token_in_the_hello_is_a_clear_error() {
    let daemon = ws_daemon("tok-123");
    let r = run_scenario_env(
        &daemon_scenario(daemon.port, ""),
        &["--no-progress"],
        &[("DAEMON_TOKEN", "not-the-token")],
    );
    assert_eq!(r.code, 3, "{}", r.describe());
    assert!(
        r.stderr.contains("hello was refused")
            && r.stderr.contains("bad token")
            && r.stderr.contains("target.framing.token"),
        "{}",
        r.describe()
    );
    // No token in the environment at all: a scenario error naming the key, before any
    // connection.
    let r = run_scenario(&daemon_scenario(daemon.port, ""), &["--no-progress"]);
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(
        r.stderr.contains("target.framing.token") && r.stderr.contains("DAEMON_TOKEN"),
        "{}",
        r.describe()
    );
}

#[test]
fn the_protocol_matrix_runs_each_revision_and_shows_refusals() {
    let server = reference_http_with(&["--protocol-versions", "2026-07-28,2025-11-25,2025-06-18"]);
    let toml = format!(
        "duration = \"1s\"\ncriteria = [\"success_rate == 1\"]\n[target]\nurl = \"{}\"\n[workload]\nvus = 2\n{}",
        server.url(),
        reference_mix()
    );
    let r = run_scenario(&toml, &["--no-progress", "--protocol-matrix"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert!(
        r.stdout.contains("revision")
            && r.stdout.contains("calls/s")
            && r.stdout.contains("refused"),
        "{}",
        r.describe()
    );
    let matrix: serde_json::Value = serde_json::from_slice(
        &std::fs::read(r.out.path().join("matrix.json")).expect("matrix.json"),
    )
    .unwrap();
    let rows = matrix["revisions"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "{matrix}");
    for row in rows {
        let revision = row["revision"].as_str().unwrap();
        let accepted = ["2026-07-28", "2025-11-25", "2025-06-18"].contains(&revision);
        if accepted {
            assert_eq!(row["status"], "ok", "{row}");
            assert_eq!(row["verdict"], "PASS", "{row}");
            assert!(
                row["calls"].as_u64().unwrap() > 0 && row["p99_ms"].as_f64().unwrap() > 0.0,
                "{row}"
            );
            let report: serde_json::Value = serde_json::from_slice(
                &std::fs::read(r.out.path().join(revision).join("report.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(report["target"]["protocol_version"], revision);
        } else {
            assert_eq!(row["status"], "refused", "{row}");
            let reason = row["reason"].as_str().unwrap();
            assert!(
                reason.contains(revision) && reason.contains("2025-11-25"),
                "{row}"
            );
        }
    }
    // A server that speaks none of the listed revisions: every row refused, exit 3.
    let modern = reference_http_with(&["--protocol-versions", "2026-07-28"]);
    let toml = format!(
        "duration = \"1s\"\n[target]\nurl = \"{}\"\n[workload]\nvus = 1\n[[mix]]\nop = \"tools/list\"\n",
        modern.url()
    );
    let r = run_scenario(
        &toml,
        &["--no-progress", "--protocol-matrix=2025-11-25,2025-06-18"],
    );
    assert_eq!(r.code, 3, "{}", r.describe());
    let r = run_scenario(&toml, &["--protocol-matrix=auto"]);
    assert_eq!(r.code, 2, "{}", r.describe());
}
