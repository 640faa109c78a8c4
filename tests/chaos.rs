//! Chaos under load: faults on a schedule against a server mcpstorm starts and supervises,
//! with detection and recovery timed for each.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn recoveries(r: &RunResult) -> Vec<serde_json::Value> {
    r.report()["recoveries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_server_killed_every_two_seconds_is_restarted_and_each_recovery_is_timed() {
    let toml = r#"
name = "kill-loop"
duration = "7s"
criteria = ["recovery.max < 5s", "unrecovered == 0", "success_rate >= 0.9"]
[target]
transport = "embedded"
[workload]
vus = 4
timeout = "2s"
[[mix]]
op = "tools/call"
tool = "echo"
arguments = { message = "hi" }
[[faults]]
kind = "kill"
at = "1s"
every = "2s"
"#;
    let r = run_scenario(toml, &["--no-progress"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    let rec = recoveries(&r);
    assert_eq!(rec.len(), 3, "kills at 1, 3 and 5 s: {rec:?}");
    for x in &rec {
        let detected = x["detected_after_ms"]
            .as_f64()
            .expect("each kill was noticed");
        let recovered = x["recovered_after_ms"]
            .as_f64()
            .expect("each kill was recovered");
        assert!(
            detected < 1000.0 && recovered > detected && recovered < 3000.0,
            "{x}"
        );
        assert!(x["failed_calls"].as_u64().unwrap() > 0, "{x}");
    }
    let sup = &r.report()["supervisor"];
    assert_eq!(sup["starts"], 4, "{sup}");
    assert_eq!(sup["exits"].as_array().unwrap().len(), 3);
    assert_eq!(sup["exits"][0]["signal"], 9, "SIGKILL");
    assert!(r.stdout.contains("recovered ms"), "{}", r.stdout);
    // Sessions lived in the killed server: the VUs found out (404) and started new ones.
    assert!(r.total("sessions_lost") + r.error_count("connect_refused") as f64 > 0.0);
}

#[test]
fn sigstop_gives_timeouts_not_a_hung_mcpstorm() {
    let toml = r#"
duration = "5s"
[target]
transport = "embedded"
[workload]
vus = 3
timeout = "500ms"
graceful_stop = "1s"
[recovery]
probe_timeout = "300ms"
[[mix]]
op = "ping"
[[faults]]
kind = "stop"
at = "1s"
duration = "2s"
"#;
    let started = Instant::now();
    let r = run_scenario(toml, &["--no-progress"]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "bounded: {:?}",
        started.elapsed()
    );
    assert!(r.error_count("timeout") >= 3, "{}", r.describe());
    let rec = recoveries(&r);
    assert_eq!(rec.len(), 1);
    let detected = rec[0]["detected_after_ms"].as_f64().unwrap();
    let recovered = rec[0]["recovered_after_ms"].as_f64().unwrap();
    // Seen within a few timeouts (500 ms calls, 300 ms probe), with room for a loaded machine.
    assert!(
        detected <= 1500.0,
        "a hang is seen within a few timeouts: {detected}"
    );
    assert!(
        (1900.0..5000.0).contains(&recovered),
        "back after SIGCONT at 2 s: {recovered}"
    );
    assert_eq!(
        r.report()["supervisor"]["exits"].as_array().unwrap().len(),
        0,
        "stopped, not dead"
    );
}

#[test]
fn with_restart_never_a_kill_is_never_recovered_and_the_run_fails() {
    let port = free_port();
    let toml = format!(
        r#"
duration = "3s"
criteria = ["unrecovered == 0", "recovery.max < 30s"]
[target]
url = "http://127.0.0.1:{port}/mcp"
[target.launch]
command = {bin:?}
args = ["serve", "--port", "{port}"]
ready = "mcp"
restart = "never"
[workload]
vus = 2
timeout = "1s"
[[mix]]
op = "ping"
[[faults]]
kind = "kill"
at = "1s"
"#,
        bin = BIN
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_eq!(r.code, 1, "{}", r.describe());
    let rec = recoveries(&r);
    assert!(rec[0]["detected_after_ms"].is_number());
    assert!(rec[0]["recovered_after_ms"].is_null(), "{rec:?}");
    assert_eq!(r.report()["supervisor"]["starts"], 1);
    assert!(
        !port_open(port),
        "the server stays down and nothing is left behind"
    );
    let stderr_log = std::fs::read_to_string(r.out.path().join("target-stderr.log"));
    assert!(
        stderr_log.is_ok(),
        "the server's stderr went to the output folder"
    );
    // A fault never recovered makes recovery.max infinite: "inf" in the JSON contract, and
    // still infinite (not "no data") when the report is read back and rendered again.
    let crit = &r.report()["criteria"][1];
    assert_eq!(crit["name"], "recovery.max", "{crit}");
    assert_eq!(crit["observed"], "inf", "{crit}");
    assert_eq!(crit["passed"], false, "{crit}");
    let report = r.out.path().join("report.json");
    let html = r.out.path().join("again.html");
    let again = std::process::Command::new(BIN)
        .arg("report")
        .arg(&report)
        .arg("--html")
        .arg(&html)
        .output()
        .expect("mcpstorm report");
    let text = String::from_utf8_lossy(&again.stdout);
    assert_eq!(again.status.code(), Some(0), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("recovery.max"))
        .unwrap_or_else(|| panic!("no recovery.max line in:\n{text}"));
    assert!(
        line.contains("FAIL") && line.contains("observed infinite"),
        "{line}"
    );
    let page = std::fs::read_to_string(&html).expect("html written");
    assert!(
        page.contains("<code>recovery.max</code>") && page.contains(">infinite<"),
        "the HTML criteria table shows the infinite recovery"
    );
}

#[test]
fn chaos_scenarios_are_validated() {
    let r = run_scenario(
        "duration = \"2s\"\n[target]\ncommand = \"python3\"\nargs = [\"x.py\"]\n[[faults]]\nkind = \"kill\"\nat = \"1s\"\n[[faults]]\nkind = \"stop\"\nat = \"1s\"\n[[faults]]\nkind = \"explode\"\nat = \"1s\"\n",
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.describe());
    for needle in [
        "need a server that mcpstorm starts",
        "faults[1].duration",
        "faults[2].kind",
    ] {
        assert!(r.stderr.contains(needle), "missing {needle}: {}", r.stderr);
    }
    let r = run_scenario(
        "duration = \"2s\"\n[target]\nurl = \"http://127.0.0.1:1/mcp\"\n[target.launch]\ncommand = \"x\"\nready = \"127.0.0.1:1\"\nrestart = \"sometimes\"\n",
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.describe());
    assert!(
        r.stderr.contains("target.launch.ready") && r.stderr.contains("target.launch.restart"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_launched_server_that_never_gets_ready_exits_3() {
    let port = free_port();
    let toml = format!(
        "duration = \"2s\"\n[target]\nurl = \"http://127.0.0.1:{port}/mcp\"\n[target.launch]\ncommand = {:?}\nargs = [\"-c\", \"import sys, time; print('listening soon', file=sys.stderr); time.sleep(30)\"]\nready = \"tcp://127.0.0.1:{port}\"\nready_timeout = \"1s\"\n",
        python()
    );
    let started = Instant::now();
    let r = run_scenario(&toml, &[]);
    assert_eq!(r.code, 3, "{}", r.describe());
    assert!(r.stderr.contains("not ready within 1s"), "{}", r.stderr);
    assert!(started.elapsed() < Duration::from_secs(10));
}

fn leak_run(target: &str) -> RunResult {
    let toml = format!(
        "duration = \"9s\"\ncriteria = [\"rss_growth < 500MB/h\", \"fd_growth < 2000/h\"]\n{target}\n[workload]\nvus = 4\n[[mix]]\nop = \"tools/call\"\ntool = \"echo\"\narguments = {{ message = \"hi\" }}\n"
    );
    run_scenario(&toml, &["--no-progress"])
}

#[test]
fn a_leaking_server_is_flagged_and_the_reference_server_is_not() {
    let port = free_port();
    let leaky = leak_run(&format!(
        "[target]\nurl = \"http://127.0.0.1:{port}/mcp\"\n[target.launch]\ncommand = {:?}\nargs = [{:?}, \"http\", \"{port}\"]\nenv = {{ LEAK_BYTES = \"20000\" }}\nready = \"tcp://127.0.0.1:{port}\"",
        python(),
        fixture("py_server.py").display().to_string()
    ));
    assert_eq!(leaky.code, 1, "{}", leaky.describe());
    let growth = leaky.report()["leaks"]["rss_mb_per_h"].as_f64().unwrap();
    assert!(growth > 500.0, "the leak is measured: {growth} MB/h");
    assert_eq!(leaky.report()["criteria"][0]["passed"], false);

    let reference = leak_run("[target]\ntransport = \"embedded\"");
    assert_eq!(reference.code, 0, "{}", reference.describe());
    let growth = reference.report()["leaks"]["rss_mb_per_h"]
        .as_f64()
        .unwrap();
    assert!(growth < 500.0, "{growth}");
    let series = reference.report()["series"].as_array().unwrap().clone();
    assert!(
        series
            .iter()
            .any(|p| p["target_open_files"].as_u64().unwrap_or(0) > 3
                && p["target_threads"].as_u64().unwrap_or(0) >= 1)
    );
    // 4 VUs with a connection each (and the probe's): the server holds them as established.
    let held = series
        .iter()
        .map(|p| p["target_connections"].as_u64().unwrap_or(0))
        .max()
        .unwrap_or(0);
    assert!(
        (4..=10).contains(&held),
        "live connections seen from /proc: {held}"
    );
    assert!(reference.report()["leaks"]["connections_per_h"].is_number());
}

#[test]
fn the_hog_really_holds_its_memory() {
    let mut hog = std::process::Command::new(BIN)
        .args(["hog", "--memory-mb", "120", "--duration", "5s"])
        .spawn()
        .unwrap();
    let statm = format!("/proc/{}/statm", hog.id());
    wait_until(
        "the hog's RSS to pass 120 MB",
        Duration::from_secs(5),
        || {
            let pages: u64 = std::fs::read_to_string(&statm)
                .ok()
                .and_then(|s| s.split_whitespace().nth(1).and_then(|x| x.parse().ok()))
                .unwrap_or(0);
            pages * 4096 >= 120 * 1024 * 1024
        },
    );
    let _ = hog.kill();
    let _ = hog.wait();
}

#[test]
fn pressure_and_operator_command_faults_are_applied_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("redis-was-killed");
    let toml = format!(
        r#"
duration = "4s"
[target]
transport = "embedded"
[workload]
vus = 2
[[mix]]
op = "ping"
[[faults]]
kind = "memory"
megabytes = 64
at = "500ms"
duration = "1s"
[[faults]]
kind = "cpu"
threads = 1
at = "2s"
duration = "500ms"
[[faults]]
kind = "command"
run = "touch {m}"
undo = "rm {m}"
probe = "test ! -e {m}"
at = "3s"
duration = "200ms"
"#,
        m = marker.display()
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    let faults = r.report()["faults"].as_array().unwrap().clone();
    let kinds: Vec<&str> = faults.iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["memory", "cpu", "command"]);
    assert!(faults.iter().all(|f| f["applied"] == true), "{faults:?}");
    let held = faults[0]["ended_at_s"].as_f64().unwrap() - faults[0]["at_s"].as_f64().unwrap();
    assert!(
        (0.9..2.0).contains(&held),
        "the memory fault lasted its duration: {held}"
    );
    let detail = faults[2]["detail"].as_str().unwrap();
    assert!(
        detail.contains("touch")
            && detail.contains("then `rm")
            && detail.matches("exit status: 0").count() == 2,
        "{detail}"
    );
    assert!(!marker.exists(), "the undo command ran");
    assert!(
        detail.contains("probe `test ! -e") && detail.contains("succeeded"),
        "{detail}"
    );
}

#[test]
fn a_latency_toxic_in_front_of_the_target_moves_its_median_by_50ms() {
    let toml = r#"
duration = "6s"
[target]
transport = "embedded"
proxy = true
[workload]
vus = 1
[[mix]]
op = "tools/call"
tool = "echo"
arguments = { message = "hi" }
[[faults]]
kind = "network"
toxic = "latency"
stream = "downstream"
attributes = { latency = 50 }
at = "2s"
duration = "3s"
"#;
    let r = run_scenario(toml, &["--no-progress"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    let series = r.report()["series"].as_array().unwrap().clone();
    let p50 = |t: u64| {
        series
            .iter()
            .find(|p| p["t"] == t)
            .map(|p| p["p50_ms"].as_f64().unwrap())
            .unwrap()
    };
    let before = p50(2);
    let during = p50(4);
    let added = during - before;
    assert!(
        (40.0..65.0).contains(&added),
        "added {added:.1} ms (before {before:.2}, during {during:.2}); tolerance -10/+15 ms"
    );
    assert!(
        r.report()["faults"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("Latency")
    );
}

#[test]
fn a_redis_cut_through_the_proxy_is_detected_recovered_and_loses_no_acknowledged_write() {
    let redis = redis_server();
    let port = free_port();
    let toml = format!(
        r#"
duration = "10s"
criteria = ["lost_writes == 0", "unrecovered == 0"]
[[proxies]]
name = "redis"
upstream = "127.0.0.1:{rp}"
[target]
url = "http://127.0.0.1:{port}/mcp"
[target.launch]
command = {bin:?}
args = ["serve", "--port", "{port}", "--redis", "redis://{{{{proxy.redis}}}}"]
ready = "http://127.0.0.1:{port}/health"
[workload]
vus = 4
timeout = "3s"
[[mix]]
op = "ping"
[ledger]
write = {{ tool = "kv_put", arguments = {{ key = "w-{{{{seq}}}}", value = "v-{{{{seq}}}}" }} }}
read = {{ tool = "kv_get", arguments = {{ key = "w-{{{{seq}}}}" }} }}
expect = "v-{{{{seq}}}}"
weight = 3
[[faults]]
kind = "network"
proxy = "redis"
toxic = "down"
at = "2s"
duration = "5s"
"#,
        bin = BIN,
        rp = redis.port
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    let rec = &r.report()["recoveries"][0];
    let detected = rec["detected_after_ms"]
        .as_f64()
        .expect("the cut was noticed");
    let recovered = rec["recovered_after_ms"]
        .as_f64()
        .expect("and recovered from");
    assert!(detected < 2000.0, "{rec}");
    // Recovery comes from the per-second series here (the probe's `ping` does not touch
    // Redis, so only the writes fail): the start of the first whole second without a failed
    // call, second 7 when the cut is 2 s + 5 s. The fault itself starts a little after 2 s
    // (its task wakes a few ms late, more on a loaded machine) and `recovered_after_ms`
    // counts from that start, so it reads 7 s - 2.0008 s = 4999.2 ms. Bound the moment
    // service was back, which has no such offset: not before second 7 (1 ms for float
    // rounding), not past 9 s after the fault.
    let at_s = rec["at_s"].as_f64().expect("the fault's start");
    let back_at = at_s + recovered / 1000.0;
    assert!(
        back_at >= 7.0 - 0.001 && recovered < 9000.0,
        "back after the 5 s cut (at {back_at:.4} s): {rec}"
    );
    let l = &r.report()["checks"]["ledger"];
    assert_eq!(l["lost_writes"], 0, "{l}");
    assert!(
        l["writes_acknowledged"].as_u64().unwrap() > 100
            && l["writes_failed"].as_u64().unwrap() + l["writes_indeterminate"].as_u64().unwrap()
                > 0,
        "{l}"
    );
}

/// Legacy HTTP+SSE: the event stream is the session. server-everything (`sse`) killed
/// mid-run breaks every stream: each VU counts `session_lost`, and once the supervisor has
/// the server back the VUs open new streams and their calls succeed again.
#[test]
fn a_legacy_sse_server_killed_mid_run_loses_its_sessions_and_the_vus_reconnect() {
    let port = free_port();
    let toml = format!(
        r#"
duration = "8s"
criteria = ["unrecovered == 0"]
[target]
transport = "sse"
url = "http://127.0.0.1:{port}/sse"
[target.launch]
command = "node"
args = [{js}, "sse"]
env = {{ PORT = "{port}", GZIP_ALLOWED_DOMAINS = "127.0.0.1" }}
ready = "tcp://127.0.0.1:{port}"
ready_timeout = "30s"
restart = "on-failure"
[workload]
vus = 4
timeout = "2s"
[[mix]]
op = "tools/call"
tool = "echo"
arguments = {{ message = "hi {{{{seq}}}}" }}
[[faults]]
kind = "kill"
at = "2s"
"#,
        js = toml_str(&everything_js()),
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    assert_eq!(r.report()["target"]["transport"], "sse");
    let rec = recoveries(&r);
    assert_eq!(rec.len(), 1, "{rec:?}");
    let detected = rec[0]["detected_after_ms"]
        .as_f64()
        .expect("the kill was noticed");
    let recovered = rec[0]["recovered_after_ms"]
        .as_f64()
        .expect("the service came back");
    assert!(recovered > detected, "{:?}", rec[0]);
    // Every VU held a stream into the killed process: all of them lost their session.
    assert!(
        r.total("sessions_lost") >= 4.0 && r.error_count("session_lost") >= 4,
        "{}",
        r.describe()
    );
    let sup = &r.report()["supervisor"];
    assert_eq!(sup["starts"], 2, "started, killed, started again: {sup}");
    // After the recovery the VUs were back, each on a new stream: whole seconds after the
    // restart (a second `t` ends at t s) with all 4 sessions open, calls succeeding and
    // none failing.
    let back_at = rec[0]["at_s"].as_f64().unwrap() + recovered / 1000.0;
    let series = r.report()["series"].as_array().cloned().unwrap_or_default();
    let clean_after = series
        .iter()
        .filter(|s| s["t"].as_f64().unwrap_or(0.0) >= back_at.ceil() + 1.0)
        .filter(|s| {
            s["active_sessions"].as_u64() == Some(4)
                && s["ok"].as_u64().unwrap_or(0) > 0
                && s["failed"].as_u64() == Some(0)
        })
        .count();
    assert!(
        clean_after >= 2,
        "calls succeed on new streams after the restart (back at {back_at:.1} s): {series:?}"
    );
}
