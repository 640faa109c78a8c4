//! Unreadable input answered as JSON-RPC errors: the reference server turns rmcp's
//! plain-text refusals into HTTP 400 with -32700 / -32600 / -32602 bodies, and the input
//! probes report a refusal without a JSON-RPC error body as a low finding (the server
//! survived, but a client cannot read why).

mod common;
use common::*;
use serde_json::{Value, json};
use std::process::Command;

const ACCEPT: &str = "application/json, text/event-stream";

async fn post(
    url: &str,
    content_type: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Value) {
    let mut req = served::http()
        .post(url)
        .header("Content-Type", content_type)
        .header("Accept", ACCEPT)
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let a = served::answer(req.send().await.expect("an answer")).await;
    let ct = a.header("content-type").unwrap_or_default().to_string();
    (a.status.as_u16(), ct, a.message.unwrap_or(Value::Null))
}

fn assert_rpc_error(answer: &(u16, String, Value), status: u16, code: i64, what: &str) {
    let (s, ct, body) = answer;
    assert_eq!(*s, status, "{what}: {answer:?}");
    assert!(ct.starts_with("application/json"), "{what}: {answer:?}");
    assert_eq!(body["jsonrpc"], "2.0", "{what}: {answer:?}");
    assert_eq!(body["error"]["code"], code, "{what}: {answer:?}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("send"),
        "{what}: the message says what to send: {message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reference_server_answers_unreadable_bodies_with_json_rpc_errors() {
    // With no flags (nothing classifies bodies) and hardened (the breaker and memory guard do).
    for flags in [&[][..], &["--hardened", "--no-auth", "--no-rate-limit"][..]] {
        let server = reference_http_with(flags);
        let url = server.url();
        let json_ct = "application/json";
        for (body, code) in [
            (r#"{"jsonrpc":"2.0","id":11,"method":"ping","#, -32700),
            ("mcpstorm probe: this is not JSON", -32700),
            (
                &format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
                -32700,
            ),
            (r#"{"hello":"mcpstorm","id":12}"#, -32600),
            ("42", -32600),
            (r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, -32600),
            (r#"{"jsonrpc":"2.0","id":-1.5,"method":"ping"}"#, -32600),
        ] {
            let a = post(&url, json_ct, body, &[]).await;
            assert_rpc_error(
                &a,
                400,
                code,
                &format!("{flags:?} {}", &body[..body.len().min(40)]),
            );
            assert_eq!(a.2["id"], Value::Null);
        }
        let a = post(
            &url,
            json_ct,
            r#"{"jsonrpc":"2.0","id":"p1","method":"initialize","params":"not an object"}"#,
            &[],
        )
        .await;
        assert_rpc_error(&a, 400, -32602, "bad params");
        assert_eq!(
            a.2["id"],
            json!("p1"),
            "the refusal answers the request's id"
        );
        let a = post(&url, "text/plain", "{}", &[]).await;
        assert_rpc_error(&a, 415, -32600, "text/plain");
        let a = post(
            &url,
            json_ct,
            r#"{"jsonrpc":"2.0","id":16,"method":"ping"}"#,
            &[("MCP-Protocol-Version", "1999-01-01")],
        )
        .await;
        assert_rpc_error(&a, 400, -32600, "unsupported MCP-Protocol-Version");
        assert!(
            a.2["error"]["message"]
                .as_str()
                .unwrap()
                .contains("1999-01-01"),
            "{a:?}"
        );
        // A session rmcp does not know still gets exactly its 404 (the session-binding contract).
        let (status, _, _) = post(
            &url,
            json_ct,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            &[
                ("Mcp-Session-Id", "no-such-session"),
                ("MCP-Protocol-Version", "2025-11-25"),
            ],
        )
        .await;
        assert_eq!(status, 404);
    }
}

#[test]
fn the_input_probes_pass_the_reference_server_with_json_rpc_errors() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_args(
        &[
            "probe",
            "--target",
            "embedded",
            "--only",
            "input",
            "--max-body",
            "8MB",
        ],
        dir,
    );
    assert_eq!(r.code, 0, "{}", r.describe());
    let findings = r.report()["security"].as_array().unwrap().clone();
    let title = |id: &str| {
        findings
            .iter()
            .find(|f| f["probe"] == id)
            .and_then(|f| f["title"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert!(title("input.malformed_json").ends_with("HTTP 400 with JSON-RPC error -32700"));
    assert!(title("input.not_jsonrpc").ends_with("HTTP 400 with JSON-RPC error -32600"));
    assert_eq!(
        title("input.wrong_protocol_version"),
        "refused with 400 and a JSON-RPC error"
    );
}

#[test]
fn a_plain_text_refusal_is_a_low_input_finding() {
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(fixture("hostile_server.py"))
        .arg("http")
        .arg(port.to_string())
        .env("FLAWS", "plain_errors");
    let server = spawn_http_server(cmd, port, "hostile_server.py");
    let dir = tempfile::tempdir().unwrap();
    let r = run_args(
        &[
            "probe",
            "--target",
            &server.url(),
            "--only",
            "input",
            "--max-body",
            "2MB",
            "--timeout",
            "2s",
        ],
        dir,
    );
    assert_eq!(r.code, 1, "{}", r.describe());
    let findings = r.report()["security"].as_array().unwrap().clone();
    for id in ["input.malformed_json", "input.not_jsonrpc"] {
        let f = findings.iter().find(|f| f["probe"] == id).unwrap();
        assert_eq!(f["outcome"], "fail", "{f}");
        assert_eq!(f["severity"], "low", "{f}");
        assert!(
            f["title"].as_str().unwrap().contains("HTTP 415")
                && f["advice"]
                    .as_str()
                    .unwrap()
                    .contains("the server survived"),
            "{f}"
        );
    }
    // The server survived: nothing worse than low.
    assert!(
        findings
            .iter()
            .all(|f| f["outcome"] != "fail" || f["severity"] == "low"),
        "{}",
        r.describe()
    );
}
