//! The reference server's own Prometheus metrics, served at `/metrics`: requests by status,
//! refusals by event and reason, tool calls by outcome, and, sampled at scrape time, the
//! requests in flight, the concurrency pool, live sessions, open circuits and resident
//! memory.
//!
//! Counting must stay cheap on the request path (an atomic add after a read-locked lookup);
//! everything that costs more is computed only when `/metrics` is scraped.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    event: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    tool: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CircuitLabels {
    tool: String,
}

/// Figures read at scrape time.
#[derive(Debug, Default, Clone)]
pub(crate) struct Snapshot {
    pub in_flight: i64,
    pub pool_busy: Option<i64>,
    pub pool_queued: Option<i64>,
    pub sessions: i64,
    pub rss_bytes: Option<i64>,
    /// Tool and state (0 closed, 1 open, 2 half-open).
    pub circuits: Vec<(String, i64)>,
    pub ready: bool,
}

pub(crate) struct ServerMetrics {
    registry: Registry,
    requests: Family<StatusLabels, Counter>,
    refusals: Family<RefusalLabels, Counter>,
    tool_calls: Family<ToolLabels, Counter>,
    /// The `ok` and `error` counters of each tool, found without building a label set
    /// (which allocates) on every call.
    tool_counters: RwLock<HashMap<String, [Counter; 2]>>,
    in_flight: Gauge,
    pool_busy: Gauge,
    pool_queued: Gauge,
    sessions: Gauge,
    rss: Gauge,
    circuits: Family<CircuitLabels, Gauge>,
    ready: Gauge,
}

impl ServerMetrics {
    pub(crate) fn new() -> ServerMetrics {
        let mut registry = Registry::with_prefix("mcpstorm_server");
        let requests = Family::<StatusLabels, Counter>::default();
        let refusals = Family::<RefusalLabels, Counter>::default();
        let tool_calls = Family::<ToolLabels, Counter>::default();
        let circuits = Family::<CircuitLabels, Gauge>::default();
        let (in_flight, pool_busy, pool_queued, sessions, rss, ready) = (
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
        );
        registry.register(
            "http_requests",
            "Requests to /mcp answered, by HTTP status",
            requests.clone(),
        );
        registry.register(
            "refusals",
            "Requests refused by a protection, by event (denied, throttled, overloaded, ...) and reason",
            refusals.clone(),
        );
        registry.register(
            "tool_calls",
            "Tool calls finished, by tool and outcome (ok, error)",
            tool_calls.clone(),
        );
        registry.register(
            "in_flight_requests",
            "POST requests being worked on",
            in_flight.clone(),
        );
        registry.register(
            "pool_busy",
            "Concurrency slots in use (with --max-concurrency)",
            pool_busy.clone(),
        );
        registry.register(
            "pool_queued",
            "Requests waiting for a concurrency slot",
            pool_queued.clone(),
        );
        registry.register("sessions", "Live MCP sessions", sessions.clone());
        registry.register(
            "resident_memory_bytes",
            "Resident memory (RSS) of the server process",
            rss.clone(),
        );
        registry.register(
            "circuit_state",
            "Circuit breaker per tool: 0 closed, 1 open, 2 half-open",
            circuits.clone(),
        );
        registry.register("ready", "1 when /ready answers 200, else 0", ready.clone());
        ServerMetrics {
            registry,
            requests,
            refusals,
            tool_calls,
            tool_counters: RwLock::default(),
            in_flight,
            pool_busy,
            pool_queued,
            sessions,
            rss,
            circuits,
            ready,
        }
    }

    pub(crate) fn answered(&self, status: u16) {
        self.requests
            .get_or_create(&StatusLabels { code: status })
            .inc();
    }

    pub(crate) fn rejected(&self, event: &'static str, reason: &'static str) {
        self.refusals
            .get_or_create(&RefusalLabels { event, reason })
            .inc();
    }

    /// Counts a finished call of `tool`, which must be a tool the server has (the caller
    /// checks): names from requests would let a client grow the label set without bound.
    pub(crate) fn tool_call(&self, tool: &str, failed: bool) {
        let outcome = usize::from(failed);
        let known = self
            .tool_counters
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tool)
            .map(|pair| pair[outcome].clone());
        let counter = known.unwrap_or_else(|| {
            let pair = ["ok", "error"].map(|outcome| {
                self.tool_calls.get_or_create_owned(&ToolLabels {
                    tool: tool.to_owned(),
                    outcome,
                })
            });
            let counter = pair[outcome].clone();
            self.tool_counters
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(tool.to_owned(), pair);
            counter
        });
        counter.inc();
    }

    /// The text exposition, with `now`'s sampled figures.
    pub(crate) fn render(&self, now: &Snapshot) -> String {
        self.in_flight.set(now.in_flight);
        self.pool_busy.set(now.pool_busy.unwrap_or(0));
        self.pool_queued.set(now.pool_queued.unwrap_or(0));
        self.sessions.set(now.sessions);
        self.rss.set(now.rss_bytes.unwrap_or(0));
        self.ready.set(i64::from(now.ready));
        for (tool, state) in &now.circuits {
            self.circuits
                .get_or_create(&CircuitLabels { tool: tool.clone() })
                .set(*state);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_samples_are_in_the_exposition() {
        let m = ServerMetrics::new();
        m.answered(200);
        m.answered(200);
        m.answered(429);
        m.rejected("throttled", "per_ip");
        m.tool_call("fail", true);
        let text = m.render(&Snapshot {
            in_flight: 3,
            sessions: 2,
            rss_bytes: Some(1234),
            circuits: vec![("fail".into(), 1)],
            ready: true,
            ..Snapshot::default()
        });
        for line in [
            "mcpstorm_server_http_requests_total{code=\"200\"} 2",
            "mcpstorm_server_http_requests_total{code=\"429\"} 1",
            "mcpstorm_server_refusals_total{event=\"throttled\",reason=\"per_ip\"} 1",
            "mcpstorm_server_tool_calls_total{tool=\"fail\",outcome=\"error\"} 1",
            "mcpstorm_server_in_flight_requests 3",
            "mcpstorm_server_sessions 2",
            "mcpstorm_server_resident_memory_bytes 1234",
            "mcpstorm_server_circuit_state{tool=\"fail\"} 1",
            "mcpstorm_server_ready 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
