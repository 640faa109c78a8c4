//! The live view of a run, for real: the terminal dashboard in a tmux pane (drawn, updated,
//! stopped with `q`, terminal given back), plain progress lines without a terminal, alerts
//! raised by failing calls and by a killed server, and the rules' validation.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of this test's own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Run `command` through `sh -c` in a detached 160x48 pane.
    fn start(name: &str, command: &str) -> Tmux {
        let socket = format!("mcpstorm-test-{}-{name}", std::process::id());
        let tmux = Tmux { socket };
        let status = tmux
            .cmd()
            .args(["new-session", "-d", "-s", "t", "-x", "160", "-y", "48"])
            .args(["sh", "-c", command])
            .status()
            .expect("tmux is installed (.ci/run installs it)");
        assert!(status.success(), "tmux new-session failed");
        tmux
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    fn capture(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "t"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &str) {
        let status = self
            .cmd()
            .args(["send-keys", "-t", "t", keys])
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }

    /// Poll the pane until `cond` holds; the last screen is in the panic message.
    fn wait_for(&self, what: &str, deadline: Duration, cond: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + deadline;
        let mut screen = String::new();
        while Instant::now() < end {
            screen = self.capture();
            if cond(&screen) {
                return screen;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out after {deadline:?} waiting for {what}; the pane showed:\n{screen}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

/// The shell line that runs mcpstorm in the pane, keeps its exit code and, once it has
/// ended, the terminal's modes (to see that raw mode was undone), then stays open.
fn in_pane(args: &str, dir: &Path) -> String {
    let d = dir.display();
    format!(
        "MCPSTORM_EXE={BIN} {BIN} {args} --out {d}; echo $? > {d}/exit.tmp && mv {d}/exit.tmp {d}/exit; stty -a > {d}/stty; sleep 600"
    )
}

fn exit_code(dir: &Path, deadline: Duration) -> i32 {
    let path = dir.join("exit");
    wait_until("mcpstorm to end in the pane", deadline, || path.exists());
    std::fs::read_to_string(&path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The header's running total of calls.
fn calls_shown(screen: &str) -> Option<u64> {
    let line = screen.lines().find(|l| l.contains("calls/s"))?;
    let after = line.split("calls ").nth(1)?;
    after.split_whitespace().next()?.parse().ok()
}

fn report(dir: &Path) -> serde_json::Value {
    let bytes = std::fs::read(dir.join("report.json")).expect("report.json written");
    serde_json::from_slice(&bytes).expect("report.json parses")
}

fn failing_scenario(dir: &Path, duration: &str) -> PathBuf {
    // One call in ten fails half the time: 5 % errors, past the default 1 % alert, and
    // within the criterion.
    let toml = format!(
        r#"name = "failing"
duration = "{duration}"
criteria = ["success_rate >= 0.8"]
[target]
transport = "embedded"
[workload]
vus = 4
think_time = "2ms"
[[mix]]
op = "tools/call"
tool = "echo"
weight = 9
arguments = {{ message = "hi" }}
[[mix]]
op = "tools/call"
tool = "fail"
weight = 1
arguments = {{ error_rate = 0.5 }}
"#
    );
    let path = dir.join("scenario.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

#[test]
fn dashboard_draws_updates_shows_alerts_and_q_stops_with_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = failing_scenario(dir.path(), "120s");
    let pane = Tmux::start(
        "dash",
        &in_pane(&format!("run {}", scenario.display()), dir.path()),
    );
    let first = pane.wait_for("the dashboard", Duration::from_secs(60), |s| {
        s.contains("q stop the run") && calls_shown(s).is_some_and(|n| n > 0)
    });
    for panel in [
        "calls/s",
        "success rate",
        "latency",
        "tools",
        "timeline",
        "alerts",
        "target RSS",
    ] {
        assert!(first.contains(panel), "`{panel}` missing:\n{first}");
    }
    let before = calls_shown(&first).unwrap();
    // It updates: the running total moves on between two looks.
    pane.wait_for("the total to move", Duration::from_secs(30), |s| {
        calls_shown(s).is_some_and(|n| n > before)
    });
    // 5 % of calls fail: the default error-rate rule fires after 5 s and shows.
    let alerted = pane.wait_for("the error-rate alert", Duration::from_secs(60), |s| {
        s.contains("FIRING") && s.contains("error_rate")
    });
    assert!(
        alerted.contains("echo") && alerted.contains("fail"),
        "{alerted}"
    );

    pane.keys("q");
    let code = exit_code(dir.path(), Duration::from_secs(60));
    let rep = report(dir.path());
    for written in ["junit.xml", "report.html"] {
        assert!(dir.path().join(written).exists(), "{written} not written");
    }
    // A run stopped halfway cannot pass: `completed` fails, and so does the exit code.
    assert_eq!(rep["verdict"], "FAIL", "{rep:#}");
    assert_eq!(code, 1, "exit per verdict: {rep:#}");
    let completed = rep["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "completed")
        .unwrap_or_else(|| panic!("no `completed` criterion: {rep:#}"));
    assert_eq!(completed["passed"], false, "{completed}");
    assert_eq!(completed["unit"], "s", "{completed}");
    assert!(
        rep["duration_s"].as_f64().unwrap() < 100.0,
        "q ended the 120 s run early"
    );
    let warnings = rep["warnings"].to_string();
    assert!(warnings.contains("interrupted"), "{warnings}");
    assert!(
        rep["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["rule"] == "error_rate"),
        "{}",
        rep["alerts"]
    );
    // The terminal is given back: the summary is on the main screen, not in raw mode.
    let after = pane.wait_for("the summary", Duration::from_secs(10), |s| {
        s.contains("verdict:")
    });
    assert!(!after.contains("q stop the run"), "{after}");
    let stty = std::fs::read_to_string(dir.path().join("stty")).unwrap();
    assert!(
        stty.split_whitespace().any(|w| w == "icanon")
            && stty.split_whitespace().any(|w| w == "echo"),
        "the terminal was left raw: {stty}"
    );
}

impl Tmux {
    /// The pid of the process the pane's shell is running (mcpstorm), from /proc.
    fn child_pid(&self) -> u32 {
        let out = self
            .cmd()
            .args(["list-panes", "-t", "t", "-F", "#{pane_pid}"])
            .output()
            .expect("tmux list-panes");
        let sh = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let children =
            std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children")).unwrap_or_default();
        children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the pane's shell {sh} runs nothing"))
    }
}

/// A SIGINT from outside (not the `q` key) during the dashboard: the run stops with its
/// report, FAIL by `completed`, and nothing is written on stderr over the dashboard (it
/// shows "stopping" itself).
#[test]
fn an_external_sigint_stops_the_dashboard_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = dir.path().join("stderr");
    let pane = Tmux::start(
        "sigint",
        &in_pane(
            &format!("run --duration 120s 2>{}", stderr.display()),
            dir.path(),
        ),
    );
    pane.wait_for("the dashboard", Duration::from_secs(60), |s| {
        calls_shown(s).is_some_and(|n| n > 0)
    });
    let pid = pane.child_pid();
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(exit_code(dir.path(), Duration::from_secs(60)), 1);
    let rep = report(dir.path());
    assert_eq!(rep["verdict"], "FAIL", "{rep:#}");
    assert!(
        rep["criteria"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "completed" && c["passed"] == false),
        "{:#}",
        rep["criteria"]
    );
    let written = std::fs::read_to_string(&stderr).unwrap();
    assert!(!written.contains("interrupted"), "stderr: {written}");
}

#[test]
fn no_tui_in_a_terminal_prints_progress_lines() {
    let dir = tempfile::tempdir().unwrap();
    let pane = Tmux::start(
        "plain",
        &in_pane(
            "run --duration 3s --progress-interval 1s --no-tui",
            dir.path(),
        ),
    );
    assert_eq!(exit_code(dir.path(), Duration::from_secs(60)), 0);
    let screen = pane.capture();
    assert!(screen.contains("calls/s  ok"), "{screen}");
    assert!(screen.contains("verdict: PASS"), "{screen}");
    assert!(!screen.contains("q stop the run"), "{screen}");
}

#[test]
fn failing_calls_raise_the_error_rate_alert_in_lines_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = failing_scenario(dir.path(), "8s");
    let r = run_args(
        &[
            "run",
            scenario.to_str().unwrap(),
            "--progress-interval",
            "1s",
        ],
        dir,
    );
    assert_eq!(r.code, 0, "{}", r.describe());
    let alert = r.report()["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "error_rate")
        .cloned()
        .unwrap_or_else(|| panic!("no error_rate alert: {}", r.describe()));
    assert_eq!(alert["severity"], "critical");
    // The rule holds for 5 s: it cannot fire before then.
    assert!(alert["at_s"].as_f64().unwrap() >= 5.0, "{alert}");
    assert!(
        alert["message"].as_str().unwrap().contains("error rate"),
        "{alert}"
    );
    assert!(
        r.stderr.contains("ALERT [critical] error_rate"),
        "on the progress lines: {}",
        r.stderr
    );
    // The probe that watches for `probe_failed` is mcpstorm's own: not a load session.
    assert_eq!(r.total("sessions_opened"), 5.0, "preflight + 4 VUs");
    assert!(r.total("monitor_sessions_opened") >= 1.0);
    // A run that stays healthy raises nothing.
    let dir = tempfile::tempdir().unwrap();
    let quiet = run_args(&["run", "--duration", "3s", "--no-progress"], dir);
    assert_eq!(quiet.code, 0, "{}", quiet.describe());
    assert_eq!(quiet.report()["alerts"], serde_json::json!([]));
}

#[test]
fn a_killed_server_raises_probe_failed() {
    let toml = r#"
name = "killed"
duration = "5s"
criteria = ["success_rate >= 0.5"]
[target]
transport = "embedded"
[workload]
vus = 2
[[mix]]
op = "tools/call"
tool = "echo"
arguments = { message = "hi" }
[[faults]]
kind = "kill"
at = "2s"
"#;
    let r = run_scenario(toml, &["--progress-interval", "1s"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    let alerts = r.report()["alerts"].as_array().unwrap().clone();
    let probe = alerts
        .iter()
        .find(|a| a["rule"] == "probe")
        .unwrap_or_else(|| panic!("no probe alert: {alerts:?}\n{}", r.describe()));
    let at = probe["at_s"].as_f64().unwrap();
    assert!((2.0..4.0).contains(&at), "raised near the fault: {probe}");
    let ended = probe["ended_at_s"].as_f64().expect("the server came back");
    assert!(ended > at, "{probe}");
    assert!(r.stderr.contains("ALERT [critical] probe"), "{}", r.stderr);
}

#[test]
fn scenario_alert_rules_override_defaults_and_bad_ones_name_the_key() {
    // Replace the error-rate rule by name with a stricter one, turn nothing else off.
    let server = reference_http();
    let toml = format!(
        r#"
name = "rules"
duration = "4s"
criteria = ["success_rate >= 0.5"]
[target]
url = {:?}
[workload]
vus = 2
[[mix]]
op = "tools/call"
tool = "sleep"
arguments = {{ ms = 30 }}
[alerts]
[[alerts.rules]]
name = "slow"
when = "p50 > 10ms"
for = "2s"
severity = "critical"
"#,
        server.url()
    );
    let r = run_scenario(&toml, &["--no-progress"]);
    assert_eq!(r.code, 0, "{}", r.describe());
    let alerts = r.report()["alerts"].as_array().unwrap().clone();
    let slow = alerts
        .iter()
        .find(|a| a["rule"] == "slow")
        .unwrap_or_else(|| panic!("{alerts:?}"));
    assert_eq!(slow["severity"], "critical");
    assert!(slow["at_s"].as_f64().unwrap() >= 2.0, "{slow}");
    let rules = r.report()["scenario"]["alerts"]["rules"].to_string();
    assert!(
        rules.contains("\"slow\"") && rules.contains("error_rate > 1%"),
        "the defaults stay beside it: {rules}"
    );

    let bad = r#"
name = "bad"
[alerts]
defaults = false
rss_limit = "lots"
[[alerts.rules]]
when = "latency > 3"
[[alerts.rules]]
when = "p99 > 1s"
for = "soon"
severity = "loud"
"#;
    let r = run_scenario(bad, &["--no-progress"]);
    assert_eq!(r.code, 2, "{}", r.describe());
    for key in [
        "alerts.rules[0].when",
        "alerts.rules[1].for",
        "alerts.rules[1].severity",
        "alerts.rss_limit",
    ] {
        assert!(r.stderr.contains(key), "`{key}` not named: {}", r.stderr);
    }
    assert!(
        r.stderr.contains("unknown metric `latency`"),
        "{}",
        r.stderr
    );
}
