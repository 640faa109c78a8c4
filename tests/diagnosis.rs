//! Exit codes and root causes: bad usage and scenarios exit 2 naming the key; unreachable or
//! broken targets exit 3 with one cause in plain words; impossible criteria exit 1.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;

#[test]
fn refused_connection_exits_3_with_the_cause() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let r = check(&["--target", &url]);
    assert_eq!(r.code, 3, "{}", r.describe());
    assert!(
        r.stderr
            .contains(&format!("nothing is listening on 127.0.0.1:{port}")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("try:"), "{}", r.stderr);

    // The same through `run`: no load is attempted, the cause is the same.
    let r = run_scenario(
        &format!("duration = \"2s\"\n[target]\nurl = {url:?}\n"),
        &["--no-progress"],
    );
    assert_eq!(r.code, 3, "{}", r.describe());
    assert!(r.stderr.contains("connection refused"), "{}", r.stderr);
}

#[test]
fn a_silent_server_is_a_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept a connection and hold it, never answering, until the check is over.
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        if let Ok((_held, _)) = listener.accept() {
            let _ = wait.recv();
        }
    });
    let r = check(&[
        "--target",
        &format!("http://127.0.0.1:{port}/mcp"),
        "--timeout",
        "1s",
    ]);
    assert_eq!(r.code, 3, "{}", r.describe());
    assert!(
        r.stderr
            .contains("timeout: no answer to `initialize` within 1s"),
        "{}",
        r.stderr
    );
    drop(done);
    holder.join().ok();
}

#[test]
fn unauthorized_shows_www_authenticate() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let mut request = String::new();
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            request = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
            let body = r#"{"error":"invalid_token"}"#;
            let _ = write!(
                s,
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"mcp\", error=\"invalid_token\"\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        request
    });
    let r = check(&[
        "--target",
        &format!("http://127.0.0.1:{port}/mcp"),
        "-H",
        "Authorization: Bearer wrong",
    ]);
    let request = server.join().unwrap();
    assert!(
        request.contains("authorization: bearer wrong"),
        "the custom header was sent: {request}"
    );
    assert!(
        request.contains("accept: application/json, text/event-stream"),
        "{request}"
    );
    assert!(request.contains("\"method\":\"initialize\""), "{request}");
    assert_eq!(r.code, 3, "{}", r.describe());
    for needle in [
        "HTTP 401",
        "WWW-Authenticate: Bearer realm=\"mcp\"",
        "invalid_token",
        "--header 'Authorization: Bearer",
    ] {
        assert!(r.stderr.contains(needle), "missing {needle}: {}", r.stderr);
    }
}

#[test]
fn a_process_that_exits_shows_its_code_and_stderr() {
    let script =
        "import sys; print('config file missing: /etc/nowhere.toml', file=sys.stderr); sys.exit(7)";
    let target = format!("stdio:{} -c \"{script}\"", python());
    let r = check(&["--target", &target]);
    assert_eq!(r.code, 3, "{}", r.describe());
    assert!(r.stderr.contains("exited with code 7"), "{}", r.stderr);
    assert!(r.stderr.contains("config file missing"), "{}", r.stderr);
}

#[test]
fn a_missing_command_is_named() {
    let r = check(&["--target", "stdio:/nonexistent/mcp-server --flag"]);
    assert_eq!(r.code, 3, "{}", r.describe());
    assert!(
        r.stderr.contains("`/nonexistent/mcp-server` was not found"),
        "{}",
        r.stderr
    );
}

#[test]
fn non_json_stdout_is_diagnosed() {
    let target = format!(
        "stdio:{} {}",
        python(),
        fixture("crashy_server.py").display()
    );
    let out = std::process::Command::new(BIN)
        .args(["check", "--target", &target])
        .env("STDOUT_GARBAGE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("not JSON-RPC") && stderr.contains("this is not json"),
        "{stderr}"
    );
    assert!(stderr.contains("stderr"), "advice names stderr: {stderr}");
}

#[test]
fn broken_scenarios_exit_2_naming_file_and_key() {
    let r = run_scenario(
        "duration = \"soon\"\n[workload]\nexecutor = \"constant-vus\"\nvus = 0\n[[mix]]\nop = \"tools/call\"\n",
        &["--no-progress"],
    );
    assert_eq!(r.code, 2, "{}", r.describe());
    for needle in [
        "scenario.toml",
        "`duration` = \"soon\"",
        "workload.vus",
        "mix[0].tool",
    ] {
        assert!(r.stderr.contains(needle), "missing {needle}: {}", r.stderr);
    }
    let r = run_scenario("duration = \"1s\"\n[workload]\nvuz = 2\n", &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("line 3") && r.stderr.contains("unknown field `vuz`"),
        "{}",
        r.stderr
    );

    let dir = tempfile::tempdir().unwrap();
    let r = run_args(&["run", "/nonexistent/scenario.toml"], dir);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("/nonexistent/scenario.toml") && r.stderr.contains("cannot read"),
        "{}",
        r.stderr
    );
}

#[test]
fn bad_flags_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_args(&["run", "--target", "server.py"], dir);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--target `server.py`"), "{}", r.stderr);
    let dir = tempfile::tempdir().unwrap();
    let r = run_args(&["run", "--preset", "nope"], dir);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--preset `nope`") && r.stderr.contains("quickstart"),
        "{}",
        r.stderr
    );
    let dir = tempfile::tempdir().unwrap();
    let r = run_args(&["run", "--duration", "fast"], dir);
    assert_eq!(r.code, 2);
}

#[test]
fn a_protocol_version_mismatch_is_named() {
    let target = format!(
        "stdio:{} {}",
        python(),
        fixture("future_server.py").display()
    );
    let r = check(&["--target", &target]);
    assert_eq!(r.code, 3, "{}", r.describe());
    assert!(
        r.stderr.contains("protocol version mismatch") && r.stderr.contains("2099-01-01"),
        "{}",
        r.stderr
    );
}

#[test]
fn tls_to_a_plain_server_is_a_tls_failure() {
    let server = reference_http();
    let r = check(&[
        "--target",
        &format!("https://127.0.0.1:{}/mcp", server.port),
    ]);
    assert_eq!(r.code, 3, "{}", r.describe());
    assert!(
        r.stderr.contains("TLS") && r.stderr.contains("use http://"),
        "{}",
        r.stderr
    );
}

#[test]
fn serve_says_when_its_port_is_taken() {
    let server = reference_http();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--port", &server.port.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{}", server.port))
            && stderr.contains("already in use")
            && stderr.contains("--port"),
        "{stderr}"
    );
}

#[test]
fn check_prints_the_reference_servers_inventory() {
    let r = check(&["--target", "embedded", "--schemas"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    for needle in [
        "mcpstorm-reference",
        "echo",
        "kv_put",
        "destructiveHint",
        "mcpstorm://info",
        "greeting(name*)",
        "\"maximum\":60000",
    ] {
        assert!(r.stdout.contains(needle), "missing {needle}:\n{}", r.stdout);
    }
}
