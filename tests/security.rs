//! The security and robustness suite (`mcpstorm probe`) against real servers: a hostile
//! fixture whose protections are on by default and breakable one at a time (so every probe
//! is shown able to fail), the reference server, server-everything and FastMCP.

mod common;
use common::*;
use serde_json::Value;
use std::process::Command;

const SECRET_VAR: &str = "MCPSTORM_TEST_PROBE_SECRET";
const SECRET: &str = "probe-test-secret-0123456789";

/// The hostile fixture over HTTP with these flaws, HS256 auth with SECRET, and `env` on top.
fn hostile_http(flaws: &str, env: &[(&str, &str)]) -> Proc {
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(fixture("hostile_server.py"))
        .arg("http")
        .arg(port.to_string())
        .env("FLAWS", flaws)
        .env("AUTH_SECRET", SECRET)
        .envs(env.iter().copied());
    spawn_http_server(cmd, port, "hostile_server.py")
}

fn hostile_stdio(flaws: &str) -> String {
    format!(
        "stdio:env FLAWS={flaws} {} {} stdio",
        python(),
        fixture("hostile_server.py").display()
    )
}

/// `mcpstorm probe --target T ARGS` with the test secret in its environment.
fn probe(target: &str, args: &[&str]) -> RunResult {
    let dir = tempfile::tempdir().expect("tempdir");
    run_args_env(
        &[&["probe", "--target", target], args].concat(),
        dir,
        &[(SECRET_VAR, SECRET)],
    )
}

fn keyed(only: &str) -> Vec<&str> {
    vec!["--auth-hs256-secret-env", SECRET_VAR, "--only", only]
}

fn finding<'a>(r: &'a RunResult, id: &str) -> &'a Value {
    r.report()["security"]
        .as_array()
        .and_then(|s| s.iter().find(|f| f["probe"] == id))
        .unwrap_or_else(|| panic!("no finding {id}:\n{}", r.describe()))
}

fn assert_fails(r: &RunResult, id: &str, severity: &str) {
    let f = finding(r, id);
    assert_eq!(f["outcome"], "fail", "{id} should fail:\n{}", r.describe());
    assert_eq!(f["severity"], severity, "{id}: {f}");
    assert!(
        !f["evidence"]["request"].as_str().unwrap_or("").is_empty()
            && !f["advice"].as_str().unwrap_or("").is_empty(),
        "{id} needs evidence and advice: {f}"
    );
    assert_eq!(r.code, 1, "a failed finding exits 1:\n{}", r.describe());
}

fn assert_passes(r: &RunResult, id: &str) {
    let f = finding(r, id);
    assert_eq!(f["outcome"], "pass", "{id} should pass:\n{}", r.describe());
}

fn failures(r: &RunResult) -> Vec<String> {
    r.report()["security"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter(|f| f["outcome"] == "fail")
                .map(|f| format!("{} [{}] {}", f["probe"], f["severity"], f["title"]))
                .collect()
        })
        .unwrap_or_default()
}

// ---- the fixture with every protection on passes everything -----------------------------

#[test]
fn a_fully_protected_server_passes_the_whole_suite() {
    let server = hostile_http("", &[("RATE_LIMIT", "150")]);
    let r = probe(
        &server.url(),
        &[
            "--auth-hs256-secret-env",
            SECRET_VAR,
            "--rate-limit",
            "150",
            "--max-body",
            "4MB",
        ],
    );
    assert_eq!(failures(&r), Vec::<String>::new(), "{}", r.describe());
    assert_eq!(r.code, 0, "{}", r.describe());
    let rep = r.report();
    let categories: std::collections::BTreeSet<&str> = rep["security"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["outcome"] == "pass")
        .filter_map(|f| f["category"].as_str())
        .collect();
    for c in [
        "auth",
        "session",
        "input",
        "schema_fuzz",
        "hygiene",
        "rate_limit",
    ] {
        assert!(
            categories.contains(c),
            "no passing {c} finding: {categories:?}"
        );
    }
    assert_eq!(rep["criteria"][0]["name"], "security.failures");
    assert_eq!(rep["verdict"], "PASS");
    let junit = std::fs::read_to_string(r.out.path().join("junit.xml")).unwrap();
    assert!(
        junit.contains(r#"<testsuite name="security""#) && junit.contains("auth.expired_jwt"),
        "{junit}"
    );
}

#[test]
fn the_measured_throttle_point_is_within_20_percent_of_the_configured_rate() {
    let server = hostile_http("", &[("RATE_LIMIT", "60")]);
    let r = probe(
        &server.url(),
        &[
            "--auth-hs256-secret-env",
            SECRET_VAR,
            "--only",
            "rate_limit",
            "--rate-limit",
            "60",
        ],
    );
    assert_passes(&r, "rate_limit.burst");
    let title = finding(&r, "rate_limit.burst")["title"]
        .as_str()
        .unwrap()
        .to_string();
    let measured: f64 = title
        .strip_prefix("throttled at ")
        .and_then(|t| t.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rate in {title}"));
    assert!(
        (measured - 60.0).abs() <= 12.0,
        "measured {measured}/s for 60/s"
    );
    assert_passes(&r, "rate_limit.under_limit");
    assert_passes(&r, "rate_limit.retry_after");
    assert_passes(&r, "rate_limit.scope");
}

// ---- auth: each check able to fail ------------------------------------------------------

fn auth_flaw(flaw: &str, id: &str, severity: &str) {
    let server = hostile_http(flaw, &[]);
    let r = probe(&server.url(), &keyed("auth"));
    assert_fails(&r, id, severity);
    // Only the broken check fails: the others still pass against the same server.
    for other in [
        "auth.no_token",
        "auth.alg_none",
        "auth.expired_jwt",
        "auth.wrong_audience",
        "auth.valid_token",
    ] {
        if other != id {
            assert_passes(&r, other);
        }
    }
}

#[test]
fn auth_no_token_catches_a_server_without_auth() {
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(fixture("hostile_server.py"))
        .arg("http")
        .arg(port.to_string());
    let server = spawn_http_server(cmd, port, "hostile_server.py without auth");
    let r = probe(&server.url(), &["--only", "auth"]);
    assert_fails(&r, "auth.no_token", "high");
    assert!(
        finding(&r, "auth.no_token")["evidence"]["response"]
            .as_str()
            .unwrap()
            .contains("HTTP 200")
    );
}

#[test]
fn auth_no_token_catches_a_401_without_www_authenticate() {
    let server = hostile_http("no_www", &[]);
    let r = probe(&server.url(), &keyed("auth"));
    assert_fails(&r, "auth.no_token", "low");
}

#[test]
fn auth_malformed_header_and_invalid_token_catch_any_header_accepted() {
    let server = hostile_http("lax_header", &[]);
    let r = probe(&server.url(), &keyed("auth"));
    assert_fails(&r, "auth.malformed_header", "critical");
    assert_fails(&r, "auth.invalid_token", "critical");
    assert_passes(&r, "auth.no_token");
}

#[test]
fn auth_alg_none_catches_unsigned_tokens_accepted() {
    auth_flaw("lax_none", "auth.alg_none", "critical");
}

#[test]
fn auth_bad_signature_catches_signatures_not_checked() {
    auth_flaw("lax_sig", "auth.bad_signature", "critical");
}

#[test]
fn auth_expired_jwt_catches_exp_not_checked() {
    auth_flaw("lax_exp", "auth.expired_jwt", "critical");
}

#[test]
fn auth_not_yet_valid_catches_nbf_not_checked() {
    auth_flaw("lax_nbf", "auth.not_yet_valid", "high");
}

#[test]
fn auth_wrong_audience_catches_aud_not_checked() {
    auth_flaw("lax_aud", "auth.wrong_audience", "critical");
}

#[test]
fn auth_valid_token_fails_when_the_key_is_not_the_servers() {
    let server = hostile_http(
        "",
        &[("AUTH_SECRET", "another-secret-the-probe-does-not-know")],
    );
    let r = probe(&server.url(), &keyed("auth"));
    assert_fails(&r, "auth.valid_token", "high");
}

#[test]
fn auth_bad_flags_are_usage_errors() {
    let r = probe(
        "http://127.0.0.1:9/mcp",
        &[
            "--auth-hs256-secret-env",
            "MCPSTORM_NO_SUCH_VAR",
            "--only",
            "authz",
            "--max-body",
            "lots",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.describe());
    for needle in [
        "--auth-hs256-secret-env `MCPSTORM_NO_SUCH_VAR`",
        "--only",
        "`authz`",
        "--max-body",
    ] {
        assert!(r.stderr.contains(needle), "missing {needle}: {}", r.stderr);
    }
}

#[test]
fn an_unreachable_target_exits_3() {
    let port = free_port();
    let r = probe(&format!("http://127.0.0.1:{port}/mcp"), &[]);
    assert_eq!(r.code, 3, "{}", r.describe());
    assert!(r.stderr.contains("connection refused"), "{}", r.stderr);
}

// ---- session isolation ------------------------------------------------------------------

#[test]
fn session_id_entropy_catches_counting_ids() {
    let server = hostile_http("seq_ids", &[]);
    let r = probe(&server.url(), &keyed("session"));
    assert_fails(&r, "session.id_entropy", "high");
}

#[test]
fn session_unknown_id_catches_made_up_ids_served() {
    let server = hostile_http("any_session", &[]);
    let r = probe(&server.url(), &keyed("session"));
    assert_fails(&r, "session.unknown_id", "medium");
}

#[test]
fn session_cross_principal_catches_sessions_not_bound() {
    let server = hostile_http("no_binding", &[]);
    let r = probe(&server.url(), &keyed("session"));
    assert_fails(&r, "session.cross_principal", "critical");
    assert_passes(&r, "session.no_token");
}

#[test]
fn session_no_token_catches_a_session_id_as_credential() {
    let server = hostile_http("session_skips_auth", &[]);
    let r = probe(&server.url(), &keyed("session"));
    assert_fails(&r, "session.no_token", "critical");
}

#[test]
fn session_terminated_catches_delete_ignored() {
    let server = hostile_http("no_delete", &[]);
    let r = probe(&server.url(), &keyed("session"));
    assert_fails(&r, "session.terminated", "medium");
}

// ---- input over HTTP --------------------------------------------------------------------

fn input_flaw(flaw: &str, id: &str, severity: &str) -> RunResult {
    let server = hostile_http(flaw, &[]);
    let r = probe(
        &server.url(),
        &[
            &keyed("input")[..],
            &["--max-body", "2MB", "--timeout", "2s"],
        ]
        .concat(),
    );
    assert_fails(&r, id, severity);
    r
}

#[test]
fn input_malformed_json_catches_a_crash() {
    let r = input_flaw("malformed_crash", "input.malformed_json", "critical");
    // A dead server ends the suite: what comes after is skipped, not reported as passing.
    assert!(
        r.stdout.contains("not run") || failures(&r).len() == 1,
        "{}",
        r.describe()
    );
}

#[test]
fn input_not_jsonrpc_catches_garbage_served() {
    input_flaw("accept_garbage", "input.not_jsonrpc", "low");
}

#[test]
fn input_unknown_method_catches_a_result() {
    input_flaw("result_for_unknown", "input.unknown_method", "low");
}

#[test]
fn input_invalid_utf8_catches_a_hang() {
    input_flaw("utf8_hang", "input.invalid_utf8", "critical");
}

#[test]
fn input_deep_nesting_catches_a_crash() {
    input_flaw("deep_crash", "input.deep_nesting", "critical");
}

#[test]
fn input_huge_id_catches_a_crash() {
    input_flaw("id_crash", "input.huge_id", "critical");
}

#[test]
fn input_wrong_protocol_version_catches_any_version_served() {
    input_flaw("no_version_check", "input.wrong_protocol_version", "low");
}

#[test]
fn input_body_limit_catches_no_limit() {
    input_flaw("no_body_limit", "input.body_limit", "medium");
}

#[test]
fn input_oversized_body_catches_a_crash() {
    input_flaw("big_body_crash", "input.oversized_body", "critical");
}

// ---- input and fuzzing over stdio: the health check is a ping on the same process ------

#[test]
fn stdio_input_probes_catch_crashes_and_hangs() {
    for (flaw, id) in [
        ("deep_crash", "input.deep_nesting"),
        ("utf8_hang", "input.invalid_utf8"),
        ("malformed_crash", "input.malformed_json"),
        ("slow_notifications", "input.notification_flood"),
    ] {
        let r = probe(
            &hostile_stdio(flaw),
            &["--only", "input", "--max-body", "1MB", "--timeout", "1s"],
        );
        assert_fails(&r, id, "critical");
    }
    let clean = probe(
        &hostile_stdio(""),
        &["--only", "input", "--max-body", "1MB", "--timeout", "1s"],
    );
    assert_eq!(
        failures(&clean),
        Vec::<String>::new(),
        "{}",
        clean.describe()
    );
}

#[test]
fn schema_fuzz_catches_forbidden_arguments_accepted() {
    let server = hostile_http("no_validate", &[]);
    let r = probe(&server.url(), &keyed("schema_fuzz"));
    assert_fails(&r, "schema_fuzz.echo", "low");
}

#[test]
fn schema_fuzz_catches_a_tool_that_hangs_and_one_that_crashes() {
    let server = hostile_http("tool_hang", &[]);
    let r = probe(
        &server.url(),
        &[&keyed("schema_fuzz")[..], &["--timeout", "1s"]].concat(),
    );
    let f = finding(&r, "schema_fuzz.echo");
    assert_eq!(f["outcome"], "fail", "{}", r.describe());
    let r = probe(&hostile_stdio("tool_crash"), &["--only", "schema_fuzz"]);
    assert_fails(&r, "schema_fuzz.echo", "critical");
}

// ---- hygiene -----------------------------------------------------------------------------

#[test]
fn hygiene_error_leak_catches_stack_traces() {
    let server = hostile_http("traces", &[]);
    let r = probe(&server.url(), &keyed("hygiene"));
    assert_fails(&r, "hygiene.error_leak", "medium");
    assert!(
        finding(&r, "hygiene.error_leak")["title"]
            .as_str()
            .unwrap()
            .contains("Python")
    );
    let r = probe(&hostile_stdio("traces"), &["--only", "hygiene"]);
    assert_fails(&r, "hygiene.error_leak", "medium");
}

#[test]
fn hygiene_origin_catches_foreign_origins_served() {
    let server = hostile_http("no_origin_check", &[]);
    let r = probe(&server.url(), &keyed("hygiene"));
    assert_fails(&r, "hygiene.origin", "high");
    assert_passes(&r, "hygiene.host");
}

#[test]
fn hygiene_host_catches_foreign_hosts_served() {
    let server = hostile_http("no_host_check", &[]);
    let r = probe(&server.url(), &keyed("hygiene"));
    assert_fails(&r, "hygiene.host", "medium");
}

#[test]
fn hygiene_cors_catches_a_wildcard() {
    let server = hostile_http("cors_star", &[]);
    let r = probe(&server.url(), &keyed("hygiene"));
    assert_fails(&r, "hygiene.cors", "medium");
}

// ---- rate limits -------------------------------------------------------------------------

#[test]
fn rate_limit_catches_no_limit_a_wrong_rate_and_no_retry_after() {
    let rl = |server: &Proc, declared: &str| {
        probe(
            &server.url(),
            &[
                "--auth-hs256-secret-env",
                SECRET_VAR,
                "--only",
                "rate_limit",
                "--rate-limit",
                declared,
            ],
        )
    };
    let unlimited = hostile_http("", &[]);
    assert_fails(&rl(&unlimited, "40"), "rate_limit.burst", "high");
    drop(unlimited);
    let limited = hostile_http("rate_no_retry_after", &[("RATE_LIMIT", "40")]);
    let r = rl(&limited, "80");
    assert_fails(&r, "rate_limit.burst", "medium");
    assert_fails(&r, "rate_limit.retry_after", "low");
    // Declared 200/s where the server allows 40: half the declared rate is still throttled.
    let r = rl(&limited, "200");
    assert_fails(&r, "rate_limit.under_limit", "medium");
}

#[test]
fn rate_limit_scope_catches_a_shared_bucket_declared_per_ip_and_the_reverse() {
    let shared = hostile_http("rate_global", &[("RATE_LIMIT", "60")]);
    let r = probe(
        &shared.url(),
        &[
            "--auth-hs256-secret-env",
            SECRET_VAR,
            "--only",
            "rate_limit",
            "--rate-limit",
            "60",
            "--rate-scope",
            "per_ip",
        ],
    );
    assert_fails(&r, "rate_limit.scope", "medium");
    let r = probe(
        &shared.url(),
        &[
            "--auth-hs256-secret-env",
            SECRET_VAR,
            "--only",
            "rate_limit",
            "--rate-limit",
            "60",
            "--rate-scope",
            "global",
        ],
    );
    assert_passes(&r, "rate_limit.scope");
    assert_passes(&r, "rate_limit.burst");
    drop(shared);
    let per_ip = hostile_http("", &[("RATE_LIMIT", "60")]);
    let r = probe(
        &per_ip.url(),
        &[
            "--auth-hs256-secret-env",
            SECRET_VAR,
            "--only",
            "rate_limit",
            "--rate-limit",
            "60",
            "--rate-scope",
            "global",
        ],
    );
    assert_fails(&r, "rate_limit.scope", "medium");
}

#[test]
fn security_criteria_select_by_severity() {
    let server = hostile_http("cors_star", &[]);
    let r = probe(
        &server.url(),
        &[
            &keyed("hygiene")[..],
            &["--criterion", "security.failures{severity=critical} == 0"],
        ]
        .concat(),
    );
    assert_eq!(r.code, 0, "only a medium failure: {}", r.describe());
    assert_eq!(r.report()["criteria"][0]["observed"], 0.0);
}

// ---- other people's servers: the suite completes and reports what it found --------------

fn assert_completes(r: &RunResult, server_name: &str) {
    assert!(r.code == 0 || r.code == 1, "{}", r.describe());
    let rep = r.report();
    assert_eq!(rep["target"]["server_name"], server_name);
    let findings = rep["security"].as_array().unwrap();
    for c in ["input", "schema_fuzz", "hygiene"] {
        assert!(
            findings
                .iter()
                .any(|f| f["category"] == c && f["outcome"] != "skip"),
            "no {c} finding:\n{}",
            r.describe()
        );
    }
    println!("{server_name}: {:#?}", failures(r));
}

#[test]
fn server_everything_over_http_is_probed() {
    let server = everything_http();
    let r = probe(&server.url(), &["--timeout", "2s"]);
    assert_completes(&r, "mcp-servers/everything");
    assert!(
        findings_of(&r, "auth")
            .iter()
            .any(|f| f["outcome"] != "skip")
    );
}

#[test]
fn server_everything_over_stdio_is_probed() {
    let (cmd, args) = everything_stdio_target();
    let target = format!(
        "stdio:env GZIP_ALLOWED_DOMAINS=127.0.0.1 {cmd} {}",
        args.join(" ")
    );
    let r = probe(&target, &["--timeout", "2s"]);
    assert_completes(&r, "mcp-servers/everything");
}

#[test]
fn fastmcp_is_probed_over_http_and_stdio() {
    let server = python_http();
    let r = probe(&server.url(), &[]);
    assert_completes(&r, "py-fixture");
    let target = format!(
        "stdio:{} {} stdio",
        python(),
        fixture("py_server.py").display()
    );
    let r = probe(&target, &[]);
    assert_completes(&r, "py-fixture");
}

fn findings_of<'a>(r: &'a RunResult, category: &str) -> Vec<&'a Value> {
    r.report()["security"]
        .as_array()
        .map(|s| s.iter().filter(|f| f["category"] == category).collect())
        .unwrap_or_default()
}

// ---- the reference server ------------------------------------------------------------------

#[test]
fn the_default_reference_server_is_probed_over_http_and_stdio() {
    let r = probe("embedded", &["--max-body", "8MB"]);
    assert_completes(&r, "mcpstorm-reference");
    // No auth by default (the contract): the one thing a default server must fail.
    assert_fails(&r, "auth.no_token", "high");
    assert_passes(&r, "input.body_limit");
    let r = probe("embedded-stdio", &["--max-body", "8MB"]);
    assert_completes(&r, "mcpstorm-reference");
    assert_eq!(failures(&r), Vec::<String>::new(), "{}", r.describe());
}

// ---- [security] in a scenario ------------------------------------------------------------

fn scenario_with_security(url: &str, security: &str) -> String {
    format!(
        "name = \"sec\"\nduration = \"2s\"\n[target]\nurl = {url:?}\n[workload]\nvus = 2\n[[mix]]\nop = \"tools/call\"\ntool = \"echo\"\narguments = {{ message = \"hi {{{{seq}}}}\" }}\n{security}"
    )
}

#[test]
fn a_scenario_runs_the_probes_after_the_load_and_they_decide_the_verdict() {
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(fixture("hostile_server.py"))
        .arg("http")
        .arg(port.to_string())
        .env("FLAWS", "traces");
    let server = spawn_http_server(cmd, port, "hostile_server.py");
    let toml = scenario_with_security(
        &server.url(),
        "[security]\nonly = [\"input\", \"hygiene\"]\n[security.input]\nmax_body = \"2MB\"\n",
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    let rep = r.report();
    assert!(r.total("ok") > 10.0, "the load ran: {}", r.describe());
    assert_eq!(rep["scenario"]["security"]["when"], "after");
    let names: Vec<&str> = rep["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        names,
        vec!["success_rate", "security.failures"],
        "{}",
        r.describe()
    );
    assert_fails(&r, "hygiene.error_leak", "medium");
    assert_eq!(rep["verdict"], "FAIL");
    assert!(
        r.stdout.contains("hygiene.error_leak"),
        "the summary shows findings: {}",
        r.stdout
    );
}

#[test]
fn a_scenario_with_security_criteria_by_severity_passes_on_a_medium_finding() {
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(fixture("hostile_server.py"))
        .arg("http")
        .arg(port.to_string())
        .env("FLAWS", "cors_star");
    let server = spawn_http_server(cmd, port, "hostile_server.py");
    let toml = scenario_with_security(
        &server.url(),
        "[security]\nwhen = \"before\"\nonly = [\"hygiene\"]\n",
    )
    .replace(
        "duration = \"2s\"",
        "duration = \"2s\"\ncriteria = [\"success_rate >= 0.9\", \"security.failures{severity=critical} == 0\"]",
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert_eq!(finding(&r, "hygiene.cors")["outcome"], "fail");
    assert_eq!(r.report()["scenario"]["security"]["when"], "before");
}

#[test]
fn security_keys_are_validated_with_their_names() {
    let toml = "duration = \"1s\"\ncriteria = [\"security.failures == 0\"]\n[target]\nurl = \"http://127.0.0.1:9/mcp\"\n";
    let r = run_scenario(toml, &["--no-progress"]);
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(
        r.stderr.contains("criteria[0]") && r.stderr.contains("[security]"),
        "{}",
        r.stderr
    );
    let toml = "duration = \"1s\"\n[target]\nurl = \"http://127.0.0.1:9/mcp\"\n[security]\nwhen = \"during\"\n[security.rate_limit]\nscope = \"per_ip\"\n[security.input]\nmax_body = \"lots\"\n";
    let r = run_scenario(toml, &["--no-progress"]);
    assert_eq!(r.code, 2, "{}", r.describe());
    for key in [
        "security.when",
        "security.rate_limit.declared",
        "security.input.max_body",
    ] {
        assert!(r.stderr.contains(key), "no {key}: {}", r.stderr);
    }
}

// ---- the hardened reference server: everything on passes, each protection off is caught --

const REF_SECRET: &str = "reference-probe-secret-0123456789abcdef";

/// `mcpstorm serve --hardened` with HS256 auth, plus `flags`, on a free port.
fn reference_hardened(flags: &[&str]) -> Proc {
    serve_hardened(SECRET_VAR, REF_SECRET, flags)
}

fn probe_reference(server: &Proc, args: &[&str]) -> RunResult {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url();
    run_args_env(
        &[
            &[
                "probe",
                "--target",
                url.as_str(),
                "--auth-hs256-secret-env",
                SECRET_VAR,
            ],
            args,
        ]
        .concat(),
        dir,
        &[(SECRET_VAR, REF_SECRET)],
    )
}

/// A server command whose stderr goes to `log` (through `sh -c 'exec ...'`, so the guard's
/// pid is the server's own).
fn logged(program: &str, args: &[String], env: &[(&str, &str)], log: &std::path::Path) -> Command {
    let mut cmd = Command::new("sh");
    let line = std::iter::once(program.to_string())
        .chain(args.iter().cloned())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    cmd.arg("-c")
        .arg(format!("exec {line} 2>'{}'", log.display()))
        .envs(env.iter().copied());
    cmd
}

#[test]
fn the_hardened_reference_server_passes_the_whole_suite() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let port = free_port();
    let args: Vec<String> = [
        "serve",
        "--port",
        &port.to_string(),
        "--hardened",
        "--auth-hs256-secret-env",
        SECRET_VAR,
        "--rate-per-ip",
        "100",
        "--log-format",
        "json",
        // Limits the resilience probes can reach in a second.
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
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let server = spawn_http_server(
        logged(BIN, &args, &[(SECRET_VAR, REF_SECRET)], &log),
        port,
        "mcpstorm serve --hardened",
    );
    let log_arg = log.display().to_string();
    let r = probe_reference(
        &server,
        &[
            "--rate-limit",
            "100",
            "--server-log",
            &log_arg,
            "--first-call-tool",
            "echo",
            "--first-call-arguments",
            r#"{"message": "first"}"#,
            "--race-tool",
            "add",
            "--race-arguments",
            r#"{"a": 2, "b": 3}"#,
            "--concurrency-sessions",
            "8",
            "--slow-tool",
            "sleep",
            "--slow-arguments",
            r#"{"ms": 1000}"#,
            "--overload-concurrency",
            "40",
            "--breaker-tool",
            "fail",
            "--breaker-arguments",
            r#"{"error_rate": 1.0}"#,
            "--breaker-failures",
            "3",
            "--breaker-open",
            "1s",
            "--memory-tool",
            "alloc",
            "--memory-arguments",
            r#"{"bytes": 33554432, "hold_ms": 4000}"#,
            "--memory-request-mb",
            "32",
            "--memory-threshold-mb",
            "150",
        ],
    );
    assert_passes(&r, "hygiene.security_log");
    assert_eq!(failures(&r), Vec::<String>::new(), "{}", r.describe());
    assert_eq!(r.code, 0, "{}", r.describe());
    let skipped: Vec<&Value> = r.report()["security"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["outcome"] == "skip")
        .collect();
    assert!(
        skipped.is_empty(),
        "every probe runs against it: {skipped:?}"
    );
}

/// The README's first probe command, at the hardened server's own defaults (100/s per IP,
/// 256 at once plus a queue of 512): nothing fails. The overload probe is throttled by the
/// rate limit before it can reach the pool, which is a skip that says so, not a failure.
#[test]
fn the_hardened_reference_server_at_its_defaults_passes_the_default_probes() {
    let server = reference_hardened(&["--log-format", "json"]);
    let r = probe_reference(&server, &["--rate-limit", "100"]);
    assert_eq!(failures(&r), Vec::<String>::new(), "{}", r.describe());
    assert_eq!(r.code, 0, "{}", r.describe());
    let overload = finding(&r, "resilience.overload");
    assert_eq!(overload["outcome"], "skip", "{overload}");
    assert!(
        overload["title"]
            .as_str()
            .unwrap()
            .starts_with("a rate limit throttled"),
        "{overload}"
    );
    assert_passes(&r, "rate_limit.burst");
}

#[test]
fn the_reference_throttle_point_is_within_20_percent_of_rate_per_ip() {
    let server = reference_hardened(&["--rate-per-ip", "60", "--rate-per-principal", "1000"]);
    let r = probe_reference(&server, &["--only", "rate_limit", "--rate-limit", "60"]);
    assert_passes(&r, "rate_limit.burst");
    let title = finding(&r, "rate_limit.burst")["title"]
        .as_str()
        .unwrap()
        .to_string();
    let measured: f64 = title
        .strip_prefix("throttled at ")
        .and_then(|t| t.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rate in {title}"));
    assert!(
        (measured - 60.0).abs() <= 12.0,
        "measured {measured}/s for --rate-per-ip 60"
    );
}

#[test]
fn reference_no_auth_is_caught_by_auth_no_token() {
    let server = reference_hardened(&["--no-auth"]);
    let r = probe_reference(&server, &["--only", "auth"]);
    assert_fails(&r, "auth.no_token", "high");
}

#[test]
fn reference_no_rate_limit_is_caught_by_rate_limit_burst() {
    let server = reference_hardened(&["--no-rate-limit"]);
    let r = probe_reference(&server, &["--only", "rate_limit", "--rate-limit", "100"]);
    assert_fails(&r, "rate_limit.burst", "high");
}

#[test]
fn reference_no_origin_check_is_caught_by_hygiene_origin() {
    let server = reference_hardened(&["--no-origin-check"]);
    let r = probe_reference(&server, &["--only", "hygiene"]);
    assert_fails(&r, "hygiene.origin", "high");
}

#[test]
fn reference_no_session_binding_is_caught_by_session_cross_principal() {
    let server = reference_hardened(&["--no-session-binding"]);
    let r = probe_reference(&server, &["--only", "session"]);
    assert_fails(&r, "session.cross_principal", "critical");
}

#[test]
fn reference_no_body_limit_is_caught_by_input_body_limit() {
    let server = reference_hardened(&["--no-body-limit", "--no-memory-guard"]);
    let r = probe_reference(&server, &["--only", "input", "--max-body", "8MB"]);
    assert_fails(&r, "input.body_limit", "medium");
    assert_passes(&r, "input.oversized_body");
}

#[test]
fn hygiene_security_log_catches_unlogged_refusals_and_logged_tokens() {
    for (flaw, severity) in [
        ("no_security_log", "medium"),
        ("log_tokens", "high"),
        ("", ""),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        let port = free_port();
        let args = vec![
            fixture("hostile_server.py").display().to_string(),
            "http".into(),
            port.to_string(),
        ];
        let cmd = logged(
            &python(),
            &args,
            &[("FLAWS", flaw), ("AUTH_SECRET", SECRET)],
            &log,
        );
        let server = spawn_http_server(cmd, port, "hostile_server.py");
        let log_arg = log.display().to_string();
        let r = probe(
            &server.url(),
            &[&keyed("auth,hygiene")[..], &["--server-log", &log_arg]].concat(),
        );
        if flaw.is_empty() {
            assert_passes(&r, "hygiene.security_log");
        } else {
            assert_fails(&r, "hygiene.security_log", severity);
        }
    }
}
