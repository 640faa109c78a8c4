#!/usr/bin/env python3
"""mcpstorm's benchmark: mcpstorm and a baseline client written with the official Python SDK,
side by side in one go against the same server, at several concurrencies, over stdio and
Streamable HTTP. Prints a Markdown table of calls/s, p50/p99 and each client's CPU per call.

    python3 bench/run.py                       # needs target/release/mcpstorm (cargo build --release)
    python3 bench/run.py --duration 5 --concurrency 10 --transports http --sessions-1000

Everything runs on 127.0.0.1; every process started here is ended by pid.
"""
import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads) from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


class HttpServer:
    """One server process on a free port, for every HTTP row."""

    def __init__(self, cmd: list[str], env=None):
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        line = self.proc.stdout.readline()
        if "listening on " not in line:
            self.stop()
            sys.exit(f"bench: the server did not start: {line!r}")
        self.url = line.split("listening on ", 1)[1].strip()

    def cpu(self) -> float:
        return proc_cpu_seconds(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_mcpstorm(exe: str, transport: str, target: dict, concurrency: int, duration: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        if transport == "stdio":
            target_toml = f'transport = "stdio"\ncommand = {json.dumps(target["command"][0])}\nargs = {json.dumps(target["command"][1:])}\n'
        else:
            target_toml = f'transport = "http"\nurl = {json.dumps(target["url"])}\n'
        scenario = Path(tmp) / "bench.toml"
        scenario.write_text(
            f'name = "bench"\nduration = "{duration}s"\n[target]\n{target_toml}'
            f'[workload]\nexecutor = "constant-vus"\nvus = {concurrency}\ntimeout = "10s"\n'
            '[[mix]]\nop = "tools/call"\ntool = "echo"\narguments = { message = "hi" }\n'
        )
        out = Path(tmp) / "out"
        p = subprocess.run([exe, "run", str(scenario), "--out", str(out), "--no-progress"],
                           capture_output=True, text=True, timeout=duration + 120)
        if p.returncode not in (0, 1):
            sys.exit(f"bench: mcpstorm exited {p.returncode}:\n{p.stderr}")
        r = json.loads((out / "report.json").read_text())
    return {
        "client": "mcpstorm",
        "calls": r["totals"]["calls"],
        "failed": r["totals"]["failed"],
        "rps": r["totals"]["rps"],
        "p50_ms": r["latency_ms"]["overall"]["p50"],
        "p99_ms": r["latency_ms"]["overall"]["p99"],
        "cpu_us_per_call": r["client"]["cpu_us_per_call"],
        "max_rss_mb": r["client"]["max_rss_mb"],
    }


def run_baseline(transport: str, target: dict, concurrency: int, duration: float) -> dict:
    cmd = [sys.executable, str(HERE / "baseline_client.py"), "--transport", transport,
           "--concurrency", str(concurrency), "--duration", str(duration)]
    cmd += ["--command", shlex.join(target["command"])] if transport == "stdio" else ["--url", target["url"]]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    if p.returncode != 0:
        sys.exit(f"bench: the baseline exited {p.returncode}:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mcpstorm", default=str(REPO / "target/release/mcpstorm"))
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--concurrency", default="10,50")
    ap.add_argument("--transports", default="stdio,http")
    ap.add_argument("--server", choices=["reference", "python"], default="reference")
    ap.add_argument("--sessions-1000", action="store_true", help="add a row: mcpstorm alone with 1000 HTTP sessions")
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()
    if not Path(args.mcpstorm).exists():
        sys.exit(f"bench: {args.mcpstorm} does not exist; build it with `cargo build --release` or pass --mcpstorm")

    if args.server == "reference":
        stdio_cmd = [args.mcpstorm, "serve", "--stdio"]
        http_cmd = [args.mcpstorm, "serve", "--port", "0"]
    else:
        fixture = str(REPO / "tests/fixtures/py_server.py")
        stdio_cmd = [sys.executable, fixture, "stdio"]
        http_cmd = None

    rows = []
    server = None
    try:
        for transport in args.transports.split(","):
            target = {"command": stdio_cmd}
            if transport == "http":
                if http_cmd is None:
                    print("bench: --server python has no HTTP announce line; use --server reference for HTTP", file=sys.stderr)
                    continue
                server = HttpServer(http_cmd)
                target = {"url": server.url}
            for c in [int(x) for x in args.concurrency.split(",")]:
                clients = [("mcpstorm", lambda: run_mcpstorm(args.mcpstorm, transport, target, c, args.duration))]
                if not args.no_baseline:
                    clients.append(("python-sdk", lambda: run_baseline(transport, target, c, args.duration)))
                for name, fn in clients:
                    cpu0 = server.cpu() if server else None
                    t0 = time.perf_counter()
                    res = fn()
                    wall = time.perf_counter() - t0
                    res["server_cpu_pct"] = (server.cpu() - cpu0) / wall * 100 if server else None
                    res.update(transport=transport, concurrency=c, client=name)
                    rows.append(res)
                    print(f"bench: {transport} c={c} {name}: {res['rps']:.0f} calls/s", file=sys.stderr)
            if args.sessions_1000 and transport == "http":
                res = run_mcpstorm(args.mcpstorm, "http", target, 1000, args.duration)
                res.update(transport="http", concurrency=1000, client="mcpstorm", server_cpu_pct=None)
                rows.append(res)
            if server:
                server.stop()
                server = None
    finally:
        if server:
            server.stop()

    print(f"\n{args.duration:.0f} s per row, echo tool, {args.server} server, {os.cpu_count()} cores\n")
    print("| transport | concurrency | client | calls/s | p50 ms | p99 ms | client CPU µs/call | client RSS MB | server CPU % | failed |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        server_cpu = "n/a" if r.get("server_cpu_pct") is None else f"{r['server_cpu_pct']:.0f}"
        print(f"| {r['transport']} | {r['concurrency']} | {r['client']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
              f"{r['p99_ms']:.2f} | {r['cpu_us_per_call']:.1f} | {r['max_rss_mb']:.0f} | {server_cpu} | {r['failed']} |")


if __name__ == "__main__":
    main()
