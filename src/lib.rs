//! mcpstorm: stress-tests MCP servers and proves whether they survive production.
//!
//! The flow of one run: scenario → plan → preflight → workload (sessions over transports)
//! → recorder → report + criteria → verdict. `cli` parses the command line and calls into
//! the rest; `main.rs` only maps the outcome to an exit code, so tests run the whole tool
//! in-process.

pub mod alerts;
pub mod check;
pub mod cli;
pub mod concurrency;
pub mod criteria;
pub mod error;
pub mod faults;
pub mod jsonrpc;
pub mod leaks;
pub mod live;
pub mod matrix;
pub mod metrics;
pub mod pressure;
pub mod probe;
pub mod proxy;
pub mod recovery;
pub mod report;
pub mod run;
pub mod scenario;
pub mod security;
pub mod server;
pub mod session;
pub mod target;
pub mod trace;
pub(crate) mod transport;
pub mod workload;

pub use transport::stdio::StdioSpec;
