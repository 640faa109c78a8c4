//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, server mode,
//! every scenario including the pending ones) against the reference server with every
//! protection on and the suite's test tools served, compared with the checked-in
//! expected-failures baseline (`tests/fixtures/conformance/expected-failures.yml`).
//!
//! The suite needs Node 22+; it runs on the `node@22` npm package installed beside it by
//! `npm ci --prefix tests/fixtures/conformance` (scripts/test.sh), never the system node.
//! It cannot send headers of its own, so `bearer.mjs` is preloaded to add the test's token to
//! every request it sends to the server.

mod common;
use common::*;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use std::process::{Command, Stdio};
use std::time::Duration;

const SECRET: &str = "conformance-test-secret-0123456789abcdef";
const SECRET_VAR: &str = "MCPSTORM_CONFORMANCE_JWT_SECRET";

/// `Total: N passed, M failed` from the suite's summary.
fn totals(stdout: &str) -> Option<(u32, u32)> {
    let line = stdout.lines().find(|l| l.starts_with("Total: "))?;
    let mut numbers = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|n| n.parse::<u32>().ok());
    Some((numbers.next()??, numbers.next()??))
}

#[test]
fn the_hardened_reference_server_passes_the_official_conformance_suite() {
    let dir = fixture("conformance");
    let node = dir.join("node_modules/node/bin/node");
    let suite = dir.join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
    assert!(
        node.exists() && suite.exists(),
        "the conformance suite is not installed: run `npm ci --prefix tests/fixtures/conformance` (scripts/test.sh does)"
    );

    // Everything on. The rate limits stay on but high: the suite sends a few hundred
    // requests in about two seconds, and a faster machine must not turn that into 429s.
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--port", &port.to_string(), "--conformance-tools"])
        .args(["--hardened", "--auth-hs256-secret-env", SECRET_VAR])
        .args(["--rate-global", "10000", "--rate-per-ip", "10000"])
        .args(["--rate-per-principal", "10000"])
        .env(SECRET_VAR, SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().expect("start mcpstorm serve");
    let server = Proc { child, port };
    wait_until("mcpstorm serve to listen", Duration::from_secs(30), || {
        port_open(port)
    });
    let url = server.url();

    let now = get_current_timestamp();
    let token = encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({"sub": "conformance", "aud": "mcpstorm", "exp": now + 600}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();

    let results = tempfile::tempdir().unwrap();
    let out = Command::new(&node)
        .current_dir(&dir)
        .args(["--import", "./bearer.mjs"])
        .arg(&suite)
        .args(["server", "--url", &url, "--suite", "all"])
        .args(["--expected-failures", "expected-failures.yml"])
        .arg("--output-dir")
        .arg(results.path())
        .env("MCP_CONFORMANCE_BEARER", &token)
        .env("MCP_CONFORMANCE_URL", &url)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the conformance suite");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout
        .split("=== SUMMARY ===")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary; stdout:\n{stdout}\nstderr:\n{stderr}"));
    eprintln!("{summary}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "the suite found failures outside the baseline:\n{summary}\nstderr:\n{stderr}"
    );
    let (passed, failed) = totals(summary).expect("a Total line");
    assert_eq!(failed, 0, "{summary}");
    let scenarios = summary.lines().filter(|l| l.starts_with('✓')).count();
    assert!(
        scenarios >= 32 && passed >= 47,
        "fewer scenarios or checks than the suite had when this test was written:\n{summary}"
    );
    assert!(
        !summary.contains('✗'),
        "a scenario failed a check:\n{summary}"
    );

    // Auth really was on: the suite got in only with the token it was given.
    assert_eq!(status_without_token(port), "401");
}

/// The status code of a bare POST to `/mcp`, over a plain socket.
fn status_without_token(port: u16) -> String {
    use std::io::{Read as _, Write as _};
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request =
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    tcp.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn totals_are_read_from_the_summary() {
    assert_eq!(totals("x\nTotal: 47 passed, 0 failed\n"), Some((47, 0)));
    assert_eq!(totals("nothing"), None);
}
