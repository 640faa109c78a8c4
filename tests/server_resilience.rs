//! The reference server's protections that keep it up under load and faults, each shown to
//! work when on and to be absent when off, against the real `mcpstorm serve` binary over real
//! HTTP on loopback: bounded concurrency with a bounded queue, the body limit, the per-tool
//! circuit breaker, the memory guard, `/ready` following a real Redis, and graceful shutdown.

mod common;
use common::served::*;
use common::*;

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_gets_503_with_retry_after_and_the_pool_state() {
    let server = serve(&[
        "--max-concurrency",
        "2",
        "--queue",
        "1",
        "--queue-timeout",
        "20s",
    ]);
    let client = Client::connected(server.url(), None).await;
    let mut sleepers = Vec::new();
    for _ in 0..3 {
        let c = client.clone();
        sleepers.push(tokio::spawn(async move {
            c.call("sleep", json!({"ms": 2500})).await
        }));
    }
    eventually("2 busy and 1 queued", Duration::from_secs(10), || async {
        metric(&server, "mcpstorm_server_pool_busy").await == 2.0
            && metric(&server, "mcpstorm_server_pool_queued").await == 1.0
    })
    .await;
    let started = Instant::now();
    let refused = client.call("echo", json!({"message": "x"})).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once, not after a wait"
    );
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{refused:?}"
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
    let data = refused.error_data();
    assert_eq!(data["reason"], "queue_full");
    assert_eq!(
        (data["in_flight"].as_u64(), data["queued"].as_u64()),
        (Some(2), Some(1))
    );
    let message = refused.message.as_ref().unwrap()["error"]["message"]
        .as_str()
        .unwrap();
    assert!(
        message.contains("--max-concurrency"),
        "says what to do: {message}"
    );
    for s in sleepers {
        let a = s.await.unwrap();
        assert_eq!(
            a.result()["content"][0]["text"],
            "slept 2500ms",
            "queued work still ran"
        );
    }

    // A queued request that waits past the acquire timeout gets 503 too.
    let server = serve(&[
        "--max-concurrency",
        "1",
        "--queue",
        "4",
        "--queue-timeout",
        "300ms",
    ]);
    let client = Client::connected(server.url(), None).await;
    let c = client.clone();
    let busy = tokio::spawn(async move { c.call("sleep", json!({"ms": 2000})).await });
    eventually("the slot taken", Duration::from_secs(10), || async {
        metric(&server, "mcpstorm_server_pool_busy").await == 1.0
    })
    .await;
    let started = Instant::now();
    let timed_out = client.ping().await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(timed_out.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(timed_out.error_data()["reason"], "queue_timeout");
    assert!(timed_out.header("retry-after").is_some());
    busy.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_concurrency_limit_nothing_queues() {
    let server = serve(&[
        "--hardened",
        "--no-auth",
        "--no-concurrency-limit",
        "--no-rate-limit",
    ]);
    let client = Client::connected(server.url(), None).await;
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.call("sleep", json!({"ms": 300})).await })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap().status, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_above_the_limit_get_413() {
    let big = |bytes: usize| {
        json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
            "params":{"name":"echo","arguments":{"message":"x".repeat(bytes)}}})
    };
    // The default server: 4 MiB; the production guide's 50 MB input gets a clean 413.
    let server = serve(&[]);
    let client = Client::connected(server.url(), None).await;
    let a = client.post(big(50 << 20)).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text);
    assert_eq!(a.error_data()["max_body_bytes"], 4 << 20);
    assert_eq!(client.post(big(1 << 20)).await.status, StatusCode::OK);

    let server = serve(&["--max-body", "64KB"]);
    let client = Client::connected(server.url(), None).await;
    assert_eq!(
        client.post(big(100 << 10)).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(client.post(big(10 << 10)).await.status, StatusCode::OK);

    let server = serve(&["--no-body-limit"]);
    let client = Client::connected(server.url(), None).await;
    let a = client.post(big(5 << 20)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.result()["content"][0]["text"].as_str().unwrap().len(),
        5 << 20
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_breaker_opens_after_n_failures_and_half_opens_after_t() {
    let server = serve(&["--breaker-failures", "3", "--breaker-open", "1s"]);
    let client = Client::connected(server.url(), None).await;
    let failing = json!({"error_rate": 1.0});
    for _ in 0..3 {
        let a = client.call("fail", failing.clone()).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.is_tool_error());
    }
    let opened = Instant::now();
    let refused = client.call("fail", failing.clone()).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{refused:?}"
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.error_data()["tool"], "fail");
    assert!(
        refused.message.as_ref().unwrap()["id"].is_u64(),
        "the refusal answers the request's id"
    );
    assert_eq!(
        client.call("echo", json!({"message": "fine"})).await.status,
        StatusCode::OK,
        "other tools keep working"
    );
    assert!(metric(&server, "mcpstorm_server_circuit_state{tool=\"fail\"}").await == 1.0);
    // Half-open after T: one trial call reaches the tool; it fails, so the circuit reopens.
    // Polled by hand: the time it first gets through is the measurement.
    let after = loop {
        let a = client.call("fail", failing.clone()).await;
        if a.status == StatusCode::OK {
            break opened.elapsed();
        }
        assert!(
            opened.elapsed() < Duration::from_secs(5),
            "never half-opened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        (Duration::from_millis(900)..Duration::from_millis(2500)).contains(&after),
        "half-opened after {after:?}, configured 1 s"
    );
    assert_eq!(
        client.call("fail", failing.clone()).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // A successful trial closes it.
    eventually("a successful trial", Duration::from_secs(5), || async {
        client.call("fail", json!({"error_rate": 0.0})).await.status == StatusCode::OK
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            client.call("fail", failing.clone()).await.status,
            StatusCode::OK
        );
    }
    // A caller's bad arguments are not the tool's failures.
    for _ in 0..5 {
        let a = client.call("echo", json!({"wrong": 1})).await;
        assert!(a.is_tool_error());
    }
    assert_eq!(
        client.call("echo", json!({"message": "x"})).await.status,
        StatusCode::OK
    );

    // Off: failures never open anything.
    let server = serve(&[]);
    let client = Client::connected(server.url(), None).await;
    for _ in 0..8 {
        assert_eq!(
            client.call("fail", failing.clone()).await.status,
            StatusCode::OK
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_memory_guard_refuses_alloc_while_rss_is_above_the_threshold() {
    let server = serve(&["--memory-guard-mb", "200"]);
    let client = Client::connected(server.url(), None).await;
    let c = client.clone();
    let holder = tokio::spawn(async move {
        c.call("alloc", json!({"bytes": 300 << 20, "hold_ms": 3000}))
            .await
    });
    eventually("RSS above 200 MB", Duration::from_secs(15), || async {
        metric(&server, "mcpstorm_server_resident_memory_bytes").await > (200 << 20) as f64
    })
    .await;
    let refused = client
        .call("alloc", json!({"bytes": 1024, "hold_ms": 0}))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{refused:?}"
    );
    assert_eq!(refused.error_data()["reason"], "rss_above_limit");
    assert!(refused.header("retry-after").is_some());
    assert_eq!(
        client
            .call("echo", json!({"message": "light"}))
            .await
            .status,
        StatusCode::OK,
        "light requests still pass"
    );
    assert_eq!(holder.await.unwrap().status, StatusCode::OK);
    eventually(
        "alloc accepted again once memory is freed",
        Duration::from_secs(10),
        || async {
            client
                .call("alloc", json!({"bytes": 1024, "hold_ms": 0}))
                .await
                .status
                == StatusCode::OK
        },
    )
    .await;

    // Off: the same pressure refuses nothing.
    let server = serve(&[]);
    let client = Client::connected(server.url(), None).await;
    let c = client.clone();
    let holder = tokio::spawn(async move {
        c.call("alloc", json!({"bytes": 300 << 20, "hold_ms": 1500}))
            .await
    });
    eventually("RSS above 200 MB", Duration::from_secs(15), || async {
        metric(&server, "mcpstorm_server_resident_memory_bytes").await > (200 << 20) as f64
    })
    .await;
    assert_eq!(
        client
            .call("alloc", json!({"bytes": 1024, "hold_ms": 0}))
            .await
            .status,
        StatusCode::OK
    );
    holder.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_follows_redis_down_and_back() {
    let mut redis = redis_server();
    let port = redis.port;
    let server = serve(&["--redis", &format!("redis://127.0.0.1:{port}")]);
    let ready = |server: &Server| {
        let url = format!("{}/ready", server.base());
        async move {
            let r = http().get(url).send().await.unwrap();
            let status = r.status();
            (
                status,
                serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap(),
            )
        }
    };
    eventually("ready with Redis up", Duration::from_secs(10), || async {
        ready(&server).await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(ready(&server).await.1["checks"]["redis"], "ok");
    redis.kill();
    eventually(
        "not ready with Redis down",
        Duration::from_secs(10),
        || async { ready(&server).await.0 == StatusCode::SERVICE_UNAVAILABLE },
    )
    .await;
    let (_, body) = ready(&server).await;
    assert_eq!(body["status"], "unavailable");
    assert!(
        body["checks"]["redis"].as_str().unwrap().contains("Redis"),
        "{body}"
    );
    let health = http()
        .get(format!("{}/health", server.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        health.status(),
        StatusCode::OK,
        "liveness does not depend on Redis"
    );
    let _redis = redis_server_on(port);
    eventually(
        "ready again with Redis back",
        Duration::from_secs(15),
        || async { ready(&server).await.0 == StatusCode::OK },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_an_in_flight_call_then_exits_0() {
    let mut server = serve(&["--log-format", "json"]);
    let client = Client::connected(server.url(), None).await;
    let c = client.clone();
    let call = tokio::spawn(async move { c.call("sleep", json!({"ms": 1500})).await });
    eventually("the call in flight", Duration::from_secs(10), || async {
        metric(&server, "mcpstorm_server_in_flight_requests").await >= 1.0
    })
    .await;
    let signalled = Instant::now();
    server.sigterm();
    let answer = call.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.result()["content"][0]["text"], "slept 1500ms");
    let code = server.wait_exit(Duration::from_secs(15));
    assert_eq!(code, Some(0), "stderr: {}", server.stderr());
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "exited once drained, not after the grace"
    );
    let log = server.stderr();
    assert!(log.contains("every request in flight finished"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_grace_period_bounds_the_drain() {
    let mut server = serve(&["--shutdown-grace", "300ms"]);
    let client = Client::connected(server.url(), None).await;
    let c = client.clone();
    let _call = tokio::spawn(async move { c.call("sleep", json!({"ms": 30000})).await });
    eventually("the call in flight", Duration::from_secs(10), || async {
        metric(&server, "mcpstorm_server_in_flight_requests").await >= 1.0
    })
    .await;
    let signalled = Instant::now();
    server.sigterm();
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "{:?}",
        signalled.elapsed()
    );
}
