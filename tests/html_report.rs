//! The HTML report of a real chaotic run (servers killed and stopped, writes lost), opened
//! in headless Chromium: the screenshot must hold the charts' colours in quantity (lines,
//! bars, fault markers, shaded recovery windows), so the test fails when charts don't draw.
//! A report with hostile text from the server renders it as text, never as markup.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Colours of src/report/html/chart.rs.
const OK: [u8; 3] = [0x2e, 0x9d, 0x57];
const FAILED: [u8; 3] = [0xd7, 0x26, 0x3d];
const P50: [u8; 3] = [0x25, 0x63, 0xeb];
const P99: [u8; 3] = [0x8e, 0x44, 0xad];
const RSS: [u8; 3] = [0x0f, 0x9f, 0xb5];
const CPU: [u8; 3] = [0xc0, 0x39, 0x9a];
const FAULT: [u8; 3] = [0x7a, 0x00, 0x19];
const RECOVERING: [u8; 3] = [0xfd, 0xe4, 0xc4];

/// Headless Debian Chromium with a fresh profile, no network of its own; ended by pid if it
/// hangs past the deadline.
fn chromium(args: &[&str], page: &Path) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium is installed (.ci/run installs Debian's chromium)");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pixels of the screenshot within a small distance of each colour.
fn count_colours(png_path: &Path, colours: &[[u8; 3]]) -> Vec<usize> {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    assert!(step >= 3, "{:?}", info.color_type);
    let mut counts = vec![0; colours.len()];
    for px in buf[..info.buffer_size()].chunks(step) {
        for (i, c) in colours.iter().enumerate() {
            let d: i32 = (0..3).map(|k| (px[k] as i32 - c[k] as i32).abs()).sum();
            if d <= 12 {
                counts[i] += 1;
            }
        }
    }
    counts
}

fn chaotic_run() -> RunResult {
    let toml = r#"
name = "chaos <html> test"
duration = "7s"
criteria = ["success_rate >= 0.5", "lost_writes == 0", "recovery.max < 30s"]
[target]
transport = "embedded"
[workload]
vus = 4
think_time = "2ms"
[[mix]]
op = "tools/call"
tool = "echo"
weight = 5
arguments = { message = "hi {{seq}}" }
[[mix]]
op = "tools/call"
tool = "sleep"
weight = 1
arguments = { ms = 10 }
[[mix]]
op = "tools/call"
tool = "fail"
weight = 1
arguments = { error_rate = 0.2 }
[[faults]]
kind = "kill"
at = "2s"
[[faults]]
kind = "stop"
at = "4s"
duration = "1500ms"
[ledger]
write = { tool = "kv_put", arguments = { key = "w-{{seq}}", value = "v-{{seq}}" } }
read = { tool = "kv_get", arguments = { key = "w-{{seq}}" } }
expect = "v-{{seq}}"
weight = 2
"#;
    run_scenario(toml, &["--no-progress"])
}

#[test]
fn the_report_of_a_chaotic_run_renders_its_charts_in_chromium() {
    let run = chaotic_run();
    // The in-memory kv store dies with the server: acknowledged writes are lost, so FAIL.
    assert_eq!(run.code, 1, "{}", run.describe());
    let html_path = run.out.path().join("report.html");
    let html = std::fs::read_to_string(&html_path).expect("report.html is written by every run");
    assert!(run.stdout.contains("report.html"), "{}", run.stdout);

    // Self-contained: nothing to fetch, no script; the browser is told so as well.
    for banned in ["<script", " src=", " href=", "url(", "@import", "<link"] {
        assert!(
            !html.contains(banned),
            "`{banned}` in a self-contained report"
        );
    }
    assert!(html.contains("Content-Security-Policy"));
    assert!(
        html.contains("chaos &lt;html&gt; test"),
        "the name is escaped"
    );

    let shot = run.out.path().join("shot.png");
    let out = chromium(
        &[
            "--window-size=1280,1800",
            &format!("--screenshot={}", shot.display()),
        ],
        &html_path,
    );
    assert!(out.status.success(), "chromium failed");
    let names = [
        "ok line",
        "failed line and bars",
        "p50",
        "p99",
        "RSS",
        "CPU",
        "fault markers",
        "recovery windows",
    ];
    let counts = count_colours(&shot, &[OK, FAILED, P50, P99, RSS, CPU, FAULT, RECOVERING]);
    let found: Vec<String> = names
        .iter()
        .zip(&counts)
        .map(|(n, c)| format!("{n}: {c}"))
        .collect();
    eprintln!("chart pixels: {}", found.join(", "));
    // A legend swatch is 56 pixels; a drawn series is hundreds.
    let least = [300, 300, 150, 100, 150, 100, 300, 1000];
    for ((name, count), least) in names.iter().zip(&counts).zip(least) {
        assert!(
            *count >= least,
            "{name}: {count} pixels, want {least}; the charts did not render ({})",
            found.join(", ")
        );
    }
}

#[test]
fn report_html_renders_a_saved_run_with_hostile_text_as_text() {
    let run = chaotic_run();
    let mut report: Value =
        serde_json::from_slice(&std::fs::read(run.out.path().join("report.json")).unwrap())
            .unwrap();
    let evil =
        "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">";
    report["errors"][0]["samples"][0]["message"] = Value::from(evil);
    report["target"]["server_name"] = Value::from(evil);
    // Findings in the report contract's shape, one with a field this version does not know.
    report["security"] = serde_json::json!([
        {"probe": "auth.missing_token", "category": "auth", "severity": "high", "outcome": "fail",
         "title": "a call without a token succeeded",
         "evidence": {"request": "POST /mcp", "response": evil}, "advice": "require a token"},
        {"probe": "input.oversized", "category": "input", "severity": "info", "outcome": "pass",
         "title": "a 2 MB argument was refused", "evidence": {"request": "", "response": ""},
         "advice": "", "limit_bytes": 1048576}
    ]);
    report["checks"]["schema_conformance"] =
        serde_json::json!({"checked": 40, "violations": [{"tool": "echo", "detail": evil}]});
    let saved = run.out.path().join("hostile.json");
    std::fs::write(&saved, serde_json::to_vec(&report).unwrap()).unwrap();
    let page = run.out.path().join("hostile.html");
    let out = Command::new(BIN)
        .arg("report")
        .arg(&saved)
        .arg("--html")
        .arg(&page)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dom = String::from_utf8(chromium(&["--dump-dom"], &page).stdout).unwrap();
    assert!(dom.contains("<svg"), "charts in the DOM");
    assert!(!dom.contains("pwned</title>"), "a script ran");
    assert!(!dom.contains("<script"), "a script element was created");
    assert!(!dom.contains("<img"), "an img element was created");
    assert!(
        dom.contains("&lt;script&gt;document.title"),
        "shown as text"
    );
    for text in [
        "a call without a token succeeded",
        "require a token",
        "limit_bytes",
        "schema_conformance",
        "violations",
        "Ledger of acknowledged writes",
    ] {
        assert!(dom.contains(text), "`{text}` missing from the page");
    }
    // The saved run re-rendered is the same page as the one the run wrote, but for the edits.
    let original = std::fs::read_to_string(run.out.path().join("report.html")).unwrap();
    let again = run.out.path().join("again.html");
    let out = Command::new(BIN)
        .arg("report")
        .arg(run.out.path().join("report.json"))
        .arg("--html")
        .arg(&again)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        strip_observed(&std::fs::read_to_string(&again).unwrap()),
        strip_observed(&original)
    );
}

/// JSON has no infinity: a criterion observed as infinite is saved as null and shown as
/// "no data" after a round trip.
fn strip_observed(html: &str) -> String {
    html.replace(">inf<", ">no data<")
}
