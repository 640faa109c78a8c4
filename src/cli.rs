//! The command line: subcommands and flags, parsed and handed to the library. Nothing else.

use crate::error::Error;
use crate::run::RunOptions;
use crate::scenario::Overrides;
use crate::target::TargetSpec;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "mcpstorm",
    version,
    about = "Stress-test MCP servers: load, faults, bad input; a verdict CI can act on"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a scenario (default: the quickstart against the embedded reference server).
    Run {
        /// The scenario TOML file.
        scenario: Option<PathBuf>,
        /// A built-in scenario instead of a file: quickstart.
        #[arg(long)]
        preset: Option<String>,
        /// Override the target: embedded, embedded-stdio, http(s)://HOST:PORT/PATH (Streamable
        /// HTTP), sse+http(s)://HOST:PORT/sse (legacy HTTP+SSE), ws(s)://HOST:PORT/PATH
        /// (WebSocket), or 'stdio:COMMAND ARGS'.
        #[arg(long)]
        target: Option<String>,
        /// Override target.protocol_version: auto, 2026-07-28 (stateless), 2025-11-25,
        /// 2025-06-18, 2025-03-26 or 2024-11-05.
        #[arg(long)]
        protocol_version: Option<String>,
        /// Run the workload once per protocol revision and print them side by side (reports
        /// in OUT/REVISION/, the table in OUT/matrix.json); =LIST for some revisions only,
        /// e.g. --protocol-matrix=2026-07-28,2025-11-25.
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "all", value_name = "REVISIONS")]
        protocol_matrix: Option<String>,
        /// An HTTP header for every request, 'Name: value' (repeatable), e.g. 'Authorization: Bearer TOKEN'.
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// Override the scenario's duration (e.g. 30s, 5m).
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Override the number of virtual users (constant-vus).
        #[arg(long)]
        vus: Option<u32>,
        /// Folder for report.json and logs.
        #[arg(long, default_value = "mcpstorm-out")]
        out: PathBuf,
        /// No progress lines.
        #[arg(long)]
        no_progress: bool,
        /// Seconds between progress lines.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        progress_interval: Duration,
        /// Plain progress lines instead of the live dashboard (the default when stdout is
        /// not a terminal, as in CI).
        #[arg(long)]
        no_tui: bool,
        /// Serve Prometheus metrics on http://ADDR/metrics during the run, e.g. 127.0.0.1:9464.
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
        /// After the run, keep /metrics up until it is scraped once or this long has passed,
        /// so the last scrape sees the final figures (e.g. 30s).
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        metrics_linger: Duration,
        /// The binary that serves the embedded target (default: this one; env MCPSTORM_EXE).
        #[arg(long, hide = true)]
        server_exe: Option<PathBuf>,
        /// Write the workload's traffic to this JSONL trace, for `mcpstorm replay`.
        #[arg(long, value_name = "TRACE")]
        record: Option<PathBuf>,
        /// With --record: record one session in N (1 records every session).
        #[arg(long, default_value_t = 1, value_name = "N")]
        record_every: u64,
        /// With --record: stop writing the trace past this size (e.g. 100MB, 512KB).
        #[arg(long, default_value = "100MB", value_parser = parse_size, value_name = "SIZE")]
        record_max: u64,
    },
    /// Replay a recorded trace against a server and report where its answers diverge.
    Replay {
        /// A trace written by `mcpstorm run --record`.
        trace: PathBuf,
        /// embedded, embedded-stdio, http(s)://HOST:PORT/PATH, or 'stdio:COMMAND ARGS'.
        #[arg(long)]
        target: String,
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// recorded: each request at its recorded time; fast: each as soon as the previous answered.
        #[arg(long, default_value = "recorded", value_parser = ["recorded", "fast"])]
        pace: String,
        /// Replay the whole trace this many times in parallel.
        #[arg(long, default_value_t = 1)]
        copies: usize,
        /// A JSON pointer into each answer to leave out of the comparison, like
        /// /structuredContent/timestamp or /content/*/text (repeatable; /_meta always).
        #[arg(long)]
        ignore: Vec<String>,
        /// How long to wait for each answer.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        timeout: Duration,
        /// Folder for replay.json.
        #[arg(long, default_value = "mcpstorm-out")]
        out: PathBuf,
        #[arg(long, hide = true)]
        server_exe: Option<PathBuf>,
    },
    /// Preflight a target: reach it, shake hands, list tools/resources/prompts; or say why not.
    Check {
        /// embedded, embedded-stdio, http(s)://HOST:PORT/PATH (Streamable HTTP),
        /// sse+http(s)://HOST:PORT/sse (legacy HTTP+SSE), ws(s)://HOST:PORT/PATH (WebSocket),
        /// or 'stdio:COMMAND ARGS'.
        #[arg(long, default_value = "embedded")]
        target: String,
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// How long to wait for each answer.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        timeout: Duration,
        /// The protocol revision to speak: auto (detect), 2026-07-28 (stateless), 2025-11-25,
        /// 2025-06-18, 2025-03-26 or 2024-11-05.
        #[arg(long, default_value = crate::session::SUPPORTED_VERSIONS[0])]
        protocol_version: String,
        /// Print each tool's inputSchema too.
        #[arg(long)]
        schemas: bool,
        #[arg(long, hide = true)]
        server_exe: Option<PathBuf>,
    },
    /// Probe a target's security and robustness: concurrency bugs, auth, session isolation,
    /// hostile input, schema fuzzing, HTTP hygiene, overload, circuit breaker, memory guard,
    /// rate limits. Exit 1 on a failed finding.
    Probe(Box<crate::security::flags::ProbeArgs>),
    /// Print a saved report's summary again, and write it in other formats.
    Report {
        /// A report.json written by `mcpstorm run`.
        report: PathBuf,
        /// Write JUnit XML (one test case per criterion) to this file.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Write the HTML report (one self-contained file) to this file.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Compare two reports per operation; exit 1 when NEW regressed past the thresholds.
    Compare {
        old: PathBuf,
        new: PathBuf,
        /// Allowed p50 increase, in percent.
        #[arg(long, default_value_t = 10.0)]
        max_p50_increase: f64,
        /// Allowed p99 increase, in percent.
        #[arg(long, default_value_t = 20.0)]
        max_p99_increase: f64,
        /// Allowed calls/s decrease, in percent.
        #[arg(long, default_value_t = 10.0)]
        max_rps_decrease: f64,
        /// Allowed error-rate increase, in percentage points.
        #[arg(long, default_value_t = 1.0)]
        max_error_rate_increase: f64,
    },
    /// Run the TCP fault proxy on its own until Ctrl-C, with toxics from the command line.
    Proxy {
        /// Address to listen on (loopback by default; port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// The server to forward to, HOST:PORT.
        #[arg(long)]
        upstream: std::net::SocketAddr,
        /// A toxic, KIND[:attr=value,...][@upstream|@downstream], e.g. latency:latency=50,jitter=5@downstream (repeatable).
        #[arg(long = "toxic")]
        toxics: Vec<String>,
    },
    /// Hold memory and burn CPU for a while (the pressure fault's helper process).
    #[command(hide = true)]
    Hog {
        #[arg(long, default_value_t = 0)]
        memory_mb: u64,
        #[arg(long, default_value_t = 0)]
        cpu_threads: u32,
        #[arg(long, value_parser = parse_duration)]
        duration: Duration,
    },
    /// Run the reference MCP server (Streamable HTTP at /mcp, or stdio).
    Serve {
        /// Address to bind; loopback by default.
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// Port to listen on; 0 picks a free one.
        #[arg(long, default_value_t = 8931)]
        port: u16,
        /// Serve one session on stdin/stdout instead of HTTP.
        #[arg(long)]
        stdio: bool,
        /// Keep kv_put/kv_get in Redis (redis://HOST:PORT) instead of in memory.
        #[arg(long)]
        redis: Option<String>,
        /// With --redis: acknowledge a write after Redis confirmed it (after-write), or at once
        /// and store it later (before-write: deliberately unsafe, loses writes on a crash).
        #[arg(long, default_value = "after-write", value_parser = ["after-write", "before-write"])]
        ack: String,
        /// The protocol revisions to accept, comma-separated (default: all, both eras), e.g.
        /// 2025-11-25,2025-06-18 for a session-only server or 2026-07-28 for a stateless-only one.
        #[arg(long, value_delimiter = ',')]
        protocol_versions: Option<Vec<String>>,
        /// Also serve the test tools, prompts and resources of the official MCP conformance
        /// suite (@modelcontextprotocol/conformance): test_simple_text, test://static-text, ...
        #[arg(long)]
        conformance_tools: bool,
        #[command(flatten)]
        protections: crate::server::flags::ProtectionFlags,
    },
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = [
        ("GB", 1u64 << 30),
        ("MB", 1 << 20),
        ("KB", 1 << 10),
        ("B", 1),
    ]
    .iter()
    .find_map(|(suffix, m)| t.strip_suffix(suffix).map(|n| (n, *m)))
    .unwrap_or((t, 1));
    num.trim()
        .parse::<u64>()
        .map(|n| n.saturating_mul(mult))
        .map_err(|_| format!("`{s}` is not a size; write it like 100MB, 512KB or 1GB"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|_| format!("`{s}` is not a duration; write it like 500ms, 30s or 5m"))
}

/// Run the command line; returns the process exit code (0 pass, 1 criteria failed,
/// 2 bad usage or scenario, 3 target unreachable).
pub async fn main_with_args<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match execute(cli).await {
        Ok(code) => code,
        Err(e) => {
            crate::errln!("mcpstorm: {e}");
            e.exit_code()
        }
    }
}

async fn execute(cli: Cli) -> Result<u8, Error> {
    match cli.command {
        Command::Run {
            scenario,
            preset,
            target,
            protocol_version,
            protocol_matrix,
            headers,
            duration,
            vus,
            out,
            no_progress,
            progress_interval,
            no_tui,
            metrics_addr,
            metrics_linger,
            server_exe,
            record,
            record_every,
            record_max,
        } => {
            if record_every == 0 {
                return Err(Error::Usage(
                    "--record-every must be at least 1 (1 records every session)".into(),
                ));
            }
            let record = record.map(|path| crate::trace::record::RecordOptions {
                path,
                every: record_every,
                max_bytes: record_max,
            });
            let target = match target {
                Some(t) => Some(TargetSpec::parse_flag(&t, &headers).map_err(Error::Usage)?),
                None if !headers.is_empty() => {
                    return Err(Error::Usage("--header needs --target with an http(s):// URL (or put headers in target.headers)".into()));
                }
                None => None,
            };
            let protocol = protocol_version
                .map(|v| {
                    crate::session::Protocol::parse(&v)
                        .map_err(|e| Error::Usage(format!("--protocol-version {e}")))
                })
                .transpose()?;
            if progress_interval.is_zero() {
                return Err(Error::Usage(
                    "--progress-interval must be more than 0".into(),
                ));
            }
            let opts = RunOptions {
                scenario,
                preset,
                overrides: Overrides {
                    target,
                    protocol,
                    duration,
                    vus,
                },
                out,
                progress: !no_progress,
                progress_interval,
                tui: !no_tui
                    && !no_progress
                    && std::io::IsTerminal::is_terminal(&std::io::stdout()),
                metrics_addr,
                metrics_linger,
                server_exe,
                record,
                exact_protocol: false,
            };
            if let Some(list) = protocol_matrix {
                let revisions = crate::matrix::parse_revisions(&list).map_err(Error::Usage)?;
                return crate::matrix::run(opts, &revisions).await;
            }
            let report = crate::run::run(opts).await?;
            Ok(if report.verdict == crate::report::Verdict::Pass {
                0
            } else {
                1
            })
        }
        Command::Check {
            target,
            headers,
            timeout,
            protocol_version,
            schemas,
            server_exe,
        } => {
            let target = TargetSpec::parse_flag(&target, &headers).map_err(Error::Usage)?;
            let protocol = crate::session::Protocol::parse(&protocol_version)
                .map_err(|e| Error::Usage(format!("--protocol-version {e}")))?;
            let text =
                crate::check::check(&target, &protocol, timeout, schemas, server_exe.as_deref())
                    .await?;
            crate::outln!("{text}");
            Ok(0)
        }
        Command::Probe(args) => {
            let report = crate::security::command::run_probe(args.into_options()?).await?;
            Ok(if report.verdict == crate::report::Verdict::Pass {
                0
            } else {
                1
            })
        }
        Command::Replay {
            trace,
            target,
            headers,
            pace,
            copies,
            ignore,
            timeout,
            out,
            server_exe,
        } => {
            let target = TargetSpec::parse_flag(&target, &headers).map_err(Error::Usage)?;
            let opts = crate::trace::replay::ReplayOptions {
                trace,
                target,
                pace: if pace == "fast" {
                    crate::trace::replay::Pace::Fast
                } else {
                    crate::trace::replay::Pace::Recorded
                },
                copies,
                ignore,
                timeout,
                out,
                server_exe,
                progress: true,
            };
            let report = crate::trace::replay::replay(opts).await?;
            crate::outln!("{}", crate::trace::replay::render(&report));
            Ok(if report.divergences == 0 { 0 } else { 1 })
        }
        Command::Report {
            report,
            junit,
            html,
        } => {
            let r = crate::report::compare::load(&report).map_err(Error::Usage)?;
            crate::outln!("{}", crate::report::summary::render(&r, Some(&report)));
            if let Some(path) = junit {
                r.write_junit(&path)?;
            }
            if let Some(path) = html {
                r.write_html(&path)?;
                crate::outln!("html:    {}", path.display());
            }
            Ok(0)
        }
        Command::Compare {
            old,
            new,
            max_p50_increase,
            max_p99_increase,
            max_rps_decrease,
            max_error_rate_increase,
        } => {
            for (flag, v) in [
                ("--max-p50-increase", max_p50_increase),
                ("--max-p99-increase", max_p99_increase),
                ("--max-rps-decrease", max_rps_decrease),
                ("--max-error-rate-increase", max_error_rate_increase),
            ] {
                if !v.is_finite() || v < 0.0 {
                    return Err(Error::Usage(format!(
                        "{flag} {v}: give a percentage of 0 or more"
                    )));
                }
            }
            let old_report = crate::report::compare::load(&old).map_err(Error::Usage)?;
            let new_report = crate::report::compare::load(&new).map_err(Error::Usage)?;
            let thresholds = crate::report::compare::Thresholds {
                p50_increase: max_p50_increase / 100.0,
                p99_increase: max_p99_increase / 100.0,
                rps_decrease: max_rps_decrease / 100.0,
                error_rate_increase: max_error_rate_increase / 100.0,
            };
            let c = crate::report::compare::compare(&old_report, &new_report, &thresholds);
            crate::outln!(
                "old: {}\nnew: {}\n\n{}",
                old.display(),
                new.display(),
                c.table
            );
            if c.regressions.is_empty() {
                crate::outln!("no regression past the thresholds");
                Ok(0)
            } else {
                crate::outln!("regressions:");
                for r in &c.regressions {
                    crate::outln!("  {r}");
                }
                Ok(1)
            }
        }
        Command::Proxy {
            listen,
            upstream,
            toxics,
        } => {
            let parsed: Vec<crate::proxy::toxics::Toxic> = toxics
                .iter()
                .map(|t| crate::proxy::toxics::Toxic::parse_flag(t))
                .collect::<Result<_, _>>()
                .map_err(Error::Usage)?;
            let proxy = crate::proxy::Proxy::start(listen, upstream)
                .await
                .map_err(|source| Error::Io {
                    what: format!("listening on {listen} (--listen)"),
                    source,
                })?;
            for t in parsed {
                proxy.add_toxic(t);
            }
            crate::outln!(
                "mcpstorm proxy: listening on {} -> {upstream}",
                proxy.local_addr()
            );
            let _ = tokio::signal::ctrl_c().await;
            let stats = proxy.stats();
            crate::outln!(
                "mcpstorm proxy: {} connections, {} bytes up, {} bytes down",
                stats.accepted,
                stats.bytes_up,
                stats.bytes_down
            );
            proxy.shutdown().await;
            Ok(0)
        }
        Command::Hog {
            memory_mb,
            cpu_threads,
            duration,
        } => {
            tokio::task::spawn_blocking(move || {
                crate::pressure::hog(memory_mb, cpu_threads, duration)
            })
            .await
            .map_err(|e| Error::Usage(format!("hog: {e}")))?;
            Ok(0)
        }
        Command::Serve {
            host,
            port,
            stdio,
            redis,
            ack,
            protocol_versions,
            conformance_tools,
            protections,
        } => {
            if stdio && protections.any_given() {
                return Err(Error::Usage(
                    "the protection flags (--hardened, --auth-..., --rate-..., --max-...) apply to HTTP mode; drop them or drop --stdio".into(),
                ));
            }
            let resolved = protections.resolve().map_err(|problems| {
                let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
                Error::Usage(format!(
                    "serve: {} problem{} with the flags:\n{}",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" },
                    list.join("\n")
                ))
            })?;
            crate::server::log::init(protections.log_format());
            let shutdown = tokio_util::sync::CancellationToken::new();
            let on_signal = shutdown.clone();
            let signals = tokio::spawn(async move {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                let mut next_signal = async || {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
                    }
                };
                next_signal().await;
                // The first signal drains in-flight requests; a second one does not wait.
                on_signal.cancel();
                next_signal().await;
                crate::errln!("mcpstorm serve: second signal; exiting without waiting");
                std::process::exit(130);
            });
            let result = crate::server::serve(
                crate::server::ServeOptions {
                    host,
                    port,
                    stdio,
                    redis,
                    ack: if ack == "before-write" {
                        crate::server::Ack::BeforeWrite
                    } else {
                        crate::server::Ack::AfterWrite
                    },
                    protocol_versions,
                    protections: resolved,
                    conformance_tools,
                },
                shutdown,
            )
            .await;
            signals.abort();
            result.map_err(|e| Error::Usage(e.to_string()))?;
            Ok(0)
        }
    }
}
