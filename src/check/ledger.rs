//! The ledger: proof that no acknowledged write was lost (the approach of Jepsen's set
//! checker). Every write the scenario names gets a unique id (`{{seq}}`) and is recorded as
//! acknowledged, failed (the server said no, or it never reached the server), or
//! indeterminate (a timeout or a dropped connection: it may or may not have happened). After
//! the run every acknowledged id is read back; one that is absent is a lost write.
//!
//! It never judges: it counts, and the criteria (`lost_writes == 0`) decide.

use crate::error::CallError;
use crate::session::Session;
use crate::target::Connector;
use crate::workload::template::{Ctx, RandomPool, Template};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Past this many ids per outcome the ledger stops tracking new writes (bounded memory).
const MAX_TRACKED: usize = 1_000_000;
/// Ids listed in the report, per kind.
const LISTED: usize = 100;
const READERS: usize = 8;

/// A tool call with templated arguments; `{{seq}}` is the write's id.
#[derive(Debug, Clone)]
pub struct LedgerOp {
    pub tool: String,
    pub arguments: Template,
}

#[derive(Debug, Clone)]
pub struct LedgerSpec {
    pub write: LedgerOp,
    pub read: LedgerOp,
    /// Text the read's answer must contain for the write to count as present.
    pub expect: Option<Template>,
    pub weight: u32,
}

#[derive(Default)]
struct Book {
    acknowledged: Vec<u64>,
    /// When each acknowledged write was answered (seconds into the run), in the same order.
    acknowledged_at: Vec<f32>,
    failed: u64,
    indeterminate: Vec<u64>,
    untracked: u64,
}

#[derive(Default)]
pub struct Ledger {
    book: Mutex<Book>,
}

/// The ledger's verdict, in the report's `checks.ledger`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LedgerReport {
    pub writes_acknowledged: u64,
    pub writes_failed: u64,
    pub writes_indeterminate: u64,
    /// Acknowledged, then absent when read back.
    pub lost_writes: u64,
    pub lost_ids: Vec<u64>,
    /// Acknowledged, but the read-back itself failed (server down?): neither lost nor proven.
    pub unverified: u64,
    pub indeterminate_ids: Vec<u64>,
    /// Writes past the tracking limit.
    pub untracked: u64,
    /// Read-backs after each recovery, during the run.
    #[serde(default)]
    pub checkpoints: Vec<Checkpoint>,
}

/// The writes acknowledged before a fault, read back once service was back after it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    pub fault_id: u32,
    /// When the read-back started (seconds into the run).
    pub at_s: f64,
    pub checked: u64,
    pub lost: u64,
    pub lost_ids: Vec<u64>,
    pub unverified: u64,
}

/// What a write's outcome says about whether it happened.
fn settle(outcome: &Result<(), CallError>) -> Option<bool> {
    match outcome {
        Ok(()) => Some(true),
        // The server answered no, or the request never reached it.
        Err(
            CallError::ToolError { .. }
            | CallError::JsonRpc { .. }
            | CallError::HttpStatus { .. }
            | CallError::SessionLost { .. }
            | CallError::ConnectRefused { .. }
            | CallError::Dns { .. }
            | CallError::Tls { .. }
            | CallError::Spawn { .. },
        ) => Some(false),
        Err(_) => None,
    }
}

impl Ledger {
    /// Book write `id`, answered `at_s` seconds into the run.
    pub fn record(&self, id: u64, at_s: f64, outcome: &Result<(), CallError>) {
        let Ok(mut b) = self.book.lock() else { return };
        match settle(outcome) {
            Some(true) if b.acknowledged.len() < MAX_TRACKED => {
                b.acknowledged.push(id);
                b.acknowledged_at.push(at_s as f32);
            }
            Some(false) => b.failed += 1,
            None if b.indeterminate.len() < MAX_TRACKED => b.indeterminate.push(id),
            _ => b.untracked += 1,
        }
    }

    /// After a recovery, read back every id acknowledged before the fault: those are the
    /// writes the fault could have lost.
    pub async fn checkpoint(
        &self,
        spec: &LedgerSpec,
        connector: &Connector,
        timeout: Duration,
        fault: (u32, f64),
        at_s: f64,
    ) -> Checkpoint {
        let (fault_id, fault_at) = fault;
        let ids = self
            .book
            .lock()
            .map(|b| {
                let before = b
                    .acknowledged_at
                    .partition_point(|t| (*t as f64) < fault_at);
                b.acknowledged[..before].to_vec()
            })
            .unwrap_or_default();
        let (lost, unverified) = read_all(&ids, spec, connector, timeout).await;
        Checkpoint {
            fault_id,
            at_s,
            checked: ids.len() as u64,
            lost: lost.len() as u64,
            lost_ids: lost.into_iter().take(20).collect(),
            unverified,
        }
    }

    /// Read every acknowledged id back with a few sessions of its own.
    pub async fn verify(
        &self,
        spec: &LedgerSpec,
        connector: &Connector,
        timeout: Duration,
        checkpoints: Vec<Checkpoint>,
    ) -> LedgerReport {
        let (acknowledged, failed, indeterminate, untracked) = match self.book.lock() {
            Ok(b) => (
                b.acknowledged.clone(),
                b.failed,
                b.indeterminate.clone(),
                b.untracked,
            ),
            Err(_) => return LedgerReport::default(),
        };
        let (lost, unverified) = read_all(&acknowledged, spec, connector, timeout).await;
        LedgerReport {
            writes_acknowledged: acknowledged.len() as u64,
            writes_failed: failed,
            writes_indeterminate: indeterminate.len() as u64,
            lost_writes: lost.len() as u64,
            lost_ids: lost.into_iter().take(LISTED).collect(),
            unverified,
            indeterminate_ids: indeterminate.into_iter().take(LISTED).collect(),
            untracked,
            checkpoints,
        }
    }
}

/// Read `ids` back with a few sessions in parallel: (absent ids, sorted; ids that could not
/// be read).
async fn read_all(
    ids: &[u64],
    spec: &LedgerSpec,
    connector: &Connector,
    timeout: Duration,
) -> (Vec<u64>, u64) {
    let chunks: Vec<Vec<u64>> = ids
        .chunks(ids.len().div_ceil(READERS).max(1))
        .map(<[u64]>::to_vec)
        .collect();
    let results = Arc::new(Mutex::new((Vec::new(), 0u64)));
    let mut readers = tokio::task::JoinSet::new();
    for chunk in chunks {
        let (spec, results) = (spec.clone(), results.clone());
        let mut session = connector.open_monitor().await.ok();
        readers.spawn(async move {
            for id in chunk {
                let present = read_back(&spec, &mut session, id, timeout).await;
                if let Ok(mut r) = results.lock() {
                    match present {
                        Some(false) => r.0.push(id),
                        None => r.1 += 1,
                        Some(true) => {}
                    }
                }
            }
            if let Some(s) = session {
                s.close().await;
            }
        });
    }
    readers.join_all().await;
    let (mut lost, unverified) = results.lock().map(|r| r.clone()).unwrap_or_default();
    lost.sort_unstable();
    (lost, unverified)
}

/// `Some(true)` present, `Some(false)` absent, `None` could not tell (after 3 tries).
async fn read_back(
    spec: &LedgerSpec,
    session: &mut Option<Session>,
    id: u64,
    timeout: Duration,
) -> Option<bool> {
    let (args, expect) = {
        let pool = RandomPool::default();
        let mut rng = rand::rng();
        let mut ctx = Ctx {
            seq: id,
            vu: 0,
            rng: &mut rng,
            pool: &pool,
        };
        (
            spec.read.arguments.render(&mut ctx),
            spec.expect.as_ref().map(|e| e.render(&mut ctx)),
        )
    };
    let params = json!({"name": spec.read.tool, "arguments": args});
    for _ in 0..3 {
        let s = session.as_mut()?;
        match s.call("tools/call", Some(&params), timeout).await {
            Ok(result) => {
                if result.get("isError").and_then(Value::as_bool) == Some(true) {
                    return Some(false);
                }
                let text: String = result
                    .get("content")
                    .and_then(Value::as_array)
                    .map(|c| {
                        c.iter()
                            .filter_map(|b| b.get("text").and_then(Value::as_str))
                            .collect()
                    })
                    .unwrap_or_default();
                return Some(match expect.as_ref().and_then(Value::as_str) {
                    Some(want) => text.contains(want),
                    None => true,
                });
            }
            Err(CallError::JsonRpc { .. }) => return Some(false),
            Err(e) if !s.survives(&e) => return None,
            Err(_) => continue,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_booked_by_what_they_prove() {
        let l = Ledger::default();
        l.record(1, 0.1, &Ok(()));
        l.record(2, 0.2, &Err(CallError::ToolError { text: "no".into() }));
        l.record(
            3,
            0.3,
            &Err(CallError::Timeout {
                after: Duration::from_secs(1),
            }),
        );
        l.record(4, 0.4, &Err(CallError::ConnectRefused { addr: "x".into() }));
        l.record(
            5,
            0.5,
            &Err(CallError::Connection {
                detail: "reset".into(),
            }),
        );
        let b = l.book.lock().unwrap();
        assert_eq!(b.acknowledged, vec![1]);
        assert_eq!(b.failed, 2);
        assert_eq!(b.indeterminate, vec![3, 5]);
    }
}
