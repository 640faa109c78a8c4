//! stdio: one server process per session, newline-delimited JSON-RPC on its stdin/stdout.
//!
//! The child runs in its own process group so the whole tree can be ended at close (and on
//! drop, even when a run is cancelled). Its stderr is always drained by a task into the run's
//! log, so a chatty server can never block on a full pipe; the last lines are kept for
//! diagnosis ("process exited with code 1: ...").

use super::{Call, Step, Transport, step};
use crate::error::CallError;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

const STDERR_TAIL_LINES: usize = 20;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StdioSpec {
    pub command: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
}

impl StdioSpec {
    pub fn display(&self) -> String {
        std::iter::once(self.command.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Where every stdio child's stderr goes: one file for the run, lines tagged by session.
#[derive(Default)]
pub struct StderrLog {
    // A std Mutex around a BufWriter: writes are small appends to the page cache, and a
    // dedicated writer task would cost a channel hop per line for no gain.
    file: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
}

impl StderrLog {
    pub fn to_file(path: &std::path::Path) -> std::io::Result<Self> {
        let f = std::fs::File::create(path)?;
        Ok(Self {
            file: Some(Mutex::new(std::io::BufWriter::new(f))),
        })
    }
    fn write(&self, session: u64, line: &str) {
        if let Some(f) = &self.file
            && let Ok(mut f) = f.lock()
        {
            let _ = writeln!(f, "[session {session}] {line}");
        }
    }
    pub fn flush(&self) {
        if let Some(f) = &self.file
            && let Ok(mut f) = f.lock()
        {
            let _ = f.flush();
        }
    }
}

/// Ends the child's whole process group when dropped, so no server outlives the run.
struct GroupGuard {
    pgid: i32,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.pgid > 0 {
            // SAFETY: killpg only sends a signal; the group is the one we created for our child.
            unsafe {
                libc::killpg(self.pgid, libc::SIGKILL);
            }
        }
    }
}

pub(crate) struct StdioTransport {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    line: Vec<u8>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    stderr_task: Option<JoinHandle<()>>,
    /// A write was cut off half way (by a timeout): the stream is no longer framed.
    poisoned: bool,
    _group: GroupGuard,
}

impl StdioTransport {
    pub async fn spawn(
        spec: &StdioSpec,
        log: Arc<StderrLog>,
        session: u64,
    ) -> Result<Self, CallError> {
        let mut cmd = Command::new(&spec.command);
        cmd.args(&spec.args)
            .envs(&spec.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(cwd) = &spec.cwd {
            cmd.current_dir(cwd);
        }
        let mut child = cmd.spawn().map_err(|e| CallError::Spawn {
            command: spec.display(),
            detail: match e.kind() {
                std::io::ErrorKind::NotFound => {
                    format!("`{}` was not found (check the path or PATH)", spec.command)
                }
                std::io::ErrorKind::PermissionDenied => {
                    format!("`{}` is not executable (permission denied)", spec.command)
                }
                _ => e.to_string(),
            },
        })?;
        let pgid = child.id().map(|p| p as i32).unwrap_or(0);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(CallError::Spawn {
                command: spec.display(),
                detail: "the child's pipes could not be opened".into(),
            });
        };
        let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL_LINES)));
        let tail = stderr_tail.clone();
        let stderr_task = tokio::spawn(async move {
            let mut reader = BufReader::new(stderr);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf);
                        let line = line.trim_end();
                        log.write(session, line);
                        if let Ok(mut t) = tail.lock() {
                            if t.len() == STDERR_TAIL_LINES {
                                t.pop_front();
                            }
                            t.push_back(crate::error::excerpt(line, 300));
                        }
                    }
                }
            }
        });
        Ok(Self {
            child,
            stdin: Some(stdin),
            stdout: BufReader::with_capacity(64 * 1024, stdout),
            line: Vec::with_capacity(4096),
            stderr_tail,
            stderr_task: Some(stderr_task),
            poisoned: false,
            _group: GroupGuard { pgid },
        })
    }

    async fn write(&mut self, mut body: Vec<u8>) -> Result<(), CallError> {
        if self.poisoned {
            return Err(CallError::Connection {
                detail: "a previous write to the server's stdin was cut off by a timeout".into(),
            });
        }
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(CallError::Connection {
                detail: "stdin already closed".into(),
            });
        };
        body.push(b'\n');
        self.poisoned = true;
        let written = stdin.write_all(&body).await;
        match written {
            Ok(()) => {
                self.poisoned = false;
                Ok(())
            }
            Err(_) => Err(self.exited().await),
        }
    }

    /// The server closed its end: report how it exited and what it last said.
    async fn exited(&mut self) -> CallError {
        let status = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
        if let Some(task) = self.stderr_task.as_mut() {
            let _ = tokio::time::timeout(Duration::from_millis(300), task).await;
            self.stderr_task = None;
        }
        let stderr_tail: Vec<String> = self
            .stderr_tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        match status {
            Ok(Ok(s)) => CallError::ProcessExited {
                code: s.code(),
                stderr_tail,
            },
            _ => CallError::Connection {
                detail: "the server closed its stdout but is still running".into(),
            },
        }
    }
}

impl StdioTransport {
    /// Write `bytes` as one line exactly as given (no check that it is JSON): the security
    /// probes' malformed and hostile input.
    pub async fn write_line_raw(&mut self, bytes: &[u8]) -> Result<(), CallError> {
        self.write(bytes.to_vec()).await
    }

    /// The next non-empty line the server writes, or `None` when `within` passes first.
    /// A closed stdout is the process's exit, with its code and last stderr lines.
    pub async fn read_line_within(
        &mut self,
        within: Duration,
    ) -> Result<Option<Vec<u8>>, CallError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // `read_until` is cancel-safe: a partial line stays in `self.line` for next time.
            let read =
                tokio::time::timeout_at(deadline, self.stdout.read_until(b'\n', &mut self.line))
                    .await;
            let n = match read {
                Err(_) => return Ok(None),
                Ok(Err(e)) => {
                    return Err(CallError::Connection {
                        detail: format!("reading stdout: {e}"),
                    });
                }
                Ok(Ok(n)) => n,
            };
            if n == 0 && !self.line.ends_with(b"\n") {
                return Err(self.exited().await);
            }
            let line = std::mem::take(&mut self.line);
            if !line.trim_ascii().is_empty() {
                return Ok(Some(line.trim_ascii().to_vec()));
            }
        }
    }

    /// Has the server process ended? Its exit as the error a caller would have met.
    pub async fn exit_if_ended(&mut self) -> Option<CallError> {
        match self.child.try_wait() {
            Ok(Some(_)) => Some(self.exited().await),
            _ => None,
        }
    }
}

impl Transport for StdioTransport {
    async fn request(&mut self, call: Call<'_>) -> Result<Value, CallError> {
        let id = call.id;
        self.write(call.body).await?;
        loop {
            // `read_until` is cancel-safe: a partial line stays in `self.line` for next time.
            let n = match self.stdout.read_until(b'\n', &mut self.line).await {
                Ok(n) => n,
                Err(e) => {
                    return Err(CallError::Connection {
                        detail: format!("reading stdout: {e}"),
                    });
                }
            };
            if n == 0 && !self.line.ends_with(b"\n") {
                return Err(self.exited().await);
            }
            let line = std::mem::take(&mut self.line);
            let trimmed = line.trim_ascii();
            let outcome = if trimmed.is_empty() {
                Step::Skip
            } else {
                step(trimmed, id)
            };
            self.line = line;
            self.line.clear();
            match outcome {
                Step::Done(r) => return r,
                Step::Answer(answer) => self.write(answer).await?,
                Step::Skip => {}
            }
        }
    }

    async fn notify(&mut self, body: Vec<u8>) -> Result<(), CallError> {
        self.write(body).await
    }

    fn session_survives(&self, err: &CallError) -> bool {
        !self.poisoned
            && !matches!(
                err,
                CallError::ProcessExited { .. }
                    | CallError::Connection { .. }
                    | CallError::Spawn { .. }
            )
    }

    async fn close(mut self) {
        // The MCP stdio shutdown: close stdin, give the server a moment, then end the group.
        drop(self.stdin.take());
        let _ = tokio::time::timeout(Duration::from_millis(500), self.child.wait()).await;
        if let Some(task) = self.stderr_task.take() {
            task.abort();
        }
        // `_group` is dropped here and kills whatever is left of the tree.
    }
}
