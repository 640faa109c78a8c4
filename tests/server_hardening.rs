//! The reference server's protections that decide who gets in, each shown to work when on and
//! to be absent when off, against the real `mcpstorm serve` binary over real HTTP on
//! loopback: bearer JWT auth (HS256, RS256, every kind of bad token), session binding, rate
//! limits (the throttle point measured), Origin checks and CORS, JSON security logs, and the
//! flags' errors. `server_resilience.rs` has the ones that keep the server up.

mod common;
use common::served::*;
use common::*;

use jsonwebtoken::{Algorithm, EncodingKey, get_current_timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn bad_tokens_of_every_kind_get_401_with_a_bearer_challenge() {
    let server = serve(&auth_flags());
    let now = get_current_timestamp();
    let with = |key: &str, value: Value| {
        let mut c = claims("alice");
        c[key] = value;
        hs256(c)
    };
    let without = |key: &str| {
        let mut c = claims("alice");
        c.as_object_mut().unwrap().remove(key);
        hs256(c)
    };
    let b64 = |b: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    };
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims("alice").to_string().as_bytes())
    );
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no token", None, "missing_token"),
        ("garbage", Some("not.a.jwt".into()), "malformed_token"),
        (
            "signed with another secret",
            Some(token_with(
                Algorithm::HS256,
                &EncodingKey::from_secret(b"another-secret-of-sufficient-length!!"),
                claims("alice"),
            )),
            "bad_signature",
        ),
        ("alg none", Some(alg_none), ""),
        (
            "HS512 instead of HS256",
            Some(token_with(
                Algorithm::HS512,
                &EncodingKey::from_secret(SECRET.as_bytes()),
                claims("alice"),
            )),
            "wrong_algorithm",
        ),
        (
            "expired",
            Some(with("exp", json!(now - 60))),
            "expired_token",
        ),
        (
            "not yet valid",
            Some(with("nbf", json!(now + 600))),
            "token_not_yet_valid",
        ),
        (
            "wrong audience",
            Some(with("aud", json!("other"))),
            "wrong_audience",
        ),
        (
            "wrong issuer",
            Some(with("iss", json!("evil"))),
            "wrong_issuer",
        ),
        ("no sub", Some(without("sub")), "missing_claim"),
        ("no exp", Some(without("exp")), "missing_claim"),
    ];
    for (what, tok, reason) in cases {
        let mut c = Client::new(server.url(), tok.clone());
        let a = c.initialize().await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{what}: {a:?}");
        let challenge = a.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer realm=\"mcpstorm\""),
            "{what}: {challenge}"
        );
        if tok.is_some() {
            assert!(
                challenge.contains("error=\"invalid_token\""),
                "{what}: {challenge}"
            );
        }
        if !reason.is_empty() {
            assert_eq!(a.error_data()["reason"], reason, "{what}: {a:?}");
        }
        assert!(!a.text.contains(SECRET), "{what}: the secret leaked");
    }
    // A good token is served, and names a session id of 256 random bits.
    let mut alice = Client::new(server.url(), Some(token("alice")));
    let a = alice.initialize().await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let sid = alice.session.clone().unwrap();
    assert_eq!(sid.len(), 64, "{sid}");
    assert!(sid.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        alice.call("echo", json!({"message":"hi"})).await.result()["content"][0]["text"],
        "hi"
    );
    // The WebSocket transport's upgrade is behind the same auth.
    let ws = http()
        .get(format!("{}/ws", server.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(ws.status(), StatusCode::UNAUTHORIZED);
    // The operator's endpoints need no token.
    for path in ["/health", "/ready", "/metrics"] {
        let r = http()
            .get(format!("{}{path}", server.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rs256_tokens_verify_against_the_public_key_and_the_key_is_no_hmac_secret() {
    let public = fixture("jwt/rs256-public.pem");
    let server = serve(&["--auth-rs256-public-key", public.to_str().unwrap()]);
    let private = std::fs::read(fixture("jwt/rs256-private.pem")).unwrap();
    let good = token_with(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(&private).unwrap(),
        claims("carol"),
    );
    let mut c = Client::new(server.url(), Some(good));
    assert_eq!(c.initialize().await.status, StatusCode::OK);
    // The classic confusion: an HS256 token keyed with the public key's bytes.
    let confused = token_with(
        Algorithm::HS256,
        &EncodingKey::from_secret(&std::fs::read(&public).unwrap()),
        claims("mallory"),
    );
    let mut m = Client::new(server.url(), Some(confused));
    assert_eq!(m.initialize().await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_auth_flags_no_token_is_needed() {
    let server = serve(&[]);
    let mut c = Client::new(server.url(), None);
    assert_eq!(c.initialize().await.status, StatusCode::OK);
    let server = serve(&["--hardened", "--no-auth"]);
    let mut c = Client::new(server.url(), None);
    assert_eq!(c.initialize().await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_serves_only_the_principal_that_created_it() {
    let server = serve(&auth_flags());
    let alice = Client::connected(server.url(), Some(token("alice"))).await;
    assert_eq!(alice.ping().await.status, StatusCode::OK);
    let bob = Client {
        token: Some(token("bob")),
        ..alice.clone()
    };
    let stolen = bob.ping().await;
    assert_eq!(stolen.status, StatusCode::NOT_FOUND, "{stolen:?}");
    assert_eq!(stolen.text, "Not Found: Session not found");
    let anonymous = Client {
        token: None,
        ..alice.clone()
    };
    assert_eq!(anonymous.ping().await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        alice.ping().await.status,
        StatusCode::OK,
        "alice keeps her session"
    );

    // Switched off, the session id alone is enough.
    let open = serve(&[&auth_flags()[..], &["--no-session-binding"]].concat());
    let alice = Client::connected(open.url(), Some(token("alice"))).await;
    let bob = Client {
        token: Some(token("bob")),
        ..alice
    };
    assert_eq!(bob.ping().await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_per_ip_rate_limit_throttles_at_its_rate() {
    const RATE: f64 = 50.0;
    let server = serve(&["--rate-per-ip", "50"]);
    let client = Client::connected(server.url(), None).await;
    let answers = flood(&client, 8, Duration::from_millis(3500)).await;
    let first_429 = answers
        .iter()
        .find(|(_, s)| *s == StatusCode::TOO_MANY_REQUESTS)
        .expect("the flood was throttled")
        .0;
    // After the burst the bucket refills at RATE: count what got through in the next 2.5 s.
    let window = Duration::from_millis(2500);
    let passed = answers
        .iter()
        .filter(|(t, s)| *t > first_429 && *t <= first_429 + window && *s == StatusCode::OK)
        .count() as f64;
    let measured = passed / window.as_secs_f64();
    let refused = answers
        .iter()
        .filter(|(_, s)| *s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        (RATE * 0.8..=RATE * 1.2).contains(&measured),
        "throttled at {measured:.1}/s, configured {RATE}/s ({refused} refused of {})",
        answers.len()
    );
    assert!(
        refused as f64 > passed,
        "the flood really exceeded the limit"
    );

    let body = client.ping().await;
    if body.status == StatusCode::TOO_MANY_REQUESTS {
        assert_eq!(body.error_data()["limit"], "per_ip");
        assert_eq!(body.message.as_ref().unwrap()["jsonrpc"], "2.0");
    }

    // Off: the same flood is never throttled.
    let open = serve(&[]);
    let client = Client::connected(open.url(), None).await;
    let answers = flood(&client, 8, Duration::from_millis(1000)).await;
    assert!(
        answers.len() as f64 > 2.0 * RATE,
        "only {} answers",
        answers.len()
    );
    assert!(answers.iter().all(|(_, s)| *s == StatusCode::OK));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_global_and_per_principal_limits_refuse_with_429() {
    let server = serve(
        &[
            &auth_flags()[..],
            &["--rate-per-principal", "5", "--rate-global", "1000"],
        ]
        .concat(),
    );
    let alice = Client::connected(server.url(), Some(token("alice"))).await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(alice.ping().await);
    }
    let throttled = statuses
        .iter()
        .find(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
        .expect("alice was throttled");
    assert_eq!(throttled.error_data()["limit"], "per_principal");
    assert!(
        throttled
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    // Bob has his own bucket.
    let bob = Client::connected(server.url(), Some(token("bob"))).await;
    assert_eq!(bob.ping().await.status, StatusCode::OK);

    let server = serve(&["--rate-global", "3"]);
    let c = Client::new(server.url(), None);
    let mut refused = None;
    for _ in 0..10 {
        let a = c.ping().await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(a);
            break;
        }
    }
    assert_eq!(refused.expect("throttled").error_data()["limit"], "global");
}

#[tokio::test(flavor = "multi_thread")]
async fn security_events_are_json_lines_with_their_fields() {
    let mut server = serve(
        &[
            &auth_flags()[..],
            &["--rate-per-ip", "5", "--log-format", "json"],
        ]
        .concat(),
    );
    let anonymous = Client::new(server.url(), None);
    for _ in 0..10 {
        anonymous.ping().await;
    }
    server.sigterm();
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
    let log = server.stderr();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |event: &str| {
        lines
            .iter()
            .find(|l| l["event"] == event)
            .unwrap_or_else(|| panic!("no {event} event in\n{log}"))
    };
    let denied = find("denied");
    assert_eq!(denied["reason"], "missing_token");
    let throttled = find("throttled");
    assert_eq!(throttled["reason"], "per_ip");
    for e in [denied, throttled] {
        assert_eq!(e["client_ip"], "127.0.0.1");
        assert_eq!(e["http_method"], "POST");
        assert_eq!(e["path"], "/mcp");
        assert_eq!(e["level"], "WARN");
        assert!(e["timestamp"].is_string() && e["message"].is_string());
    }
    assert!(!log.contains(SECRET));
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_origins_are_refused_unless_the_check_is_off_and_cors_is_opt_in() {
    let origin = |o: &'static str| [("origin", o)];
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})
    .to_string()
    .into_bytes();
    let server = serve(&[]);
    let c = Client::new(server.url(), None);
    assert_eq!(
        c.post_with(init.clone(), &origin("http://evil.example"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let local = c
        .post_with(init.clone(), &origin("http://localhost:5173"))
        .await;
    assert_eq!(local.status, StatusCode::OK);
    assert!(
        local.header("access-control-allow-origin").is_none(),
        "no CORS by default"
    );

    let server = serve(&["--no-origin-check"]);
    let c = Client::new(server.url(), None);
    assert_eq!(
        c.post_with(init.clone(), &origin("http://evil.example"))
            .await
            .status,
        StatusCode::OK
    );

    let server = serve(&["--cors-origins", "https://app.example.com"]);
    let preflight = http()
        .request(reqwest::Method::OPTIONS, server.url())
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, mcp-session-id",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let c = Client::new(server.url(), None);
    let a = c.post_with(init, &origin("https://app.example.com")).await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "a CORS origin is an allowed origin"
    );
    assert_eq!(
        a.header("access-control-expose-headers")
            .map(|h| h.contains("mcp-session-id")),
        Some(true)
    );
}

#[test]
fn bad_protection_flags_exit_2_with_every_problem_named() {
    let out = Command::new(BIN)
        .args([
            "serve",
            "--port",
            "0",
            "--hardened",
            "--rate-per-ip",
            "0",
            "--max-body",
            "4XB",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--max-body"), "{err}");
    let out = Command::new(BIN)
        .args(["serve", "--port", "0", "--hardened", "--rate-per-ip", "0"])
        .env_remove(SECRET_VAR)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 problems"), "{err}");
    assert!(
        err.contains("--rate-per-ip must be at least 1") && err.contains("--no-auth"),
        "{err}"
    );
    let out = Command::new(BIN)
        .args(["serve", "--stdio", "--rate-per-ip", "5"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP mode"));
}
