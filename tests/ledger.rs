//! The ledger against a real Redis: the reference server that acknowledges only after Redis
//! confirmed a write loses nothing when killed; the deliberately unsafe one (acknowledge
//! first, write later) does, and the ledger names the lost ids.

mod common;
use common::*;

fn ledger_run(redis: &Proc, ack: &str) -> RunResult {
    let port = free_port();
    let toml = format!(
        r#"
duration = "5s"
criteria = ["lost_writes == 0"]
[target]
url = "http://127.0.0.1:{port}/mcp"
[target.launch]
command = {bin:?}
args = ["serve", "--port", "{port}", "--redis", "redis://127.0.0.1:{rp}", "--ack", "{ack}"]
ready = "http://127.0.0.1:{port}/health"
[workload]
vus = 4
timeout = "2s"
[[mix]]
op = "ping"
[ledger]
write = {{ tool = "kv_put", arguments = {{ key = "w-{{{{seq}}}}", value = "v-{{{{seq}}}}" }} }}
read = {{ tool = "kv_get", arguments = {{ key = "w-{{{{seq}}}}" }} }}
expect = "v-{{{{seq}}}}"
weight = 5
[[faults]]
kind = "kill"
at = "1.5s"
every = "2s"
"#,
        bin = BIN,
        rp = redis.port
    );
    run_scenario(&toml, &["--no-progress"])
}

#[test]
fn the_safe_server_loses_no_acknowledged_write_when_killed() {
    let redis = redis_server();
    let r = ledger_run(&redis, "after-write");
    assert_eq!(r.code, 0, "{}", r.describe());
    let l = &r.report()["checks"]["ledger"];
    assert!(l["writes_acknowledged"].as_u64().unwrap() > 500, "{l}");
    assert_eq!(l["lost_writes"], 0, "{l}");
    assert_eq!(l["unverified"], 0, "{l}");
    assert_eq!(r.report()["recoveries"].as_array().unwrap().len(), 2);
    let checkpoints = l["checkpoints"].as_array().unwrap();
    assert!(
        !checkpoints.is_empty(),
        "read back after a recovery, during the run: {l}"
    );
    assert!(
        checkpoints
            .iter()
            .all(|c| c["lost"] == 0 && c["checked"].as_u64().unwrap() > 0),
        "{l}"
    );
}

#[test]
fn the_unsafe_server_loses_writes_and_the_ledger_names_them() {
    let redis = redis_server();
    let r = ledger_run(&redis, "before-write");
    assert_eq!(r.code, 1, "{}", r.describe());
    let l = &r.report()["checks"]["ledger"];
    let lost = l["lost_writes"].as_u64().unwrap();
    assert!(lost > 0, "{l}");
    let ids = l["lost_ids"].as_array().unwrap();
    assert!(!ids.is_empty() && ids.len() as u64 <= lost.min(100));
    assert!(r.stdout.contains("lost (ids ["), "{}", r.stdout);
    let checkpoints = l["checkpoints"].as_array().unwrap();
    assert!(
        checkpoints.iter().any(|c| c["lost"].as_u64().unwrap() > 0),
        "the loss is seen right after the recovery: {l}"
    );
    let crit = &r.report()["criteria"][0];
    assert_eq!(crit["name"], "lost_writes");
    assert_eq!(crit["passed"], false);
}

#[test]
fn a_ledger_must_name_its_ids() {
    let r = run_scenario(
        "duration = \"1s\"\n[ledger]\nwrite = { tool = \"kv_put\", arguments = { key = \"k\", value = \"v\" } }\nread = { tool = \"kv_get\", arguments = { key = \"k\" } }\n",
        &[],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("ledger.write.arguments") && r.stderr.contains("ledger.read.arguments"),
        "{}",
        r.stderr
    );
}
