//! Shared helpers for the integration tests: free loopback ports, real server processes
//! ended by pid when their guard drops (even on panic), waits that poll a condition with a
//! deadline, and a way to run the real `mcpstorm` binary.
#![allow(dead_code)]

pub mod served;

use serde_json::Value;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_mcpstorm");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

pub fn everything_js() -> PathBuf {
    let p = fixture("node/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        p.exists(),
        "server-everything is not installed: run `npm ci --prefix tests/fixtures/node` (see .ci/run)"
    );
    p
}

pub fn python() -> String {
    std::env::var("MCPSTORM_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Poll `cond` every 20 ms until it holds or `deadline` passes.
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {deadline:?} waiting for {what}");
}

pub fn port_open(port: u16) -> bool {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// A server process this test started; killed by pid on drop.
pub struct Proc {
    pub child: Child,
    pub port: u16,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_http(mut cmd: Command, port: u16, what: &str) -> Proc {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut p = Proc { child, port };
    wait_until(
        &format!("{what} to listen on {port}"),
        Duration::from_secs(30),
        || {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("{what} exited early: {status}");
            }
            port_open(port)
        },
    );
    p
}

/// The reference server over HTTP on a free port.
pub fn reference_http() -> Proc {
    reference_http_on(free_port())
}

pub fn reference_http_on(port: u16) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--port", &port.to_string()]);
    spawn_http(cmd, port, "mcpstorm serve")
}

/// The reference server over HTTP on a free port, with extra `serve` flags.
pub fn reference_http_with(extra: &[&str]) -> Proc {
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--port", &port.to_string()]).args(extra);
    spawn_http(cmd, port, "mcpstorm serve")
}

/// server-everything serving the legacy HTTP+SSE transport (`GET /sse`, `POST /message`).
pub fn everything_sse() -> Proc {
    let port = free_port();
    let mut cmd = Command::new("node");
    cmd.arg(everything_js())
        .arg("sse")
        .env("PORT", port.to_string())
        .env("GZIP_ALLOWED_DOMAINS", "127.0.0.1");
    spawn_http(cmd, port, "server-everything (sse)")
}

/// The custom-envelope WebSocket daemon (tests/fixtures/ws_daemon.py) with `token`.
pub fn ws_daemon(token: &str) -> Proc {
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(fixture("ws_daemon.py"))
        .arg(port.to_string())
        .env("DAEMON_TOKEN", token);
    spawn_http(cmd, port, "the WebSocket daemon")
}

pub fn everything_http() -> Proc {
    let port = free_port();
    let mut cmd = Command::new("node");
    cmd.arg(everything_js())
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .env("GZIP_ALLOWED_DOMAINS", "127.0.0.1");
    spawn_http(cmd, port, "server-everything")
}

pub fn python_http() -> Proc {
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(fixture("py_server.py"))
        .arg("http")
        .arg(port.to_string());
    spawn_http(cmd, port, "the Python mcp server")
}

pub fn everything_stdio_target() -> (String, Vec<String>) {
    (
        "node".into(),
        vec![everything_js().display().to_string(), "stdio".into()],
    )
}

/// The result of running the real binary.
pub struct RunResult {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub report: Option<Value>,
    pub out: tempfile::TempDir,
}

impl RunResult {
    pub fn report(&self) -> &Value {
        self.report.as_ref().unwrap_or_else(|| {
            panic!(
                "no report.json; stderr:\n{}\nstdout:\n{}",
                self.stderr, self.stdout
            )
        })
    }
    pub fn total(&self, key: &str) -> f64 {
        self.report()["totals"][key]
            .as_f64()
            .unwrap_or_else(|| panic!("totals.{key} missing"))
    }
    pub fn error_count(&self, kind: &str) -> u64 {
        self.report()["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter(|x| x["kind"] == kind)
                    .map(|x| x["count"].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    }
    pub fn describe(&self) -> String {
        format!(
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn finish(out: Output, dir: tempfile::TempDir) -> RunResult {
    let report = std::fs::read(dir.path().join("report.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    RunResult {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        report,
        out: dir,
    }
}

/// `mcpstorm run SCENARIO --out TMP` with extra args, where the scenario is written from text.
pub fn run_scenario(toml: &str, extra: &[&str]) -> RunResult {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("scenario.toml");
    std::fs::write(&path, toml).expect("write scenario");
    run_args(
        &[&["run", path.to_str().unwrap_or_default()], extra].concat(),
        dir,
    )
}

/// `run_scenario` with extra environment variables for mcpstorm.
pub fn run_scenario_env(toml: &str, extra: &[&str], env: &[(&str, &str)]) -> RunResult {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("scenario.toml");
    std::fs::write(&path, toml).expect("write scenario");
    let args = [&["run", path.to_str().unwrap_or_default()], extra].concat();
    run_args_env(&args, dir, env)
}

pub fn run_args(args: &[&str], dir: tempfile::TempDir) -> RunResult {
    run_args_env(args, dir, &[])
}

pub fn run_args_env(args: &[&str], dir: tempfile::TempDir, env: &[(&str, &str)]) -> RunResult {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .arg("--out")
        .arg(dir.path())
        .env("MCPSTORM_EXE", BIN)
        .stdin(Stdio::null())
        .output()
        .expect("run mcpstorm");
    finish(out, dir)
}

/// `mcpstorm check ...` (no --out).
pub fn check(args: &[&str]) -> RunResult {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .arg("check")
        .args(args)
        .env("MCPSTORM_EXE", BIN)
        .stdin(Stdio::null())
        .output()
        .expect("run mcpstorm check");
    finish(out, dir)
}

pub fn toml_str(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// A real redis-server of this test's own on a free loopback port, nothing kept on disk.
pub fn redis_server() -> Proc {
    redis_server_on(free_port())
}

/// A real redis-server on `port` (to bring one back where a stopped one was).
pub fn redis_server_on(port: u16) -> Proc {
    let dir = std::env::temp_dir();
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ])
    .current_dir(dir);
    spawn_http(cmd, port, "redis-server")
}

/// Start a command that serves HTTP on `port`; ended by pid when the guard drops.
pub fn spawn_http_server(cmd: Command, port: u16, what: &str) -> Proc {
    spawn_http(cmd, port, what)
}

/// `mcpstorm serve --hardened` on a free port with HS256 auth, its key `secret` in the
/// environment variable `secret_var`, plus `flags` (a `--no-...` switch after them wins).
pub fn serve_hardened(secret_var: &str, secret: &str, flags: &[&str]) -> Proc {
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--port",
        &port.to_string(),
        "--hardened",
        "--auth-hs256-secret-env",
        secret_var,
    ])
    .args(flags)
    .env(secret_var, secret);
    spawn_http(cmd, port, "mcpstorm serve --hardened")
}

/// The deliberately buggy FastMCP fixture (`correct`, `wrong-answer`, `deadlock`, `race`)
/// over Streamable HTTP on a free port.
pub fn buggy_http(mode: &str) -> Proc {
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(fixture("buggy_server.py"))
        .arg(mode)
        .arg("http")
        .arg(port.to_string());
    spawn_http(cmd, port, &format!("buggy_server.py {mode}"))
}
