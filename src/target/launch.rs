//! Launching and supervising the target, like a process manager: start the server command,
//! wait until it is ready (TCP connect or HTTP GET), restart it by policy (never, on-failure,
//! always) with a doubling backoff, and send it the signals the fault schedule asks for.
//!
//! The server runs in its own process group with its stdout and stderr appended to files in
//! the output folder. Everything it starts is ended when the supervisor stops or is dropped.
//! It never decides when to hurt the server: that is the fault schedule's job.

use crate::error::CallError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Readiness {
    /// A TCP connect to this address succeeds.
    Tcp { addr: String },
    /// An HTTP GET answers with this status.
    Http { url: String, status: u16 },
    /// An MCP handshake (`initialize`) succeeds at this Streamable HTTP endpoint.
    Mcp { url: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Never,
    OnFailure,
    Always,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LaunchSpec {
    pub command: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    pub ready: Readiness,
    #[serde(serialize_with = "crate::workload::ser_duration")]
    pub ready_timeout: Duration,
    pub restart: RestartPolicy,
    #[serde(serialize_with = "crate::workload::ser_duration")]
    pub backoff: Duration,
    #[serde(serialize_with = "crate::workload::ser_duration")]
    pub backoff_max: Duration,
}

impl LaunchSpec {
    pub fn display(&self) -> String {
        std::iter::once(self.command.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One exit of the server process, as the supervisor saw it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ExitRecord {
    pub at_s: f64,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub restarted: bool,
}

struct State {
    pid: AtomicI32,
    starts: AtomicU32,
    force_restart: AtomicBool,
    exits: Mutex<Vec<ExitRecord>>,
}

pub struct Supervisor {
    state: Arc<State>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

const QUICK_EXIT: Duration = Duration::from_secs(10);

impl Supervisor {
    /// Start the server and wait until it is ready; the error is the root cause (exit 3).
    pub async fn start(
        spec: LaunchSpec,
        out: &Path,
        clock: Instant,
    ) -> Result<Supervisor, CallError> {
        let logs = Logs {
            stdout: out.join("target-stdout.log"),
            stderr: out.join("target-stderr.log"),
        };
        let mut child = spawn(&spec, &logs)?;
        wait_ready(&spec, &mut child, &logs).await?;
        let state = Arc::new(State {
            pid: AtomicI32::new(child.id().map(|p| p as i32).unwrap_or(0)),
            starts: AtomicU32::new(1),
            force_restart: AtomicBool::new(false),
            exits: Mutex::new(Vec::new()),
        });
        let cancel = CancellationToken::new();
        let task = tokio::spawn(supervise(
            spec,
            logs,
            child,
            state.clone(),
            cancel.clone(),
            clock,
        ));
        Ok(Supervisor {
            state,
            cancel,
            task: Some(task),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        match self.state.pid.load(Ordering::Relaxed) {
            p if p > 0 => Some(p as u32),
            _ => None,
        }
    }

    /// Send a signal to the server's whole process group; false when it is not running.
    pub fn signal(&self, signal: i32) -> bool {
        match self.pid() {
            // SAFETY: killpg only sends a signal, to the group we created for our child.
            Some(pid) => unsafe { libc::killpg(pid as i32, signal) == 0 },
            None => false,
        }
    }

    /// Stop the server with SIGTERM and start it again, whatever the restart policy.
    pub fn restart(&self) -> bool {
        self.state.force_restart.store(true, Ordering::Relaxed);
        self.signal(libc::SIGTERM)
    }

    pub fn starts(&self) -> u32 {
        self.state.starts.load(Ordering::Relaxed)
    }

    pub fn exits(&self) -> Vec<ExitRecord> {
        self.state
            .exits
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// End the server (SIGTERM, then SIGKILL after 3 s) and the supervision task.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
        // The task may not run again: make sure the group is gone.
        self.signal(libc::SIGKILL);
    }
}

struct Logs {
    stdout: PathBuf,
    stderr: PathBuf,
}

fn spawn(spec: &LaunchSpec, logs: &Logs) -> Result<tokio::process::Child, CallError> {
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
    };
    let io_err = |e: std::io::Error| CallError::Spawn {
        command: spec.display(),
        detail: format!("cannot open its log file: {e}"),
    };
    let mut cmd = tokio::process::Command::new(&spec.command);
    cmd.args(&spec.args)
        .envs(&spec.env)
        .stdin(std::process::Stdio::null())
        .stdout(open(&logs.stdout).map_err(io_err)?)
        .stderr(open(&logs.stderr).map_err(io_err)?)
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    cmd.spawn().map_err(|e| CallError::Spawn {
        command: spec.display(),
        detail: match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("`{}` was not found (check the path or PATH)", spec.command)
            }
            _ => e.to_string(),
        },
    })
}

fn stderr_tail(path: &Path, lines: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| crate::error::excerpt(l, 300))
        .collect()
}

/// Is the server answering its readiness question yet?
pub async fn is_ready(ready: &Readiness) -> bool {
    match ready {
        Readiness::Tcp { addr } => {
            matches!(
                tokio::time::timeout(
                    Duration::from_millis(500),
                    tokio::net::TcpStream::connect(addr)
                )
                .await,
                Ok(Ok(_))
            )
        }
        Readiness::Mcp { url } => {
            // `url` is in `--target` form: http(s)://, sse+http(s)://, ws(s)://.
            let Ok(spec) = crate::target::TargetSpec::parse_flag(url, &[]) else {
                return false;
            };
            let log = std::sync::Arc::new(crate::transport::stdio::StderrLog::default());
            let Ok(c) = crate::target::Connector::new(
                &spec,
                &crate::session::Protocol::Auto,
                Duration::from_secs(1),
                log,
                1,
            ) else {
                return false;
            };
            match c.open().await {
                Ok(session) => {
                    session.close().await;
                    true
                }
                Err(_) => false,
            }
        }
        Readiness::Http { url, status } => {
            let client = crate::transport::http::client(1);
            match tokio::time::timeout(Duration::from_secs(1), client.get(url).send()).await {
                Ok(Ok(resp)) => resp.status().as_u16() == *status,
                _ => false,
            }
        }
    }
}

async fn wait_ready(
    spec: &LaunchSpec,
    child: &mut tokio::process::Child,
    logs: &Logs,
) -> Result<(), CallError> {
    let deadline = Instant::now() + spec.ready_timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(CallError::ProcessExited {
                code: status.code(),
                stderr_tail: stderr_tail(&logs.stderr, 8),
            });
        }
        if is_ready(&spec.ready).await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(CallError::Protocol {
                detail: format!(
                    "the server started but was not ready within {:?} ({:?}); check target-stderr.log, or raise target.launch.ready_timeout",
                    spec.ready_timeout, spec.ready
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn terminate(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        // SAFETY: signals to the process group we created for this child.
        unsafe { libc::killpg(pid as i32, libc::SIGTERM) };
        if tokio::time::timeout(Duration::from_secs(3), child.wait())
            .await
            .is_ok()
        {
            unsafe { libc::killpg(pid as i32, libc::SIGKILL) };
            return;
        }
        unsafe { libc::killpg(pid as i32, libc::SIGKILL) };
    }
    let _ = child.wait().await;
}

async fn supervise(
    spec: LaunchSpec,
    logs: Logs,
    mut child: tokio::process::Child,
    state: Arc<State>,
    cancel: CancellationToken,
    clock: Instant,
) {
    use std::os::unix::process::ExitStatusExt;
    let mut backoff = spec.backoff;
    let mut started = Instant::now();
    loop {
        let status = tokio::select! {
            s = child.wait() => s,
            _ = cancel.cancelled() => {
                terminate(&mut child).await;
                state.pid.store(0, Ordering::Relaxed);
                return;
            }
        };
        state.pid.store(0, Ordering::Relaxed);
        let (code, signal) = match &status {
            Ok(s) => (s.code(), s.signal()),
            Err(_) => (None, None),
        };
        let failed = !matches!(&status, Ok(s) if s.success());
        let forced = state.force_restart.swap(false, Ordering::Relaxed);
        let restart = forced
            || match spec.restart {
                RestartPolicy::Never => false,
                RestartPolicy::OnFailure => failed,
                RestartPolicy::Always => true,
            };
        if let Ok(mut exits) = state.exits.lock() {
            exits.push(ExitRecord {
                at_s: clock.elapsed().as_secs_f64(),
                code,
                signal,
                restarted: restart,
            });
        }
        if !restart {
            return;
        }
        if started.elapsed() > QUICK_EXIT {
            backoff = spec.backoff;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(if forced { Duration::ZERO } else { backoff }) => {}
                _ = cancel.cancelled() => return,
            }
            backoff = (backoff * 2).min(spec.backoff_max);
            match spawn(&spec, &logs) {
                Ok(c) => {
                    child = c;
                    break;
                }
                Err(_) if !cancel.is_cancelled() => continue,
                Err(_) => return,
            }
        }
        started = Instant::now();
        state
            .pid
            .store(child.id().map(|p| p as i32).unwrap_or(0), Ordering::Relaxed);
        state.starts.fetch_add(1, Ordering::Relaxed);
    }
}
