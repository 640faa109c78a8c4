//! The fault proxy on real loopback sockets: bytes pass unchanged, and each toxic does what
//! Toxiproxy's does, measured against a direct connection in the same test.

use mcpstorm::proxy::Proxy;
use mcpstorm::proxy::toxics::Toxic;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo server on a free port, for as long as the test runs.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn proxy_to(upstream: SocketAddr) -> Proxy {
    Proxy::start("127.0.0.1:0".parse().unwrap(), upstream)
        .await
        .unwrap()
}

async fn round_trips(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = [0u8; 16];
    let mut out = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(b"0123456789abcdef").await.unwrap();
        s.read_exact(&mut buf).await.unwrap();
        out.push(t.elapsed());
    }
    out
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

fn toxic(s: &str) -> Toxic {
    Toxic::parse_flag(s).unwrap()
}

#[tokio::test]
async fn bytes_pass_unchanged_both_ways() {
    let echo = echo_server().await;
    let proxy = proxy_to(echo).await;
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let data: Vec<u8> = (0..10 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = s.split();
    let expected = data.clone();
    let (_, got) = tokio::join!(
        async {
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
        },
        async {
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            got
        }
    );
    assert!(
        got == expected,
        "10 MB echoed intact ({} bytes back)",
        got.len()
    );
    let stats = proxy.stats();
    assert_eq!(
        (stats.bytes_up, stats.bytes_down),
        (10 * 1024 * 1024, 10 * 1024 * 1024)
    );
}

#[tokio::test]
async fn a_latency_toxic_of_50ms_moves_the_median_by_50ms() {
    let echo = echo_server().await;
    let proxy = proxy_to(echo).await;
    let direct = median(round_trips(echo, 20).await);
    proxy.add_toxic(toxic("latency:latency=50@downstream"));
    let slowed = median(round_trips(proxy.local_addr(), 20).await);
    let added = slowed - direct;
    assert!(
        (35.0..65.0).contains(&added),
        "added {added:.1} ms (direct {direct:.2}, through the toxic {slowed:.2}); tolerance ±15 ms"
    );
    // Removing the toxic restores the pace on a live proxy.
    proxy.remove_toxic("latency");
    let back = median(round_trips(proxy.local_addr(), 20).await);
    assert!(back < direct + 10.0, "{back:.2} ms after removal");
}

#[tokio::test]
async fn toxicity_zero_never_applies() {
    let echo = echo_server().await;
    let proxy = proxy_to(echo).await;
    let mut t = toxic("latency:latency=200");
    t.toxicity = 0.0;
    proxy.add_toxic(t);
    let m = median(round_trips(proxy.local_addr(), 5).await);
    assert!(m < 100.0, "{m}");
}

#[tokio::test]
async fn bandwidth_limits_the_rate() {
    let echo = echo_server().await;
    let proxy = proxy_to(echo).await;
    proxy.add_toxic(toxic("bandwidth:rate=100@downstream"));
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let data = vec![7u8; 50 * 1024];
    let t = Instant::now();
    s.write_all(&data).await.unwrap();
    let mut got = vec![0u8; data.len()];
    s.read_exact(&mut got).await.unwrap();
    let took = t.elapsed().as_secs_f64();
    assert!(
        (0.35..1.5).contains(&took),
        "50 KB at 100 KB/s took {took:.2} s"
    );
}

#[tokio::test]
async fn limit_data_closes_after_n_bytes() {
    let echo = echo_server().await;
    let proxy = proxy_to(echo).await;
    proxy.add_toxic(toxic("limit_data:bytes=1000@downstream"));
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    s.write_all(&[1u8; 5000]).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .unwrap();
    assert_eq!(got.len(), 1000);
}

#[tokio::test]
async fn reset_peer_resets_the_connection() {
    let echo = echo_server().await;
    let proxy = proxy_to(echo).await;
    proxy.add_toxic(toxic("reset_peer:timeout=100@downstream"));
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap();
    assert_eq!(
        r.map_err(|e| e.kind()).unwrap_err(),
        std::io::ErrorKind::ConnectionReset
    );
}

#[tokio::test]
async fn timeout_zero_stalls_and_a_timeout_closes() {
    let echo = echo_server().await;
    let proxy = proxy_to(echo).await;
    proxy.add_toxic(toxic("timeout:timeout=0@downstream"));
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    s.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 5];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf))
            .await
            .is_err(),
        "no data while it holds"
    );
    proxy.add_toxic(toxic("timeout:timeout=100@downstream"));
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed after the timeout");
}

#[tokio::test]
async fn slicer_delivers_everything_in_pieces() {
    let echo = echo_server().await;
    let proxy = proxy_to(echo).await;
    proxy.add_toxic(toxic(
        "slicer:average_size=10,size_variation=5,delay=100@downstream",
    ));
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let data: Vec<u8> = (0..2000u32).map(|i| (i % 256) as u8).collect();
    s.write_all(&data).await.unwrap();
    let mut got = vec![0u8; data.len()];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, data);
}

#[tokio::test]
async fn down_closes_and_refuses_then_up_works_again() {
    let echo = echo_server().await;
    let proxy = proxy_to(echo).await;
    let mut live = TcpStream::connect(proxy.local_addr()).await.unwrap();
    assert_eq!(round_trips(proxy.local_addr(), 1).await.len(), 1);
    proxy.add_toxic(toxic("down"));
    let mut buf = [0u8; 4];
    let n = tokio::time::timeout(Duration::from_secs(5), live.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "the live connection was closed");
    let mut fresh = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let _ = fresh.write_all(b"ping").await;
    let n = tokio::time::timeout(Duration::from_secs(5), fresh.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "new connections are closed while down");
    proxy.remove_toxic("down");
    assert_eq!(round_trips(proxy.local_addr(), 3).await.len(), 3);
}

/// Not a test of speed: prints the proxy's cost next to a direct connection.
/// `cargo test --release --test proxy -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_proxy_against_direct() {
    let echo = echo_server().await;
    let proxy = proxy_to(echo).await;
    for (name, addr) in [("direct", echo), ("proxy", proxy.local_addr())] {
        let mut v = round_trips(addr, 20_000).await;
        v.sort();
        let p = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e6;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let chunk = vec![0u8; 1 << 20];
        let total: usize = 2 << 30;
        let t = Instant::now();
        let (mut r, mut w) = s.split();
        tokio::join!(
            async {
                let mut sent = 0;
                while sent < total {
                    w.write_all(&chunk).await.unwrap();
                    sent += chunk.len();
                }
            },
            async {
                let mut buf = vec![0u8; 1 << 20];
                let mut got = 0;
                while got < total {
                    got += r.read(&mut buf).await.unwrap();
                }
            }
        );
        let gbps = total as f64 / t.elapsed().as_secs_f64() / 1e9;
        println!(
            "{name:>6}: round trip p50 {:.1} us, p99 {:.1} us; echo throughput {gbps:.2} GB/s",
            p(0.5),
            p(0.99)
        );
    }
}

#[tokio::test]
async fn mcpstorm_proxy_runs_on_its_own_with_toxics_from_flags() {
    use tokio::io::AsyncBufReadExt;
    let echo = echo_server().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcpstorm"))
        .args([
            "proxy",
            "--upstream",
            &echo.to_string(),
            "--toxic",
            "latency:latency=60@downstream",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr: SocketAddr = first
        .split("listening on ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let m = median(round_trips(addr, 5).await);
    assert!((55.0..100.0).contains(&m), "{m} ms through a 60 ms toxic");
    child.kill().await.unwrap();

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcpstorm"))
        .args([
            "proxy",
            "--upstream",
            &echo.to_string(),
            "--toxic",
            "latency:latncy=5",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--toxic.attributes.latncy"));
}
