//! The reference server's protections on `/ws`, message by message, against the real binary
//! with a raw WebSocket client: a message above `--max-body` closes the connection with 1009,
//! messages over the rate limit are answered with a JSON-RPC refusal (and the connection
//! stays usable), a full pool refuses the excess and frees its slot when the answer goes
//! out, and an open circuit refuses a failing tool.

mod common;
use common::served::{metric, serve};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(port: u16) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
        .await
        .expect("a WebSocket");
    ws
}

async fn send(ws: &mut Ws, msg: Value) {
    ws.send(Message::Text(msg.to_string().into()))
        .await
        .unwrap();
}

/// The next JSON-RPC message (notifications skipped), within 10 s.
async fn next(ws: &mut Ws) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, ws.next())
            .await
            .expect("an answer within 10 s")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(t) = frame {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v.get("id").is_some() {
                return v;
            }
        }
    }
}

async fn initialized(port: u16) -> Ws {
    let mut ws = connect(port).await;
    send(
        &mut ws,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "ws-test", "version": "1"}}}),
    )
    .await;
    assert!(next(&mut ws).await.get("result").is_some());
    send(
        &mut ws,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    ws
}

fn call(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments}})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_above_the_body_limit_closes_with_1009() {
    let server = serve(&["--max-body", "64KB"]);
    let mut ws = initialized(server.proc.port).await;
    send(
        &mut ws,
        call(1, "echo", json!({"message": "x".repeat(30_000)})),
    )
    .await;
    assert!(
        next(&mut ws).await.get("result").is_some(),
        "under the limit"
    );
    send(
        &mut ws,
        call(2, "echo", json!({"message": "x".repeat(100_000)})),
    )
    .await;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    let frame = close.expect("a close code");
    assert_eq!(frame.code, CloseCode::Size, "{frame:?}");
    assert!(frame.reason.contains("64 KiB"), "{frame:?}");
    // Without the limit the same message is served.
    let server = serve(&["--no-body-limit"]);
    let mut ws = initialized(server.proc.port).await;
    send(
        &mut ws,
        call(2, "echo", json!({"message": "x".repeat(100_000)})),
    )
    .await;
    assert!(next(&mut ws).await.get("result").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_over_the_rate_limit_are_refused_and_the_connection_stays_usable() {
    let server = serve(&["--rate-per-ip", "5"]);
    let mut ws = initialized(server.proc.port).await;
    for id in 10..30u64 {
        send(
            &mut ws,
            json!({"jsonrpc": "2.0", "id": id, "method": "ping"}),
        )
        .await;
    }
    let (mut served, mut refused) = (0, 0);
    for _ in 10..30 {
        let a = next(&mut ws).await;
        if a.get("result").is_some() {
            served += 1;
        } else {
            assert_eq!(a["error"]["code"], -32000, "{a}");
            assert_eq!(a["error"]["data"]["reason"], "per_ip", "{a}");
            assert!(a["error"]["data"]["retry_after_s"].as_u64().unwrap() >= 1);
            assert!(
                a["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("retry after")
            );
            refused += 1;
        }
    }
    assert!(refused >= 10, "{served} served, {refused} refused");
    assert!(served >= 1, "{served} served, {refused} refused");
    // After the wait the same connection is served again.
    let mut ok = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ok && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        send(
            &mut ws,
            json!({"jsonrpc": "2.0", "id": 99, "method": "ping"}),
        )
        .await;
        ok = next(&mut ws).await.get("result").is_some();
    }
    assert!(ok, "the connection is usable after the wait");
    let counted = metric(
        &server,
        "mcpstorm_server_refusals_total{event=\"throttled\",reason=\"per_ip\"}",
    )
    .await;
    assert!(counted >= refused as f64, "refusals are counted: {counted}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_pool_refuses_the_excess_and_frees_the_slot_with_the_answer() {
    let server = serve(&["--max-concurrency", "1", "--queue", "0"]);
    let mut ws = initialized(server.proc.port).await;
    // One connection's messages are checked in order: the sleep holds the one slot when
    // the echo is checked, and the echo's refusal comes back before the sleep's answer.
    send(&mut ws, call(1, "sleep", json!({"ms": 1000}))).await;
    send(&mut ws, call(2, "echo", json!({"message": "b"}))).await;
    let refusal = next(&mut ws).await;
    assert_eq!(refusal["id"], 2, "refused while the sleep runs: {refusal}");
    assert_eq!(
        refusal["error"]["data"]["reason"], "queue_full",
        "{refusal}"
    );
    assert_eq!(next(&mut ws).await["id"], 1);
    send(&mut ws, call(3, "echo", json!({"message": "c"}))).await;
    let a = next(&mut ws).await;
    assert!(a.get("result").is_some(), "the slot came back: {a}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_circuit_refuses_a_failing_tool() {
    let server = serve(&["--breaker-failures", "2", "--breaker-open", "30s"]);
    let mut ws = initialized(server.proc.port).await;
    for id in 1..=2 {
        send(&mut ws, call(id, "fail", json!({"error_rate": 1.0}))).await;
        assert_eq!(next(&mut ws).await["result"]["isError"], true);
    }
    send(&mut ws, call(3, "fail", json!({"error_rate": 1.0}))).await;
    let a = next(&mut ws).await;
    assert_eq!(a["error"]["data"]["reason"], "circuit_open", "{a}");
    send(&mut ws, call(4, "echo", json!({"message": "fine"}))).await;
    assert!(
        next(&mut ws).await.get("result").is_some(),
        "other tools work"
    );
}
