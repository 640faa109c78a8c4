//! A closed stdout or stderr (`mcpstorm check ... | head`) is not a crash: the real binary,
//! its output pipes closed by the reader before it writes, finishes its work and exits with
//! its normal code, without a panic.

mod common;

use common::*;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Starts the binary with stdout and stderr piped, then closes the reading ends of `closed`
/// at once, as `| head -0` would: every write to them fails with EPIPE.
fn spawn_with_closed(args: &[&str], close_stdout: bool, close_stderr: bool) -> Child {
    let mut child = Command::new(BIN)
        .args(args)
        .env("MCPSTORM_EXE", BIN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mcpstorm");
    if close_stdout {
        drop(child.stdout.take());
    }
    if close_stderr {
        drop(child.stderr.take());
    }
    child
}

fn finish(mut child: Child) -> (i32, String) {
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut String::new());
    }
    let status = child.wait().expect("wait for mcpstorm");
    (status.code().unwrap_or(-1), stderr)
}

#[test]
fn check_into_a_closed_stdout_exits_quietly() {
    let child = spawn_with_closed(&["check", "--target", "embedded"], true, false);
    let (code, stderr) = finish(child);
    assert!(!stderr.contains("panicked"), "a panic:\n{stderr}");
    assert_eq!(
        code, 0,
        "check should end with its own code; stderr:\n{stderr}"
    );
}

#[test]
fn help_into_a_closed_stdout_exits_quietly() {
    let child = spawn_with_closed(&["run", "--help"], true, false);
    let (code, stderr) = finish(child);
    assert!(!stderr.contains("panicked"), "a panic:\n{stderr}");
    assert_eq!(code, 0, "stderr:\n{stderr}");
}

#[test]
fn a_run_with_both_streams_closed_still_writes_its_report_and_verdict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().to_str().expect("utf-8 temp path");
    // Progress lines every second go to the closed stderr, the summary to the closed stdout.
    let child = spawn_with_closed(
        &[
            "run",
            "--duration",
            "3s",
            "--vus",
            "2",
            "--no-tui",
            "--progress-interval",
            "1s",
            "--out",
            out,
        ],
        true,
        true,
    );
    let (code, _) = finish(child);
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("report.json")).expect("report.json written"),
    )
    .expect("report.json is JSON");
    assert_eq!(report["verdict"], "PASS", "the run's own verdict");
    assert_eq!(code, 0, "exit code is the verdict's");
}

#[test]
fn serve_with_closed_streams_keeps_serving() {
    let port = free_port();
    let port_s = port.to_string();
    let child = spawn_with_closed(&["serve", "--port", &port_s], true, true);
    let mut server = Proc { child, port };
    wait_until("serve to listen", Duration::from_secs(30), || {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("serve exited with {status} once its stdout/stderr were closed");
        }
        port_open(port)
    });
    // Requests make it log; the logs go to the closed stderr.
    let r = check(&["--target", &server.url()]);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert!(
        server.child.try_wait().expect("try_wait").is_none(),
        "serve died while serving with closed stdout/stderr"
    );
    server.kill();
}

#[test]
fn a_full_disk_under_stdout_is_said_once_on_stderr() {
    // /dev/full fails every write with ENOSPC: not a closed pipe, so it is worth a word.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let out = Command::new(BIN)
        .args(["check", "--target", "embedded"])
        .env("MCPSTORM_EXE", BIN)
        .stdin(Stdio::null())
        .stdout(full)
        .output()
        .expect("run mcpstorm");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "a panic:\n{stderr}");
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert_eq!(
        stderr.matches("cannot write to stdout").count(),
        1,
        "said once: {stderr}"
    );
}
